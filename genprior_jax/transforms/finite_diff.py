"""Forward differences and isotropic total variation on ``(H, W, C)`` images.

``(D x)[i, j, c, 0] = x[i+1, j, c] - x[i, j, c]`` (0 on the last row) and ``(D x)[i, j, c, 1] = x[i, j+1, c] -
x[i, j, c]`` (0 on the last column): the Neumann-boundary discretisation of Chambolle (2004) and of
``skimage.restoration.denoise_tv_chambolle``. ``||D||^2 < 8``. The adjoint is ``D^T = -div``.
"""

from __future__ import annotations

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


def tv_norm(x: Array) -> Array:
    """Isotropic total variation ``sum_{i,j,c} sqrt((D x)[i,j,c,0]^2 + (D x)[i,j,c,1]^2)`` of one ``(H, W, C)``
    image (each channel's TV, summed). Not differentiable where a difference vanishes; for objective values."""
    return jnp.sum(jnp.sqrt(jnp.sum(Gradient(x.shape).mv(x) ** 2, axis=-1)))
