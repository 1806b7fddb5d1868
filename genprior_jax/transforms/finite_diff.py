"""Forward differences and isotropic total variation on ``(H, W, C)`` images.

``(D x)[i, j, c, 0] = x[i+1, j, c] - x[i, j, c]`` (0 on the last row) and ``(D x)[i, j, c, 1] = x[i, j+1, c] -
x[i, j, c]`` (0 on the last column): the Neumann-boundary discretisation of Chambolle (2004) and of
``skimage.restoration.denoise_tv_chambolle``. ``||D||^2 < 8``. The adjoint is ``D^T = -div``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..operators.base import Array, LinearOperator, Shape
from ..operators.validation import check_image_shape

GRADIENT_NORM_SQ_BOUND = 8.0  # ||D||^2 <= 4 + 4 (each 1-D difference has norm < 2)


class Gradient(LinearOperator):
    """``D: (H, W, C) -> (H, W, C, 2)``, forward differences along axes 0 and 1 (see the module docstring)."""

    def __init__(self, shape: Shape):
        shape = check_image_shape(shape, "Gradient")
        self.in_shape = shape
        self.out_shape = (*shape, 2)

    def _apply(self, x: Array) -> Array:
        d0 = jnp.concatenate([x[1:] - x[:-1], jnp.zeros_like(x[:1])], axis=0)
        d1 = jnp.concatenate([x[:, 1:] - x[:, :-1], jnp.zeros_like(x[:, :1])], axis=1)
        return jnp.stack([d0, d1], axis=-1)

    def _adjoint(self, p: Array) -> Array:
        """``D^T p = -div p`` with ``div`` the backward difference (first row ``p[0]``, last row ``-p[H-2]``)."""
        p0, p1 = p[..., 0], p[..., 1]
        z0, z1 = jnp.zeros_like(p0[:1]), jnp.zeros_like(p1[:, :1])
        div0 = jnp.concatenate([p0[:-1], z0], axis=0) - jnp.concatenate([z0, p0[:-1]], axis=0)
        div1 = jnp.concatenate([p1[:, :-1], z1], axis=1) - jnp.concatenate([z1, p1[:, :-1]], axis=1)
        return -(div0 + div1)


def pair_norm(p: Array) -> Array:
    """``sqrt(p[..., 0]^2 + p[..., 1]^2)``: the pointwise length of a gradient field ``(..., 2)``.

    Written with two slices, not ``sqrt(sum(p**2, axis=-1))``: XLA:CPU (jax 0.10) hands a batched (vmapped)
    reduction over that length-2 axis to its YNNPACK reduce fusion, some 20x slower than XLA's own loop; that
    made a batch of TV solves ~5x slower per image than a loop of single ones (``benchmarks/tv_batch.py``)."""
    return jnp.sqrt(p[..., 0] ** 2 + p[..., 1] ** 2)


def _total(m: Array) -> Array:
    """``sum(m)`` as a dot product with ones: XLA:CPU fuses a batched ``jnp.sum`` of this gradient magnitude
    (pads, squares, a square root) into a YNNPACK reduction that ran 10-60x slower than the plain loop (the
    objective of a batched TV solve with a tolerance, which is read every step); a dot is not fused so."""
    v = m.reshape(-1)
    return jnp.dot(v, jnp.ones_like(v), precision=jax.lax.Precision.HIGHEST)


def tv_norm(x: Array) -> Array:
    """Isotropic total variation ``sum_{i,j,c} sqrt((D x)[i,j,c,0]^2 + (D x)[i,j,c,1]^2)`` of one ``(H, W, C)``
    image (each channel's TV, summed). Not differentiable where a difference vanishes; for objective values."""
    return _total(pair_norm(Gradient(x.shape).mv(x)))
