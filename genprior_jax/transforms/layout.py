"""Space-to-depth and back: the image re-layout of flows' multi-scale squeeze and of DCGAN's up-sampling."""

from __future__ import annotations

import jax

Array = jax.Array


def squeeze(x: Array) -> Array:
    """``(B, H, W, C) -> (B, H/2, W/2, 4C)`` space-to-depth; ``H`` and ``W`` must be even."""
    b, h, w, c = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"squeeze: expected even height and width, got {(h, w)}")
    x = x.reshape(b, h // 2, 2, w // 2, 2, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h // 2, w // 2, 4 * c)


def unsqueeze(x: Array) -> Array:
    """Inverse of :func:`squeeze`: ``(B, H, W, 4C) -> (B, 2H, 2W, C)``."""
    b, h, w, c4 = x.shape
    c = c4 // 4
    x = x.reshape(b, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, 2 * h, 2 * w, c)
