"""Orthonormal 2-D discrete wavelet transform with periodic boundary ("periodization"), in JAX.

One level along an axis of even length ``N`` with the decomposition low-pass filter ``h`` (length ``F``) and the
quadrature-mirror high-pass ``g[k] = (-1)^(k+1) h[F-1-k]`` is (indices mod ``N``)::

    a[o] = sum_j h[j] x[2o + F/2 - j],      d[o] = sum_j g[j] x[2o + F/2 - j],      o = 0 .. N/2 - 1

(PyWavelets' ``mode="periodization"`` convention, including the ``F/2`` shift). The map ``x -> [a; d]`` is an
orthogonal ``N x N`` matrix for every even ``N``, also when ``F > N`` (the filter wraps around), so the inverse
is the adjoint. The 2-D level applies it along axis 0 and then axis 1 of an ``(H, W, C)`` image (channels
independent) and ``levels`` levels recurse on the top-left (approximation) block. Coefficients are kept in
one array of the image's shape in PyWavelets' ``coeffs_to_array`` layout: the coarsest approximation in the
top-left ``H/2^L x W/2^L`` block and, at level ``l`` (block ``h x w = H/2^(l-1) x W/2^(l-1)``), the
``"ad"`` detail (low-pass along axis 0, high-pass along axis 1) at ``[:h/2, w/2:w]``, ``"da"`` at
``[h/2:h, :w/2]`` and ``"dd"`` at ``[h/2:h, w/2:w]``.

:func:`dwt2` / :func:`idwt2` need ``H`` and ``W`` divisible by ``2^levels``. :class:`WaveletBasis` accepts any
size by zero-padding: it is the synthesis operator ``S = crop o idwt2`` from the padded coefficient grid to the
image (see its docstring).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..operators.base import Array, LinearOperator, Shape
from ..operators.validation import check_image_shape

# Decomposition low-pass filters (Daubechies 1992, Table 6.1; the values PyWavelets ships). "haar" = db1.
WAVELETS: dict[str, tuple[float, ...]] = {
    "haar": (0.7071067811865476, 0.7071067811865476),
    "db2": (-0.12940952255126037, 0.2241438680420134, 0.8365163037378079, 0.48296291314453416),
    "db3": (0.03522629188570953, -0.08544127388202666, -0.13501102001025458, 0.45987750211849154,
            0.8068915093110925, 0.33267055295008263),
    "db4": (-0.010597401785069032, 0.0328830116668852, 0.030841381835560764, -0.18703481171909309,
            -0.027983769416859854, 0.6308807679298589, 0.7148465705529157, 0.2303778133088965),
}


def filters(wavelet: str) -> tuple[np.ndarray, np.ndarray]:
    """Decomposition ``(low, high)`` filters of ``wavelet`` as float64 arrays; ``high[k] = (-1)^(k+1) low[F-1-k]``."""
    if wavelet not in WAVELETS:
        raise ValueError(f"unknown wavelet {wavelet!r}; expected one of {sorted(WAVELETS)}")
    lo = np.asarray(WAVELETS[wavelet], np.float64)
    hi = lo[::-1] * np.where(np.arange(lo.size) % 2 == 0, -1.0, 1.0)
    return lo, hi


def check_wavelet(wavelet: str, levels: int, who: str) -> int:
    """Raise ``ValueError`` unless ``wavelet`` is known and ``levels`` a positive integer; return ``int(levels)``."""
    filters(wavelet)
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise ValueError(f"{who}: expected a positive integer number of levels, got {levels!r}")
    return int(levels)


def _check_levels(shape: tuple[int, ...], levels: int, who: str) -> None:
    if len(shape) != 3:
        raise ValueError(f"{who}: expected an image of shape (H, W, C), got shape {tuple(shape)}")
    block = 2**levels
    if shape[0] % block or shape[1] % block:
        raise ValueError(f"{who}: expected H and W divisible by 2^levels = {block} for {levels} levels, got "
                         f"shape {tuple(shape)} (WaveletBasis pads other sizes)")


@functools.cache
def _level_matrix(n: int, wavelet: str) -> np.ndarray:
    """The orthogonal ``(n, n)`` float64 matrix of one periodized level along an axis of even length ``n``:
    rows ``o < n/2`` give ``a[o]``, rows ``n/2 + o`` give ``d[o]`` (wrapped filter taps add up)."""
    lo, hi = filters(wavelet)
    m = np.zeros((n, n))
    rows = np.arange(n // 2)
    for j in range(lo.size):
        cols = (2 * rows + lo.size // 2 - j) % n
        np.add.at(m, (rows, cols), lo[j])
        np.add.at(m, (n // 2 + rows, cols), hi[j])
    return m


def _level(block: Array, wavelet: str, inverse: bool) -> Array:
    """One 2-D level on an ``(h, w, C)`` block: ``M_h B M_w^T`` per channel, or its inverse ``M_h^T B M_w``.

    Dense matmuls (``O(h + w)`` work per pixel, fast for the image sizes of this library, a few hundred pixels
    a side) at ``HIGHEST`` precision, so accelerators do not round through TF32."""
    mh = jnp.asarray(_level_matrix(block.shape[0], wavelet), block.dtype)
    mw = jnp.asarray(_level_matrix(block.shape[1], wavelet), block.dtype)
    spec = "ji,jkc,kl->ilc" if inverse else "ij,jkc,lk->ilc"
    return jnp.einsum(spec, mh, block, mw, precision=jax.lax.Precision.HIGHEST)


def dwt2(x: Array, wavelet: str = "db4", levels: int = 3) -> Array:
    """Forward transform of ``x`` (``(H, W, C)``, ``H, W`` divisible by ``2^levels``) to coefficients of the
    same shape (layout in the module docstring). Orthonormal: ``||dwt2(x)|| = ||x||``.

    >>> import jax
    >>> x = jax.random.uniform(jax.random.key(0), (32, 32, 1))
    >>> c = dwt2(x, "db2", 2)
    >>> c.shape, bool(abs(jnp.linalg.norm(c) - jnp.linalg.norm(x)) < 1e-4)
    ((32, 32, 1), True)
    >>> float(jnp.max(jnp.abs(idwt2(c, "db2", 2) - x))) < 1e-5
    True
    """
    levels = check_wavelet(wavelet, levels, "dwt2")
    _check_levels(np.shape(x), levels, "dwt2")
    c = jnp.asarray(x)
    h, w = c.shape[:2]
    for _ in range(levels):
        c = c.at[:h, :w].set(_level(c[:h, :w], wavelet, inverse=False))
        h, w = h // 2, w // 2
    return c


def idwt2(c: Array, wavelet: str = "db4", levels: int = 3) -> Array:
    """Inverse (= adjoint) of :func:`dwt2`: coefficients ``(H, W, C)`` to the image."""
    levels = check_wavelet(wavelet, levels, "idwt2")
    _check_levels(np.shape(c), levels, "idwt2")
    x = jnp.asarray(c)
    H, W = x.shape[:2]
    for level in reversed(range(levels)):
        h, w = H >> level, W >> level
        x = x.at[:h, :w].set(_level(x[:h, :w], wavelet, inverse=True))
    return x


def padded_size(n: int, levels: int) -> int:
    """Smallest multiple of ``2^levels`` that is ``>= n``."""
    block = 2**int(levels)
    return -(-int(n) // block) * block


def detail_weights(shape: tuple[int, ...], levels: int) -> np.ndarray:
    """Per-coefficient ``0/1`` weights ``(H, W, C)`` float32 for a coefficient array of ``shape`` (``H``, ``W``
    divisible by ``2^levels``): 0 on the coarsest approximation block ``[:H/2^L, :W/2^L]`` (every channel), 1 on
    all detail coefficients. The weights of a Lasso that thresholds the details only (deepinv's wavelet prior).

    >>> detail_weights((8, 8, 1), 2)[..., 0].astype(int)[:3, :3]
    array([[0, 0, 1],
           [0, 0, 1],
           [1, 1, 1]])
    """
    levels = check_wavelet("haar", levels, "detail_weights")
    _check_levels(tuple(shape), levels, "detail_weights")
    w = np.ones(tuple(shape), np.float32)
    w[: shape[0] >> levels, : shape[1] >> levels] = 0.0
    return w


class WaveletBasis(LinearOperator):
    """Synthesis operator ``S c = crop(idwt2(c))`` of an orthonormal wavelet basis, for images of any size.

    ``out_shape`` is the image shape ``(H, W, C)``; ``in_shape`` (the coefficients) is ``(H', W', C)`` with
    ``H'``, ``W'`` the sizes rounded up to multiples of ``2^levels`` (28 -> 32 for 3 levels). ``crop`` keeps the
    centred ``H x W`` window (``(H'-H)//2`` rows above it, the rest below; likewise columns). The adjoint
    ``S^T x = dwt2(zero_pad(x))`` is the analysis operator, exactly the transpose of ``S`` because zero-padding is
    the transpose of cropping. ``S S^T = I`` (a Parseval tight frame: ``||S^T x|| = ||x||``); when no padding is
    needed ``S`` is square and orthogonal, ``S^T S = I`` too. Per channel; periodic boundary on the padded grid.
    The coarsest approximation coefficients are the top-left ``H'/2^levels x W'/2^levels`` block of ``c``
    (:func:`detail_weights`).
    """

    _static = ("in_shape", "out_shape", "wavelet", "levels")

    def __init__(self, shape: Shape, wavelet: str = "db4", levels: int = 3):
        shape = check_image_shape(shape, "WaveletBasis")
        self.levels = check_wavelet(wavelet, levels, "WaveletBasis")
        self.wavelet = wavelet
        self.out_shape = shape
        self.in_shape = (padded_size(shape[0], levels), padded_size(shape[1], levels), shape[2])

    def _pads(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        (hp, wp, _), (h, w, _) = self.in_shape, self.out_shape
        top, left = (hp - h) // 2, (wp - w) // 2
        return (top, hp - h - top), (left, wp - w - left), (0, 0)

    def _apply(self, c: Array) -> Array:
        (top, _), (left, _), _ = self._pads()
        h, w, _ = self.out_shape
        return idwt2(c, self.wavelet, self.levels)[top:top + h, left:left + w]

    def _adjoint(self, x: Array) -> Array:
        return dwt2(jnp.pad(x, self._pads()), self.wavelet, self.levels)

