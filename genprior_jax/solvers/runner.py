"""The shared solver runner: ``lax.scan`` over steps, ``vmap`` over restarts and over measurements.

A solver is a :class:`Solver`, a NamedTuple of pure functions (the blackjax / optax style)::

    init(key, problem, hyper, params)          -> state
    step(state, problem, hyper, params)        -> (state, info)   # info: a pytree about this step (e.g. the
                                                                  # objective at the iterate before it)
    objective(state, problem, hyper, params)   -> scalar          # objective at the final iterate
    estimate(state, problem, hyper, params)    -> x_hat           # image of shape op.in_shape

where ``problem = Problem(y, op)`` is one measurement, ``hyper`` a NamedTuple of *traced* scalars (step
sizes, weights: a sweep over them reuses the compiled code) and ``params`` the prior's parameter pytree.

:func:`run` executes ``num_steps`` steps for all ``B x R`` (problem, restart) pairs of ``B`` problems and
``num_restarts = R`` restarts, then keeps, per problem, the restart with the lowest finite objective. A restart
whose objective or estimate is not finite never wins; a problem with no finite restart gets
``status = Status.NONFINITE`` and NaN outputs. Problems are independent (``vmap``), so a NaN in one never
changes another's result. With a tolerance (``RunOptions(tol=...)``) each pair stops when its objective settles
(:mod:`.loop`); a problem whose best restart hit the step cap first gets ``Status.MAX_STEPS``.

Scale-out (both give the same results as one plain call, and compile once):

- ``mesh``: the batch of problems is split over the devices of a :class:`jax.sharding.Mesh` (JAX SPMD), each
  device solving ``B / D`` problems with all their restarts; see :mod:`.sharding`.
- ``batch_size``: the problems stream through the compiled solve in chunks of ``batch_size``, so memory is
  bounded by one chunk plus the results; :func:`estimate_memory` tells what one chunk costs.

The rooms: :mod:`.types` (Problem, Solver, Status, Result, MemoryEstimate), :mod:`.loop` (one pair's steps and
its stopping rule), :mod:`.restarts` (the compiled chunk: every pair, the best restart), :mod:`.chunking` (checks,
chunks, mesh placement), :mod:`.memory` (:func:`estimate_memory`); this module keeps :func:`run` and re-exports
the names that have always been imported from here.
"""

from __future__ import annotations

import contextlib
from typing import Any, cast

import jax

from ..operators.base import LinearOperator
from .chunking import AUTO_CHUNK_BYTES, auto_batch_size, prepare_measurements, run_chunks, sequential_groups, setup
from .memory import estimate_memory
from .options import RunOptions, resolve_options
from .progress import StepBar
from .restarts import trace_count
from .types import InitFn, MemoryEstimate, Problem, ReadoutFn, Result, Solver, Status, StepFn

Array = jax.Array

__all__ = ["AUTO_CHUNK_BYTES", "InitFn", "MemoryEstimate", "Problem", "ReadoutFn", "Result", "Solver", "Status",
           "StepFn", "auto_batch_size", "estimate_memory", "prepare_measurements", "run", "trace_count"]


def run(solver: Solver, key: Array, y: Array, op: LinearOperator, hyper: Any, params: Any = None, *,
        num_steps: int, num_restarts: int = 1, options: RunOptions | None = None, **overrides: Any) -> Result:
    """Run ``solver`` on a batch of measurements ``y`` (``(B, *op.out_shape)``, or one unbatched).

    Args:
        solver: the pure ``init``/``step``/``objective``/``estimate`` functions.
        key: PRNG key; split into one key per problem, then one per restart (so problem ``i`` gets the same
            key, hence the same result, with or without ``mesh`` / ``batch_size``).
        y: measurements.
        op: one operator shared by all problems, or (``op_batched=True``) a batch of operators.
        hyper: NamedTuple of scalars, passed as traced values (changing them does not recompile).
        params: the prior's parameter pytree (traced).
        num_steps: steps per (problem, restart) pair (static); the cap when a tolerance is given.
        num_restarts: restarts per problem (static); the one with the lowest finite objective is kept.
        options: how the solve runs (:class:`~genprior_jax.solvers.options.RunOptions`).
        **overrides: the same fields as keywords, applied on top of ``options``.

    The run options in detail: ``op_batched``, ``history``, ``unroll`` and ``check_every`` are static;
    ``mesh`` is ``None`` (default device), ``"auto"`` (a 1-D mesh of all ``jax.local_devices()``) or a
    :class:`jax.sharding.Mesh` of this process's devices: the problems (each with its ``R`` restarts) are split
    evenly over its ``D`` devices, a batch that is not a multiple of ``D`` padded by repeating its last problem
    (dropped again; with ``batch_size``, only a batch smaller than one chunk); results are split over the mesh too
    where ``D`` divides ``B``, otherwise one full copy per device. ``batch_size`` is ``None`` (all at once) or
    the number of problems per compiled call (rounded up to a multiple of ``D``): the batch streams through in
    chunks, the last one shifted back to end at the last problem (its overlap with the one before is solved
    twice, identically), so memory is that of one chunk plus the results; one compilation serves all chunks.
    ``progress`` shows a tqdm bar over the steps (a host callback every ~1 % of the steps of each chunk).
    ``tol`` stops each pair when its objective settles (:mod:`.loop`). ``vmap_size`` runs the pairs of a chunk
    in groups, one after another (CPU with L-BFGS: see :class:`RunOptions`).

    Returns:
        :class:`Result` with leading axis ``B`` (dropped again if ``y`` was unbatched).
    """
    options = resolve_options(options, overrides, "run")
    plan, added, batched, shared, static = setup(solver, key, y, op, hyper, params, num_steps, num_restarts,
                                                  options)
    steps_per_chunk = int(num_steps) * sequential_groups(plan, static)  # what the bar counts per compiled chunk
    with contextlib.ExitStack() as stack:
        bar = (stack.enter_context(StepBar(plan.num_chunks * steps_per_chunk, desc=f"run ({plan.n} problems)"))
               if options.progress else None)
        res = run_chunks(plan, batched, shared, static, bar, steps_per_chunk)
    if added:
        res = jax.tree_util.tree_map(lambda a: a[0], res)
    return cast(Result, res)
