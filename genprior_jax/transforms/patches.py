"""Patches of an image: the linear map ``P: x -> (p_1, ..., p_N)`` and its adjoint.

For an image ``x`` of shape ``(H, W, C)``, patch size ``k`` and stride ``s`` the patches sit on the grid
``i = o_0 + s a``, ``j = o_1 + s b`` (``a < n_h``, ``b < n_w``) with the offset ``o = (o_0, o_1)``, ``0 <= o < s``::

    p_{a,b}[u, v, c] = x[o_0 + s a + u,  o_1 + s b + v,  c],        0 <= u, v < k
    n_h = (H - k - (s - 1)) // s + 1,     n_w = (W - k - (s - 1)) // s + 1

so every offset in ``[0, s)`` gives the same number of patches (static shapes, the grid may shift from step to
step). ``s = 1`` gives all ``(H - k + 1)(W - k + 1)`` overlapping patches. The adjoint ``P^T`` adds each patch back
at its place (overlaps sum); it is what ``jax.grad`` computes through :func:`extract_patches`, and
:func:`put_patches` writes it out for tests and for averaging patch estimates (``P^T p / P^T 1``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

__all__ = ["extract_patches", "num_patches", "put_patches"]


def num_patches(image_shape: tuple[int, ...], size: int, stride: int = 1) -> tuple[int, int]:
    """``(n_h, n_w)``: patches per column and per row for an image ``(H, W, C)`` (module docstring)."""
    if len(image_shape) != 3:
        raise ValueError(f"patches: expected an image shape (H, W, C), got {tuple(image_shape)}")
    h, w = int(image_shape[0]), int(image_shape[1])
    if int(size) < 1 or int(stride) < 1:
        raise ValueError(f"patches: expected size >= 1 and stride >= 1, got size {size}, stride {stride}")
    if h < size + stride - 1 or w < size + stride - 1:
        raise ValueError(f"patches: a {h}x{w} image holds no {size}x{size} patch grid of stride {stride} "
                         f"(expected H, W >= {size + stride - 1})")
    return (h - size - (stride - 1)) // stride + 1, (w - size - (stride - 1)) // stride + 1


def extract_patches(x: Array, size: int, stride: int = 1, offset: Array | tuple[int, int] = (0, 0)) -> Array:
    """The patches ``P x`` of one image ``x`` ``(H, W, C)``: shape ``(n_h * n_w, size, size, C)``, row-major over
    the grid. ``size`` and ``stride`` are static; ``offset`` (two integers in ``[0, stride)``) may be traced."""
    if x.ndim != 3:
        raise ValueError(f"extract_patches: expected one image (H, W, C), got shape {tuple(x.shape)}")
    n_h, n_w = num_patches(x.shape, size, stride)
    span_h, span_w = stride * (n_h - 1) + size, stride * (n_w - 1) + size
    o = jnp.asarray(offset, jnp.int32)
    crop = jax.lax.dynamic_slice(x, (o[0], o[1], jnp.int32(0)), (span_h, span_w, x.shape[2]))
    # k^2 strided views, one per position (u, v) inside the patch: (n_h, n_w, C) each
    views = [crop[u : u + stride * (n_h - 1) + 1 : stride, v : v + stride * (n_w - 1) + 1 : stride]
             for u in range(size) for v in range(size)]
    stacked = jnp.stack(views, axis=2)  # (n_h, n_w, k*k, C)
    return stacked.reshape(n_h * n_w, size, size, x.shape[2])


def put_patches(patches: Array, image_shape: tuple[int, int, int], stride: int = 1,
                offset: Array | tuple[int, int] = (0, 0)) -> Array:
    """The adjoint ``P^T``: ``patches`` ``(n_h * n_w, k, k, C)`` summed into an image of ``image_shape``."""
    n = patches.shape[0]
    size = patches.shape[1]
    n_h, n_w = num_patches(image_shape, size, stride)
    if n != n_h * n_w or tuple(patches.shape[1:]) != (size, size, image_shape[2]):
        raise ValueError(f"put_patches: expected patches of shape ({n_h * n_w}, {size}, {size}, {image_shape[2]}) "
                         f"for an image {tuple(image_shape)} with stride {stride}, got {tuple(patches.shape)}")
    zeros = jnp.zeros(tuple(image_shape), patches.dtype)
    _, vjp = jax.vjp(lambda img: extract_patches(img, size, stride, offset), zeros)
    return vjp(patches)[0]
