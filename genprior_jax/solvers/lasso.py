"""Sparsity baselines: FISTA for the Lasso in an orthonormal basis Psi (pixels or 2-D DCT).

    x_hat = clip( argmin_x ||A x - y||^2 + lam ||Psi x||_1 , 0, 1 )

FISTA (Beck & Teboulle 2009) with step ``1/L``, ``L = 2 ||A||^2`` estimated by power iteration on ``A^T A``
(40 iterations, then 5 % margin); the prox of ``lam ||Psi x||_1`` for orthonormal ``Psi`` is
``Psi^T soft(Psi u, lam / L)``. Start ``x0 = 0``; one restart (the problem is convex).

Conversion from scikit-learn: ``Lasso(alpha)`` on the csgm repo's ``N(0, 1)`` matrix minimizes
``1/(2m) ||A_raw x - y_raw||^2 + alpha ||x||_1``, i.e. ours with ``lam = 2 alpha``.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.fft import dctn, idctn

from ..operators.base import LinearOperator
from .runner import Problem, Result, Solver, run

Array = jax.Array

BASES = ("pixel", "dct")


class LassoHyper(NamedTuple):
    lam: Array | float = 0.2


class FistaState(NamedTuple):
    x: Array
    v: Array
    t: Array
    lipschitz: Array


def _analysis(basis: str, x: Array) -> Array:
    return x if basis == "pixel" else dctn(x, type=2, norm="ortho", axes=(0, 1))


def _synthesis(basis: str, c: Array) -> Array:
    return c if basis == "pixel" else idctn(c, type=2, norm="ortho", axes=(0, 1))


def operator_norm_sq(op: LinearOperator, key: Array, iters: int = 40) -> Array:
    """Estimate ``||A||^2`` (largest eigenvalue of ``A^T A``) by power iteration from a random start."""
    v = jax.random.normal(key, op.in_shape, jnp.float32)

    def body(v: Array, _: None) -> tuple[Array, None]:
        w = op.rmv(op.mv(v))
        return w / (jnp.linalg.norm(w) + 1e-30), None

    v, _ = jax.lax.scan(body, v / jnp.linalg.norm(v), None, length=iters)
    return jnp.vdot(v, op.rmv(op.mv(v)))


@functools.lru_cache(maxsize=None)
def lasso_solver(basis: str = "dct") -> Solver:
    if basis not in BASES:
        raise ValueError(f"lasso: expected basis in {BASES}, got {basis!r}")

    def objective(state: FistaState, problem: Problem, hyper: LassoHyper, params: Any) -> Array:
        r = problem.op.mv(state.x) - problem.y
        return jnp.sum(r**2) + hyper.lam * jnp.sum(jnp.abs(_analysis(basis, state.x)))

    def init(key: Array, problem: Problem, hyper: LassoHyper, params: Any) -> FistaState:
        x = jnp.zeros(problem.op.in_shape, jnp.float32)
        lip = 2.0 * 1.05 * operator_norm_sq(problem.op, key)
        return FistaState(x, x, jnp.float32(1.0), lip)

    def step(state: FistaState, problem: Problem, hyper: LassoHyper, params: Any) -> tuple[FistaState, Array]:
        op = problem.op
        grad = 2.0 * op.rmv(op.mv(state.v) - problem.y)
        u = _analysis(basis, state.v - grad / state.lipschitz)
        thresh = hyper.lam / state.lipschitz
        x = _synthesis(basis, jnp.sign(u) * jnp.maximum(jnp.abs(u) - thresh, 0.0))
        t = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * state.t**2))
        v = x + ((state.t - 1.0) / t) * (x - state.x)
        return FistaState(x, v, t, state.lipschitz), objective(state, problem, hyper, params)

    def estimate(state: FistaState, problem: Problem, hyper: LassoHyper, params: Any) -> Array:
        return jnp.clip(state.x, 0.0, 1.0)

    return Solver(init, step, objective, estimate)


def lasso(key: Array, y: Array, op: LinearOperator, *, lam: float | Array = 0.2, basis: str = "dct",
          num_steps: int = 500, op_batched: bool = False, history: bool = False) -> Result:
    """Lasso baseline in the ``pixel`` or ``dct`` basis via FISTA on the shared runner (``lam`` traced)."""
    return run(lasso_solver(basis), key, y, op, LassoHyper(lam), None, num_steps=num_steps, num_restarts=1,
               op_batched=op_batched, history=history)
