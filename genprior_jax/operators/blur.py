"""Blur (convolution) and super-resolution down-sampling operators."""

from __future__ import annotations

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from .base import Array, LinearOperator, Shape
from .validation import check_image_shape

BOUNDARIES = ("zero", "circular")


def uniform_kernel(size: int) -> np.ndarray:
    """``size x size`` box kernel summing to 1."""
    size = int(size)
    if size < 1:
        raise ValueError(f"uniform_kernel: expected a positive size, got {size}")
    return np.full((size, size), 1.0 / size**2, np.float32)


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """``size x size`` sampled Gaussian of std ``sigma`` (pixels), normalised to sum to 1."""
    size = int(size)
    if size < 1 or not sigma > 0:
        raise ValueError(f"gaussian_kernel: expected size >= 1 and sigma > 0, got size={size}, sigma={sigma}")
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-0.5 * (t / sigma) ** 2)
    k = np.outer(g, g)
    return (k / k.sum()).astype(np.float32)


def _rank_one_factors(kernel: Array) -> tuple[Array | None, Array | None]:
    """``(u, v)`` with ``kernel = u v^T`` (to float32 round-off) for a concrete rank-one kernel, else
    ``(None, None)`` (a traced kernel, or rank > 1)."""
    if isinstance(kernel, jax.core.Tracer):
        return None, None
    k = np.asarray(kernel, np.float64)
    u, s, vt = np.linalg.svd(k)
    if s[0] == 0 or (s.size > 1 and s[1] > 1e-6 * s[0]):
        return None, None
    return jnp.asarray(u[:, 0] * np.sqrt(s[0]), jnp.float32), jnp.asarray(vt[0] * np.sqrt(s[0]), jnp.float32)


