"""How a solve is run, apart from what it solves: :class:`RunOptions`, one argument honoured by every solver.

Every solver wrapper (``csgm``, ``tv``, ``langevin``, ...) and :func:`~genprior_jax.solvers.runner.run` take
``options=RunOptions(...)``; for convenience the same fields are also accepted as keyword arguments
(``csgm(..., batch_size=64)``), which override the fields of ``options``. All fields are static (they choose
what is compiled), none is a hyper-parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
from jax.sharding import Mesh


class Default:
    """The type of :data:`DEFAULT`, the value of a run option left unset (one instance)."""

    _instance: Default | None = None

    def __new__(cls) -> Default:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DEFAULT"

    def __reduce__(self) -> str:
        return "DEFAULT"


DEFAULT = Default()  # a run option left unset: the method's run-option default applies, else the runner's (None)


class RunOptions(NamedTuple):
    """Options of :func:`~genprior_jax.solvers.runner.run`.

    Attributes:
        op_batched: ``op`` holds one operator per measurement (its array leaves lead with the batch axis ``B``).
        history: record each step's ``info`` (the objective before the step, or the solver's info pytree) in
            :attr:`Result.history`, shape ``(B, R, num_steps, ...)``.
        unroll: ``lax.scan``'s unroll factor.
        mesh: ``None``, ``"auto"`` or a :class:`jax.sharding.Mesh`: split the batch over devices.
        batch_size: ``DEFAULT`` (unset: the method's default, ``"auto"`` for ``tv``, else all at once), ``None``
            (all at once), the number of measurements per compiled call (bounds memory), or
            ``"auto"``: chosen from the problem size so that large images stream through one (or a few) at a time,
            where a vmapped batch runs slower per image than a loop
            (:func:`~genprior_jax.solvers.runner.auto_batch_size`).
        progress: a tqdm bar over the steps (a host callback every ~1 % of the steps of each chunk: rate and ETA;
            the instrumented loop is its own compiled program).
        tol: ``DEFAULT`` (unset: the method's default tolerance, e.g. :data:`~genprior_jax.solvers.csgm.ASIM_TOL`
            for ``asim``; none for the others), ``None`` (run exactly ``num_steps`` steps, also where the method
            has a default tolerance) or a relative tolerance on the objective: every
            ``check_every`` steps the objective's relative change since the last check is compared with ``tol``
            and a (problem, restart) pair whose change is below it stops there; ``num_steps`` becomes a cap
            (rounded up to a whole number of checks). :attr:`Result.steps` and :attr:`Result.converged` report
            it, and :attr:`Result.status` tells converged, capped and non-finite apart (:mod:`.loop`). The value
            is traced (changing it does not recompile); whether it is ``None`` is static.
        check_every: steps between two convergence checks (static).
        vmap_size: ``DEFAULT`` (unset: the method's default, ``"auto"`` for ``asim`` and L-BFGS solves, else
            ``None``), ``None`` (one ``vmap`` over every (problem, restart) pair of a chunk), a positive int ``k``
            (``k`` pairs at a time under ``vmap``, the groups one after another in the same compiled program by
            ``lax.map``), or ``"auto"``: ``1`` on CPU, ``None`` on accelerators. A step with a data-dependent inner
            loop (L-BFGS's line search) runs under ``vmap`` every branch of its ``cond`` s and the slowest pair's
            iterations; one pair at a time it runs its own, and each pair stops at its own convergence (asim on
            glow-mnist, 8 digits on CPU: ~4x faster per step). Results equal the all-at-once solve to round-off.
            Ignored (``None``) with a ``mesh``.
    """

    op_batched: bool = False
    history: bool = False
    unroll: int = 1
    mesh: Mesh | str | None = None
    batch_size: int | str | None | Default = DEFAULT
    progress: bool = False
    tol: float | None | Default = DEFAULT
    check_every: int = 10
    vmap_size: int | str | None | Default = DEFAULT


def resolve_options(options: RunOptions | None, overrides: dict[str, Any], who: str = "run") -> RunOptions:
    """``options`` (default :class:`RunOptions()`) with the keyword ``overrides`` applied; ``ValueError`` for a
    keyword that is not a field (naming the valid ones) or an ``options`` that is not a :class:`RunOptions`."""
    if options is None:
        options = RunOptions()
    elif not isinstance(options, RunOptions):
        raise ValueError(f"{who}: expected options to be a RunOptions, got {type(options).__name__}")
    unknown = sorted(set(overrides) - set(RunOptions._fields))
    if unknown:
        raise ValueError(f"{who}: unexpected keyword argument(s) {unknown}; run options are {list(RunOptions._fields)}")
    return options._replace(**overrides) if overrides else options


def with_run_defaults(options: RunOptions | None, overrides: dict[str, Any],
                      run_defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` with a method's ``run_defaults`` (e.g. ``{"tol": 1e-6}``) added for the run options the caller
    left unset: neither a keyword (``tol=None`` included: it means no tolerance) nor a field of ``options`` other
    than :data:`DEFAULT`. The registry reports the same mapping (:func:`~genprior_jax.solvers.registry.defaults`)."""
    given = RunOptions() if options is None else options
    unset = {k: v for k, v in run_defaults.items() if k not in overrides and isinstance(getattr(given, k), Default)}
    return {**overrides, **unset}


def tol_of(options: RunOptions) -> float | None:
    """The tolerance ``options`` asks for: ``None`` (fixed step count) where it is unset (:data:`DEFAULT`)."""
    return None if isinstance(options.tol, Default) else options.tol


def vmap_size_of(options: RunOptions) -> int | None:
    """The number of pairs per ``vmap`` ``options`` asks for (``None``: all; ``"auto"``: 1 on CPU, else all);
    ``ValueError`` for anything else than ``None``, a positive int or ``"auto"`` (checked with a ``mesh`` too)."""
    size = options.vmap_size
    if isinstance(size, Default) or size is None:
        return None
    if size != "auto" and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"vmap_size: expected None, a positive int or 'auto', got {size!r}")
    if options.mesh is not None or (size == "auto" and jax.default_backend() != "cpu"):
        return None
    return 1 if size == "auto" else int(size)


def batch_size_of(options: RunOptions) -> int | str | None:
    """The ``batch_size`` ``options`` asks for: ``None`` (all at once) where it is unset (:data:`DEFAULT`)."""
    return None if isinstance(options.batch_size, Default) else options.batch_size


def default_tol(options: RunOptions | None, overrides: dict[str, Any], tol: float) -> dict[str, Any]:
    """``with_run_defaults(options, overrides, {"tol": tol})`` (the older spelling)."""
    return with_run_defaults(options, overrides, {"tol": tol})
