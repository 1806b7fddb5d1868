"""Sparsifying bases by name, as synthesis operators ``S`` (coefficients -> image, ``S^T`` = analysis).

Every basis here satisfies ``S S^T = I`` (orthonormal, or for a padded wavelet a Parseval tight frame), so
``||A S|| = ||A||`` and ``x = S c`` with ``c`` soft-thresholded is a valid synthesis-sparsity model.
"""

from __future__ import annotations

from ..operators.base import LinearOperator, Shape
from ..operators.simple import Identity
from .dct import DCTBasis
from .wavelet import WaveletBasis

BASES = ("pixel", "dct", "wavelet")


def make_basis(name: str, shape: Shape, *, wavelet: str = "db4", levels: int = 3) -> LinearOperator:
    """The synthesis operator of basis ``name`` for images of ``shape`` (``(H, W, C)``).

    ``"pixel"``: the identity; ``"dct"``: :class:`DCTBasis`; ``"wavelet"``: :class:`WaveletBasis` with
    ``wavelet`` and ``levels`` (ignored by the other bases).
    """
    if name == "pixel":
        return Identity(shape)
    if name == "dct":
        return DCTBasis(shape)
    if name == "wavelet":
        return WaveletBasis(shape, wavelet, levels)
    raise ValueError(f"unknown basis {name!r}: expected basis in {BASES}")
