"""The shared solver runner: ``lax.scan`` over steps, ``vmap`` over restarts and over measurements.

A solver is a :class:`Solver`, a NamedTuple of pure functions (the blackjax / optax style)::

    init(key, problem, hyper, params)          -> state
    step(state, problem, hyper, params)        -> (state, loss)   # loss at the iterate before the step
    objective(state, problem, hyper, params)   -> scalar          # objective at the final iterate
    estimate(state, problem, hyper, params)    -> x_hat           # image of shape op.in_shape

where ``problem = Problem(y, op)`` is one measurement, ``hyper`` a NamedTuple of *traced* scalars (step
sizes, weights: a sweep over them reuses the compiled code) and ``params`` the prior's parameter pytree.

:func:`run` executes ``num_steps`` steps for ``num_restarts`` restarts of each of ``B`` problems, then keeps,
per problem, the restart with the lowest finite objective. A restart whose objective or estimate is not
finite never wins; a problem with no finite restart gets ``status = Status.NONFINITE`` and NaN outputs. Problems
are independent (``vmap``), so a NaN in one never changes another's result.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..operators.base import LinearOperator, Operator
from ..operators.validation import check_key

Array = jax.Array


class Problem(NamedTuple):
    y: Array
    op: LinearOperator


class Solver(NamedTuple):
    init: Callable[..., Any]
    step: Callable[..., tuple[Any, Array]]
    objective: Callable[..., Array]
    estimate: Callable[..., Array]


class Status:
    """Per-problem status codes returned in :attr:`Result.status`."""

    OK = 0
    NONFINITE = 1  # every restart ended with a non-finite objective or estimate (NaN input, divergence)


class Result(NamedTuple):
    """Per problem (leading axis ``B``): the best restart's estimate and state, and diagnostics."""

    x: Array  # (B, *in_shape) estimate of the best restart (NaN where status != OK)
    state: Any  # solver state of the best restart, leaves with leading axis B
    objective: Array  # (B,) objective of the best restart (NaN where status != OK)
    status: Array  # (B,) int32, see Status
    restart_objectives: Array  # (B, R) final objective of every restart (non-finite ones as they came)
    history: Array | None  # (B, R, num_steps) loss per step, when requested


_TRACES = {"count": 0}


def trace_count() -> int:
    """How many times the runner has been traced (compiled) in this process; for recompilation tests."""
    return _TRACES["count"]


def _solve_one(solver: Solver, num_steps: int, num_restarts: int, history: bool, unroll: int,
               key: Array, problem: Problem, hyper: Any, params: Any) -> tuple[Any, ...]:
    def one_restart(k: Array) -> tuple[Any, ...]:
        state = solver.init(k, problem, hyper, params)

        def body(s: Any, _: None) -> tuple[Any, Array | None]:
            s, loss = solver.step(s, problem, hyper, params)
            return s, (loss if history else None)

        state, hist = jax.lax.scan(body, state, None, length=num_steps, unroll=unroll)
        obj = solver.objective(state, problem, hyper, params)
        x = solver.estimate(state, problem, hyper, params)
        return state, obj, x, hist

    states, objs, xs, hists = jax.vmap(one_restart)(jax.random.split(key, num_restarts))
    finite = jnp.isfinite(objs) & jnp.all(jnp.isfinite(xs.reshape(num_restarts, -1)), axis=1)
    best = jnp.argmin(jnp.where(finite, objs, jnp.inf))
    ok = jnp.any(finite)
    x = jnp.where(ok, xs[best], jnp.nan)
    state = jax.tree_util.tree_map(lambda a: a[best], states)
    objective = jnp.where(ok, objs[best], jnp.nan)
    status = jnp.where(ok, Status.OK, Status.NONFINITE).astype(jnp.int32)
    return x, state, objective, status, objs, hists


