"""Numerics of a linear operator ``A`` that solvers share: ``||A||^2``, ``||A||_F^2`` and the least-squares
solution ``A^+ y``, all matrix-free (only ``op.mv`` / ``op.rmv``) and jit-able.

- :func:`operator_norm_sq`: the largest eigenvalue of ``A^T A`` by power iteration (step sizes of FISTA and
  PDHG are ``1 / ||A||^2``).
- :func:`frobenius_sq`: ``sum_i ||A e_i||^2`` over the pixel basis, exact.
- :func:`pinv`: conjugate gradients on the normal equations ``A^T A x = A^T y`` from ``x = 0``. The iterates stay
  in the range of ``A^T``, so the limit is the minimum-norm least-squares solution ``A^+ y``; the iteration stops
  at the relative residual ``tol`` (``||A^T (y - A x)|| <= tol ||A^T y||``) or after ``maxiter`` iterations.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .base import LinearOperator

Array = jax.Array

PINV_TOL = 1e-5
PINV_MAXITER = 300


def operator_norm_sq(op: LinearOperator, key: Array, iters: int = 40) -> Array:
    """Estimate ``||A||^2`` (largest eigenvalue of ``A^T A``) by power iteration from a random start."""
    v = jax.random.normal(key, op.in_shape, jnp.float32)

    def body(v: Array, _: None) -> tuple[Array, None]:
        w = op.rmv(op.mv(v))
        return w / (jnp.linalg.norm(w) + 1e-30), None

    v, _ = jax.lax.scan(body, v / jnp.linalg.norm(v), None, length=iters)
    return jnp.vdot(v, op.rmv(op.mv(v)))


def frobenius_sq(op: LinearOperator) -> Array:
    """``||A||_F^2 = sum_i ||A e_i||^2`` over the pixel basis, exactly (``lax.map`` in chunks of 256)."""
    size = int(np.prod(op.in_shape))

    def column(i: Array) -> Array:
        e = jnp.zeros(size, jnp.float32).at[i].set(1.0).reshape(op.in_shape)
        return jnp.sum(op.mv(e) ** 2)

    return jnp.sum(jax.lax.map(column, jnp.arange(size), batch_size=min(256, size)))


def pinv(op: LinearOperator, y: Array, *, tol: float = PINV_TOL, maxiter: int = PINV_MAXITER) -> Array:
    """``A^+ y`` for one measurement ``y`` (``op.out_shape``) -> image ``(op.in_shape)``: CG on the normal
    equations to relative residual ``tol`` (static) or ``maxiter`` iterations (module docstring)."""
    x, _ = jax.scipy.sparse.linalg.cg(lambda v: op.rmv(op.mv(v)), op.rmv(y), tol=tol, maxiter=maxiter)
    return x
