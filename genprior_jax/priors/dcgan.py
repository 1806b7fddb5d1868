"""DCGAN priors (Radford et al. 2016; the CelebA model of Bora et al. 2017), in Flax.

Generator ``G: z -> x`` (``z ~ N(0, I_L)``, ``x`` in ``[0, 1]^{H x W x C}``)::

    Dense(z) -> (s, s, c_0) -> GroupNorm, ReLU
    -> [up x2 -> (2s, 2s, c_1) -> GroupNorm, ReLU] -> ... -> up x2 -> (H, W, C) -> sigmoid

Discriminator ``D: x -> logit`` (the mirror image; ``D(x) = sigmoid(logit)`` is the probability that ``x`` is
a real image)::

    2x - 1 -> [Conv 4x4 stride 2 -> LeakyReLU(0.2)] x n -> flatten -> Dense(1)

Up-sampling (static config ``upsample``): ``"pixel_shuffle"`` (default), a 3x3 convolution to ``4 c`` channels
at the low resolution followed by depth-to-space (:func:`~genprior_jax.transforms.layout.unsqueeze`), its kernel
initialised ICNR-style (the four sub-pixel kernels equal, so a fresh layer is a nearest up-sampling and has no
checkerboard); ``"resize"``, nearest-neighbour resize then a 3x3 convolution; ``"transpose"``, the classic
4x4 stride-2 transposed convolution. All three compute the same kind of map (pixel shuffle and resize + conv
have equal FLOPs, the shuffle 4x the kernel parameters). On XLA:CPU the pixel shuffle trained fastest of the
three when they were timed side by side (transposed-convolution weight gradients are slow there).

Normalisation: GroupNorm in the generator instead of the original BatchNorm, so that ``G`` is a fixed
function of ``(params, z)`` for one unbatched ``z`` (no batch statistics, no train/eval switch); no
normalisation and no spectral norm in the discriminator (a small MNIST discriminator trains stably without).

Parameters are one pytree ``{"generator": ..., "discriminator": ...}``. The :class:`~genprior_jax.priors.Prior`
built by :func:`dcgan_prior` generates from ``params["generator"]``; with ``log_d=True`` its ``log_prob`` is
``log D(x)`` from ``params["discriminator"]``. **For a GAN this "log_prob" is not a density**: it is the
discriminator's log-probability that ``x`` is real, so CSGM's ``penalty="nll"`` adds ``-lam log D(G(z))``,
the optional discriminator term of the csgm repo (Bora et al.), not a likelihood.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ..transforms.layout import unsqueeze
from .base import Array, Params, Prior

UPSAMPLES = ("pixel_shuffle", "resize", "transpose")

CONFIGS: dict[str, dict[str, Any]] = {
    # MNIST 28x28: 7x7x64 -> 14x14x32 -> 28x28x1 (discriminator 32, 64 channels); trains on a 2-core CPU.
    "dcgan-mnist": {"image_shape": (28, 28, 1), "latent": 32, "start": 7, "channels": (64, 32),
                    "upsample": "pixel_shuffle", "groups": 8},
    # The CelebA 64x64 DCGAN of Bora et al. (carpedm20/DCGAN-tensorflow, gf_dim = df_dim = 64, z of 100):
    # 4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x64 -> 64x64x3; train it on a GPU/TPU.
    "dcgan-celeba64": {"image_shape": (64, 64, 3), "latent": 100, "start": 4, "channels": (512, 256, 128, 64),
                       "upsample": "pixel_shuffle", "groups": 32},
}


def config_for(image_shape: tuple[int, ...]) -> dict[str, Any]:
    """The DCGAN for square images of ``image_shape``: ``dcgan-mnist`` for 28x28x1; otherwise ``k`` doublings, the
    largest of 1..4 with the side divisible by ``2^k`` and ``side / 2^k >= 4`` (the start grid), channels
    ``32 * 2^(k-1), ..., 64, 32`` (at most 512) with 8 groups, a latent of 100 and pixel-shuffle up-sampling."""
    h, w, c = (int(s) for s in image_shape)
    if (h, w, c) == (28, 28, 1):
        return dict(CONFIGS["dcgan-mnist"])
    k = max([j for j in range(1, 5) if h % 2**j == 0 and h // 2**j >= 4] or [0])
    if h != w or k == 0:
        raise ValueError(f"dcgan: expected square images with an even side of at least 8 pixels, got {(h, w)}; "
                         "resize the data (--size), e.g. 64x64")
    return {"image_shape": (h, w, c), "latent": 100, "start": h // 2**k,
            "channels": tuple(min(512, 32 * 2 ** (k - 1 - i)) for i in range(k)), "upsample": "pixel_shuffle",
            "groups": 8}


def check_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate a DCGAN config and normalise its types; raises ``ValueError`` naming what is wrong."""
    missing = {"image_shape", "latent", "start", "channels", "upsample", "groups"} - set(config)
    if missing:
        raise ValueError(f"dcgan config: missing keys {sorted(missing)}")
    h, w, c = (int(s) for s in config["image_shape"])
    latent, start, groups = int(config["latent"]), int(config["start"]), int(config["groups"])
    channels = tuple(int(ch) for ch in config["channels"])
    if config["upsample"] not in UPSAMPLES:
        raise ValueError(f"dcgan config: expected upsample in {UPSAMPLES}, got {config['upsample']!r}")
    if latent < 1 or start < 1 or groups < 1 or c < 1 or not channels or min(channels) < 1:
        raise ValueError(f"dcgan config: expected latent, start, groups, image channels >= 1 and a non-empty "
                         f"list of positive channels; got {latent}, {start}, {groups}, {c}, {channels}")
    side = start * 2 ** len(channels)
    if (h, w) != (side, side):
        raise ValueError(f"dcgan config: start {start} doubled {len(channels)} times gives {side}x{side} images, "
                         f"but image_shape is {(h, w, c)}")
    bad = [ch for ch in channels if ch % groups]
    if bad:
        raise ValueError(f"dcgan config: channels {bad} are not divisible by groups = {groups}")
    return {**config, "image_shape": (h, w, c), "latent": latent, "start": start, "channels": channels,
            "upsample": config["upsample"], "groups": groups}


