"""The prior protocol: what a solver sees of a generative model.

A :class:`Prior` bundles *pure functions over a params pytree* with static shapes:

- ``generate(params, z) -> x``: one latent ``z`` of shape ``latent_shape`` to one image ``x`` of shape
  ``image_shape`` (``(H, W, C)``, values in ``[0, 1]``); vmap it for batches.
- ``encode(params, x) -> z`` (optional): an image to a latent of shape ``latent_shape`` (a VAE's encoder mean, a
  flow's inverse).
- ``log_prob(params, x) -> scalar`` (optional): the exact image log-density in nats (flows).
- ``denoise(params, x, sigma) -> x_hat`` (optional): the MMSE denoiser ``D(x, sigma) ~ E[x0 | x0 + sigma n = x]``
  of an image of shape ``image_shape`` at a scalar noise level ``sigma`` (image units), from which the score
  ``(D(x, sigma) - x) / sigma^2`` of the noised prior follows (diffusion priors, :mod:`.diffusion`; the
  diffusion solvers need it, the latent-space ones ``generate``).

A ``Prior`` is a JAX pytree: ``params`` holds its (only) leaves; ``name``, the shapes, the functions and ``config``
are static metadata (:attr:`Prior.static`, hashable). So a prior passes through ``jax.jit``, ``jax.vmap`` and
``jax.tree_util.tree_map`` like any pytree, and two priors of the same architecture (equal static parts) share
compiled code whatever their weights. The solver factories (:func:`~genprior_jax.solvers.csgm_solver`, ...) take
the prior itself and cache on its static part, never on its params.

Plugging in a network:

- a flax.nnx module (one latent in, one image out; ``batched=True`` if it wants a leading batch axis)::

      prior = gp.Prior.from_nnx(generator, latent_shape=(64,), image_shape=(28, 28, 1))
      prior = gp.Prior.from_nnx(vae, latent_shape=(64,), image_shape=(28, 28, 1), generate="decode",
                                encode="encode_mean")       # methods by name

- a flax.linen module and its variables (``module.init(...)``, or only their ``"params"`` collection)::

      prior = gp.Prior.from_linen(Decoder(hidden=256), variables, latent_shape=(64,), image_shape=(28, 28, 1))

- any pure function: ``gp.Prior(name, latent_shape, image_shape, generate, params)``. The compiled solvers are
  cached on ``generate`` (compared by ``==``), so keep it the same object across calls (a module-level function,
  or one cached per configuration as :mod:`genprior_jax.priors.vae` does): a fresh ``lambda`` per prior
  recompiles. The adapters' functions compare equal for equal architectures (the nnx graphdef, the linen module's
  class and fields), so rebuilding a prior with other weights never recompiles.

A prior is checked once when built (``jax.eval_shape``, no FLOPs): ``generate`` on a float32 latent of
``latent_shape`` must give a floating image of ``image_shape`` (and ``encode``, if any, a latent of
``latent_shape``); a mismatch raises ``ValueError`` naming the function and both shapes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Params = Any


def _freeze(value: Any) -> Any:
    """A hashable stand-in for a config value: mappings -> frozensets of items, sequences -> tuples."""
    if isinstance(value, Mapping):
        return frozenset((k, _freeze(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (set, frozenset)):
        return frozenset(_freeze(v) for v in value)
    return value


class FrozenConfig(dict):
    """A prior's configuration: a read-only ``dict`` (``json.dumps``, ``dict(c)``, ``{**c}`` work as on a dict)
    that is hashable, so it can be static pytree metadata. Two configs are equal when their contents are, lists and
    tuples alike (a config read back from JSON equals the one written)."""

    __slots__ = ()

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("Prior.config is read-only; build a new prior, e.g. dataclasses.replace(prior, config=...)")

    __setitem__ = __delitem__ = _read_only  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = __ior__ = _read_only  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(_freeze(self))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return _freeze(self) == _freeze(other)

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenConfig, (dict(self),))


@dataclasses.dataclass(frozen=True)
class PriorStatic:
    """The static part of a :class:`Prior` (its pytree metadata): hashable, equal for equal architectures."""

    name: str
    latent_shape: tuple[int, ...]
    image_shape: tuple[int, ...]
    generate: Callable[[Params, Array], Array]
    encode: Callable[[Params, Array], Array] | None
    log_prob: Callable[[Params, Array], Array] | None
    config: FrozenConfig
    denoise: Callable[[Params, Array, Array], Array] | None = None


def _shape(value: Any, what: str, name: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in value)
    except TypeError:
        raise ValueError(f"Prior {name!r}: expected {what} as a tuple of ints, got {value!r}") from None
    if any(s < 1 for s in shape):
        raise ValueError(f"Prior {name!r}: expected {what} of positive sizes, got {shape}")
    return shape


@dataclasses.dataclass(frozen=True, eq=False)
class Prior:
    """A generative prior (module docstring): pure functions of ``params`` plus static shapes; a pytree whose
    leaves are ``params``'s."""

    name: str
    latent_shape: tuple[int, ...]
    image_shape: tuple[int, int, int]
    generate: Callable[[Params, Array], Array]
    params: Params
    encode: Callable[[Params, Array], Array] | None = None
    log_prob: Callable[[Params, Array], Array] | None = None
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    denoise: Callable[[Params, Array, Array], Array] | None = None

    def __post_init__(self) -> None:
        name = str(self.name)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "latent_shape", _shape(self.latent_shape, "latent_shape", name))
        object.__setattr__(self, "image_shape", _shape(self.image_shape, "image_shape", name))
        for field in ("generate", "encode", "log_prob", "denoise"):
            fn = getattr(self, field)
            if not callable(fn) and not (fn is None and field != "generate"):
                raise ValueError(f"Prior {name!r}: expected {field} to be a function (params, x) -> ..., "
                                 f"got {type(fn).__name__}")
        config = FrozenConfig(self.config or {})
        try:
            hash(config)
        except TypeError as e:
            raise ValueError(f"Prior {name!r}: expected a config of hashable values (numbers, strings, tuples, "
                             f"lists, dicts), got {e}") from None
        object.__setattr__(self, "config", config)
        check_prior(self)

    @property
    def static(self) -> PriorStatic:
        """Everything but ``params``: the pytree metadata, hashable (a cache key for compiled solvers)."""
        return PriorStatic(self.name, tuple(self.latent_shape), tuple(self.image_shape), self.generate, self.encode,
                           self.log_prob, self.config, self.denoise)  # type: ignore[arg-type]

    def sample(self, key: Array, n: int) -> Array:
        """``n`` images ``G(z)``, ``z ~ N(0, I)``: shape ``(n, *image_shape)``."""
        z = jax.random.normal(key, (n, *self.latent_shape), jnp.float32)
        return jax.vmap(self.generate, in_axes=(None, 0))(self.params, z)

    @classmethod
    def from_nnx(cls, module: Any, *, latent_shape: tuple[int, ...], image_shape: tuple[int, ...],
                 name: str | None = None, generate: str | Callable[..., Any] = "__call__",
                 encode: str | Callable[..., Any] | None = None, log_prob: str | Callable[..., Any] | None = None,
                 batched: bool = False, config: Mapping[str, Any] | None = None) -> Prior:
        """A prior around a flax.nnx module; see :func:`genprior_jax.priors.adapters.from_nnx`."""
        from .adapters import from_nnx

        return from_nnx(module, latent_shape=latent_shape, image_shape=image_shape, name=name, generate=generate,
                        encode=encode, log_prob=log_prob, batched=batched, config=config)

    @classmethod
    def from_linen(cls, module: Any, params: Any, *, latent_shape: tuple[int, ...], image_shape: tuple[int, ...],
                   name: str | None = None, generate: str | Callable[..., Any] | None = None,
                   encode: str | Callable[..., Any] | None = None, log_prob: str | Callable[..., Any] | None = None,
                   batched: bool = False, config: Mapping[str, Any] | None = None) -> Prior:
        """A prior around a flax.linen module and its variables; see
        :func:`genprior_jax.priors.adapters.from_linen`."""
        from .adapters import from_linen

        return from_linen(module, params, latent_shape=latent_shape, image_shape=image_shape, name=name,
                          generate=generate, encode=encode, log_prob=log_prob, batched=batched, config=config)

    def __repr__(self) -> str:
        n = sum(int(np.size(p)) for p in jax.tree_util.tree_leaves(self.params))
        return (f"Prior({self.name!r}, latent_shape={self.latent_shape}, image_shape={self.image_shape}, "
                f"params={n:,}, encode={'yes' if self.encode else 'no'}"
                f"{', denoise=yes' if self.denoise else ''})")


