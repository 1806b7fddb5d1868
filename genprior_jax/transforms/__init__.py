"""Orthonormal image transforms (DCT, wavelets) and finite differences, as functions and as operators."""

from .basis import BASES, make_basis
from .dct import DCTBasis, dct2, idct2
from .finite_diff import Gradient, tv_norm
from .layout import squeeze, unsqueeze
from .wavelet import WAVELETS, WaveletBasis, check_wavelet, detail_weights, dwt2, filters, idwt2, padded_size

__all__ = ["BASES", "DCTBasis", "Gradient", "WAVELETS", "WaveletBasis", "check_wavelet", "dct2", "detail_weights",
           "dwt2", "filters", "idct2", "idwt2", "make_basis", "padded_size", "squeeze", "tv_norm", "unsqueeze"]
