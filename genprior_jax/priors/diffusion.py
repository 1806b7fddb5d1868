"""Diffusion (score-based) priors: a noise-conditional U-Net with EDM preconditioning.

**The denoiser.** Images ``x`` live in ``[0, 1]`` (every prior's convention); the network works in the model space
``u = 2 x - 1`` (``[-1, 1]``, where the EDM constants were set), at noise ``s = 2 sigma``. With Karras et al.'s
(2022, "EDM") preconditioning and ``sigma_data = 0.5`` (model space)::

    D_u(u, s) = c_skip(s) u + c_out(s) F(c_in(s) u, c_noise(s)),
    c_skip = sd^2 / (s^2 + sd^2),  c_out = s sd / sqrt(s^2 + sd^2),  c_in = 1 / sqrt(s^2 + sd^2),  c_noise = log(s) / 4,

and in image space ``D(x, sigma) = (D_u(2 x - 1, 2 sigma) + 1) / 2``. The score of the noised prior
``p_sigma = p * N(0, sigma^2 I)`` is ``(D(x, sigma) - x) / sigma^2`` (Tweedie). Every ``sigma`` a user sees (the
schedule, the solvers' ``sigma_max``) is in image units. This is the variance-exploding (VE) view; the VP view of a
DDPM-style sampler is the same model: ``x_vp = x / sqrt(1 + sigma^2)``, ``alpha_bar = 1 / (1 + sigma^2)``
(:func:`vp_alpha_bar`).

**The network** ``F`` (:class:`UNet`) is fully convolutional: ``len(channels)`` resolution levels, ``num_blocks``
residual blocks per level (GroupNorm, SiLU, 3x3 convolutions, the noise embedding added per block), stride-2
down-sampling and nearest up-sampling with skip connections; the output convolution starts at zero. Any image whose
sides are multiples of ``2^(len(channels) - 1)`` goes straight through; others are reflect-padded up to the next
multiple and cropped back (:func:`denoise_fn`), so one network serves every image size, and a grey model denoises
a colour image channel by channel (:func:`denoiser_for`).

**Training** (:mod:`genprior_jax.training.tasks`, ``genprior-jax train diffusion``): denoising score matching with
EDM's log-normal noise levels (``log s ~ N(-1.2, 1.2^2)``) and loss weight ``(s^2 + sd^2) / (s sd)^2``, so the loss
is ``E ||F_target - F||^2`` per pixel; Adam, an EMA of the weights (what the checkpoint ships), and random crops
(``config["crop"]``) for photos.

**Sampling** (:func:`heun_sample`, the prior's ``generate``): EDM's deterministic Heun sampler on the Karras
schedule ``sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho`` from
``x_N = 0.5 + sigma_max z``: ``generate(params, z)`` maps a latent ``z`` of the image's shape to an image, so the
prior is also a (slow) latent-variable model and ``prior.sample`` draws sample grids. The schedule
(:func:`karras_sigmas`) is shared with the solvers of :mod:`genprior_jax.solvers.diffusion`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp

from .base import Prior

Array = jax.Array
Params = Any

__all__ = ["UNet", "check_config", "config_for", "denoise_fn", "denoiser_for", "diffusion_prior", "edm_coefficients",
           "edm_denoise", "edm_loss", "edm_loss_of",
           "heun_sample", "init_diffusion", "karras_sigmas", "vp_alpha_bar"]

# model-space constants (u = 2 x - 1): EDM's values
SIGMA_DATA = 0.5
P_MEAN, P_STD = -1.2, 1.2


def check_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """A diffusion config with defaults filled in; ``ValueError`` naming a bad value."""
    c = {"image_shape": (28, 28, 1), "channels": (32, 64, 64), "num_blocks": 1, "emb": 64, "crop": None,
         "sigma_min": 0.001, "sigma_max": 40.0, "sample_steps": 18, **(config or {})}
    c["image_shape"] = tuple(int(s) for s in c["image_shape"])
    c["channels"] = tuple(int(s) for s in c["channels"])
    if len(c["image_shape"]) != 3 or min(c["image_shape"]) < 1:
        raise ValueError(f"diffusion: expected image_shape (H, W, C), got {c['image_shape']}")
    if not c["channels"] or min(c["channels"]) < 1:
        raise ValueError(f"diffusion: expected channels a non-empty tuple of positive widths, got {c['channels']}")
    if int(c["num_blocks"]) < 1 or int(c["emb"]) < 1 or int(c["sample_steps"]) < 2:
        raise ValueError(f"diffusion: expected num_blocks, emb >= 1 and sample_steps >= 2, got {c['num_blocks']}, "
                         f"{c['emb']}, {c['sample_steps']}")
    if not 0 < float(c["sigma_min"]) < float(c["sigma_max"]):
        raise ValueError(f"diffusion: expected 0 < sigma_min < sigma_max, got {c['sigma_min']}, {c['sigma_max']}")
    if c["crop"] is not None:
        c["crop"] = tuple(int(s) for s in c["crop"])
        if len(c["crop"]) != 2 or not all(1 <= a <= b for a, b in zip(c["crop"], c["image_shape"][:2])):
            raise ValueError(f"diffusion: expected crop (h, w) within the images {c['image_shape'][:2]}, "
                             f"got {c['crop']}")
    return c


def config_for(image_shape: tuple[int, ...]) -> dict[str, Any]:
    """The architecture for images ``(H, W, C)``: three levels ``(32, 64, 64)`` up to 32x32 (28x28 digits:
    28 -> 14 -> 7), four ``(32, 64, 96, 128)`` beyond; photos larger than 64x64 train on random 64x64 crops (the
    network is fully convolutional, so it then denoises images of any size)."""
    h, w, c = (int(s) for s in image_shape)
    if max(h, w) <= 32:
        return check_config({"image_shape": (h, w, c), "channels": (32, 64, 64)})
    crop = (64, 64) if min(h, w) > 64 else None
    return check_config({"image_shape": (h, w, c), "channels": (32, 64, 96, 128), "crop": crop})


_DN = ("NHWC", "HWIO", "NHWC")


def _conv(x: Array, k: Array, strides: tuple[int, int]) -> Array:
    return jax.lax.conv_general_dilated(x, k, strides, "SAME", dimension_numbers=_DN)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d(x: Array, k: Array, strides: tuple[int, int] = (1, 1)) -> Array:
    """A 'SAME' convolution (NHWC, HWIO) whose gradient with respect to ``x`` (stride 1, odd kernel) is computed as
    the convolution with the flipped, transposed kernel, materialized behind an optimization barrier.

    Why: inside a ``lax.scan`` / ``while_loop`` (a DPS step in the runner) XLA:CPU otherwise folds the transpose into
    the backward convolution's dimension numbers (``b01f_01oi``), a layout its fast convolution path does not take:
    measured here, 10 DPS-style gradient steps of the MNIST U-Net on 4 images took 2.96 s with ``flax.linen.Conv`` and
    0.45 s with this (outputs equal, gradients to 2e-7), and compiled in half the time. Values are those of
    ``flax.linen.Conv``."""
    return _conv(x, k, strides)


def _conv_fwd(x: Array, k: Array, strides: tuple[int, int]) -> tuple[Array, tuple[Array, Array]]:
    return _conv(x, k, strides), (x, k)


def _conv_bwd(strides: tuple[int, int], res: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
    x, k = res
    _, vjp = jax.vjp(lambda xx, kk: _conv(xx, kk, strides), x, k)
    dx, dk = vjp(g)
    if strides == (1, 1) and k.shape[0] % 2 and k.shape[1] % 2:
        flipped = jax.lax.optimization_barrier(jnp.flip(k, (0, 1)).transpose(0, 1, 3, 2))
        dx = _conv(g, flipped, (1, 1))
    return dx, dk


conv2d.defvjp(_conv_fwd, _conv_bwd)


class Conv(nn.Module):
    """``flax.linen.Conv`` ('SAME', with bias) on :func:`conv2d`; the same parameters (``kernel`` HWIO, ``bias``), and
    the same auto-names (``Conv_0``, ...), so checkpoints of either load in the other."""

    features: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    kernel_init: Callable[..., Array] = nn.linear.default_kernel_init

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k = self.param("kernel", self.kernel_init, (*self.kernel_size, x.shape[-1], self.features))
        b = self.param("bias", nn.initializers.zeros, (self.features,))
        return cast(Array, conv2d(x, k, tuple(self.strides))) + b


def _groups(ch: int) -> int:
    return math.gcd(ch, 8)


class _ResBlock(nn.Module):
    features: int

    @nn.compact
    def __call__(self, h: Array, emb: Array) -> Array:
        skip = h if h.shape[-1] == self.features else Conv(self.features, (1, 1))(h)
        h = Conv(self.features, (3, 3))(nn.silu(nn.GroupNorm(_groups(h.shape[-1]))(h)))
        h = h + nn.Dense(self.features)(emb)[:, None, None, :]
        h = Conv(self.features, (3, 3))(nn.silu(nn.GroupNorm(_groups(self.features))(h)))
        return (skip + h) / math.sqrt(2.0)


class UNet(nn.Module):
    """``F(u, c_noise)``: ``u`` ``(B, H, W, C)`` (sides multiples of ``2^(len(channels) - 1)``), ``c_noise``
    ``(B,)`` -> ``(B, H, W, out_channels)``."""

    channels: tuple[int, ...]
    out_channels: int
    num_blocks: int = 1
    emb: int = 64

    @nn.compact
    def __call__(self, u: Array, c_noise: Array) -> Array:
        half = self.emb // 2
        freqs = jnp.exp(-math.log(1e4) * jnp.arange(half) / half)
        e = c_noise[:, None] * 100.0 * freqs[None]  # c_noise = log(s) / 4 spans ~[-2, 1]: stretch it
        e = jnp.concatenate([jnp.sin(e), jnp.cos(e)], axis=-1)
        e = nn.Dense(self.emb)(nn.silu(nn.Dense(self.emb)(e)))
        e = nn.silu(e)
        h = Conv(self.channels[0], (3, 3))(u)
        skips = [h]
        for i, ch in enumerate(self.channels):
            for _ in range(self.num_blocks):
                h = _ResBlock(ch)(h, e)
                skips.append(h)
            if i < len(self.channels) - 1:
                h = Conv(ch, (3, 3), strides=(2, 2))(h)
                skips.append(h)
        h = _ResBlock(self.channels[-1])(h, e)
        for i, ch in reversed(list(enumerate(self.channels))):
            for _ in range(self.num_blocks + 1):
                h = _ResBlock(ch)(jnp.concatenate([h, skips.pop()], axis=-1), e)
            if i > 0:
                b, hh, ww, c = h.shape
                h = jax.image.resize(h, (b, 2 * hh, 2 * ww, c), "nearest")
                h = Conv(ch, (3, 3))(h)
        h = nn.silu(nn.GroupNorm(_groups(h.shape[-1]))(h))
        return cast(Array, Conv(self.out_channels, (3, 3), kernel_init=nn.initializers.zeros)(h))


@functools.cache
def _unet(channels: tuple[int, ...], out_channels: int, num_blocks: int, emb: int) -> UNet:
    return UNet(channels, out_channels, num_blocks, emb)


def _module(config: dict[str, Any]) -> UNet:
    c = check_config(config)
    return _unet(c["channels"], c["image_shape"][2], int(c["num_blocks"]), int(c["emb"]))


def init_diffusion(key: Array, config: dict[str, Any] | None = None) -> Params:
    """Fresh U-Net parameters for ``config``."""
    c = check_config(config)
    factor = 2 ** (len(c["channels"]) - 1)
    side = (factor, factor, c["image_shape"][2])
    return _module(c).init(key, jnp.zeros((1, *side)), jnp.zeros((1,)))["params"]


def edm_coefficients(s: Array) -> tuple[Array, Array, Array]:
    """``(c_skip, c_out, c_in)`` at model-space noise ``s`` (any shape)."""
    sd2 = SIGMA_DATA**2
    return sd2 / (s**2 + sd2), s * SIGMA_DATA / jnp.sqrt(s**2 + sd2), 1.0 / jnp.sqrt(s**2 + sd2)


def edm_denoise(raw: Callable[[Array, Array], Array], u: Array, s: Array) -> Array:
    """``D_u(u, s) = c_skip u + c_out F(c_in u, log(s) / 4)`` for a batch ``u`` ``(B, H, W, C)`` at model-space
    noise ``s`` ``(B,)``, ``F = raw(u_in, c_noise)`` (the network, or any function in tests)."""
    c_skip, c_out, c_in = (c[:, None, None, None] for c in edm_coefficients(s))
    return c_skip * u + c_out * raw(c_in * u, jnp.log(s) / 4.0)


def _raw(net: UNet, params: Params) -> Callable[[Array, Array], Array]:
    return lambda u, c_noise: cast(Array, net.apply({"params": params}, u, c_noise))


def _pad_to(x: Array, factor: int) -> tuple[Array, tuple[int, int]]:
    h, w = x.shape[-3], x.shape[-2]
    ph, pw = -h % factor, -w % factor
    if ph or pw:
        pad = [(0, 0)] * (x.ndim - 3) + [(0, ph), (0, pw), (0, 0)]
        x = jnp.pad(x, pad, mode="reflect" if min(h, w) > max(ph, pw) else "edge")
    return x, (h, w)


@functools.cache
def _denoise_fn(channels: tuple[int, ...], out_channels: int, num_blocks: int, emb: int
                ) -> Callable[[Params, Array, Array], Array]:
    net = _unet(channels, out_channels, num_blocks, emb)
    factor = 2 ** (len(channels) - 1)

    def denoise(params: Params, x: Array, sigma: Array) -> Array:
        """``D(x, sigma)`` for one image ``x`` ``(H, W, C)`` (any size) or a batch ``(B, H, W, C)`` (one sigma, or
        ``(B,)``), in image units."""
        batched = x.ndim == 4
        xb = x if batched else x[None]
        xb, (h, w) = _pad_to(xb.astype(jnp.float32), factor)
        s = 2.0 * jnp.broadcast_to(jnp.asarray(sigma, jnp.float32), (xb.shape[0],))
        d = (edm_denoise(_raw(net, params), 2.0 * xb - 1.0, s) + 1.0) / 2.0
        d = d[:, :h, :w, :]
        return d if batched else d[0]

    return denoise


def denoise_fn(config: dict[str, Any]) -> Callable[[Params, Array, Array], Array]:
    """The pure ``denoise(params, x, sigma)`` of ``config`` (cached: equal configs share it, so compiled solvers
    are reused)."""
    c = check_config(config)
    return _denoise_fn(c["channels"], c["image_shape"][2], int(c["num_blocks"]), int(c["emb"]))


def denoiser_for(denoise: Callable[[Params, Array, Array], Array], model_channels: int, image_shape: tuple[int, ...]
                 ) -> Callable[[Params, Array, Array], Array]:
    """``denoise`` adapted to one image of ``image_shape``: as is when the channel counts agree; a grey model
    (``model_channels == 1``) on a ``C``-channel image denoises each channel as a grey image. ``ValueError``
    otherwise."""
    c = int(image_shape[-1])
    if c == model_channels:
        return denoise
    if model_channels != 1:
        raise ValueError(f"diffusion: a {model_channels}-channel denoiser cannot denoise images of shape "
                         f"{tuple(image_shape)}; expected {model_channels} channels (or a grey model)")

    def per_channel(params: Params, x: Array, sigma: Array) -> Array:
        xc = jnp.moveaxis(x, -1, 0)[..., None]  # (C, H, W, 1)
        return jnp.moveaxis(denoise(params, xc, sigma)[..., 0], 0, -1)

    return per_channel


def karras_sigmas(num_steps: int, sigma_min: Array | float, sigma_max: Array | float, rho: float = 7.0) -> Array:
    """EDM's schedule: ``num_steps`` levels from ``sigma_max`` down to ``sigma_min`` (image units; traced values
    allowed), then a final 0: shape ``(num_steps + 1,)``."""
    i = jnp.arange(num_steps, dtype=jnp.float32) / max(num_steps - 1, 1)
    a, b = jnp.asarray(sigma_max, jnp.float32) ** (1 / rho), jnp.asarray(sigma_min, jnp.float32) ** (1 / rho)
    return jnp.concatenate([(a + i * (b - a)) ** rho, jnp.zeros((1,), jnp.float32)])


def vp_alpha_bar(sigma: Array | float) -> Array:
    """The VP (DDPM) view of VE noise level ``sigma``: ``alpha_bar = 1 / (1 + sigma^2)``, ``x_vp = sqrt(alpha_bar)
    x_ve``."""
    return 1.0 / (1.0 + jnp.asarray(sigma) ** 2)


def heun_sample(denoise: Callable[[Params, Array, Array], Array], params: Params, z: Array, *, num_steps: int = 18,
                sigma_min: float = 0.001, sigma_max: float = 40.0) -> Array:
    """EDM's deterministic Heun sampler (2 NFE per step, the last step Euler: ``2 num_steps - 1`` NFE) from
    ``x = 0.5 + sigma_max z``; one image ``z`` ``(H, W, C)`` or a batch. Returns the image in ``[0, 1]`` (clipped)."""
    sig = karras_sigmas(num_steps, sigma_min, sigma_max)
    x = 0.5 + sig[0] * z

    def body(i: Array, x: Array) -> Array:
        s, s_next = sig[i], sig[i + 1]
        d = (x - denoise(params, x, s)) / s
        x_euler = x + (s_next - s) * d
        d2 = (x_euler - denoise(params, x_euler, jnp.maximum(s_next, 1e-8))) / jnp.maximum(s_next, 1e-8)
        return jnp.where(s_next > 0, x + (s_next - s) * 0.5 * (d + d2), x_euler)

    return jnp.clip(jax.lax.fori_loop(0, num_steps, body, x), 0.0, 1.0)


@functools.cache
def _generate_fn(channels: tuple[int, ...], out_channels: int, num_blocks: int, emb: int, sample_steps: int,
                 sigma_min: float, sigma_max: float) -> Callable[[Params, Array], Array]:
    denoise = _denoise_fn(channels, out_channels, num_blocks, emb)

    def generate(params: Params, z: Array) -> Array:
        return heun_sample(denoise, params, z, num_steps=sample_steps, sigma_min=sigma_min, sigma_max=sigma_max)

    return generate


def edm_loss(params: Params, key: Array, x: Array, config: dict[str, Any]) -> Array:
    """Per-image denoising score-matching loss (EDM weighting, mean over pixels) of a batch ``x`` ``(B, H, W, C)``
    in ``[0, 1]``: ``(B,)``; :func:`edm_loss_of` with the U-Net of ``config``."""
    return edm_loss_of(_raw(_module(config), params), key, x)


def edm_loss_of(raw: Callable[[Array, Array], Array], key: Array, x: Array) -> Array:
    """The EDM loss of the raw network ``F = raw(u_in, c_noise)``: with ``log s ~ N(P_MEAN, P_STD^2)``, ``n ~ N(0,
    I)``, ``u = 2 x - 1``: ``(s^2 + sd^2) / (s sd)^2 ||D_u(u + s n, s) - u||^2``, per pixel. Its minimizer over all
    functions is the MMSE denoiser (what the tests check with a Gaussian data set)."""
    k_s, k_n = jax.random.split(key)
    u = 2.0 * x - 1.0
    s = jnp.exp(P_MEAN + P_STD * jax.random.normal(k_s, (x.shape[0],)))
    d = edm_denoise(raw, u + s[:, None, None, None] * jax.random.normal(k_n, u.shape), s)
    weight = (s**2 + SIGMA_DATA**2) / (s * SIGMA_DATA) ** 2
    return weight * jnp.mean((d - u) ** 2, axis=(1, 2, 3))


def diffusion_prior(params: Params, config: dict[str, Any] | None = None, name: str = "diffusion") -> Prior:
    """The :class:`Prior` of a trained U-Net: ``denoise`` (any image size), ``generate`` (Heun sampling from a latent
    of the training image shape) and the noise schedule in ``config``."""
    c = check_config(config)
    key = (c["channels"], c["image_shape"][2], int(c["num_blocks"]), int(c["emb"]))
    generate = _generate_fn(*key, int(c["sample_steps"]), float(c["sigma_min"]), float(c["sigma_max"]))
    return Prior(name=name, latent_shape=c["image_shape"], image_shape=c["image_shape"], generate=generate,
                 params=params, denoise=_denoise_fn(*key), config=c)
