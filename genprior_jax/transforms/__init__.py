"""Orthonormal image transforms (DCT, wavelets), finite differences and patches, as functions and as operators."""

from .basis import BASES, make_basis
from .dct import DCTBasis, dct2, idct2
from .finite_diff import Gradient, tv_norm
from .layout import squeeze, unsqueeze
from .patches import extract_patches, num_patches, put_patches
from .wavelet import WAVELETS, WaveletBasis, check_wavelet, detail_weights, dwt2, filters, idwt2, padded_size

__all__ = ["BASES", "DCTBasis", "Gradient", "WAVELETS", "WaveletBasis", "check_wavelet", "dct2", "detail_weights",
           "dwt2", "extract_patches", "filters", "idct2", "idwt2", "make_basis", "num_patches", "padded_size",
           "put_patches", "squeeze", "tv_norm", "unsqueeze"]
