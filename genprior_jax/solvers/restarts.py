"""The compiled core of the runner: every (problem, restart) pair of one chunk, then the best restart per problem.

One ``vmap`` over the ``B * R`` (problem, restart) pairs of the ``lax.scan`` of :mod:`.loop` (or, with
``vmap_size=k``, groups of ``k`` pairs under ``vmap`` run one after another by ``lax.map``); per problem the
restart with the lowest finite objective (and a finite estimate) is kept (see :mod:`.runner`). :func:`trace_count`
counts how often this core is traced, for the "traced hyper-parameters do not recompile" tests.
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
                 check_every: int, progress: bool = False, vmap_size: int | None = None) -> tuple[Any, ...]:
    """Every (problem, restart) pair: one ``vmap`` over the ``B * R`` pairs of the ``lax.scan``.

    ``keys`` holds one key per problem, split into ``num_restarts``; outputs ``(states, objs, xs, hists, steps,
    codes)`` lead with ``(B, R)`` (problem-major). One ``vmap`` rather than ``vmap`` of ``vmap``: batching the
    solver's ``while_loop`` (and an L-BFGS line search's loop inside it) is the costly part of tracing, and a
    second batching level doubled it (asim on Glow: 11 s -> 6 s of tracing). ``y`` and a batched ``op`` are
    repeated ``R`` times for that (measurements are small next to the solver's state). ``vmap_size=k``: groups
    of ``k`` pairs, one after another (``lax.map``; :class:`~.options.RunOptions`); the progress bar then counts
    ``num_steps`` per group.
    """

    def one_restart(k: Array, problem: Problem, offset: Array | int = 0) -> tuple[Any, ...]:
        state = solver.init(k, problem, hyper, params)
        out = iterate(lambda s: solver.step(s, problem, hyper, params), state, num_steps=num_steps, unroll=unroll,
                      history=history, tol=tol, check_every=check_every, progress=progress,
                      criterion=solver.criterion, progress_offset=offset)
        obj = solver.objective(out.state, problem, hyper, params)
        x = solver.estimate(out.state, problem, hyper, params)
        return out.state, obj, x, out.history, out.steps, out.stopped

    b = y.shape[0]
    pair_keys = jax.vmap(lambda k: jax.random.split(k, num_restarts))(keys).reshape(b * num_restarts, *keys.shape[1:])
    rep = lambda a: jnp.repeat(a, num_restarts, axis=0)  # noqa: E731
    pair_y = rep(y)
    pair_op = jax.tree_util.tree_map(rep, op) if op_batched else op
    n_pairs = b * num_restarts
    if vmap_size is None or vmap_size >= n_pairs:
        out = jax.vmap(lambda k, yy, o: one_restart(k, Problem(yy, o)), in_axes=(0, 0, 0 if op_batched else None))(
            pair_keys, pair_y, pair_op)
    else:
        offsets = (jnp.arange(n_pairs, dtype=jnp.int32) // vmap_size) * num_steps  # the bar: groups in sequence
        xs = (pair_keys, pair_y, pair_op if op_batched else None, offsets)
        out = jax.lax.map(lambda a: one_restart(a[0], Problem(a[1], a[2] if op_batched else op), a[3]), xs,
                          batch_size=vmap_size if vmap_size > 1 else None)
    return jax.tree_util.tree_map(lambda a: a.reshape(b, num_restarts, *a.shape[1:]), out)


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
                                             "sharding", "tolerance", "check_every", "progress", "vmap_size"))
def solve_chunk(keys: Array, y: Array, op: LinearOperator, hyper: Any, params: Any, tol: Array, *, solver: Solver,
         num_steps: int, num_restarts: int, history: bool, op_batched: bool, unroll: int,
         sharding: NamedSharding | None, tolerance: bool, check_every: int, progress: bool = False,
         vmap_size: int | None = None) -> Result:
    _TRACES["count"] += 1

    def constrain(tree: Any) -> Any:  # keep every leaf's leading (problem) axis split over the mesh
        return tree if sharding is None else jax.lax.with_sharding_constraint(tree, sharding)

    states, objs, xs, hists, steps, codes = constrain(solve_pairs(
        solver, num_steps, num_restarts, history, unroll, op_batched, keys, y, op, hyper, params,
        tol if tolerance else None, check_every, progress, vmap_size))
    x, state, objective, status, best_steps, converged = jax.vmap(
        functools.partial(best_restart, tolerance=tolerance))(states, objs, xs, steps, codes)
    criterion = Criterion(solver.criterion if tolerance else NO_CRITERION)  # static: part of the tree structure
    return constrain(Result(x, state, objective, status, objs, hists, best_steps, converged, criterion))
