"""Adapters: a flax.nnx or flax.linen network as a :class:`~genprior_jax.priors.base.Prior`.

The network maps **one** latent to **one** image: it is called on ``z`` of shape ``latent_shape`` (no batch axis)
and must return an image of shape ``image_shape`` (``(H, W, C)``, values in ``[0, 1]``); the solvers ``vmap`` over
problems, restarts and chains themselves. A network written for batches (a ``Conv`` stack that wants ``(N, ...)``)
takes ``batched=True``: it is then called on ``z[None]``, shape ``(1, *latent_shape)``, and must return
``(1, *image_shape)``, whose only row is used. ``encode`` and ``log_prob`` (method names, or functions
``(module, x) -> ...``) get one image the same way and return one latent / one scalar.

::

    from flax import nnx
    import genprior_jax as gp

    class Generator(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(64, 256, rngs=rngs)
            self.out = nnx.Linear(256, 784, rngs=rngs)

        def __call__(self, z):                       # z: (64,) -> (28, 28, 1)
            return nnx.sigmoid(self.out(nnx.relu(self.hidden(z)))).reshape(28, 28, 1)

    prior = gp.Prior.from_nnx(Generator(nnx.Rngs(0)), latent_shape=(64,), image_shape=(28, 28, 1))
    res = gp.csgm(prior, key, y, op)

    # linen: the module and its variables (module.init(...), or only their "params" collection)
    prior = gp.Prior.from_linen(decoder, variables, latent_shape=(64,), image_shape=(28, 28, 1))

The wrapped functions compare equal, and hash alike, for equal architectures: for nnx the module's ``GraphDef``
(its structure and static attributes, not its weights), for linen the module itself (linen modules are frozen
dataclasses, equal when their class and fields are), plus the method and ``batched``. The solvers cache their
compiled code on these functions, so training a module further, or building it again with other weights, and
solving again never recompiles. ``prior.params`` is the ``nnx.State`` of every variable (put the module in
evaluation mode, ``module.eval()``, before wrapping one with dropout or batch statistics), or linen's variables.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
from flax import linen as nn
from flax import nnx

from .base import Prior

Array = jax.Array
Method = str | Callable[..., Any]


def _apply(fn: Callable[[Array], Any], x: Array, batched: bool) -> Any:
    if not batched:
        return fn(x)
    return jax.tree_util.tree_map(lambda a: a[0], fn(x[None]))


@dataclasses.dataclass(frozen=True)
class NNXFunction:
    """``(state, x) -> nnx.merge(graphdef, state).<method>(x)``: a prior function of an nnx module; equal for
    equal graphdefs (architectures), whatever the weights."""

    graphdef: Any
    method: Method
    batched: bool = False

    def __call__(self, params: Any, x: Array) -> Any:
        module = nnx.merge(self.graphdef, params)
        fn = getattr(module, self.method) if isinstance(self.method, str) else functools.partial(self.method, module)
        return _apply(fn, x, self.batched)


@dataclasses.dataclass(frozen=True, eq=False)
class LinenFunction:
    """``(variables, x) -> module.apply(variables, x, method=method)``: a prior function of a linen module; equal
    for equal modules (class and fields: the architecture), whatever the variables."""

    module: Any
    method: Method | None = None
    batched: bool = False

    def _key(self) -> tuple[Any, ...]:
        try:
            hash(self.module)
            arch: Any = self.module
        except TypeError:  # a field holds a list or another unhashable value: compare the printed fields
            arch = (type(self.module), repr(self.module))
        return (arch, self.method, self.batched)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LinenFunction) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __call__(self, params: Any, x: Array) -> Any:
        return _apply(lambda v: self.module.apply(params, v, method=self.method), x, self.batched)


def _check_method(module: Any, method: Method | None, what: str, who: str) -> None:
    if method is None or callable(method):
        return
    if not isinstance(method, str) or not callable(getattr(module, method, None)):
        raise ValueError(f"{who}: expected {what} to be a method name of {type(module).__name__} or a function "
                         f"(module, x) -> ..., got {method!r}")


def from_nnx(module: nnx.Module, *, latent_shape: tuple[int, ...], image_shape: tuple[int, ...],
             name: str | None = None, generate: Method = "__call__", encode: Method | None = None,
             log_prob: Method | None = None, batched: bool = False,
             config: Mapping[str, Any] | None = None) -> Prior:
    """A :class:`Prior` around a flax.nnx module (module docstring): ``nnx.split`` gives the graphdef (static)
    and the state (``prior.params``, the leaves).

    Args:
        module: the generator; ``module(z)`` (or ``generate``) maps one latent to one image.
        latent_shape: the shape of one latent.
        image_shape: the shape of one image, ``(H, W, C)``.
        name: the prior's name (default: the module's class name).
        generate: the method of ``module`` (a name, or a function ``(module, z) -> x``) mapping a latent to an image.
        encode: the method mapping one image to one latent (name or function), or ``None`` (no encoder).
        log_prob: the method mapping one image to its log-density in nats (name or function), or ``None``.
        batched: the methods want a leading batch axis (called on ``x[None]``, row 0 of the result used).
        config: static metadata to keep with the prior (hashable values).

    Raises ``ValueError`` for a non-nnx module, an unknown method, or functions whose outputs do not match the
    shapes (checked once with ``jax.eval_shape``).
    """
    if not isinstance(module, nnx.Module):
        raise ValueError(f"Prior.from_nnx: expected a flax.nnx.Module, got {type(module).__name__}")
    for what, method in (("generate", generate), ("encode", encode), ("log_prob", log_prob)):
        _check_method(module, method, what, "Prior.from_nnx")
    graphdef, state = nnx.split(module)
    fn = lambda m: None if m is None else NNXFunction(graphdef, m, bool(batched))  # noqa: E731
    return Prior(name=type(module).__name__ if name is None else name, latent_shape=tuple(latent_shape),
                 image_shape=tuple(image_shape), generate=fn(generate), params=state,  # type: ignore[arg-type]
                 encode=fn(encode), log_prob=fn(log_prob), config=dict(config or {}))


def from_linen(module: nn.Module, params: Any, *, latent_shape: tuple[int, ...], image_shape: tuple[int, ...],
               name: str | None = None, generate: Method | None = None, encode: Method | None = None,
               log_prob: Method | None = None, batched: bool = False,
               config: Mapping[str, Any] | None = None) -> Prior:
    """A :class:`Prior` around a flax.linen module and its variables (module docstring).

    Args:
        module: the (unbound) generator; ``module.apply(variables, z)`` maps one latent to one image.
        params: its variables as ``module.init`` returns them (a mapping with a ``"params"`` collection, plus
            ``"batch_stats"`` etc.), or the ``"params"`` collection alone; ``prior.params`` is the full variables.
        latent_shape: the shape of one latent.
        image_shape: the shape of one image, ``(H, W, C)``.
        name: the prior's name (default: the module's class name).
        generate: a method name or function for ``apply(..., method=)``; ``None`` is ``__call__``.
        encode: the method mapping one image to one latent (name or function), or ``None`` (no encoder).
        log_prob: the method mapping one image to its log-density in nats (name or function), or ``None``.
        batched: the methods want a leading batch axis (called on ``x[None]``, row 0 of the result used).
        config: static metadata to keep with the prior (hashable values).
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"Prior.from_linen: expected a flax.linen.Module, got {type(module).__name__}")
    for what, method in (("generate", generate), ("encode", encode), ("log_prob", log_prob)):
        _check_method(module, method, what, "Prior.from_linen")
    variables = params if isinstance(params, Mapping) and "params" in params else {"params": params}
    fn = lambda m: LinenFunction(module, m, bool(batched))  # noqa: E731
    return Prior(name=type(module).__name__ if name is None else name, latent_shape=tuple(latent_shape),
                 image_shape=tuple(image_shape), generate=fn(generate), params=variables,  # type: ignore[arg-type]
                 encode=None if encode is None else fn(encode), log_prob=None if log_prob is None else fn(log_prob),
                 config=dict(config or {}))
