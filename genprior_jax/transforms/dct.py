"""Orthonormal 2-D DCT-II over the spatial axes of ``(H, W, C)`` images (channels independent)."""

from __future__ import annotations

from jax.scipy.fft import dctn, idctn

from ..operators.base import Array, LinearOperator, Shape
from ..operators.validation import check_image_shape


def dct2(x: Array) -> Array:
    """``(H, W, C) -> (H, W, C)``: type-II DCT with ``norm="ortho"`` along axes 0 and 1 (``scipy.fft.dctn``)."""
    return dctn(x, type=2, norm="ortho", axes=(0, 1))


def idct2(c: Array) -> Array:
    """Inverse (= transpose) of :func:`dct2`."""
    return idctn(c, type=2, norm="ortho", axes=(0, 1))


class DCTBasis(LinearOperator):
    """Synthesis operator ``S c = idct2(c)`` of the 2-D DCT basis; square and orthogonal, ``S^T = dct2``."""

    def __init__(self, shape: Shape):
        shape = check_image_shape(shape, "DCTBasis")
        self.in_shape = shape
        self.out_shape = shape

    def _apply(self, c: Array) -> Array:
        return idct2(c)

    def _adjoint(self, x: Array) -> Array:
        return dct2(x)