@functools.partial(jax.jit, static_argnames=("solver", "num_steps", "num_restarts", "history", "op_batched", "unroll"))
def _run(key: Array, y: Array, op: LinearOperator, hyper: Any, params: Any, *, solver: Solver, num_steps: int,
         num_restarts: int, history: bool, op_batched: bool, unroll: int) -> Result:
    _TRACES["count"] += 1
    keys = jax.random.split(key, y.shape[0])
    one = functools.partial(_solve_one, solver, num_steps, num_restarts, history, unroll)
    x, state, objective, status, objs, hists = jax.vmap(
        lambda k, yy, o: one(k, Problem(yy, o), hyper, params), in_axes=(0, 0, 0 if op_batched else None)
    )(keys, y, op)
    return Result(x, state, objective, status, objs, hists)


def _batch_size_of_op(op: LinearOperator) -> int:
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in jax.tree_util.tree_leaves(op)}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"op_batched=True: expected every array leaf of {type(op).__name__} to carry the same "
                         f"leading batch axis, got leaf shapes {[np.shape(l) for l in jax.tree_util.tree_leaves(op)]}")
    return int(sizes.pop())


def prepare_measurements(y: Any, op: Operator, op_batched: bool = False) -> tuple[Array, bool]:
    """Check ``y`` against ``op`` and return it with a leading batch axis, plus whether one was added.

    ``y`` is either one measurement of shape ``op.out_shape`` or a batch ``(B, *op.out_shape)``; it must be a
    floating-point array. With ``op_batched`` the operator's leaves carry the same leading axis ``B``.
    """
    if not isinstance(op, Operator):
        raise ValueError(f"expected a genprior_jax LinearOperator or (non-linear) Operator, got {type(op).__name__}")
    y = jnp.asarray(y) if not isinstance(y, jax.Array) else y
    if not jnp.issubdtype(y.dtype, jnp.floating):
        raise ValueError(f"expected floating-point measurements y, got dtype {y.dtype}")
    out_shape = tuple(op.out_shape)
    if tuple(y.shape) == out_shape and not op_batched:
        return y[None], True
    if tuple(y.shape[1:]) != out_shape:
        raise ValueError(f"measurements y: expected shape (B, *{out_shape}) or {out_shape} for "
                         f"{type(op).__name__}, got {tuple(y.shape)}")
    if op_batched and _batch_size_of_op(op) != y.shape[0]:
        raise ValueError(f"op_batched=True: expected {y.shape[0]} operators (one per measurement), "
                         f"got {_batch_size_of_op(op)}")
    return y, False


def run(solver: Solver, key: Array, y: Array, op: LinearOperator, hyper: Any, params: Any = None, *,
        num_steps: int, num_restarts: int = 1, history: bool = False, op_batched: bool = False,
        unroll: int = 1) -> Result:
    """Run ``solver`` on a batch of measurements ``y`` (``(B, *op.out_shape)``, or one unbatched).

    Args:
        solver: the pure ``init``/``step``/``objective``/``estimate`` functions.
        key: PRNG key; split into one key per problem, then one per restart.
        y: measurements.
        op: one operator shared by all problems, or (``op_batched=True``) a batch of operators.
        hyper: NamedTuple of scalars, passed as traced values (changing them does not recompile).
        params: the prior's parameter pytree (traced).
        num_steps, num_restarts, history, unroll: static.

    Returns:
        :class:`Result` with leading axis ``B`` (dropped again if ``y`` was unbatched).
    """
    check_key(key, "run")
    if int(num_steps) < 1 or int(num_restarts) < 1:
        raise ValueError(f"expected num_steps >= 1 and num_restarts >= 1, got {num_steps} and {num_restarts}")
    yb, added = prepare_measurements(y, op, op_batched)
    hyper = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float32), hyper)
    res = _run(key, yb, op, hyper, params, solver=solver, num_steps=int(num_steps), num_restarts=int(num_restarts),
               history=bool(history), op_batched=bool(op_batched), unroll=int(unroll))
    if added:
        res = jax.tree_util.tree_map(lambda a: a[0], res)
    return res
