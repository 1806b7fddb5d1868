"""Back-projections of a measurement into image space, used to initialise solvers.

- ``adjoint``: ``x0 = A^T y``.
- ``pinv``: the minimum-norm least-squares solution ``A^+ y``, solved to a tolerance by
  :func:`genprior_jax.operators.numerics.pinv` (conjugate gradients on the normal equations).

Both are clipped to ``[0, 1]`` so that an encoder (a flow's inverse) sees an image-like input.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..operators.numerics import pinv
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
        x0 = pinv(op, y)
    else:
        raise ValueError(f"unknown back-projection {mode!r}; expected one of {BACKPROJECTIONS}")
    return jnp.clip(x0, 0.0, 1.0)


def backproject_batch(y: Array, op: object, mode: str = "pinv", *, op_batched: bool = False) -> Array:
    """:func:`backproject` of a batch ``y`` ``(B, *op.out_shape)`` -> ``(B, *op.in_shape)``; with ``op_batched``
    ``op`` holds one operator per measurement (leaves with a leading axis ``B``)."""
    return jax.vmap(lambda yy, oo: backproject(Problem(yy, oo), mode), (0, 0 if op_batched else None))(y, op)
