"""Inpainting operators: ``y = M ⊙ x`` with a binary pixel mask ``M`` (shared across channels).

The measurement keeps the image's shape (missing pixels read as 0), so masks of different sizes have one
static shape and a batch of masks can be vmapped. ``M`` is a 0/1 projection, hence self-adjoint.
"""

from __future__ import annotations

from typing import cast

import jax
import jax.numpy as jnp
import numpy as np

from .base import Array, LinearOperator, Shape
from .validation import check_fraction, check_image_shape, check_key


class _Mask(LinearOperator):
    _leaves = ("mask",)
    mask: Array  # (H, W, 1) float32 of 0/1

    def _apply(self, x: Array) -> Array:
        return self.mask * x

    def _adjoint(self, y: Array) -> Array:
        return self.mask * y

    @property
    def fraction_observed(self) -> Array:
        return jnp.mean(self.mask)


class RandomMask(_Mask):
    """Random-pixel inpainting: exactly ``round(fraction_missing * H * W)`` pixels, drawn uniformly
    without replacement, are set to 0 in every channel.

    Args:
        key: PRNG key drawing the mask.
        shape: image shape ``(H, W, C)``.
        fraction_missing: in ``[0, 1]`` (Oberlin & Verm use 0.6).
    """

    def __init__(self, key: Array, shape: Shape, fraction_missing: float):
        shape = check_image_shape(shape, "RandomMask")
        check_key(key, "RandomMask")
        fraction_missing = check_fraction(fraction_missing, "RandomMask", "fraction_missing")
        h, w, _ = shape
        n_missing = int(round(fraction_missing * h * w))
        order = jax.random.permutation(key, h * w)
        keep = (order >= n_missing).astype(jnp.float32)  # a random subset of n_missing pixels is dropped
        self.in_shape = shape
        self.out_shape = shape
        self.mask = keep.reshape(h, w, 1)


class BoxMask(_Mask):
    """Box inpainting: a ``size`` (int or ``(h, w)``) rectangle of pixels is hidden.

    Args:
        shape: image shape ``(H, W, C)``.
        size: box size; must fit inside the image.
        position: top-left corner ``(row, col)``; default centres the box (rounding down).
    """

    def __init__(self, shape: Shape, size: int | tuple[int, int], position: tuple[int, int] | None = None):
        shape = check_image_shape(shape, "BoxMask")
        h, w, _ = shape
        bh, bw = cast(tuple[int, int], (size, size) if np.isscalar(size) else tuple(size))  # type: ignore[misc]
        bh, bw = int(bh), int(bw)
        if not (1 <= bh <= h and 1 <= bw <= w):
            raise ValueError(f"BoxMask: expected a box size between 1 and the image size {(h, w)}, got {(bh, bw)}")
        if position is None:
            position = ((h - bh) // 2, (w - bw) // 2)
        r, c = (int(p) for p in position)
        if not (0 <= r <= h - bh and 0 <= c <= w - bw):
            raise ValueError(
                f"BoxMask: a {bh}x{bw} box must start at row 0..{h - bh}, col 0..{w - bw}; got position {(r, c)}"
            )
        mask = np.ones((h, w, 1), np.float32)
        mask[r : r + bh, c : c + bw] = 0.0
        self.in_shape = shape
        self.out_shape = shape
        self.mask = jnp.asarray(mask)


class BlockPixels(_Mask):
    """AmbientGAN's block-pixels measurement (Bora, Price & Dimakis 2018): each pixel is zeroed independently
    with probability ``p`` (in every channel), so the number of missing pixels is Binomial(``H W``, ``p``) - unlike
    :class:`RandomMask`, which drops an exact count.

    Args:
        key: PRNG key drawing the mask (may be traced: ``jax.vmap`` over keys draws a fresh mask per image).
        shape: image shape ``(H, W, C)``.
        p: probability in ``[0, 1]`` that a pixel is blocked.
    """

    def __init__(self, key: Array, shape: Shape, p: float):
        shape = check_image_shape(shape, "BlockPixels")
        check_key(key, "BlockPixels")
        p = check_fraction(p, "BlockPixels", "p")
        h, w, _ = shape
        self.in_shape = shape
        self.out_shape = shape
        self.mask = (jax.random.uniform(key, (h, w, 1)) >= p).astype(jnp.float32)


class KeepPatch(_Mask):
    """AmbientGAN's keep-patch measurement: a ``size x size`` patch at a uniformly random position is kept and
    every pixel outside it is zeroed.

    Args:
        key: PRNG key drawing the patch's top-left corner (may be traced).
        shape: image shape ``(H, W, C)``.
        size: side of the kept patch, between 1 and ``min(H, W)``.
    """

    def __init__(self, key: Array, shape: Shape, size: int):
        shape = check_image_shape(shape, "KeepPatch")
        check_key(key, "KeepPatch")
        h, w, _ = shape
        if int(size) != size or not 1 <= size <= min(h, w):
            raise ValueError(f"KeepPatch: expected an integer patch size between 1 and {min(h, w)}, got {size!r}")
        size = int(size)
        kr, kc = jax.random.split(key)
        r = jax.random.randint(kr, (), 0, h - size + 1)
        c = jax.random.randint(kc, (), 0, w - size + 1)
        rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
        inside = (rows >= r) & (rows < r + size) & (cols >= c) & (cols < c + size)
        self.in_shape = shape
        self.out_shape = shape
        self.mask = inside.astype(jnp.float32)[:, :, None]