def _icnr(base_init: Callable[..., Array]) -> Callable[..., Array]:
    """Kernel init for conv + pixel shuffle: one ``(k, k, c_in, c)`` kernel tiled over the 4 sub-pixels, so the
    fresh layer equals a convolution followed by a nearest-neighbour up-sampling (Aitken et al. 2017)."""

    def init(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
        kernel = base_init(key, (*shape[:-1], shape[-1] // 4), dtype)
        return jnp.tile(kernel, (1, 1, 1, 4))  # channel (2 i + j) c + k -> kernel[..., k], as unsqueeze orders it

    return init


class Upsample(nn.Module):
    """``(B, H, W, c_in) -> (B, 2H, 2W, features)`` by one of :data:`UPSAMPLES`."""

    features: int
    method: str

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if self.method == "pixel_shuffle":
            init = _icnr(nn.initializers.lecun_normal())
            return unsqueeze(nn.Conv(4 * self.features, (3, 3), padding="SAME", kernel_init=init)(x))
        if self.method == "resize":
            x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
            return nn.Conv(self.features, (3, 3), padding="SAME")(x)
        return nn.ConvTranspose(self.features, (4, 4), strides=(2, 2), padding="SAME")(x)


class Generator(nn.Module):
    """Batched generator: latents ``(B, L)`` to images ``(B, H, W, C)`` in ``[0, 1]`` (or their logits)."""

    image_shape: tuple[int, int, int]
    start: int
    channels: tuple[int, ...]
    upsample: str
    groups: int

    @nn.compact
    def __call__(self, z: Array, logits: bool = False) -> Array:
        h = nn.Dense(self.start * self.start * self.channels[0])(z)
        h = h.reshape(z.shape[0], self.start, self.start, self.channels[0])
        h = nn.relu(nn.GroupNorm(num_groups=self.groups)(h))
        for features in self.channels[1:]:
            h = nn.relu(nn.GroupNorm(num_groups=self.groups)(Upsample(features, self.upsample)(h)))
        out = Upsample(self.image_shape[2], self.upsample, name="out")(h)
        return out if logits else nn.sigmoid(out)


class Discriminator(nn.Module):
    """Batched discriminator: images ``(B, H, W, C)`` in ``[0, 1]`` to logits ``(B,)`` of "real"."""

    channels: tuple[int, ...]  # from the input side, e.g. (64, 128)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        h = 2.0 * x - 1.0
        for features in self.channels:
            h = nn.leaky_relu(nn.Conv(features, (4, 4), strides=(2, 2), padding="SAME")(h), 0.2)
        return nn.Dense(1)(h.reshape(h.shape[0], -1))[:, 0]


def _config_key(config: dict[str, Any]) -> tuple[Any, ...]:
    c = check_config(config)
    return (c["image_shape"], c["latent"], c["start"], c["channels"], c["upsample"], c["groups"])


@functools.cache
def _modules(key: tuple[Any, ...]) -> tuple[Generator, Discriminator]:
    image_shape, _, start, channels, upsample, groups = key
    return Generator(image_shape, start, channels, upsample, groups), Discriminator(tuple(reversed(channels)))


def dcgan_modules(config: dict[str, Any]) -> tuple[Generator, Discriminator]:
    """The (cached) Flax modules ``(generator, discriminator)`` of a configuration, for batched training."""
    return _modules(_config_key(config))


def init_dcgan(key: Array, config: dict[str, Any], disc_shape: tuple[int, ...] | None = None) -> Params:
    """Fresh parameters ``{"generator": ..., "discriminator": ...}``; the discriminator takes inputs of
    ``disc_shape`` (default: the image shape; an AmbientGAN's discriminator sees measurements instead)."""
    c = check_config(config)
    gen, disc = dcgan_modules(c)
    kg, kd = jax.random.split(key)
    z = jnp.zeros((1, c["latent"]), jnp.float32)
    x = jnp.zeros((1, *(c["image_shape"] if disc_shape is None else disc_shape)), jnp.float32)
    return {"generator": gen.init(kg, z)["params"], "discriminator": disc.init(kd, x)["params"]}


@functools.cache
def _functions(key: tuple[Any, ...]) -> dict[str, Callable[..., Any]]:
    gen, disc = _modules(key)
    image_shape, latent = key[0], key[1]

    def generate(params: Params, z: Array) -> Array:
        if tuple(z.shape) != (latent,):
            raise ValueError(f"dcgan: expected a latent of shape ({latent},), got {tuple(z.shape)}")
        return gen.apply({"params": params["generator"]}, z[None])[0]

    def discriminator_logit(params: Params, x: Array) -> Array:
        if tuple(x.shape) != tuple(image_shape):
            raise ValueError(f"dcgan discriminator: expected an image of shape {image_shape}, got {tuple(x.shape)}")
        return disc.apply({"params": params["discriminator"]}, x[None])[0]

    def log_d(params: Params, x: Array) -> Array:
        return jax.nn.log_sigmoid(discriminator_logit(params, x))

    return {"generate": generate, "discriminator_logit": discriminator_logit, "log_d": log_d}


def dcgan_functions(config: dict[str, Any]) -> dict[str, Callable[..., Any]]:
    """Pure unbatched functions of a configuration, cached so repeated loads share them (no recompiles):

    - ``generate(params, z) -> x``: ``z`` of shape ``(L,)`` to an image ``(H, W, C)`` in ``[0, 1]``;
    - ``discriminator_logit(params, x) -> scalar``: ``logit D(x)``;
    - ``log_d(params, x) -> scalar``: ``log D(x) = log sigmoid(logit D(x))`` (``<= 0``; not a density).

    A latent or image of the wrong shape raises ``ValueError``.
    """
    return _functions(_config_key(config))


def dcgan_prior(params: Params, config: dict[str, Any], name: str = "dcgan", log_d: bool = False) -> Prior:
    """A :class:`Prior` around a DCGAN: ``generate`` on one latent ``(L,)``, no encoder.

    With ``log_d=True``, ``prior.log_prob(params, x) = log D(x)``, the discriminator's log-probability that
    ``x`` is real (**not** an image density): ``csgm(prior, ..., penalty="nll", lam=lam)`` then minimises
    ``1/2 ||A G(z) - y||^2 - lam log D(G(z))``, the csgm repo's discriminator-regularised objective (its weight is
    ``2 lam``: its data term has no 1/2). Leave it off
    (the default, and what :func:`~genprior_jax.priors.load_prior` returns) wherever an exact density is meant.
    """
    c = check_config(config)
    f = dcgan_functions(c)
    return Prior(name=name, latent_shape=(c["latent"],), image_shape=c["image_shape"], generate=f["generate"],
                 params=params, log_prob=f["log_d"] if log_d else None, config=c)

