"""BM3D denoising (Dabov et al. 2007; Mäkinen, Azzari & Foi 2020) through the optional ``bm3d`` package.

Host-side NumPy, one image at a time: BM3D is a compiled C library (the ``bm4d`` binaries), not JAX, so
:func:`bm3d_denoise` cannot be jitted, vmapped or differentiated. Install with the ``bm3d`` extra
(``pip install 'genprior_jax[bm3d]'``). The ``bm3d`` package is licensed by Tampere University for
non-commercial use only; it is not a dependency of the library.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np


def _bm3d_module() -> Any:
    try:
        return importlib.import_module("bm3d")
    except ImportError:
        raise ImportError("bm3d_denoise needs the optional 'bm3d' package (non-commercial licence): "
                          "pip install 'genprior_jax[bm3d]'") from None


def bm3d_denoise(y: Any, sigma: float | Any, *, profile: str = "np") -> np.ndarray:
    """Denoise images ``y`` corrupted by white Gaussian noise of standard deviation ``sigma``.

    Args:
        y: noisy images of shape ``(B, H, W, C)`` or one ``(H, W, C)``, on the ``[0, 1]`` scale (values outside
            it, as noise produces, are fine); finite floating-point values.
        sigma: noise standard deviation on that scale, ``> 0``: one float, or one per image (shape ``(B,)``).
        profile: the ``bm3d`` package's parameter profile (``"np"`` is its default; ``"refilter"``, ...).

    Returns:
        float32 NumPy array of ``y``'s shape. ``C = 1``: grayscale BM3D; ``C = 3``: ``bm3d_rgb`` (block matching
        in the opponent colour space); other ``C``: multichannel BM3D, block matching on the first channel.
    """
    arr = np.asarray(y)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"bm3d_denoise: expected floating-point images, got dtype {arr.dtype}")
    if arr.ndim not in (3, 4):
        raise ValueError(f"bm3d_denoise: expected images of shape (B, H, W, C) or (H, W, C), got shape {arr.shape}")
    single = arr.ndim == 3
    batch = arr[None] if single else arr
    sig = np.broadcast_to(np.asarray(sigma, np.float64), (len(batch),)) if np.ndim(sigma) == 0 else np.asarray(sigma)
    if sig.shape != (len(batch),) or not np.all(np.isfinite(sig)) or np.any(sig <= 0):
        raise ValueError(f"bm3d_denoise: expected sigma > 0, a float or one per image (shape ({len(batch)},)), "
                         f"got {sigma!r}")
    bad = [i for i in range(len(batch)) if not np.all(np.isfinite(batch[i]))]
    if bad:
        raise ValueError(f"bm3d_denoise: expected finite images, got non-finite values in image(s) {bad}")
    bm3d = _bm3d_module()
    out = np.empty(batch.shape, np.float32)
    for i, (img, s) in enumerate(zip(batch.astype(np.float64), sig)):
        c = img.shape[-1]
        if c == 1:
            den = bm3d.bm3d(img[..., 0], float(s), profile=profile)
        elif c == 3:
            den = bm3d.bm3d_rgb(img, float(s), profile=profile)
        else:
            den = bm3d.bm3d(img, float(s), profile=profile)
        out[i] = np.reshape(den, img.shape)
    return out[0] if single else out
