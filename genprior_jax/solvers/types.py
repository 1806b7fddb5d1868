"""The runner's types: a :class:`Problem`, the pure functions of a :class:`Solver`, and what comes back
(:class:`Result`, its :class:`Status` codes, and :class:`MemoryEstimate`). See :mod:`.runner` for how they are run.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax

from ..operators.base import LinearOperator
from .loop import NO_CRITERION, OBJECTIVE_CHANGE

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
    """The pure functions of a solver (see :mod:`.runner`); hashable, so it can be a static jit argument."""

    init: InitFn
    step: StepFn
    objective: ReadoutFn
    estimate: ReadoutFn
    # how a tolerance is tested (:mod:`.loop`): "objective_change", or "duality_gap" / "partial_duality_gap" for a
    # solver whose step info is a GapInfo (a certified relative duality gap); static
    criterion: str = OBJECTIVE_CHANGE


class Criterion(str):
    """The name of a stopping criterion (:mod:`.loop`) as a *static* pytree: a ``str`` with no leaves, so a
    :class:`Result` carrying it passes through ``jit`` / ``vmap`` / ``tree_map`` unchanged (its value is part of
    the tree structure, like a NamedTuple's field names)."""

    __slots__ = ()


jax.tree_util.register_static(Criterion)


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
    # the stopping rule `converged` refers to: "objective_change", "duality_gap", "partial_duality_gap" or "none"
    # (no tolerance: the fixed step count ran); static, a str that is a pytree without leaves (see Criterion)
    criterion: Criterion = Criterion(NO_CRITERION)


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
