"""Cutting a batch of problems into compiled chunks (``batch_size``), placing them on a mesh, and putting the
results back together.

:func:`setup` checks one call of :func:`~.runner.run` and returns its :class:`Plan` (how ``n`` problems are cut
into chunks of ``chunk`` rows, padded to a multiple of a mesh's devices, see :mod:`.sharding`), the per-problem
and shared inputs and the static arguments of the compiled chunk (:func:`~.restarts.solve_chunk`);
:func:`run_chunks` streams the chunks through it. Memory is that of one chunk plus the results.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding

from ..operators.base import LinearOperator, Operator
from ..operators.validation import check_key
from .options import RunOptions, batch_size_of, tol_of, vmap_size_of
from .progress import StepBar
from .restarts import solve_chunk
from .sharding import batch_sharding, pad_indices, replicated, resolve_mesh, round_up
from .types import Result, Solver

Array = jax.Array


@functools.partial(jax.jit, static_argnames=("n",))
def allocate(part: Result, *, n: int) -> Result:
    """A result buffer of ``n`` rows shaped like the chunk ``part`` (filled with its first row)."""
    return jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a[:1], (n, *a.shape[1:])), part)


@functools.partial(jax.jit, donate_argnums=0)
def write(out: Result, part: Result, start: Array) -> Result:
    """Rows ``start, start + 1, ...`` of ``out`` replaced by the chunk ``part``, in place (``out`` donated)."""
    return jax.tree_util.tree_map(lambda o, p: jax.lax.dynamic_update_slice_in_dim(o, p, start, 0), out, part)


@functools.cache
def concatenator(sharding: NamedSharding) -> Callable[..., Result]:
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


class Plan(NamedTuple):
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


def make_plan(n: int, batch_size: Any, mesh: Any) -> Plan:
    batch_size, mesh = _check_batch_size(batch_size), resolve_mesh(mesh)
    devices = 1 if mesh is None else int(mesh.size)
    if n < 1 and (batch_size is not None or mesh is not None):
        raise ValueError(f"batch_size / mesh: expected at least one measurement, got a batch of {n}")
    chunk = round_up(min(n, batch_size) if batch_size is not None else n, devices)
    return Plan(n, chunk, max(1, -(-n // chunk)) if chunk else 1, mesh)


def setup(solver: Solver, key: Array, y: Any, op: LinearOperator, hyper: Any, params: Any, num_steps: int,
           num_restarts: int,
           options: RunOptions) -> tuple[Plan, bool, Any, tuple[Any, Any, Any, Any], dict[str, Any]]:
    """Checks, then ``(plan, added, batched, shared, static)``: ``batched = (keys, y, op or None)`` per
    problem, ``shared = (op or None, hyper, params, tol)`` (on every device), ``static`` the jit's static kwargs."""
    check_key(key, "run")
    op_batched, history, unroll = options.op_batched, options.history, options.unroll
    if int(num_steps) < 1 or int(num_restarts) < 1:
        raise ValueError(f"expected num_steps >= 1 and num_restarts >= 1, got {num_steps} and {num_restarts}")
    yb, added = prepare_measurements(y, op, op_batched)
    batch_size = batch_size_of(options)
    if isinstance(batch_size, str):
        if batch_size != "auto":
            raise ValueError(f"batch_size: expected None, a positive int or 'auto', got {batch_size!r}")
        one = jax.tree_util.tree_map(lambda a: a[0], op) if op_batched else op
        batch_size = auto_batch_size(one, int(num_restarts))
    plan = make_plan(int(yb.shape[0]), batch_size, options.mesh)
    hyper = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float32), hyper)
    keys = jax.random.split(key, yb.shape[0])  # one per problem, whatever the chunking / padding
    batched = (keys, yb, op if op_batched else None)
    tol_value = tol_of(options)
    if tol_value is not None and not (np.isfinite(tol_value) and tol_value >= 0):
        raise ValueError(f"tol: expected None or a finite number >= 0, got {tol_value!r}")
    if int(options.check_every) < 1:
        raise ValueError(f"check_every: expected a positive int, got {options.check_every!r}")
    tol = jnp.float32(0.0 if tol_value is None else tol_value)
    shared = (None if op_batched else op, hyper, params, tol)
    if plan.mesh is not None:
        shared = jax.device_put(shared, replicated(plan.mesh))
    static = dict(solver=solver, num_steps=int(num_steps), num_restarts=int(num_restarts), history=bool(history),
                  op_batched=bool(op_batched), unroll=int(unroll),
                  sharding=None if plan.mesh is None else batch_sharding(plan.mesh),
                  tolerance=tol_value is not None, check_every=int(options.check_every),
                  progress=bool(options.progress), vmap_size=vmap_size_of(options))
    return plan, added, batched, shared, static


def sequential_groups(plan: Plan, static: dict[str, Any]) -> int:
    """How many groups of pairs one compiled chunk runs one after another (``vmap_size``; 1: all at once)."""
    size = static["vmap_size"]
    pairs = plan.chunk * static["num_restarts"]
    return 1 if size is None or size >= pairs else -(-pairs // size)


def call_chunk(plan: Plan, c: int, batched: Any, shared: Any, static: dict[str, Any]) -> Any:
    keys, yc, op_c = plan.inputs(c, batched)
    op_shared, hyper, params, tol = shared
    args = (keys, yc, op_c if static["op_batched"] else op_shared, hyper, params, tol)
    return solve_chunk(*args, **static)


def run_chunks(plan: Plan, batched: Any, shared: Any, static: dict[str, Any], bar: StepBar | None,
                num_steps: int) -> Any:
    """Every chunk through the compiled solve (see :func:`run`); ``bar`` is moved by the step callbacks."""
    if plan.num_chunks == 1 and plan.chunk == plan.n:  # one plain call
        res = call_chunk(plan, 0, batched, shared, static)
        if bar is not None:
            jax.block_until_ready(res)
            bar.chunk_done(num_steps)
        return res
    if plan.mesh is None:  # each chunk written into the result buffer in place: memory = one chunk + results
        res = None
        for c in range(plan.num_chunks):
            part = call_chunk(plan, c, batched, shared, static)
            res = write(allocate(part, n=plan.n) if res is None else res, part, jnp.int32(plan.start(c)))
            jax.block_until_ready(res)  # one chunk in flight at a time: that is what bounds the memory
            if bar is not None:
                bar.chunk_done(num_steps)
        return res
    parts = []
    for c in range(plan.num_chunks):
        parts.append(jax.block_until_ready(call_chunk(plan, c, batched, shared, static)))
        if bar is not None:
            bar.chunk_done(num_steps)
    skip = (plan.num_chunks - 1) * plan.chunk - plan.start(plan.num_chunks - 1)
    return concatenator(plan.out_sharding())(tuple(parts), n=plan.n, skip=skip)