def _pass(x: Array, taps: Array, axis: int, boundary: str, adjoint: bool = False) -> Array:
    """1-D convolution of one plane ``x`` ``(H, W)`` along ``axis`` with ``taps`` (length ``k``), ``'SAME'`` output
    (``(k - 1) // 2`` before, ``k // 2`` after), zero or periodic boundary: a sum of ``k`` shifted slices. The
    adjoint is the correlation: the taps unflipped and the padding mirrored."""
    k, n = taps.shape[0], x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (k // 2, (k - 1) // 2) if adjoint else ((k - 1) // 2, k // 2)
    xp = jnp.pad(x, pad, mode="wrap" if boundary == "circular" else "constant")
    flipped = (taps if adjoint else taps[::-1]).astype(x.dtype)  # convolution, not correlation
    out = jnp.zeros_like(x)
    for a in range(k):
        out = out + flipped[a] * jax.lax.slice_in_dim(xp, a, a + n, axis=axis)
    return out


class Blur(LinearOperator):
    """Per-channel 2-D convolution ``y = k * x`` with the same output shape as the input.

    Boundary handling (static):

    - ``"zero"`` (default): the image is zero outside its support (``'SAME'`` padding: for an odd kernel size
      ``k`` the output pixel ``(i, j)`` is centred on input ``(i, j)``; for even ``k`` the extra row/column of
      padding goes after the image, as in XLA's SAME convention).
    - ``"circular"``: periodic extension (wrap-around), so the operator is a circulant convolution.

    The kernel is applied as a true convolution (flipped), which matters only for asymmetric kernels.
    The adjoint comes from ``jax.linear_transpose``. A separable (rank-one) kernel ``k = u v^T`` - the uniform
    and Gaussian kernels - is applied as two 1-D passes of shifted slices (``kh + kw`` multiply-adds per pixel,
    fused by XLA); other kernels by ``lax.conv_general_dilated``, which XLA:CPU runs at under 1 GFLOP/s on
    single-channel images (a 13x13 blur of a 256x256 image: 30 ms per ``A^T A`` against ~1 ms separably).

    Args:
        kernel: 2-D array ``(kh, kw)``; see :func:`uniform_kernel`, :func:`gaussian_kernel`.
        shape: image shape ``(H, W, C)``.
        boundary: ``"zero"`` or ``"circular"``.
    """

    _leaves = ("kernel", "rows", "cols")
    _static = ("in_shape", "out_shape", "boundary")

    def __init__(self, kernel: Array | np.ndarray, shape: Shape, boundary: str = "zero"):
        shape = check_image_shape(shape, "Blur")
        kernel = jnp.asarray(kernel, jnp.float32)
        if kernel.ndim != 2:
            raise ValueError(f"Blur: expected a 2-D kernel (kh, kw), got shape {kernel.shape}")
        if kernel.shape[0] > shape[0] or kernel.shape[1] > shape[1]:
            raise ValueError(f"Blur: kernel {kernel.shape} is larger than the image {shape[:2]}")
        if boundary not in BOUNDARIES:
            raise ValueError(f"Blur: expected boundary in {BOUNDARIES}, got {boundary!r}")
        self.kernel = kernel
        self.boundary = boundary
        self.in_shape = shape
        self.out_shape = shape
        self.rows, self.cols = _rank_one_factors(kernel)

    @classmethod
    def uniform(cls, shape: Shape, size: int, boundary: str = "zero") -> Blur:
        """Uniform ``size x size`` blur (Oberlin & Verm's deblurring task uses 7x7)."""
        return cls(uniform_kernel(size), shape, boundary)

    @classmethod
    def gaussian(cls, shape: Shape, sigma: float, size: int | None = None, boundary: str = "zero") -> Blur:
        """Gaussian blur of std ``sigma``; ``size`` defaults to ``2 * ceil(3 sigma) + 1``."""
        if size is None:
            size = 2 * int(np.ceil(3 * sigma)) + 1
        return cls(gaussian_kernel(size, sigma), shape, boundary)

    def _apply(self, x: Array) -> Array:
        if self.rows is not None and self.cols is not None:
            return self._separable(x, adjoint=False)
        kh, kw = self.kernel.shape
        img = jnp.transpose(x, (2, 0, 1))[:, None]  # (C, 1, H, W): channels as batch
        rhs = self.kernel[::-1, ::-1][None, None].astype(x.dtype)  # flipped: convolution, not correlation
        if self.boundary == "circular":
            pad = ((0, 0), (0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2))
            img = jnp.pad(img, pad, mode="wrap")
            padding = "VALID"
        else:
            padding = "SAME"
        out = jax.lax.conv_general_dilated(img, rhs, (1, 1), padding)
        return jnp.transpose(out[:, 0], (1, 2, 0))


    def _separable(self, x: Array, adjoint: bool) -> Array:
        """The two 1-D passes, channel by channel (one fused loop per plane), or their adjoint."""
        assert self.rows is not None and self.cols is not None
        planes = [_pass(_pass(x[..., c], self.rows, 0, self.boundary, adjoint), self.cols, 1, self.boundary, adjoint)
                  for c in range(x.shape[-1])]
        return jnp.stack(planes, axis=-1)

    def _adjoint(self, y: Array) -> Array:
        # written out: jax.linear_transpose of the shifted slices is ~20x slower on XLA:CPU for RGB images
        if self.rows is not None and self.cols is not None:
            return self._separable(y, adjoint=True)
        return super()._adjoint(y)


class Downsample(LinearOperator):
    """Super-resolution operator: uniform ``factor x factor`` filter followed by decimation, i.e. the mean
    of each non-overlapping ``factor x factor`` block: ``(H, W, C) -> (H/f, W/f, C)``.

    The adjoint spreads each low-resolution value, divided by ``f^2``, over its block.
    ``H`` and ``W`` must be divisible by ``factor`` (pad or crop the image first otherwise).
    """

    _static = ("in_shape", "out_shape", "factor")

    def __init__(self, shape: Shape, factor: int):
        shape = check_image_shape(shape, "Downsample")
        if int(factor) != factor or factor < 1:
            raise ValueError(f"Downsample: expected a positive integer factor, got {factor!r}")
        factor = int(factor)
        h, w, c = shape
        if h % factor or w % factor:
            raise ValueError(f"Downsample: image size {(h, w)} is not divisible by factor {factor}")
        self.factor = factor
        self.in_shape = shape
        self.out_shape = (h // factor, w // factor, c)

    def _apply(self, x: Array) -> Array:
        f = self.factor
        h, w, c = self.in_shape
        return x.reshape(h // f, f, w // f, f, c).mean(axis=(1, 3))

    def _adjoint(self, y: Array) -> Array:
        f = self.factor
        up = jnp.repeat(jnp.repeat(y, f, axis=0), f, axis=1)
        return up / (f * f)
