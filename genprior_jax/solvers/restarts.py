"""The compiled core of the runner: every (problem, restart) pair of one chunk, then the best restart per problem.

``vmap`` over problems of ``vmap`` over restarts of the ``lax.scan`` of :mod:`.loop`; per problem the restart with
the lowest finite objective (and a finite estimate) is kept (see :mod:`.runner`). :func:`trace_count` counts how
often this core is traced, for the "traced hyper-parameters do not recompile" tests.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding

from ..operators.base import LinearOperator
from .loop import CAPPED, NO_CRITERION, iterate
from .types import Criterion, Problem, Result, Solver, Status

Array = jax.Array

_TRACES = {"count": 0}


def trace_count() -> int:
    """How many times the runner has been traced (compiled) in this process; for recompilation tests."""
    return _TRACES["count"]


def solve_pairs(solver: Solver, num_steps: int, num_restarts: int, history: bool, unroll: int, op_batched: bool,
                 keys: Array, y: Array, op: LinearOperator, hyper: Any, params: Any, tol: Array | None,
                 check_every: int, progress: bool = False) -> tuple[Any, ...]:
    """Every (problem, restart) pair: ``vmap`` over problems of ``vmap`` over restarts of the ``lax.scan``.

    ``keys`` holds one key per problem, split into ``num_restarts``; outputs ``(states, objs, xs, hists, steps,
    codes)`` lead with ``(B, R)``. (Problem-major, so a block of rows of the batch is a block of the flattened
    ``B * R`` pairs; ``y`` and a batched ``op`` are not copied ``R`` times.)
    """

    def one_restart(k: Array, problem: Problem) -> tuple[Any, ...]:
        state = solver.init(k, problem, hyper, params)
        out = iterate(lambda s: solver.step(s, problem, hyper, params), state, num_steps=num_steps, unroll=unroll,
                      history=history, tol=tol, check_every=check_every, progress=progress,
                      criterion=solver.criterion)
        obj = solver.objective(out.state, problem, hyper, params)
        x = solver.estimate(out.state, problem, hyper, params)
        return out.state, obj, x, out.history, out.steps, out.stopped

    def one_problem(k: Array, yy: Array, o: LinearOperator) -> tuple[Any, ...]:
        problem = Problem(yy, o)
        return jax.vmap(lambda kr: one_restart(kr, problem))(jax.random.split(k, num_restarts))

    return jax.vmap(one_problem, in_axes=(0, 0, 0 if op_batched else None))(keys, y, op)


def best_restart(states: Any, objs: Array, xs: Array, steps: Array, codes: Array,
                  tolerance: bool) -> tuple[Any, ...]:
    """One problem's ``R`` restarts -> the one with the lowest finite objective (and finite estimate)."""
    finite = jnp.isfinite(objs) & jnp.all(jnp.isfinite(xs.reshape(objs.shape[0], -1)), axis=1)
    best = jnp.argmin(jnp.where(finite, objs, jnp.inf))
    ok = jnp.any(finite)
    x = jnp.where(ok, xs[best], jnp.nan)
    state = jax.tree_util.tree_map(lambda a: a[best], states)
    objective = jnp.where(ok, objs[best], jnp.nan)
    capped = codes[best] == CAPPED
    status = jnp.where(ok, jnp.where(capped, Status.MAX_STEPS, Status.OK), Status.NONFINITE).astype(jnp.int32)
    converged = ok & (codes[best] == 0) & tolerance
    return x, state, objective, status, steps[best], converged


@functools.partial(jax.jit, static_argnames=("solver", "num_steps", "num_restarts", "history", "op_batched", "unroll",
                                             "sharding", "tolerance", "check_every", "progress"))
def solve_chunk(keys: Array, y: Array, op: LinearOperator, hyper: Any, params: Any, tol: Array, *, solver: Solver,
         num_steps: int, num_restarts: int, history: bool, op_batched: bool, unroll: int,
         sharding: NamedSharding | None, tolerance: bool, check_every: int, progress: bool = False) -> Result:
    _TRACES["count"] += 1

    def constrain(tree: Any) -> Any:  # keep every leaf's leading (problem) axis split over the mesh
        return tree if sharding is None else jax.lax.with_sharding_constraint(tree, sharding)

    states, objs, xs, hists, steps, codes = constrain(solve_pairs(
        solver, num_steps, num_restarts, history, unroll, op_batched, keys, y, op, hyper, params,
        tol if tolerance else None, check_every, progress))
    x, state, objective, status, best_steps, converged = jax.vmap(
        functools.partial(best_restart, tolerance=tolerance))(states, objs, xs, steps, codes)
    criterion = Criterion(solver.criterion if tolerance else NO_CRITERION)  # static: part of the tree structure
    return constrain(Result(x, state, objective, status, objs, hists, best_steps, converged, criterion))
