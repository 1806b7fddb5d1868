"""Structured random compressed sensing with a fast transform (memory ``O(n)``, time ``O(n log n)``).

    y = sqrt(n / m) * S C D vec(x)

with ``n = H W C``, ``D = diag(d)`` random signs ``d_i = ±1``, ``C`` the orthonormal DCT-II of length ``n``
(``jax.scipy.fft.dct(norm="ortho")``, FFT-based) and ``S`` the restriction to ``m`` distinct rows drawn
uniformly without replacement. ``C D`` is orthogonal, so ``A A^T = (n / m) I_m`` and, over the random rows,
``E ||A x||^2 = ||x||^2``: the same normalisation as :class:`~genprior_jax.operators.simple.GaussianCS`
(entries ``N(0, 1/m)``), so noise levels and loss weights carry over. Unlike the dense Gaussian matrix
(``m n`` floats) only ``d`` and the row indices are stored, which makes CS on large images practical.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.fft import dct, idct

from .base import Array, LinearOperator, Shape
from .validation import check_image_shape, check_key


class StructuredCS(LinearOperator):
    """Randomly sub-sampled DCT with random signs, ``y = sqrt(n/m) S C D vec(x)`` (see the module docstring).

    Args:
        key: PRNG key drawing the signs and the rows.
        in_shape: image shape ``(H, W, C)``.
        m: number of measurements, ``1 <= m <= n``.

    ``out_shape = (m,)``; leaves ``signs`` (``(n,)`` float32 of ±1) and ``rows`` (``(m,)`` int32). The adjoint
    is ``sqrt(n/m) D C^T S^T y`` in closed form.
    """

    _leaves = ("signs", "rows")

    def __init__(self, key: Array, in_shape: Shape, m: int):
        in_shape = check_image_shape(in_shape, "StructuredCS")
        check_key(key, "StructuredCS")
        n = in_shape[0] * in_shape[1] * in_shape[2]
        if int(m) != m or not 1 <= int(m) <= n:
            raise ValueError(f"StructuredCS: expected an integer number of measurements 1 <= m <= n = {n}, got {m!r}")
        m = int(m)
        k_sign, k_rows = jax.random.split(key)
        self.signs = jax.random.rademacher(k_sign, (n,), jnp.float32)
        self.rows = jax.random.permutation(k_rows, n)[:m].astype(jnp.int32)
        self.in_shape = in_shape
        self.out_shape = (m,)

    def _apply(self, x: Array) -> Array:
        return _apply(x, self.signs, self.rows)

    def _adjoint(self, y: Array) -> Array:
        return _adjoint(y, self.signs, self.rows).reshape(self.in_shape)


# jitted so that an eager call is one compiled program and one dispatch (inlined when traced inside a jit)
@jax.jit
def _apply(x: Array, signs: Array, rows: Array) -> Array:
    scale = (signs.shape[0] / rows.shape[0]) ** 0.5
    return scale * dct(signs.astype(x.dtype) * x.reshape(-1), norm="ortho")[rows]


@jax.jit
def _adjoint(y: Array, signs: Array, rows: Array) -> Array:
    scale = (signs.shape[0] / rows.shape[0]) ** 0.5
    full = jnp.zeros(signs.shape, y.dtype).at[rows].set(y)
    return scale * signs.astype(y.dtype) * idct(full, norm="ortho")
