"""Back-projections of a measurement into image space, used to initialise solvers.

- ``adjoint``: ``x0 = A^T y``.
- ``pinv``: 50 conjugate-gradient iterations on the normal equations ``A^T A x = A^T y`` from ``x = 0``,
  which stay in the range of ``A^T`` and so approach the minimum-norm least-squares solution ``A^+ y``
  (the system is consistent even when noise puts ``y`` outside the range of ``A``; for ill-conditioned
  blurs the iteration count acts as a regulariser).

Both are clipped to ``[0, 1]`` so that an encoder (a flow's inverse) sees an image-like input.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.sparse.linalg import cg

from ..operators.validation import require_linear
from .runner import Problem

Array = jax.Array

BACKPROJECTIONS = ("adjoint", "pinv")


def backproject(problem: Problem, mode: str) -> Array:
    """The back-projection ``mode`` (:data:`BACKPROJECTIONS`) of one measurement ``problem.y`` (``op.out_shape``)
    into an image ``(op.in_shape)``, clipped to ``[0, 1]``; ``problem.op`` must be linear."""
    op, y = problem.op, problem.y
    require_linear(op, f"init={mode!r}")
    if mode == "adjoint":
        x0 = op.rmv(y)
    elif mode == "pinv":
        x0, _ = cg(lambda v: op.rmv(op.mv(v)), op.rmv(y), maxiter=50)
    else:
        raise ValueError(f"unknown back-projection {mode!r}; expected one of {BACKPROJECTIONS}")
    return jnp.clip(x0, 0.0, 1.0)


def backproject_batch(y: Array, op: object, mode: str = "pinv", *, op_batched: bool = False) -> Array:
    """:func:`backproject` of a batch ``y`` ``(B, *op.out_shape)`` -> ``(B, *op.in_shape)``; with ``op_batched``
    ``op`` holds one operator per measurement (leaves with a leading axis ``B``)."""
    return jax.vmap(lambda yy, oo: backproject(Problem(yy, oo), mode), (0, 0 if op_batched else None))(y, op)
