"""Invertible layers for image flows, as Flax modules.

Every layer maps a batch ``x`` of shape ``(B, H, W, C)`` in the *normalizing* direction (image -> latent) and
back::

    y, logdet = layer(x)                 # y = f(x),       logdet = log|det df/dx|    shape (B,)
    x, logdet = layer(y, reverse=True)   # x = f^{-1}(y),  logdet = log|det df^{-1}/dy| = -log|det df/dx|

Blocks: :class:`ActNorm` (data-dependent init: the first batch seen by ``init`` comes out zero-mean,
unit-variance per channel), :class:`InvConv1x1` (LU-parametrized, Kingma & Dhariwal 2018),
:class:`AffineCoupling` (scale ``floor + (1 - floor) sigmoid(h + 2)``: Glow's ``sigmoid(h + 2)`` for ``floor = 0``,
which keeps the scale in ``(0, 1)`` and the log-det finite; a ``floor > 0`` bounds the generative direction's
division by the scale, so ``G`` stays finite far from the training data),
:class:`SplitPrior` (Glow's learned prior for a factored-out half, written as a bijection to standard-normal
noise), :class:`Reverse` (RealNVP's fixed channel permutation) and :func:`squeeze` / :func:`unsqueeze`.

The bijectors are written as Flax modules rather than distrax bijectors because the parameters live in one
params pytree handed to pure functions (the solvers' contract) and ActNorm needs data at ``init``; distrax
bijectors hold their parameters as attributes.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ..transforms.layout import squeeze, unsqueeze

Array = jax.Array

__all__ = ["ActNorm", "AffineCoupling", "InvConv1x1", "Reverse", "SplitPrior", "affine_update", "squeeze",
           "unsqueeze"]


class ActNorm(nn.Module):
    """Per-channel affine ``y = (x + bias) * exp(logs)``, initialised from the first batch."""

    @nn.compact
    def __call__(self, x: Array, reverse: bool = False) -> tuple[Array, Array]:
        def init_bias(_key: Array) -> Array:
            return -jnp.mean(x, axis=(0, 1, 2))

        def init_logs(_key: Array) -> Array:
            return -jnp.log(jnp.std(x, axis=(0, 1, 2)) + 1e-6)

        bias = self.param("bias", init_bias)
        logs = self.param("logs", init_logs)
        hw = x.shape[1] * x.shape[2]
        logdet = hw * jnp.sum(logs) * jnp.ones(x.shape[0], x.dtype)
        if reverse:
            return x * jnp.exp(-logs) - bias, -logdet
        return (x + bias) * jnp.exp(logs), logdet


class InvConv1x1(nn.Module):
    """Invertible 1x1 convolution ``y = x W`` per pixel, ``W = P L (U + diag(sign * exp(log_s)))``.

    ``P`` (a permutation) and ``sign`` are fixed at init (stored in params; gradients stopped and values rounded
    on use), ``L`` is unit
    lower-triangular and ``U`` strictly upper-triangular. ``log|det W| = sum(log_s)``. Initialised from a random
    rotation, as in Glow.
    """

    @nn.compact
    def __call__(self, x: Array, reverse: bool = False) -> tuple[Array, Array]:
        c = x.shape[-1]

        def lu_init(key: Array) -> dict[str, Array]:
            q, _ = jnp.linalg.qr(jax.random.normal(key, (c, c), jnp.float32))
            p, low, up = jax.scipy.linalg.lu(q)
            diag = jnp.diag(up)
            return {"P": p, "L": low, "U": jnp.triu(up, 1), "sign": jnp.sign(diag), "log_s": jnp.log(jnp.abs(diag))}

        w0 = self.param("lu", lu_init)
        # P and sign are constants: rounded, so an optimizer that touches every leaf (weight decay) or a small
        # perturbation cannot turn P into a non-permutation (which would break the inverse and the log-det)
        p = jnp.round(jax.lax.stop_gradient(w0["P"]))
        sign = jnp.sign(jax.lax.stop_gradient(w0["sign"]))
        lower = jnp.tril(w0["L"], -1) + jnp.eye(c)
        upper = jnp.triu(w0["U"], 1) + jnp.diag(sign * jnp.exp(w0["log_s"]))
        w = p @ lower @ upper
        hw = x.shape[1] * x.shape[2]
        logdet = hw * jnp.sum(w0["log_s"]) * jnp.ones(x.shape[0], x.dtype)
        if reverse:
            # x = y W^{-1}, W^{-1} = U^{-1} L^{-1} P^T by two triangular solves on the c x c identity, then one
            # matrix product per pixel (XLA:CPU's triangular solve over many right-hand sides is slow)
            w_inv = jax.scipy.linalg.solve_triangular(
                upper, jax.scipy.linalg.solve_triangular(lower, p.T, lower=True, unit_diagonal=True), lower=False)
            return (x.reshape(-1, c) @ w_inv).reshape(x.shape), -logdet
        return (x.reshape(-1, c) @ w).reshape(x.shape), logdet


class Reverse(nn.Module):
    """Reverse the channel order (RealNVP's fixed permutation between couplings); log-det 0."""

    @nn.compact
    def __call__(self, x: Array, reverse: bool = False) -> tuple[Array, Array]:
        return x[..., ::-1], jnp.zeros(x.shape[0], x.dtype)


class Conditioner(nn.Module):
    """``conv3x3 - ReLU - conv1x1 - ReLU - conv3x3`` with a zero-initialised last layer (identity start)."""

    hidden: int
    out_channels: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        h = nn.relu(nn.Conv(self.hidden, (3, 3), padding="SAME")(x))
        h = nn.relu(nn.Conv(self.hidden, (1, 1))(h))
        return nn.Conv(self.out_channels, (3, 3), padding="SAME", kernel_init=nn.initializers.zeros)(h)


class AffineCoupling(nn.Module):
    """``y_a = x_a``, ``y_b = (x_b + t(x_a)) * s(x_a)`` with ``s = floor + (1 - floor) sigmoid(h + 2)`` in
    ``(floor, 1)``; channels split in halves. The inverse divides by ``s``, so it grows by at most ``1 / floor``."""

    hidden: int
    scale_floor: float = 0.0

    @nn.compact
    def __call__(self, x: Array, reverse: bool = False) -> tuple[Array, Array]:
        c = x.shape[-1]
        if c < 2:
            raise ValueError(f"AffineCoupling: expected at least 2 channels to split, got {c}")
        ca = c // 2
        xa, xb = x[..., :ca], x[..., ca:]
        return affine_update(xa, xb, Conditioner(self.hidden, 2 * (c - ca))(xa), self.scale_floor, reverse)


def affine_update(xa: Array, xb: Array, h: Array, scale_floor: float, reverse: bool = False) -> tuple[Array, Array]:
    """:class:`AffineCoupling`'s update of ``xb`` from the conditioner output ``h`` of ``xa`` (shift and raw scale
    interleaved along the channels): ``(concat(xa, yb), log|det| (B,))``; shared with the dense couplings of
    :mod:`.small_conv`."""
    shift, raw = h[..., 0::2], h[..., 1::2]
    scale = scale_floor + (1.0 - scale_floor) * jax.nn.sigmoid(raw + 2.0)
    logdet = jnp.sum(jnp.log(scale), axis=(1, 2, 3))
    if reverse:
        return jnp.concatenate([xa, xb / scale - shift], axis=-1), -logdet
    return jnp.concatenate([xa, (xb + shift) * scale], axis=-1), logdet


class SplitPrior(nn.Module):
    """Glow's learned prior for the factored-out channels ``z_b`` given the kept ones ``z_a``, as a bijection.

    Glow models ``z_b ~ N(mu(z_a), sigma(z_a)^2)``; here that is the affine map to standard-normal noise
    ``eps = (z_b - mu(z_a)) / sigma(z_a)``, so the flat latent stays ``N(0, I)`` (the solvers' contract) and the
    log-det ``-sum log sigma`` carries the learned prior's density. ``mu`` and ``log sigma`` come from one
    zero-initialised 3x3 conv of ``z_a`` (the identity at init), and ``sigma = exp(b tanh(h / b))`` with
    ``b = -log(floor)`` stays in ``(floor, 1 / floor)``, so the generative direction ``z_b = mu + sigma eps``
    is bounded for bounded ``eps`` (``floor = 0``: ``sigma = exp(h)``, unbounded).

    Call as ``eps, logdet = prior(z_a, z_b)`` and ``z_b, logdet = prior(z_a, eps, reverse=True)``; shapes
    ``(B, H, W, Ca)``, ``(B, H, W, Cb)`` -> ``(B, H, W, Cb)``, ``(B,)``.
    """

    scale_floor: float = 0.0

    @nn.compact
    def __call__(self, za: Array, zb: Array, reverse: bool = False) -> tuple[Array, Array]:
        cb = zb.shape[-1]
        h = nn.Conv(2 * cb, (3, 3), padding="SAME", kernel_init=nn.initializers.zeros)(za)
        mu, raw = h[..., 0::2], h[..., 1::2]
        if self.scale_floor > 0:
            bound = -jnp.log(self.scale_floor)
            log_sigma = bound * jnp.tanh(raw / bound)
        else:
            log_sigma = raw
        logdet = -jnp.sum(log_sigma, axis=(1, 2, 3))
        if reverse:
            return mu + zb * jnp.exp(log_sigma), -logdet
        return (zb - mu) * jnp.exp(-log_sigma), logdet
