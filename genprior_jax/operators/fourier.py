"""Subsampled Fourier (MRI) operator and k-space sampling masks.

``y = M ⊙ F x`` per channel, with ``F`` the orthonormal 2-D DFT (``norm="ortho"``, so ``F^H F = I``) and ``M``
a binary k-space mask shared by the channels. k-space is in numpy's *unshifted* FFT order (the DC term at
index ``(0, 0)``; ``jnp.fft.fftshift`` centres it for display).

Real-stacked representation: the complex measurement is returned as a real float32 array of shape
``(H, W, C, 2)`` holding ``(real, imag)`` in the trailing axis, with unsampled entries exactly 0. The shape does
not depend on the sampling rate, so masks of different rates (or patterns) share one static shape and a batch
of them can be vmapped. :func:`as_complex` / :func:`as_real` convert between the two views. As a map from
``R^(H W C)`` to ``R^(H W C 2)`` the operator is real-linear and its adjoint is ``Re(F^H (M ⊙ (y_re + i y_im)))``
(closed form below); with the Euclidean inner product of the real-stacked arrays, ``<A x, y> = <x, A^T y>``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .base import Array, LinearOperator, Shape
from .validation import check_fraction, check_image_shape, check_key


def as_complex(y: Array) -> Array:
    """Real-stacked ``(..., 2)`` array -> complex ``(...)`` array ``y[..., 0] + i y[..., 1]``."""
    if np.shape(y)[-1:] != (2,):
        raise ValueError(f"as_complex: expected a trailing axis of size 2 (real, imag), got shape {np.shape(y)}")
    return jax.lax.complex(y[..., 0], y[..., 1])


def as_real(z: Array) -> Array:
    """Complex ``(...)`` array -> real-stacked ``(..., 2)`` array (inverse of :func:`as_complex`)."""
    return jnp.stack([jnp.real(z), jnp.imag(z)], axis=-1)


def _frequency_radius(h: int, w: int) -> np.ndarray:
    """``|k|`` on the unshifted ``(h, w)`` DFT grid, normalised so that the edge of k-space along the longer
    axis (the Nyquist frequency) is at radius 1; corners exceed 1."""
    ky = np.fft.fftfreq(h)[:, None] * h / max(h, w)
    kx = np.fft.fftfreq(w)[None, :] * w / max(h, w)
    return np.sqrt(ky**2 + kx**2) / 0.5


def _weighted_subset(key: Array, log_weights: np.ndarray, forced: np.ndarray, k: int) -> Array:
    """A 0/1 vector with exactly ``k`` ones: every ``forced`` entry, then ``k - forced.sum()`` others drawn
    without replacement with probabilities proportional to ``exp(log_weights)`` (Gumbel top-k)."""
    scores = jnp.asarray(log_weights, jnp.float32) + jax.random.gumbel(key, log_weights.shape, jnp.float32)
    scores = jnp.where(jnp.asarray(forced), jnp.inf, scores)
    _, idx = jax.lax.top_k(scores, k)
    return jnp.zeros(log_weights.shape, jnp.float32).at[idx].set(1.0)


def _check_rate(rate: float, who: str) -> float:
    rate = check_fraction(rate, who, "rate")
    if rate == 0.0:
        raise ValueError(f"{who}: expected rate in (0, 1], got 0")
    return rate


def variable_density_mask(key: Array, shape: tuple[int, int], rate: float, power: float = 2.0,
                          center_fraction: float = 0.25) -> Array:
    """Random 2-D variable-density k-space mask ``(H, W)`` of 0/1 (unshifted order), with exactly
    ``round(rate * H * W)`` (at least 1) sampled frequencies.

    The ``round(center_fraction * n_sampled)`` frequencies of smallest ``|k|`` are always sampled (a fully
    sampled centre, the DC term first); the rest are drawn without replacement with probability proportional
    to the polynomial density ``max(1 - r, 0)^power + 1e-3`` of the normalised radius ``r`` (1 at the Nyquist
    edge), as in Lustig et al.'s variable-density random undersampling. ``power = 0`` gives uniform sampling
    outside the centre.
    """
    check_key(key, "variable_density_mask")
    rate = _check_rate(rate, "variable_density_mask")
    center_fraction = check_fraction(center_fraction, "variable_density_mask", "center_fraction")
    h, w = (int(s) for s in shape)
    n = h * w
    k = max(1, int(round(rate * n)))
    r = _frequency_radius(h, w).reshape(-1)
    n_center = max(1, int(round(center_fraction * k)))
    forced = np.zeros(n, bool)
    forced[np.argsort(r, kind="stable")[:n_center]] = True
    log_w = np.log(np.clip(1.0 - r, 0.0, None) ** float(power) + 1e-3)
    return _weighted_subset(key, log_w, forced, k).reshape(h, w)


def line_mask(key: Array, shape: tuple[int, int], rate: float, power: float = 2.0,
              center_fraction: float = 0.25) -> Array:
    """Random Cartesian k-space mask ``(H, W)``: whole rows (phase-encoding lines, fixed ``k_y``) are sampled,
    exactly ``round(rate * H)`` of them (at least 1). The ``round(center_fraction * n_lines)`` lowest-``|k_y|``
    lines are always sampled, the others drawn with density ``max(1 - |k_y|, 0)^power + 1e-3`` (``|k_y| = 1``
    at Nyquist), as in :func:`variable_density_mask` but in one dimension."""
    check_key(key, "line_mask")
    rate = _check_rate(rate, "line_mask")
    center_fraction = check_fraction(center_fraction, "line_mask", "center_fraction")
    h, w = (int(s) for s in shape)
    k = max(1, int(round(rate * h)))
    r = np.abs(np.fft.fftfreq(h)) / 0.5
    forced = np.zeros(h, bool)
    forced[np.argsort(r, kind="stable")[: max(1, int(round(center_fraction * k)))]] = True
    log_w = np.log(np.clip(1.0 - r, 0.0, None) ** float(power) + 1e-3)
    rows = _weighted_subset(key, log_w, forced, k)
    return jnp.broadcast_to(rows[:, None], (h, w))


class SubsampledFourier(LinearOperator):
    """Single-coil MRI: ``y = M ⊙ F x`` per channel, real-stacked (see the module docstring).

    ``F`` is the orthonormal 2-D DFT over ``(H, W)``, so with a full mask ``A^T A = I`` and ``||A x|| = ||x||``;
    in general ``A^T A = F^H M F`` restricted to real images. Noise from
    :func:`~genprior_jax.operators.noise.measure` is added to the real and imaginary parts of sampled entries
    only (:meth:`observe` applies the mask), each with std ``sigma``.

    Args:
        mask: 0/1 array ``(H, W)`` in unshifted k-space order (:func:`variable_density_mask`, :func:`line_mask`).
        shape: image shape ``(H, W, C)``.

    ``out_shape = (H, W, C, 2)``; leaf: ``mask``. Build a random one with :meth:`random`.
    """

    _leaves = ("mask",)
    real_stacked = True  # the trailing axis of the output is (real, imag): PhaseRetrieval takes the modulus over it

    def __init__(self, mask: Array | np.ndarray, shape: Shape):
        shape = check_image_shape(shape, "SubsampledFourier")
        mask = jnp.asarray(mask, jnp.float32)
        if mask.shape != shape[:2]:
            raise ValueError(f"SubsampledFourier: expected a k-space mask of shape {shape[:2]}, got {mask.shape}")
        self.mask = mask
        self.in_shape = shape
        self.out_shape = (*shape, 2)

    @classmethod
    def random(cls, key: Array, shape: Shape, rate: float, lines: bool = False, power: float = 2.0,
               center_fraction: float = 0.25) -> SubsampledFourier:
        """A random variable-density mask (``lines=False``) or Cartesian line mask (``lines=True``) sampling a
        fraction ``rate`` of k-space."""
        shape = check_image_shape(shape, "SubsampledFourier")
        make = line_mask if lines else variable_density_mask
        return cls(make(key, shape[:2], rate, power, center_fraction), shape)

    @property
    def sampling_rate(self) -> Array:
        """Fraction of k-space sampled."""
        return jnp.mean(self.mask)

    def _apply(self, x: Array) -> Array:
        return _masked_fft(x, self.mask)

    def _adjoint(self, y: Array) -> Array:
        return _masked_ifft(y, self.mask)

    def observe(self, z: Array) -> Array:
        return z * self.mask[:, :, None, None]


# jitted so that an eager call is one compiled program and one dispatch (inlined when traced inside a jit)
@jax.jit
def _masked_fft(x: Array, mask: Array) -> Array:
    return as_real(jnp.fft.fft2(x, axes=(0, 1), norm="ortho")) * mask[:, :, None, None]


@jax.jit
def _masked_ifft(y: Array, mask: Array) -> Array:
    k = as_complex(y * mask[:, :, None, None])
    return jnp.real(jnp.fft.ifft2(k, axes=(0, 1), norm="ortho")).astype(y.dtype)
