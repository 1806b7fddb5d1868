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
"""

from __future__ import annotations

import contextlib
import functools
import operator
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding

from ..operators.base import LinearOperator, Operator
from ..operators.validation import check_key
from .loop import CAPPED, iterate
from .options import RunOptions, resolve_options
from .progress import StepBar
from .sharding import batch_sharding, pad_indices, replicated, resolve_mesh, round_up

Array = jax.Array


class Problem(NamedTuple):
    y: Array
    op: LinearOperator


class InitFn(Protocol):
    def __call__(self, key: Array, problem: Problem, hyper: Any, params: Any, /) -> Any: ...


class StepFn(Protocol):
    def __call__(self, state: Any, problem: Problem, hyper: Any, params: Any, /) -> tuple[Any, Any]: ...


class ReadoutFn(Protocol):
    def __call__(self, state: Any, problem: Problem, hyper: Any, params: Any, /) -> Array: ...


class Solver(NamedTuple):
    """The pure functions of a solver (module docstring); hashable, so it can be a static jit argument."""

    init: InitFn
    step: StepFn
    objective: ReadoutFn
    estimate: ReadoutFn


class Status:
    """Per-problem status codes returned in :attr:`Result.status`."""

    OK = 0  # finite; converged to the tolerance (or no tolerance was asked: the fixed step count ran)
    NONFINITE = 1  # every restart ended with a non-finite objective or estimate (NaN input, divergence)
    MAX_STEPS = 2  # finite, but the tolerance was not met within the step cap (RunOptions(tol=...))


class Result(NamedTuple):
    """Per problem (leading axis ``B``): the best restart's estimate and state, and diagnostics."""

    x: Array  # (B, *in_shape) estimate of the best restart (NaN where status != OK)
    state: Any  # solver state of the best restart, leaves with leading axis B
    objective: Array  # (B,) objective of the best restart (NaN where status != OK)
    status: Array  # (B,) int32, see Status
    restart_objectives: Array  # (B, R) final objective of every restart (non-finite ones as they came)
    history: Any  # (B, R, num_steps, ...) each step's info (a pytree), when requested; else None
    steps: Array  # (B,) int32 steps the best restart took (num_steps without a tolerance)
    converged: Array  # (B,) bool: the best restart met the tolerance (False when no tolerance was asked)


class MemoryEstimate(NamedTuple):
    """What one compiled chunk of :func:`run` needs, in bytes **per device** (from XLA's buffer assignment).

    Choose ``batch_size ~ devices * (budget - fixed) / per_element`` for a memory budget per device.
    """

    per_chunk: int  # peak bytes of one chunk on one device: arguments + outputs + temporaries (- aliased)
    per_element: float  # bytes one more measurement (with all its restarts) adds per device: the slope between
    # the compiled chunk and twice its size; never negative
    fixed: int  # bytes every chunk holds whatever its size (params the solve reads, hyper, a shared op): intercept
    chunk: int  # measurements per chunk (batch_size, or B, rounded up to a multiple of devices)
    devices: int
    source: str  # "memory_analysis", or "shapes" (arguments + outputs only: a lower bound) where unavailable


_TRACES = {"count": 0}


def trace_count() -> int:
    """How many times the runner has been traced (compiled) in this process; for recompilation tests."""
    return _TRACES["count"]


def _solve_pairs(solver: Solver, num_steps: int, num_restarts: int, history: bool, unroll: int, op_batched: bool,
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
                      history=history, tol=tol, check_every=check_every, progress=progress)
        obj = solver.objective(out.state, problem, hyper, params)
        x = solver.estimate(out.state, problem, hyper, params)
        return out.state, obj, x, out.history, out.steps, out.stopped

    def one_problem(k: Array, yy: Array, o: LinearOperator) -> tuple[Any, ...]:
        problem = Problem(yy, o)
        return jax.vmap(lambda kr: one_restart(kr, problem))(jax.random.split(k, num_restarts))

    return jax.vmap(one_problem, in_axes=(0, 0, 0 if op_batched else None))(keys, y, op)


