"""Image-quality metrics on ``[0, 1]`` images, batched over leading axes.

All functions take ``x`` (truth) and ``x_hat`` of shape ``(..., H, W, C)`` and reduce over the last three
axes, returning shape ``(...)``.

- ``mse``: per-pixel squared error ``||x - x_hat||^2 / n``, ``n = H W C`` (the csgm "reconstruction error").
- ``psnr``: ``10 log10(data_range^2 / mse)``.
- ``ssim``: the mean structural similarity of Wang et al. (2004) with scikit-image's defaults for
  ``structural_similarity(..., data_range=1)``: a 7x7 uniform window, ``K1 = 0.01``, ``K2 = 0.03``, sample
  (unbiased) covariances, the mean taken over the ``(H-6) x (W-6)`` window centres that need no padding,
  averaged over channels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

Array = jax.Array


def _check(x: ArrayLike, x_hat: ArrayLike) -> tuple[Array, Array]:
    x = jnp.asarray(x)
    x_hat = jnp.asarray(x_hat)
    if x.shape != x_hat.shape:
        raise ValueError(f"metrics: expected x and x_hat of the same shape, got {x.shape} and {x_hat.shape}")
    if x.ndim < 3:
        raise ValueError(f"metrics: expected images of shape (..., H, W, C), got shape {x.shape}")
    return x.astype(jnp.float32), x_hat.astype(jnp.float32)


def mse(x: ArrayLike, x_hat: ArrayLike) -> Array:
    """Per-pixel mean squared error ``||x - x_hat||^2 / (H W C)`` of images ``(..., H, W, C)``, shape ``(...)``.

    >>> import jax.numpy as jnp
    >>> x = jnp.zeros((2, 4, 4, 1))
    >>> mse(x, x.at[0].set(0.5)).tolist()
    [0.25, 0.0]
    """
    x, x_hat = _check(x, x_hat)
    return jnp.mean((x - x_hat) ** 2, axis=(-3, -2, -1))


def psnr(x: ArrayLike, x_hat: ArrayLike, data_range: float = 1.0) -> Array:
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / mse)`` in dB, shape ``(...)``.

    >>> import jax.numpy as jnp
    >>> x = jnp.zeros((4, 4, 1))
    >>> round(float(psnr(x, x + 0.1)), 3)
    20.0
    """
    return 10.0 * jnp.log10(data_range**2 / mse(x, x_hat))


def _box_mean(img: Array, win: int) -> Array:
    """Mean over every ``win x win`` window that fits ('valid'), per channel:
    ``(..., H, W, C) -> (..., H-win+1, W-win+1, C)``."""
    lead = img.shape[:-3]
    h, w, c = img.shape[-3:]
    flat = jnp.moveaxis(img.reshape((-1, h, w, c)), -1, 1).reshape(-1, 1, h, w)
    kernel = jnp.full((1, 1, win, win), 1.0 / win**2, img.dtype)
    out = jax.lax.conv_general_dilated(flat, kernel, (1, 1), "VALID", precision=jax.lax.Precision.HIGHEST)
    out = out.reshape(-1, c, h - win + 1, w - win + 1)
    return jnp.moveaxis(out, 1, -1).reshape(lead + (h - win + 1, w - win + 1, c))


def ssim(x: ArrayLike, x_hat: ArrayLike, data_range: float = 1.0, win_size: int = 7) -> Array:
    """Mean SSIM, shape ``(...)``; matches ``skimage.metrics.structural_similarity`` defaults."""
    x, x_hat = _check(x, x_hat)
    if min(x.shape[-3:-1]) < win_size:
        raise ValueError(f"ssim: images must be at least {win_size}x{win_size}, got {x.shape[-3:-1]}")
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    cov_norm = win_size**2 / (win_size**2 - 1.0)
    ux, uy = _box_mean(x, win_size), _box_mean(x_hat, win_size)
    uxx, uyy, uxy = _box_mean(x * x, win_size), _box_mean(x_hat * x_hat, win_size), _box_mean(x * x_hat, win_size)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return jnp.mean(s, axis=(-3, -2, -1))
