"""What one compiled chunk of :func:`~.runner.run` costs in memory: :func:`estimate_memory`, from XLA's compiled
memory analysis (nothing runs), for choosing ``batch_size`` under a memory budget.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..operators.base import LinearOperator
from .chunking import Plan, call_chunk, setup
from .options import RunOptions, resolve_options
from .restarts import solve_chunk
from .types import MemoryEstimate, Solver

Array = jax.Array


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
    plan, _, batched, shared, static = setup(solver, key, y, op, hyper, params, num_steps, num_restarts, options)
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
    outs = jax.eval_shape(lambda: call_chunk(plan, 0, batched, shared, static))
    per_chunk = fixed + (_nbytes(plan.inputs(0, batched)) + _nbytes(outs)) // plan.devices
    return MemoryEstimate(per_chunk, max((per_chunk - fixed) / per_device, 0.0), fixed, plan.chunk, plan.devices,
                          "shapes")


def _chunk_bytes(plan: Plan, batched: Any, shared: Any, static: dict[str, Any], scale: int) -> int | None:
    """Peak bytes per device of the compiled solve of ``scale`` chunks' worth of measurements (lowered on shapes
    only, nothing runs); None where the backend has no memory analysis."""
    chunk = plan.chunk * scale

    def sds(a: Any) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct((chunk, *a.shape[1:]), a.dtype)

    keys, yb, op_b = batched
    op_shared, hyper, params, tol = shared
    op_arg = jax.tree_util.tree_map(sds, op_b) if static["op_batched"] else op_shared
    stats = solve_chunk.lower(sds(keys), sds(yb), op_arg, hyper, params, tol, **static).compile().memory_analysis()
    if stats is None:
        return None
    total = (stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
             - stats.alias_size_in_bytes)
    return max(int(total), int(getattr(stats, "peak_memory_in_bytes", 0) or 0))
