"""Multi-scale normalizing flows (RealNVP, Glow) and their pure functions.

Architecture (Dinh et al. 2017; Kingma & Dhariwal 2018): ``levels`` times { squeeze; ``steps`` flow steps;
factor out half of the channels (except at the last level) }. With ``split_prior`` (Glow's learned prior), each
factored-out half is mapped to standard-normal noise by a :class:`SplitPrior` conditioned on the kept half. A flow
step is

- ``glow``:    ActNorm -> invertible 1x1 conv (LU) -> affine coupling
- ``realnvp``: ActNorm -> affine coupling -> channel reversal

The latent is the concatenation of every factored-out part and the final output, flattened: a vector of
``D = H W C`` entries with a standard normal prior, so ``log p(x) = log N(E(x); 0, I) + log|det dE/dx|``.
Images in ``[0, 1]`` enter the flow centred, as ``x - 1/2``. With ``logit_alpha = a > 0`` (RealNVP's
pre-processing) they are first mapped to ``logit(a + (1 - 2a) x)``, which stretches the near-black background of
digits; outside the pixel range the map continues linearly with the slope it has at the edge, so ``E`` and ``G``
stay finite bijections of all of ``R^D`` (the analysis formulation and least-squares starts leave ``[0, 1]``).

Pure functions (unbatched, one image / one latent), built by :func:`flow_functions` and cached per config::

    forward_and_log_det(params, z) -> (x, log|det dG/dz|)     # generative direction G
    inverse_and_log_det(params, x) -> (z, log|det dE/dx|)     # E = G^{-1}
    generate(params, z) -> x,  encode(params, x) -> z,  log_prob(params, x) -> scalar (nats)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.core
import jax.numpy as jnp

from .base import Array, Params, Prior
from .flow_apply import flow_forward, flow_inverse, latent_part_shapes, logit_map, sigmoid_map, step_layers
from .flow_layers import SplitPrior, squeeze, unsqueeze

KINDS = ("glow", "realnvp")

CONFIGS: dict[str, dict[str, Any]] = {
    # MNIST-size flows that train on a 2-core CPU
    # (glow-mnist: Glow's learned split prior, and RealNVP's logit pre-processing with alpha = 1e-3, which stretches
    # the near-black background: 1.48 validation bits/dim after 18 epochs at a constant rate, against 2.37 without)
    "glow-mnist": {"kind": "glow", "image_shape": (28, 28, 1), "levels": 2, "steps": 8, "hidden": 64,
                   "scale_floor": 0.1, "split_prior": True, "logit_alpha": 1e-3},
    "realnvp-mnist": {"kind": "realnvp", "image_shape": (28, 28, 1), "levels": 2, "steps": 8, "hidden": 64},
    # a patch prior for natural images of any size (grey 6x6 patches; genprior-jax train patch-flow)
    "patch-flow-6": {"kind": "glow", "image_shape": (6, 6, 1), "levels": 1, "steps": 8, "hidden": 64,
                     "scale_floor": 0.1},
    # The CelebA 64x64 Glow of Asim et al. / Oberlin & Verm (K = 32 steps, L = 4 levels); train it on a GPU/TPU.
    "glow-celeba64": {"kind": "glow", "image_shape": (64, 64, 3), "levels": 4, "steps": 32, "hidden": 512},
}


def config_for(image_shape: tuple[int, ...], kind: str = "glow") -> dict[str, Any]:
    """The flow for images of ``image_shape``: ``glow-mnist`` / ``realnvp-mnist`` for 28x28x1; otherwise ``L``
    levels, the largest of 1..4 with ``H, W`` divisible by ``2^L`` and ``min(H, W) / 2^L >= 4``, 8 steps per level,
    64 hidden channels (a size that trains on a CPU; ``glow-celeba64`` is the papers' 32 x 512), Glow's split prior and
    RealNVP's logit map with ``alpha = 0.05`` (its value for natural images)."""
    if kind not in KINDS:
        raise ValueError(f"flow: expected kind in {KINDS}, got {kind!r}")
    h, w, c = (int(s) for s in image_shape)
    if (h, w, c) == (28, 28, 1):
        return dict(CONFIGS[f"{kind}-mnist"])
    levels = max([j for j in range(1, 5) if h % 2**j == 0 and w % 2**j == 0 and min(h, w) // 2**j >= 4] or [0])
    if levels == 0:
        raise ValueError(f"flow: a multi-scale flow needs H and W divisible by 2 and at least 8 pixels, got {(h, w)}; "
                         "resize the data (--size)")
    extra = {"scale_floor": 0.1, "split_prior": True} if kind == "glow" else {}
    return {"kind": kind, "image_shape": (h, w, c), "levels": levels, "steps": 8, "hidden": 64, **extra,
            "logit_alpha": 0.05}


def check_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate a flow config; raises ``ValueError`` naming what is wrong."""
    missing = {"kind", "image_shape", "levels", "steps", "hidden"} - set(config)
    if missing:
        raise ValueError(f"flow config: missing keys {sorted(missing)}")
    if config["kind"] not in KINDS:
        raise ValueError(f"flow config: expected kind in {KINDS}, got {config['kind']!r}")
    h, w, c = (int(s) for s in config["image_shape"])
    levels = int(config["levels"])
    if levels < 1 or int(config["steps"]) < 1 or int(config["hidden"]) < 1:
        raise ValueError(f"flow config: expected levels, steps, hidden >= 1, got {levels}, {config['steps']}, "
                         f"{config['hidden']}")
    if h % 2**levels or w % 2**levels:
        raise ValueError(f"flow config: a {h}x{w} image cannot be squeezed {levels} times "
                         f"(height and width must be divisible by {2**levels}); pad it or use fewer levels")
    floor = float(config.get("scale_floor", 0.0))
    if not 0.0 <= floor < 1.0:
        raise ValueError(f"flow config: expected scale_floor in [0, 1), got {floor}")
    alpha = float(config.get("logit_alpha", 0.0))
    if not 0.0 <= alpha < 0.5:
        raise ValueError(f"flow config: expected logit_alpha in [0, 0.5), got {alpha}")
    split_prior = config.get("split_prior", False)
    if not isinstance(split_prior, bool):
        raise ValueError(f"flow config: expected split_prior True or False, got {split_prior!r}")
    return {**config, "image_shape": (h, w, c), "levels": levels, "steps": int(config["steps"]),
            "hidden": int(config["hidden"]), "scale_floor": floor, "split_prior": split_prior,
            "logit_alpha": alpha}


class MultiScaleFlow(nn.Module):
    """Batched flow: ``forward`` maps images ``(B, H, W, C)`` (centred) to latents ``(B, D)`` with
    ``log|det|`` ``(B,)``; ``inverse`` maps back."""

    kind: str
    image_shape: tuple[int, int, int]
    levels: int
    steps: int
    hidden: int
    scale_floor: float = 0.0
    split_prior: bool = False
    logit_alpha: float = 0.0

    def setup(self) -> None:
        blocks = []
        for _ in range(self.levels):
            layers: list[nn.Module] = []
            for _ in range(self.steps):  # the order of a step's layers is the params' layout (flow_apply reads it)
                layers += step_layers(self.kind, self.hidden, self.scale_floor)
            blocks.append(layers)
        self.blocks = blocks
        if self.split_prior:
            self.priors = [SplitPrior(self.scale_floor) for _ in range(self.levels - 1)]

    def _logit(self, x: Array) -> tuple[Array, Array]:
        return logit_map(self.logit_alpha, x)

    def _sigmoid(self, y: Array) -> tuple[Array, Array]:
        return sigmoid_map(self.logit_alpha, y)

    def forward(self, x: Array) -> tuple[Array, Array]:
        b = x.shape[0]
        logdet = jnp.zeros(b, x.dtype)
        parts = []
        h = x
        if self.logit_alpha > 0:
            h, logdet = self._logit(x)
        for level, layers in enumerate(self.blocks):
            h = squeeze(h)
            for layer in layers:
                h, ld = layer(h)
                logdet = logdet + ld
            if level < self.levels - 1:
                keep = h.shape[-1] // 2
                out = h[..., keep:]
                h = h[..., :keep]
                if self.split_prior:
                    out, ld = self.priors[level](h, out)
                    logdet = logdet + ld
                parts.append(out)
        parts.append(h)
        return jnp.concatenate([p.reshape(b, -1) for p in parts], axis=1), logdet

    def inverse(self, z: Array) -> tuple[Array, Array]:
        b = z.shape[0]
        shapes = latent_part_shapes(self.image_shape, self.levels)
        sizes = [math.prod(s) for s in shapes]
        offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
        parts = [z[:, offsets[i] : offsets[i + 1]].reshape((b, *shapes[i])) for i in range(len(shapes))]
        logdet = jnp.zeros(b, z.dtype)
        h = parts[-1]
        for level in reversed(range(self.levels)):
            if level < self.levels - 1:
                out = parts[level]
                if self.split_prior:
                    out, ld = self.priors[level](h, out, reverse=True)
                    logdet = logdet + ld
                h = jnp.concatenate([h, out], axis=-1)
            for layer in reversed(self.blocks[level]):
                h, ld = layer(h, reverse=True)
                logdet = logdet + ld
            h = unsqueeze(h)
        if self.logit_alpha > 0:
            h, ld = self._sigmoid(h)
            logdet = logdet + ld
        return h, logdet

    def __call__(self, x: Array) -> tuple[Array, Array]:
        return self.forward(x)


def _module(config: dict[str, Any]) -> MultiScaleFlow:
    c = check_config(config)
    return MultiScaleFlow(*_config_key(c))


def init_flow(key: Array, config: dict[str, Any], x: Array) -> Params:
    """Parameters with ActNorm initialised on the batch ``x`` ``(B, H, W, C)`` in ``[0, 1]``."""
    module = _module(config)
    if tuple(x.shape[1:]) != tuple(module.image_shape):
        raise ValueError(f"init_flow: expected a batch of images {module.image_shape}, got shape {tuple(x.shape)}")
    return _jitted_init(_config_key(config))(key, jnp.asarray(x, jnp.float32))


@functools.cache
def _jitted_init(config_key: tuple[Any, ...]) -> Callable[[Array, Array], Params]:
    """``init`` as one compiled program per architecture: run eagerly, flax's init dispatches (and compiles) a few
    hundred small programs, ~15 s for a 64x64x3 Glow on 2 CPU cores."""
    module = MultiScaleFlow(*config_key)
    return jax.jit(lambda key, x: module.init(key, x - 0.5, method=MultiScaleFlow.forward)["params"])


_KEY_FIELDS = ("kind", "image_shape", "levels", "steps", "hidden", "scale_floor", "split_prior", "logit_alpha")
"""The config fields of an architecture, in :class:`MultiScaleFlow`'s field order (the cache key's order)."""


def _config_key(config: dict[str, Any]) -> tuple[Any, ...]:
    c = check_config(config)
    return tuple(c[k] for k in _KEY_FIELDS)


def _key_config(key: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(_KEY_FIELDS, key, strict=True))


@functools.cache
def _functions(key: tuple[Any, ...]) -> dict[str, Callable[..., Any]]:
    config = _key_config(key)
    image_shape = key[1]
    dim = math.prod(image_shape)

    def check_image(x: Array, who: str) -> None:
        if tuple(x.shape) != tuple(image_shape):
            raise ValueError(f"{who}: expected an image of shape {image_shape}, got {tuple(x.shape)}")
        if not isinstance(x, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(x))):
            # concrete input only: inside jit/vmap a NaN flows through and shows up as a per-element status
            raise ValueError(f"{who}: expected a finite image, got {int(jnp.sum(~jnp.isfinite(x)))} non-finite values")

    # jitted, so an eager call (a notebook, a test) is one compiled program rather than hundreds of dispatched
    # primitives; inside a solver's trace they inline. The checks stay outside, where the input may be concrete.
    @jax.jit
    def generate_one(params: Params, z: Array) -> tuple[Array, Array]:
        x, ld = flow_inverse(config, params, z[None], dense=True)
        return x[0] + 0.5, ld[0]

    @jax.jit
    def encode_one(params: Params, x: Array) -> tuple[Array, Array]:
        z, ld = flow_forward(config, params, x[None] - 0.5, dense=True)
        return z[0], ld[0]

    def forward_and_log_det(params: Params, z: Array) -> tuple[Array, Array]:
        if tuple(z.shape) != (dim,):
            raise ValueError(f"flow: expected a latent of shape ({dim},), got {tuple(z.shape)}")
        return generate_one(params, z)

    def inverse_and_log_det(params: Params, x: Array) -> tuple[Array, Array]:
        check_image(x, "flow")
        return encode_one(params, x)

    def generate(params: Params, z: Array) -> Array:
        return forward_and_log_det(params, z)[0]

    def encode(params: Params, x: Array) -> Array:
        return inverse_and_log_det(params, x)[0]

    def log_prob(params: Params, x: Array) -> Array:
        z, ld = inverse_and_log_det(params, x)
        return -0.5 * jnp.sum(z**2) - 0.5 * dim * jnp.log(2 * jnp.pi) + ld

    return {"forward_and_log_det": forward_and_log_det, "inverse_and_log_det": inverse_and_log_det,
            "generate": generate, "encode": encode, "log_prob": log_prob}


def flow_functions(config: dict[str, Any]) -> dict[str, Callable[..., Any]]:
    """The pure functions of a flow configuration (see the module docstring); cached per config."""
    return _functions(_config_key(config))


def batch_log_prob(params: Params, config: dict[str, Any], x: Array, unroll: bool = True) -> Array:
    """``log p(x)`` in nats for a batch ``(B, H, W, C)`` in one pass (the training objective; ``unroll``: see
    :func:`~genprior_jax.priors.flow_apply.flow_forward`)."""
    z, ld = flow_forward(check_config(config), params, x - 0.5, unroll=unroll)
    return -0.5 * jnp.sum(z**2, axis=1) - 0.5 * z.shape[1] * jnp.log(2 * jnp.pi) + ld


def bits_per_dim(log_prob_nats: Array, dim: int, n_bins: int = 256) -> Array:
    """Discrete bits/dim of 8-bit data from the density of uniformly dequantized ``x in [0, 1]``:
    ``(-log p(x) / D + log(n_bins)) / log 2``."""
    return (-log_prob_nats / dim + jnp.log(n_bins)) / jnp.log(2.0)


def flow_prior(params: Params, config: dict[str, Any], name: str = "flow") -> Prior:
    c = check_config(config)
    f = flow_functions(c)
    dim = math.prod(c["image_shape"])
    return Prior(name=name, latent_shape=(dim,), image_shape=c["image_shape"], generate=f["generate"],
                 params=params, encode=f["encode"], log_prob=f["log_prob"], config=c)