def _best_restart(states: Any, objs: Array, xs: Array, steps: Array, codes: Array,
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
def _run(keys: Array, y: Array, op: LinearOperator, hyper: Any, params: Any, tol: Array, *, solver: Solver,
         num_steps: int, num_restarts: int, history: bool, op_batched: bool, unroll: int,
         sharding: NamedSharding | None, tolerance: bool, check_every: int, progress: bool = False) -> Result:
    _TRACES["count"] += 1

    def constrain(tree: Any) -> Any:  # keep every leaf's leading (problem) axis split over the mesh
        return tree if sharding is None else jax.lax.with_sharding_constraint(tree, sharding)

    states, objs, xs, hists, steps, codes = constrain(_solve_pairs(
        solver, num_steps, num_restarts, history, unroll, op_batched, keys, y, op, hyper, params,
        tol if tolerance else None, check_every, progress))
    x, state, objective, status, best_steps, converged = jax.vmap(
        functools.partial(_best_restart, tolerance=tolerance))(states, objs, xs, steps, codes)
    return constrain(Result(x, state, objective, status, objs, hists, best_steps, converged))


@functools.partial(jax.jit, static_argnames=("n",))
def _allocate(part: Result, *, n: int) -> Result:
    """A result buffer of ``n`` rows shaped like the chunk ``part`` (filled with its first row)."""
    return jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a[:1], (n, *a.shape[1:])), part)


@functools.partial(jax.jit, donate_argnums=0)
def _write(out: Result, part: Result, start: Array) -> Result:
    """Rows ``start, start + 1, ...`` of ``out`` replaced by the chunk ``part``, in place (``out`` donated)."""
    return jax.tree_util.tree_map(lambda o, p: jax.lax.dynamic_update_slice_in_dim(o, p, start, 0), out, part)


@functools.cache
def _concatenator(sharding: NamedSharding) -> Callable[..., Result]:
    """``concatenate(parts, n=, skip=)``: the chunks' results end to end, the first ``skip`` rows of the last one
    (already in the one before) and the rows from ``n`` on (padding) dropped, placed with ``sharding``.

    For a mesh: an in-place write into a sharded buffer at a traced offset makes XLA gather the whole buffer on
    every device. (``out_shardings``, not ``with_sharding_constraint``: jax 0.10.2's SPMD partitioner mis-shapes
    a constrained slice of a concatenation.)"""

    def concatenate(parts: tuple[Result, ...], *, n: int, skip: int) -> Result:
        return jax.tree_util.tree_map(lambda *a: jnp.concatenate([*a[:-1], a[-1][skip:]])[:n], *parts)

    return jax.jit(concatenate, static_argnames=("n", "skip"), out_shardings=sharding)


def _batch_size_of_op(op: Operator) -> int:
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in jax.tree_util.tree_leaves(op)}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"op_batched=True: expected every array leaf of {type(op).__name__} to carry the same "
                         f"leading batch axis, got leaf shapes {[np.shape(l) for l in jax.tree_util.tree_leaves(op)]}")
    return int(cast(int, sizes.pop()))


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


AUTO_CHUNK_BYTES = 2 * 2**20  # "auto": problems per chunk so that a chunk's images and measurements fit ~2 MiB