def _flatten_with_keys(prior: Prior) -> tuple[tuple[tuple[Any, Params], ...], PriorStatic]:
    return ((jax.tree_util.GetAttrKey("params"), prior.params),), prior.static


def _flatten(prior: Prior) -> tuple[tuple[Params], PriorStatic]:
    return (prior.params,), prior.static


def _unflatten(static: PriorStatic, children: Any) -> Prior:
    # no __init__: the leaves may be tracers, sentinels or None (jax internals), and the static part was checked
    prior = object.__new__(Prior)
    for field in ("name", "latent_shape", "image_shape", "generate", "encode", "log_prob", "config", "denoise"):
        object.__setattr__(prior, field, getattr(static, field))
    object.__setattr__(prior, "params", children[0])
    return prior


jax.tree_util.register_pytree_with_keys(Prior, _flatten_with_keys, _unflatten, _flatten)


# ----------------------------------------------------------------------------------------------- validation


def _abstract(params: Params) -> Any:
    return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(np.shape(a), jnp.result_type(a)), params)


def check_prior(prior: Prior) -> None:
    """Check ``prior``'s functions against its shapes with ``jax.eval_shape`` (traced, nothing computed):
    ``generate(params, z)`` for ``z`` float32 of ``latent_shape`` must be a floating image of ``image_shape``;
    ``encode(params, x)`` (if any) for ``x`` float32 of ``image_shape`` a floating latent of ``latent_shape``
    (``log_prob`` is not traced here: for a flow that would cost as much again). Raises ``ValueError`` naming the
    function, the expected and the received shape. Runs once per architecture and parameter shapes (cached), so
    rebuilding a prior is cheap."""
    try:
        abstract = _abstract(prior.params)
        leaves, treedef = jax.tree_util.tree_flatten(abstract)
        key = (prior.static, treedef, tuple((leaf.shape, leaf.dtype) for leaf in leaves))
        hash(key)
    except (TypeError, ValueError):  # leaves that are not arrays, unhashable metadata: check without caching
        _check(prior.static, prior.params)
        return
    _check_cached(key, abstract)


