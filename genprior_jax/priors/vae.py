"""The MNIST VAE of Bora et al. (2017), in Flax.

Encoder ``784-500-500-(2 x 20)`` and decoder ``20-500-500-784`` with softplus activations and a sigmoid
output (the csgm repo's ``mnist_vae``). Likelihood: Bernoulli on pixel intensities in ``[0, 1]``;
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


def _key(config: dict[str, Any]) -> tuple[tuple[int, ...], int, tuple[int, int, int]]:
    return (tuple(int(h) for h in config["hidden"]), int(config["latent"]),
            cast(tuple[int, int, int], tuple(int(s) for s in config["image_shape"])))


@functools.cache
def _modules(hidden: tuple[int, ...], latent: int, image_shape: tuple[int, int, int]) -> tuple[Encoder, Decoder]:
    return Encoder(hidden, latent), Decoder(hidden, image_shape)


@functools.cache
def vae_functions(hidden: tuple[int, ...], latent: int, image_shape: tuple[int, int, int]
                  ) -> tuple[Callable[[Params, Array], Array], Callable[[Params, Array], Array]]:
    """``(generate, encode)`` pure functions for one configuration, cached so repeated loads share them."""
    enc, dec = _modules(hidden, latent, image_shape)

    def generate(params: Params, z: Array) -> Array:
        return cast(Array, dec.apply({"params": params["decoder"]}, z))

    def encode(params: Params, x: Array) -> Array:
        return enc.apply({"params": params["encoder"]}, x)[0]

    return generate, encode


def init_vae(key: Array, config: dict[str, Any] | None = None) -> Params:
    """Fresh parameters ``{"encoder": ..., "decoder": ...}``."""
    config = {**DEFAULT_CONFIG, **(config or {})}
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
    config = {**DEFAULT_CONFIG, **(config or {})}
    hidden, latent, image_shape = _key(config)
    generate, encode = vae_functions(hidden, latent, image_shape)
    return Prior(name=name, latent_shape=(latent,), image_shape=image_shape, generate=generate, params=params,
                 encode=encode, config=config)