def auto_batch_size(op: Any, num_restarts: int = 1) -> int:
    """``batch_size="auto"``: ``max(1, AUTO_CHUNK_BYTES // (4 (n_in + n_out) R))`` problems per compiled call, with
    ``n_in`` / ``n_out`` the sizes of one image and one measurement and ``R`` the restarts. Measured on this CPU
    (``benchmarks/tv_batch.py``): a vmapped TV solve is faster per image than a loop at 28x28 but up to 2x slower
    at 256x256x3, where one problem's iterates (several MB) already exceed the cache; so small problems are
    batched, large ones streamed one (or a few) at a time."""
    per = 4 * (int(np.prod(op.in_shape)) + int(np.prod(op.out_shape))) * max(int(num_restarts), 1)
    return max(1, AUTO_CHUNK_BYTES // max(per, 1))


def _check_batch_size(batch_size: Any) -> int | None:
    if batch_size is None:
        return None
    try:
        if isinstance(batch_size, bool):
            raise TypeError
        value = operator.index(batch_size)
    except TypeError:
        raise ValueError(f"batch_size: expected None or a positive int, got {batch_size!r}") from None
    if value < 1:
        raise ValueError(f"batch_size: expected None or a positive int, got {value}")
    return value


class _Plan(NamedTuple):
    """How :func:`run` cuts ``n`` problems into ``num_chunks`` chunks of ``chunk`` rows.

    Chunk ``c`` starts at row ``c * chunk``, except the last, which ends at row ``n``: it overlaps the one before
    (those rows are solved twice, from the same keys and inputs, so identically) instead of being padded. Only
    a batch smaller than one chunk (``chunk`` rounded up to a multiple of the devices) is padded, by repeating
    its last problem.
    """

    n: int
    chunk: int
    num_chunks: int
    mesh: Mesh | None

    @property
    def devices(self) -> int:
        return 1 if self.mesh is None else int(self.mesh.size)

    def start(self, c: int) -> int:
        return min(c * self.chunk, max(self.n - self.chunk, 0))

    def inputs(self, c: int, batched: Any) -> Any:
        """Chunk ``c`` of the per-problem inputs ``batched`` (padded if need be, placed on the mesh)."""
        if self.num_chunks > 1 or self.chunk != self.n:
            idx = pad_indices(self.start(c), self.chunk, self.n)
            batched = jax.tree_util.tree_map(lambda a: a[idx], batched)
        return batched if self.mesh is None else jax.device_put(batched, batch_sharding(self.mesh))

    def out_sharding(self) -> NamedSharding | None:
        """Results split over the mesh where ``n`` divides evenly, else one full copy per device."""
        if self.mesh is None:
            return None
        return batch_sharding(self.mesh) if self.n % self.devices == 0 else replicated(self.mesh)


def _plan(n: int, batch_size: Any, mesh: Any) -> _Plan:
    batch_size, mesh = _check_batch_size(batch_size), resolve_mesh(mesh)
    devices = 1 if mesh is None else int(mesh.size)
    if n < 1 and (batch_size is not None or mesh is not None):
        raise ValueError(f"batch_size / mesh: expected at least one measurement, got a batch of {n}")
    chunk = round_up(min(n, batch_size) if batch_size is not None else n, devices)
    return _Plan(n, chunk, max(1, -(-n // chunk)) if chunk else 1, mesh)


def _setup(solver: Solver, key: Array, y: Any, op: LinearOperator, hyper: Any, params: Any, num_steps: int,
           num_restarts: int,
           options: RunOptions) -> tuple[_Plan, bool, Any, tuple[Any, Any, Any, Any], dict[str, Any]]:
    """Checks, then ``(plan, added, batched, shared, static)``: ``batched = (keys, y, op or None)`` per
    problem, ``shared = (op or None, hyper, params, tol)`` (on every device), ``static`` the jit's static kwargs."""
    check_key(key, "run")
    op_batched, history, unroll = options.op_batched, options.history, options.unroll
    if int(num_steps) < 1 or int(num_restarts) < 1:
        raise ValueError(f"expected num_steps >= 1 and num_restarts >= 1, got {num_steps} and {num_restarts}")
    yb, added = prepare_measurements(y, op, op_batched)
    batch_size = options.batch_size
    if isinstance(batch_size, str):
        if batch_size != "auto":
            raise ValueError(f"batch_size: expected None, a positive int or 'auto', got {batch_size!r}")
        one = jax.tree_util.tree_map(lambda a: a[0], op) if op_batched else op
        batch_size = auto_batch_size(one, int(num_restarts))
    plan = _plan(int(yb.shape[0]), batch_size, options.mesh)
    hyper = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float32), hyper)
    keys = jax.random.split(key, yb.shape[0])  # one per problem, whatever the chunking / padding
    batched = (keys, yb, op if op_batched else None)
    if options.tol is not None and not (np.isfinite(options.tol) and options.tol >= 0):
        raise ValueError(f"tol: expected None or a finite number >= 0, got {options.tol!r}")
    if int(options.check_every) < 1:
        raise ValueError(f"check_every: expected a positive int, got {options.check_every!r}")
    tol = jnp.float32(0.0 if options.tol is None else options.tol)
    shared = (None if op_batched else op, hyper, params, tol)
    if plan.mesh is not None:
        shared = jax.device_put(shared, replicated(plan.mesh))
    static = dict(solver=solver, num_steps=int(num_steps), num_restarts=int(num_restarts), history=bool(history),
                  op_batched=bool(op_batched), unroll=int(unroll),
                  sharding=None if plan.mesh is None else batch_sharding(plan.mesh),
                  tolerance=options.tol is not None, check_every=int(options.check_every),
                  progress=bool(options.progress))
    return plan, added, batched, shared, static


def _call(plan: _Plan, c: int, batched: Any, shared: Any, static: dict[str, Any]) -> Any:
    keys, yc, op_c = plan.inputs(c, batched)
    op_shared, hyper, params, tol = shared
    args = (keys, yc, op_c if static["op_batched"] else op_shared, hyper, params, tol)
    return _run(*args, **static)


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
    ``tol`` stops each pair when its objective settles (:mod:`.loop`).

    Returns:
        :class:`Result` with leading axis ``B`` (dropped again if ``y`` was unbatched).
    """
    options = resolve_options(options, overrides, "run")
    plan, added, batched, shared, static = _setup(solver, key, y, op, hyper, params, num_steps, num_restarts,
                                                   options)
    with contextlib.ExitStack() as stack:
        bar = (stack.enter_context(StepBar(plan.num_chunks * int(num_steps), desc=f"run ({plan.n} problems)"))
               if options.progress else None)
        res = _run_chunks(plan, batched, shared, static, bar, int(num_steps))
    if added:
        res = jax.tree_util.tree_map(lambda a: a[0], res)
    return cast(Result, res)


def _run_chunks(plan: _Plan, batched: Any, shared: Any, static: dict[str, Any], bar: StepBar | None,
                num_steps: int) -> Any:
    """Every chunk through the compiled solve (see :func:`run`); ``bar`` is moved by the step callbacks."""
    if plan.num_chunks == 1 and plan.chunk == plan.n:  # one plain call
        res = _call(plan, 0, batched, shared, static)
        if bar is not None:
            jax.block_until_ready(res)
            bar.chunk_done(num_steps)
        return res
    if plan.mesh is None:  # each chunk written into the result buffer in place: memory = one chunk + results
        res = None
        for c in range(plan.num_chunks):
            part = _call(plan, c, batched, shared, static)
            res = _write(_allocate(part, n=plan.n) if res is None else res, part, jnp.int32(plan.start(c)))
            jax.block_until_ready(res)  # one chunk in flight at a time: that is what bounds the memory
            if bar is not None:
                bar.chunk_done(num_steps)
        return res
    parts = []
    for c in range(plan.num_chunks):
        parts.append(jax.block_until_ready(_call(plan, c, batched, shared, static)))
        if bar is not None:
            bar.chunk_done(num_steps)
    skip = (plan.num_chunks - 1) * plan.chunk - plan.start(plan.num_chunks - 1)
    return _concatenator(plan.out_sharding())(tuple(parts), n=plan.n, skip=skip)


def _nbytes(tree: Any) -> int:
    """Bytes of the array leaves of ``tree`` (concrete or ``ShapeDtypeStruct``; PRNG keys by their key data)."""
    total = 0
    for a in jax.tree_util.tree_leaves(tree):
        if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
            a = jax.eval_shape(jax.random.key_data, a)
        total += int(np.prod(np.shape(a))) * np.dtype(a.dtype).itemsize
    return total


def estimate_memory(solver: Solver, y: Array, op: LinearOperator, hyper: Any, params: Any = None, *,
                    num_steps: int, num_restarts: int = 1, options: RunOptions | None = None,
                    key: Array | None = None, **overrides: Any) -> MemoryEstimate:
    """Bytes per device that one chunk of ``run(solver, key, y, op, hyper, params, ...)`` with the same options
    needs, from XLA's compiled memory analysis (``jit(...).lower(...).compile().memory_analysis()``).

    Compiles (and counts in :func:`trace_count`) but runs nothing. Where the backend has no memory analysis, it
    warns and falls back to the arguments' and outputs' sizes, a lower bound (``source="shapes"``).
    """
    key = jax.random.key(0) if key is None else key
    options = resolve_options(options, overrides, "estimate_memory")
    plan, _, batched, shared, static = _setup(solver, key, y, op, hyper, params, num_steps, num_restarts, options)
    per_device = plan.chunk // plan.devices
    try:
        # two compiles, at the chunk and at twice the chunk: the slope is the cost of one more measurement, the
        # intercept what every chunk holds. (The inputs' sizes would not do: XLA drops arguments the solve never
        # reads, e.g. a VAE's encoder, and the estimate came out negative for small chunks.)
        small, large = _chunk_bytes(plan, batched, shared, static, 1), _chunk_bytes(plan, batched, shared, static, 2)
    except Exception as err:  # noqa: BLE001 - any backend failure means: no analysis here
        small = large = None
        why = f"{type(err).__name__}: {err}"
    else:
        why = "memory_analysis() returned None"
    if small is not None and large is not None:
        per_element = max((large - small) / per_device, 0.0)
        fixed = int(max(small - per_element * per_device, 0))
        return MemoryEstimate(small, per_element, fixed, plan.chunk, plan.devices, "memory_analysis")
    warnings.warn(f"estimate_memory: the {jax.default_backend()!r} backend gives no compiled memory analysis "
                  f"({why}); returning the size of the arguments and outputs only, a lower bound that leaves "
                  "out temporaries", RuntimeWarning, stacklevel=2)
    fixed = _nbytes(shared)
    outs = jax.eval_shape(lambda: _call(plan, 0, batched, shared, static))
    per_chunk = fixed + (_nbytes(plan.inputs(0, batched)) + _nbytes(outs)) // plan.devices
    return MemoryEstimate(per_chunk, max((per_chunk - fixed) / per_device, 0.0), fixed, plan.chunk, plan.devices,
                          "shapes")


def _chunk_bytes(plan: _Plan, batched: Any, shared: Any, static: dict[str, Any], scale: int) -> int | None:
    """Peak bytes per device of the compiled solve of ``scale`` chunks' worth of measurements (lowered on shapes
    only, nothing runs); None where the backend has no memory analysis."""
    chunk = plan.chunk * scale

    def sds(a: Any) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct((chunk, *a.shape[1:]), a.dtype)

    keys, yb, op_b = batched
    op_shared, hyper, params, tol = shared
    op_arg = jax.tree_util.tree_map(sds, op_b) if static["op_batched"] else op_shared
    stats = _run.lower(sds(keys), sds(yb), op_arg, hyper, params, tol, **static).compile().memory_analysis()
    if stats is None:
        return None
    total = (stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
             - stats.alias_size_in_bytes)
    return max(int(total), int(getattr(stats, "peak_memory_in_bytes", 0) or 0))
