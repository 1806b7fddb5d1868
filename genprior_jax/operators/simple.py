"""Identity (denoising) and dense Gaussian compressed-sensing operators."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .base import Array, LinearOperator, Shape
from .validation import check_image_shape, check_key


class Identity(LinearOperator):
    """``A x = x`` on images of shape ``in_shape`` (denoising). Self-adjoint."""

    def __init__(self, shape: Shape):
        shape = check_image_shape(shape, "Identity")
        self.in_shape = shape
        self.out_shape = shape

    def _apply(self, x: Array) -> Array:
        return x

    def _adjoint(self, y: Array) -> Array:
        return y


class GaussianCS(LinearOperator):
    """Gaussian compressed sensing ``y = A vec(x)``, ``A`` of shape ``(m, n)`` with ``n = H W C``.

    Entries are i.i.d. ``N(0, 1/m)``, the convention of GlowIP ("random_bora") and deepinv's
    ``CompressedSensing``: columns have unit expected norm, and noise ``eta ~ N(0, sigma^2/m)`` per entry
    gives ``||eta|| ~ sigma``. It equals the csgm repo's ``N(0, 1)`` matrix after dividing ``A`` and ``y`` by
    ``sqrt(m)``, so the csgm loss ``mean((A_raw x - y_raw)^2)`` is our ``||A x - y||^2``.

    Args:
        key: PRNG key drawing ``A``.
        in_shape: image shape ``(H, W, C)``.
        m: number of measurements (``m >= 1``; ``m > n`` is allowed and over-determined).

    ``out_shape = (m,)``; the adjoint is ``A^T y`` reshaped to ``in_shape``.
    """

    _leaves = ("matrix",)

    def __init__(self, key: Array, in_shape: Shape, m: int):
        in_shape = check_image_shape(in_shape, "GaussianCS")
        check_key(key, "GaussianCS")
        if int(m) != m or m < 1:
            raise ValueError(f"GaussianCS: expected a positive integer number of measurements m, got {m!r}")
        m = int(m)
        n = 1
        for s in in_shape:
            n *= s
        self.in_shape = in_shape
        self.out_shape = (m,)
        self.matrix = jax.random.normal(key, (m, n), jnp.float32) / jnp.sqrt(jnp.float32(m))

    def _apply(self, x: Array) -> Array:
        # x^T A^T rather than A x: the same numbers, but under vmap the batch stays the leading axis of the
        # product, so XLA needs no transpose of the (batch, n) images before the matmul (0.5-1.6 % of a CSGM
        # step on a 2-core AMD EPYC: small, but free)
        return x.reshape(-1) @ self.matrix.T

    def _adjoint(self, y: Array) -> Array:
        return (y @ self.matrix).reshape(self.in_shape)
