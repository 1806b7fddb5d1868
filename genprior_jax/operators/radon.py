"""Parallel-beam tomography: the discrete Radon transform and filtered back-projection.

For an angle ``theta`` and a detector offset ``t`` the projection is the line integral

    p(theta, t) = sum_s  x_bilinear( c_col + t cos(theta) + s sin(theta),  c_row - t sin(theta) + s cos(theta) )

over unit-spaced ray samples ``s = -L..L`` (``L = ceil(sqrt(H^2 + W^2) / 2)``, so every ray crosses the whole
image), where ``x_bilinear(col, row)`` interpolates the image bilinearly with zeros outside it and
``(c_row, c_col) = ((H - 1) / 2, (W - 1) / 2)`` is the image centre. Detectors are unit-spaced,
``t_j = j - (D - 1) / 2``. This is scikit-image's ``radon`` geometry (same rotation direction, detector
orientation and bilinear interpolation): at ``theta = 0`` the projection is the column sums. The only difference
is the centre: scikit-image rotates about pixel ``(H // 2, W // 2)`` and puts the detector centre at ``D // 2``,
half a pixel away from ours for even sizes; for odd ``H = W`` and odd ``D`` the two agree up to round-off
(``skimage_sinogram[1:].T`` equals ours with scikit-image's ``D + 1`` detectors).

The map is linear in the image; the adjoint (unfiltered back-projection) is its exact transpose from
``jax.linear_transpose`` (a scatter-add of the bilinear weights). Memory is ``O(angles * D * L)`` per channel,
with no matrix stored (the sample positions are stored, see :class:`Radon`).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from .base import Array, LinearOperator, Shape
from .validation import check_image_shape


def default_detectors(shape: Shape) -> int:
    """``ceil(sqrt(2) * max(H, W))`` detectors: every ray through the image is seen (scikit-image's default)."""
    return int(math.ceil(math.sqrt(2.0) * max(shape[0], shape[1])))


def uniform_angles(n: int) -> np.ndarray:
    """``n`` equally spaced angles over ``[0, pi)``, in radians."""
    return np.arange(int(n), dtype=np.float64) * np.pi / int(n)


def _bilinear_line_sums(img: Array, cols: Array, rows: Array) -> Array:
    """``sum over the last axis`` of the bilinear interpolation of ``img`` (``(H, W)``, zero outside) at
    points ``(cols, rows)`` (``(..., S)``). Written as gathers times constant weights, so it is linear in
    ``img`` and ``jax.linear_transpose`` gives the scatter-add adjoint.

    The weights are tent functions of the distance, ``max(0, 1 - |row - r|)``, at the two candidate pixels
    ``r = floor(row), floor(row) + 1`` (the usual ``1 - frac(row)``, ``frac(row)``).
    """
    h, w = img.shape
    flat = img.reshape(-1)
    r0 = jnp.floor(rows).astype(jnp.int32)
    c0 = jnp.floor(cols).astype(jnp.int32)
    out = 0.0
    for dr in (0, 1):
        r = r0 + dr
        wr = jnp.maximum(1.0 - jnp.abs(rows - r.astype(rows.dtype)), 0.0)
        for dc in (0, 1):
            c = c0 + dc
            wc = jnp.maximum(1.0 - jnp.abs(cols - c.astype(cols.dtype)), 0.0)
            inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
            weight = jnp.where(inside, wr * wc, 0.0).astype(img.dtype)
            idx = jnp.clip(r, 0, h - 1) * w + jnp.clip(c, 0, w - 1)
            out = out + jnp.sum(weight * flat[idx], axis=-1)
    return out


class Radon(LinearOperator):
    """Parallel-beam Radon transform ``(H, W, C) -> (n_angles, n_detectors, C)`` (per channel), see the module
    docstring for the geometry.

    Args:
        shape: image shape ``(H, W, C)``.
        angles: number of equally spaced angles over ``[0, pi)`` (:func:`uniform_angles`), or a 1-D array of
            angles in radians.
        detectors: number of unit-spaced detectors; default :func:`default_detectors`. Fewer detectors
            truncate the field of view symmetrically.

    Leaves: ``angles`` (``(n_angles,)``) and ``coords``, the ray-sample positions ``(2, n_angles, n_detectors,
    2 L + 1)`` (columns, rows; 2 MB for 64x64 images and 30 angles), computed once here in float64 when the
    angles are concrete. Computing them inside every apply instead is not safe under ``jit``: XLA duplicates
    the computation into the fusion of each interpolation corner, the copies can round an integer coordinate
    differently, and a corner pixel is then dropped or counted twice. (With traced angles, i.e. an operator built
    inside ``jit``, they are computed in float32 in that trace.) Operators with different angle sets of the same
    count vmap. The adjoint is the (unfiltered) back-projection; :func:`fbp` inverts approximately.
    """

    _leaves = ("angles", "coords")
    _static = ("in_shape", "out_shape")

    def __init__(self, shape: Shape, angles: int | Array | np.ndarray = 30, detectors: int | None = None):
        shape = check_image_shape(shape, "Radon")
        if np.ndim(angles) == 0:
            if int(angles) != angles or int(angles) < 1:
                raise ValueError(f"Radon: expected a positive integer number of angles or a 1-D array, got {angles!r}")
            angles = uniform_angles(int(angles))
        traced = isinstance(angles, jax.core.Tracer)
        if np.ndim(angles) != 1 or np.shape(angles)[0] < 1:
            raise ValueError(f"Radon: expected a non-empty 1-D array of angles, got shape {np.shape(angles)}")
        if not traced and not np.all(np.isfinite(np.asarray(angles, np.float64))):
            raise ValueError("Radon: expected finite angles")
        n_det = default_detectors(shape) if detectors is None else detectors
        if int(n_det) != n_det or int(n_det) < 1:
            raise ValueError(f"Radon: expected a positive integer number of detectors, got {detectors!r}")
        half_length = int(math.ceil(math.hypot(shape[0], shape[1]) / 2.0))
        xp = jnp if traced else np
        coords = _sample_points(xp, xp.asarray(angles, jnp.float32 if traced else np.float64), shape, int(n_det),
                                half_length)
        self.angles = jnp.asarray(angles, jnp.float32)
        self.coords = jnp.asarray(coords, jnp.float32)
        self.in_shape = shape
        self.out_shape = (int(np.shape(angles)[0]), int(n_det), shape[2])

    @property
    def n_detectors(self) -> int:
        return self.out_shape[1]

    def _apply(self, x: Array) -> Array:
        return _project(x, self.coords)

    def _adjoint(self, y: Array) -> Array:
        return _backproject(y, self.coords, self.in_shape)


def _sample_points(xp: object, angles: Array | np.ndarray, shape: Shape, n_detectors: int, half_length: int) -> Array:
    """``(cols, rows)`` of the ray samples stacked, ``(2, n_angles, n_detectors, 2 half_length + 1)``; ``xp`` is
    ``numpy`` or ``jax.numpy``."""
    h, w = shape[0], shape[1]
    t = xp.arange(n_detectors)[None, :, None] - (n_detectors - 1) / 2.0  # type: ignore[attr-defined]
    s = xp.arange(-half_length, half_length + 1)[None, None, :]  # type: ignore[attr-defined]
    cos = xp.cos(angles)[:, None, None]  # type: ignore[attr-defined]
    sin = xp.sin(angles)[:, None, None]  # type: ignore[attr-defined]
    cols = (w - 1) / 2.0 + t * cos + s * sin
    rows = (h - 1) / 2.0 - t * sin + s * cos
    return xp.stack([cols, rows])  # type: ignore[attr-defined]


@jax.jit
def _project(x: Array, coords: Array) -> Array:
    """The Radon transform of ``x`` (``(H, W, C)``) at the ray samples ``coords``; jitted so that an eager call is
    one dispatch."""
    return jax.vmap(lambda img: _bilinear_line_sums(img, coords[0], coords[1]), in_axes=2, out_axes=2)(x)


@functools.partial(jax.jit, static_argnums=2)
def _backproject(y: Array, coords: Array, in_shape: Shape) -> Array:
    """The exact adjoint of :func:`_project` (``jax.linear_transpose``), jitted."""
    primal = jax.ShapeDtypeStruct(in_shape, y.dtype)
    (out,) = jax.linear_transpose(lambda x: _project(x, coords), primal)(y)
    return out


def ramp_filter(sinogram: Array, axis: int = 1) -> Array:
    """Ram-Lak filtering along the detector ``axis``: convolution with the band-limited ramp kernel
    ``h[0] = 1/4, h[n odd] = -1/(pi n)^2, h[n even] = 0`` (Kak & Slaney, eq. 61; scikit-image's ``"ramp"``),
    done by FFT on a zero-padded length (no wrap-around)."""
    d = sinogram.shape[axis]
    size = max(64, int(2 ** math.ceil(math.log2(2 * d))))
    n = np.concatenate([np.arange(1, size // 2 + 1, 2), np.arange(size // 2 - 1, 0, -2)])
    h = np.zeros(size)
    h[0] = 0.25
    h[1::2] = -1.0 / (np.pi * n) ** 2
    kernel = jnp.asarray(np.real(np.fft.fft(h)), jnp.float32)
    shape = [1] * sinogram.ndim
    shape[axis] = size
    spec = jnp.fft.fft(sinogram, n=size, axis=axis) * kernel.reshape(shape)
    return jnp.take(jnp.real(jnp.fft.ifft(spec, axis=axis)), jnp.arange(d), axis=axis).astype(sinogram.dtype)


def fbp(op: Radon, sinogram: Array) -> Array:
    """Filtered back-projection ``(pi / n_angles) A^T ramp(p)``: an approximate inverse of :class:`Radon` for
    angles equally spaced over ``[0, pi)`` (the Riemann sum of the inversion formula), shape ``op.in_shape``."""
    if not isinstance(op, Radon):
        raise ValueError(f"fbp: expected a Radon operator, got {type(op).__name__}")
    return op.rmv(ramp_filter(jnp.asarray(sinogram), axis=1)) * (np.pi / op.out_shape[0])