def _check_cached(key: Any, abstract: Any) -> None:
    if key in _CHECKED:
        return
    _check(key[0], abstract)
    if len(_CHECKED) >= 256:
        _CHECKED.pop(next(iter(_CHECKED)))
    _CHECKED[key] = None


_CHECKED: dict[Any, None] = {}  # insertion-ordered: the oldest entry goes first


def _describe(out: Any) -> str:
    if isinstance(out, jax.ShapeDtypeStruct):
        return f"shape {tuple(out.shape)} ({out.dtype})"
    return f"a {type(out).__name__} (shapes {jax.tree_util.tree_map(lambda a: tuple(a.shape), out)})"


def _check(static: PriorStatic, params: Any) -> None:
    who = f"Prior {static.name!r}"
    z = jax.ShapeDtypeStruct(static.latent_shape, jnp.float32)
    x = jax.ShapeDtypeStruct(static.image_shape, jnp.float32)
    checks: list[tuple[str, Callable[..., Any], Any, str, tuple[int, ...]]] = [
        ("generate", static.generate, z, "z", static.image_shape)]
    if static.encode is not None:
        checks.append(("encode", static.encode, x, "x", static.latent_shape))
    if static.denoise is not None:
        checks.append(("denoise", lambda p, xx: static.denoise(p, xx, jnp.float32(0.5)), x,  # type: ignore[misc]
                       "x", static.image_shape))
    for fname, fn, arg, arg_name, expected in checks:
        try:
            out = jax.eval_shape(fn, params, arg)
        except Exception as e:  # the function itself failed on inputs of the declared shapes
            raise ValueError(f"{who}: {fname}(params, {arg_name}) failed on {arg_name} of shape "
                             f"{tuple(arg.shape)} float32: {type(e).__name__}: {e}") from e
        ok = (isinstance(out, jax.ShapeDtypeStruct) and tuple(out.shape) == tuple(expected)
              and jnp.issubdtype(out.dtype, jnp.floating))
        if not ok:
            raise ValueError(f"{who}: {fname}(params, {arg_name}) with {arg_name} of shape {tuple(arg.shape)} "
                             f"must return a float array of shape {tuple(expected)}, got {_describe(out)}")


def prior_static(prior: Prior | PriorStatic, who: str) -> PriorStatic:
    """``prior``'s static part (what a solver factory caches on); ``ValueError`` naming ``who`` for anything but a
    :class:`Prior` or a :class:`PriorStatic` (e.g. a bare ``generate`` function, the factories' old first
    argument)."""
    if isinstance(prior, Prior):
        return prior.static
    if isinstance(prior, PriorStatic):
        return prior
    raise ValueError(f"{who}: expected a Prior (or prior.static), got {type(prior).__name__}; the solver factories "
                     f"take the prior itself: {who}(prior, ...)")
