"""Additive Gaussian noise and the forward model ``y = A.observe(A(x) + sigma * eps)``."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .base import Array, Operator
from .validation import check_key, check_number


class GaussianNoise(NamedTuple):
    """i.i.d. additive noise ``eta ~ N(0, sigma^2)`` per measurement entry; ``sigma`` may be traced.

    With :class:`GaussianCS` (entries ``N(0, 1/m)``) the csgm/GlowIP convention "noise 0.1 on ||eta||" is
    ``sigma = 0.1 / sqrt(m)``: see :func:`noise_std_for_norm`.
    """

    sigma: float | Array

    def sample(self, key: Array, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
        return jnp.asarray(self.sigma, dtype) * jax.random.normal(key, shape, dtype)


def noise_std_for_norm(norm: float, m: int) -> float:
    """Per-entry std giving an expected noise norm ``norm`` over ``m`` entries: ``norm / sqrt(m)``."""
    return float(norm) / float(m) ** 0.5


def measure(key: Array, op: Operator, x: Array, sigma: float | Array) -> Array:
    """Noisy measurement of one image: ``y = op.observe(op(x) + sigma * eps)``, ``eps ~ N(0, I)``.

    For most operators ``observe`` is the identity, so ``y = A x + sigma * eps``; for one-bit measurements it
    is the quantiser (the noise acts before the sign), for k-space operators the sampling mask (no noise on
    unsampled entries). ``x`` has shape ``op.in_shape``; returns ``op.out_shape``. ``sigma >= 0`` may be a
    traced value. For a batch, ``jax.vmap(measure, in_axes=(0, None or 0, 0, None))``.
    """
    check_key(key, "measure")
    check_number(sigma, "the noise level sigma", "measure")
    y = op.mv(x)
    return op.observe(y + GaussianNoise(sigma).sample(key, y.shape, y.dtype))
