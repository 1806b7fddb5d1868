"""VAEs in Flax: the MNIST MLP of Bora et al. (2017) and a convolutional VAE for images of any size.

``arch="mlp"`` (the default, ``vae-mnist``): encoder ``784-500-500-(2 x 20)`` and decoder ``20-500-500-784`` with
softplus activations and a sigmoid output (the csgm repo's ``mnist_vae``). ``arch="conv"``: ``k = len(channels)``
stride-2 4x4 convolutions (SiLU) then two dense heads; the decoder mirrors it (dense to ``H/2^k x W/2^k x
channels[-1]``, ``k`` nearest-neighbour doublings each followed by a 3x3 convolution, the last to ``C`` logits).
Likelihood: Bernoulli on pixel intensities in ``[0, 1]``;
``ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || N(0, I))`` in nats per image.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .base import Array, Params, Prior

DEFAULT_CONFIG: dict[str, Any] = {"hidden": (500, 500), "latent": 20, "image_shape": (28, 28, 1)}
ARCHS = ("mlp", "conv")


class Encoder(nn.Module):
    hidden: tuple[int, ...]
    latent: int

    @nn.compact
    def __call__(self, x: Array) -> tuple[Array, Array]:
        h = x.reshape(x.shape[:-3] + (-1,))
        for width in self.hidden:
            h = nn.softplus(nn.Dense(width)(h))
        mean = nn.Dense(self.latent, name="mean")(h)
        log_std = nn.Dense(self.latent, name="log_std")(h)
        return mean, log_std


class Decoder(nn.Module):
    hidden: tuple[int, ...]
    image_shape: tuple[int, int, int]

    @nn.compact
    def __call__(self, z: Array, logits: bool = False) -> Array:
        """Image ``sigmoid(f(z))`` of shape ``(..., H, W, C)``, or the pre-sigmoid logits if ``logits``."""
        h = z
        for width in self.hidden:
            h = nn.softplus(nn.Dense(width)(h))
        n = self.image_shape[0] * self.image_shape[1] * self.image_shape[2]
        out = nn.Dense(n, name="out")(h).reshape(z.shape[:-1] + tuple(self.image_shape))
        return out if logits else nn.sigmoid(out)


class ConvEncoder(nn.Module):
    channels: tuple[int, ...]
    latent: int

    @nn.compact
    def __call__(self, x: Array) -> tuple[Array, Array]:
        batch = x.shape[:-3]
        h = x.reshape((-1, *x.shape[-3:]))
        for width in self.channels:
            h = nn.silu(nn.Conv(width, (4, 4), strides=(2, 2))(h))
        h = h.reshape(batch + (-1,))
        return nn.Dense(self.latent, name="mean")(h), nn.Dense(self.latent, name="log_std")(h)


class ConvDecoder(nn.Module):
    channels: tuple[int, ...]
    image_shape: tuple[int, int, int]

    @nn.compact
    def __call__(self, z: Array, logits: bool = False) -> Array:
        """Image ``sigmoid(f(z))`` of shape ``(..., H, W, C)``, or the pre-sigmoid logits if ``logits``."""
        k = len(self.channels)
        (hh, ww, c), batch = self.image_shape, z.shape[:-1]
        h0, w0 = hh // 2**k, ww // 2**k
        h = nn.Dense(h0 * w0 * self.channels[-1], name="start")(z.reshape((-1, z.shape[-1])))
        h = nn.silu(h).reshape((-1, h0, w0, self.channels[-1]))
        outs = list(reversed(self.channels[:-1])) + [c]
        for i, width in enumerate(outs):
            h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
            h = nn.Conv(width, (3, 3), name=f"up_{i}")(h)
            h = h if i == len(outs) - 1 else nn.silu(h)
        out = h.reshape(batch + tuple(self.image_shape))
        return out if logits else nn.sigmoid(out)


def check_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """``DEFAULT_CONFIG`` updated by ``config``, validated (``ValueError`` naming the problem) and normalised."""
    c = {**DEFAULT_CONFIG, **(config or {})}
    arch = c.get("arch", "mlp")
    if arch not in ARCHS:
        raise ValueError(f"vae config: expected arch in {ARCHS}, got {arch!r}")
    image_shape = tuple(int(s) for s in c["image_shape"])
    if len(image_shape) != 3 or min(image_shape) < 1 or int(c["latent"]) < 1:
        raise ValueError(f"vae config: expected image_shape (H, W, C) and latent >= 1, got {c['image_shape']}, "
                         f"{c['latent']}")
    out = {**c, "latent": int(c["latent"]), "image_shape": image_shape}
    if arch == "conv":
        channels = tuple(int(w) for w in c.get("channels", ()))
        if not channels or min(channels) < 1:
            raise ValueError(f"vae config: a conv VAE needs a non-empty list of positive channels, got "
                             f"{c.get('channels')}")
        k = 2 ** len(channels)
        if image_shape[0] % k or image_shape[1] % k:
            raise ValueError(f"vae config: {len(channels)} stride-2 stages need H and W divisible by {k}, got "
                             f"image_shape {image_shape}")
        out.update(arch="conv", channels=channels)
        out.pop("hidden", None)
    else:
        out["hidden"] = tuple(int(h) for h in c["hidden"])
    return out


def config_for(image_shape: tuple[int, ...], latent: int | None = None) -> dict[str, Any]:
    """The VAE for images of ``image_shape``: Bora et al.'s MLP for 28x28x1; otherwise a conv VAE with
    ``k`` stride-2 stages, ``k`` the largest of 1..4 with ``H, W`` divisible by ``2^k`` and ``min(H, W) / 2^k >= 4``,
    channels ``32, 64, 128, 256`` (the first ``k``) and a latent of 64 (128 above 32x32 pixels)."""
    h, w, c = (int(s) for s in image_shape)
    if (h, w, c) == (28, 28, 1):
        return {**DEFAULT_CONFIG, **({"latent": latent} if latent else {})}
    k = max([j for j in range(1, 5) if h % 2**j == 0 and w % 2**j == 0 and min(h, w) // 2**j >= 4] or [0])
    if k == 0:
        raise ValueError(f"vae: a conv VAE needs H and W divisible by 2 and at least 8 pixels, got {(h, w)}; "
                         "resize the data (--size)")
    return {"arch": "conv", "image_shape": (h, w, c), "channels": (32, 64, 128, 256)[:k],
            "latent": latent or (64 if h * w <= 32 * 32 else 128)}


def _key(config: dict[str, Any]) -> tuple[Any, ...]:
    c = check_config(config)
    widths = c["channels"] if c.get("arch") == "conv" else c["hidden"]
    return (c.get("arch", "mlp"), widths, c["latent"], cast(tuple[int, int, int], c["image_shape"]))


@functools.cache
def _modules(arch: str, widths: tuple[int, ...], latent: int, image_shape: tuple[int, int, int]
             ) -> tuple[nn.Module, nn.Module]:
    if arch == "conv":
        return ConvEncoder(widths, latent), ConvDecoder(widths, image_shape)
    return Encoder(widths, latent), Decoder(widths, image_shape)


def vae_functions(hidden: tuple[int, ...], latent: int, image_shape: tuple[int, int, int], arch: str = "mlp"
                  ) -> tuple[Callable[[Params, Array], Array], Callable[[Params, Array], Array]]:
    """``(generate, encode)`` pure functions for one configuration (``hidden``: the MLP's widths, or the conv
    VAE's channels with ``arch="conv"``), cached so repeated loads share them."""
    return _functions(arch, tuple(hidden), int(latent), tuple(image_shape))  # type: ignore[arg-type]


@functools.cache
def _functions(arch: str, widths: tuple[int, ...], latent: int, image_shape: tuple[int, int, int]
               ) -> tuple[Callable[[Params, Array], Array], Callable[[Params, Array], Array]]:
    enc, dec = _modules(arch, widths, latent, image_shape)

    def generate(params: Params, z: Array) -> Array:
        return cast(Array, dec.apply({"params": params["decoder"]}, z))

    def encode(params: Params, x: Array) -> Array:
        return enc.apply({"params": params["encoder"]}, x)[0]

    return generate, encode


def init_vae(key: Array, config: dict[str, Any] | None = None) -> Params:
    """Fresh parameters ``{"encoder": ..., "decoder": ...}``."""
    config = check_config(config)
    enc, dec = _modules(*_key(config))
    ke, kd = jax.random.split(key)
    x = jnp.zeros((1, *config["image_shape"]), jnp.float32)
    z = jnp.zeros((1, config["latent"]), jnp.float32)
    return {"encoder": enc.init(ke, x)["params"], "decoder": dec.init(kd, z)["params"]}


def elbo(params: Params, key: Array, x: ArrayLike, config: dict[str, Any]) -> Array:
    """Per-image ELBO (nats) for a batch ``x`` of shape ``(B, H, W, C)``: returns ``(B,)``."""
    enc, dec = _modules(*_key(config))
    mean, log_std = cast(tuple[Array, Array], enc.apply({"params": params["encoder"]}, x))
    z = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    logits = cast(Array, dec.apply({"params": params["decoder"]}, z, logits=True))
    # Bernoulli log-likelihood with soft targets, in the numerically stable form.
    log_px = jnp.sum(x * jax.nn.log_sigmoid(logits) + (1 - x) * jax.nn.log_sigmoid(-logits), axis=(-3, -2, -1))
    kl = 0.5 * jnp.sum(mean**2 + jnp.exp(2 * log_std) - 1.0 - 2 * log_std, axis=-1)
    return log_px - kl


def vae_prior(params: Params, config: dict[str, Any] | None = None, name: str = "vae") -> Prior:
    config = check_config(config)
    arch, widths, latent, image_shape = _key(config)
    generate, encode = _functions(arch, widths, latent, image_shape)
    return Prior(name=name, latent_shape=(latent,), image_shape=image_shape, generate=generate, params=params,
                 encode=encode, config=config)
