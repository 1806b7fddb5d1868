"""Convolutions on tiny images as dense matrices: the affine coupling of a patch flow, fast on CPU.

A patch flow (PatchNR) squeezes a ``6 x 6`` patch to ``3 x 3 x 4``, and its couplings run ``3 x 3`` "SAME"
convolutions on a ``3 x 3`` image. XLA:CPU runs such convolutions, batched over ~16,000 patches, at a small fraction
of its matrix-multiply speed. On an ``h x w`` image a stride-1 "SAME" convolution is the linear map
``vec(x) -> vec(x) M`` with the ``(h w c_in, h w c_out)`` matrix

    M[(i, j, a), (i', j', b)] = K[i - i' + p_h, j - j' + p_w, a, b]   (zero where the tap falls outside K)

(``p = (k - 1) / 2``, Flax's padding for odd kernels; a cross-correlation, as ``flax.linen.Conv``). When
``h w <= k_h k_w`` every output pixel sees every input pixel, so ``M`` holds no more multiply-adds than the padded
convolution, and one matrix product runs them several times faster (the patch flow's NLL and its gradient on the
patches of a 256x256 image: see ``docs/guide/compile_time.md``). The values equal the convolution's to round-off
(``tests/test_flow.py``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .flow_layers import affine_update

Array = jax.Array

__all__ = ["DENSE_CONV_MAX_PIXELS", "conditioner_dense", "conv_matrix", "coupling_dense"]

DENSE_CONV_MAX_PIXELS = 9
"""Levels of at most this many pixels (``h w``) run their couplings as dense matrices (3x3 kernels: no more work)."""


def conv_matrix(kernel: Array, h: int, w: int) -> Array:
    """The ``(h w c_in, h w c_out)`` matrix of the stride-1 "SAME" convolution with ``kernel`` ``(k_h, k_w, c_in,
    c_out)`` (odd sizes) on ``h x w`` images laid out ``(h, w, c)`` (module docstring)."""
    kh, kw, cin, cout = kernel.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"conv_matrix: expected an odd kernel size, got {(kh, kw)}")
    sel = np.zeros((kh, kw, h, w, h, w), np.float32)  # sel[dy, dx, i, j, i', j'] = 1 where i = i' + dy - p_h
    for dy in range(kh):
        for dx in range(kw):
            for i2 in range(h):
                for j2 in range(w):
                    i, j = i2 + dy - (kh - 1) // 2, j2 + dx - (kw - 1) // 2
                    if 0 <= i < h and 0 <= j < w:
                        sel[dy, dx, i, j, i2, j2] = 1.0
    m = jnp.einsum("yxijkl,yxab->ijaklb", jnp.asarray(sel, kernel.dtype), kernel)
    return m.reshape(h * w * cin, h * w * cout)


def _conv(p: dict[str, Any], x: Array) -> Array:
    b, h, w, cin = x.shape
    kernel, bias = p["kernel"], p["bias"]
    if kernel.shape[:2] == (1, 1):
        return x @ kernel[0, 0] + bias
    out = x.reshape(b, h * w * cin) @ conv_matrix(kernel, h, w)
    return out.reshape(b, h, w, kernel.shape[-1]) + bias


def conditioner_dense(params: dict[str, Any], x: Array) -> Array:
    """:class:`~genprior_jax.priors.flow_layers.Conditioner` (``conv3x3 - ReLU - conv1x1 - ReLU - conv3x3``) with
    its params, by dense matrices: ``(B, h, w, c_in)`` -> ``(B, h, w, c_out)``."""
    h = jax.nn.relu(_conv(params["Conv_0"], x))
    h = jax.nn.relu(_conv(params["Conv_1"], h))
    return _conv(params["Conv_2"], h)


def coupling_dense(params: dict[str, Any], x: Array, scale_floor: float, reverse: bool = False
                   ) -> tuple[Array, Array]:
    """:class:`~genprior_jax.priors.flow_layers.AffineCoupling` with its params (same maths, same layout), its
    conditioner by :func:`conditioner_dense`: ``(B, h, w, c)`` -> ``(output, log|det| (B,))``."""
    ca = x.shape[-1] // 2
    xa, xb = x[..., :ca], x[..., ca:]
    return affine_update(xa, xb, conditioner_dense(params["Conditioner_0"], xa), scale_floor, reverse)
