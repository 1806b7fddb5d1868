"""The step loop of one (problem, restart) pair: a fixed number of steps, or until a stopping criterion is met.

Without a tolerance (``tol=None``) the loop is one ``lax.scan`` of ``num_steps`` steps (criterion ``"none"``).
With one, it is a ``lax.while_loop`` over *blocks* of ``check_every`` scanned steps (scan's speed inside a block,
one check per block), and after each block the info of the block's last step is tested by the solver's criterion
(``Solver.criterion``, static):

- ``"objective_change"`` (the default): the objective reported by the block's last step is compared with the
  previous block's,

      converged  <=>  |f_prev - f| <= tol * max(|f|, |f_prev|, 1)     (relative change over check_every steps,
                                                                    absolute below 1, as scipy's L-BFGS-B ftol);

- ``"duality_gap"`` / ``"partial_duality_gap"`` (convex solvers that certify their accuracy: TV, Lasso): the step
  reports a :class:`GapInfo` whose ``gap`` is a *relative* duality gap ``(P(x) - D(p)) / D(p)`` at the iterate
  the step returns, with ``D(p)`` the dual objective of a feasible dual point (a lower bound of the minimum
  ``P*``), so ``(P(x) - P*) / P* <= gap``, and

      converged  <=>  gap <= tol

  (``"partial_duality_gap"``: the dual bound holds over a bounded set around the iterate, Chambolle & Pock's
  partial gap; it certifies ``P(x) - P*`` when a minimizer lies in that set; each solver documents its set);

- ``"fixed_point_residual"`` (a fixed-point iteration with no objective to certify, plug-and-play ADMM): the step
  reports a :class:`ResidualInfo` whose ``residual`` is a relative fixed-point residual at the iterate it returns
  (``inf`` while the iteration is still annealing), and ``converged <=> residual <= tol``.

The loop stops at convergence, at a non-finite objective, or at the cap of ``num_steps`` steps (rounded up to a
whole number of blocks). Under ``vmap`` JAX runs a batched while loop until every element is done, but an
element whose predicate is false is *not updated* (its carry is selected unchanged), so a problem that has
converged stops changing: its result does not depend on its batch mates, and equals its solo solve.

The objective is read from the step's ``info``: a scalar, or a NamedTuple / object with a ``loss`` field (for
``"objective_change"`` the objective at the iterate before the step; a :class:`GapInfo` holds it at the iterate
after the step, the one its gap certifies). Samplers (Langevin) have no objective to settle and run the fixed
count.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from . import progress as progress_mod

Array = jax.Array


class LoopOutput(NamedTuple):
    state: Any
    steps: Array  # int32: steps taken
    stopped: Array  # int32 code: 0 converged (or no tolerance), 1 non-finite objective, 2 cap reached
    history: Any  # per-step info (num_steps rounded up to whole blocks along the leading axis), or None


CONVERGED, NONFINITE, CAPPED = 0, 1, 2

# the stopping criteria a solver can declare (``Solver.criterion``) and :attr:`Result.criterion` reports; "none":
# no tolerance was asked, the fixed step count ran
OBJECTIVE_CHANGE, DUALITY_GAP, PARTIAL_DUALITY_GAP, FIXED_POINT, NO_CRITERION = (
    "objective_change", "duality_gap", "partial_duality_gap", "fixed_point_residual", "none")
# the criteria that test a certificate the step reports (a gap or a residual) against tol
GAP_CRITERIA = (DUALITY_GAP, PARTIAL_DUALITY_GAP, FIXED_POINT)
CRITERIA = (OBJECTIVE_CHANGE, *GAP_CRITERIA)


class GapInfo(NamedTuple):
    """The step info of a solver that certifies its accuracy (criterion ``"duality_gap"``, module docstring)."""

    loss: Array  # scalar: the primal objective P(x) at the iterate the step returns
    gap: Array  # scalar: relative duality gap (P(x) - D(p)) / D(p) >= (P(x) - P*) / P* at that iterate (>= 0)


class ResidualInfo(NamedTuple):
    """The step info of a fixed-point iteration (criterion ``"fixed_point_residual"``, module docstring)."""

    loss: Array  # scalar: the objective reported (e.g. the data term) at the iterate the step returns
    residual: Array  # scalar: relative fixed-point residual at that iterate (inf while not yet testable)


def relative_gap(primal: Array, gap: Array) -> Array:
    """``gap / D`` with ``D = primal - gap`` the dual lower bound of the minimum: an upper bound of the relative
    objective error ``(P - P*) / P*``; ``0`` where the gap is ``0`` (e.g. ``y = 0``), ``inf`` where ``D <= 0``."""
    tiny = jnp.finfo(jnp.float32).tiny
    gap = jnp.maximum(gap, 0.0)
    lower = primal - gap
    return jnp.where(gap <= 0.0, 0.0, jnp.where(lower > 0.0, gap / jnp.maximum(lower, tiny), jnp.inf))


def loss_of(info: Any) -> Array:
    """The scalar objective carried by a step's ``info``."""
    loss = getattr(info, "loss", info)
    if not isinstance(loss, jax.Array) or jnp.ndim(loss) != 0:
        raise ValueError("a tolerance needs each step's info to be the scalar objective or to have a scalar "
                         f"'loss' field; got {type(info).__name__}")
    return loss


def gap_of(info: Any) -> Array:
    """The scalar certificate carried by a step's ``info``: the relative duality gap of a :class:`GapInfo` (any
    ``gap`` field), or the ``residual`` of a :class:`ResidualInfo`."""
    gap = getattr(info, "gap", getattr(info, "residual", None))
    if not isinstance(gap, jax.Array) or jnp.ndim(gap) != 0:
        raise ValueError("a duality-gap criterion needs each step's info to have a scalar 'gap' field (GapInfo); "
                         f"got {type(info).__name__}")
    return gap


def iterate(step: Any, state: Any, *, num_steps: int, unroll: int = 1, history: bool = False,
            tol: Array | None = None, check_every: int = 10, progress: bool = False,
            criterion: str = OBJECTIVE_CHANGE, progress_offset: Array | int = 0) -> LoopOutput:
    """Run ``step(state) -> (state, info)`` (module docstring); ``tol`` traced (None: no check, static);
    ``progress``: host callbacks that move the step-level bar (:mod:`.progress`), reporting ``progress_offset``
    plus the steps done; ``criterion`` (static): one of :data:`CRITERIA`, how ``tol`` is tested."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion: expected one of {CRITERIA}, got {criterion!r}")
    def body(s: Any, _: None) -> tuple[Any, Any]:
        s, info = step(s)
        return s, (info if history or tol is not None else None)

    if tol is None:
        if progress:
            every = progress_mod.every_for(num_steps)

            def counted(s: Any, i: Array) -> tuple[Any, Any]:
                s, out = body(s, None)
                progress_mod.maybe_tick(i, every, num_steps, progress_offset)
                return s, out

            state, hist = jax.lax.scan(counted, state, jnp.arange(num_steps), unroll=unroll)
        else:
            state, hist = jax.lax.scan(body, state, None, length=num_steps, unroll=unroll)
        return LoopOutput(state, jnp.int32(num_steps), jnp.int32(CONVERGED), hist if history else None)

    block = max(1, min(int(check_every), int(num_steps)))
    n_blocks = -(-int(num_steps) // block)
    # history buffer: the info of every step, NaN where not run
    buf = (jax.tree_util.tree_map(lambda a: jnp.full((n_blocks * block, *a.shape), jnp.nan, a.dtype)
                                  if jnp.issubdtype(a.dtype, jnp.floating) else jnp.zeros((n_blocks * block, *a.shape),
                                                                                          a.dtype),
                                  jax.eval_shape(lambda s: step(s)[1], state))
           if history else None)

    class Carry(NamedTuple):
        state: Any
        k: Array  # blocks done
        prev: Array  # objective at the end of the previous block
        code: Array  # -1 running, else the stop code
        buf: Any

    def cond(c: Carry) -> Array:
        return c.code < 0

    def quiet(s: Any, _: None) -> tuple[Any, None]:
        return step(s)[0], None  # info unused: XLA drops what computes it (e.g. an objective evaluated per step)

    def block_body(c: Carry) -> Carry:
        if history:
            s, infos = jax.lax.scan(body, c.state, None, length=block, unroll=unroll)
            last = jax.tree_util.tree_map(lambda a: a[-1], infos)
        elif criterion in GAP_CRITERIA:
            # only the block's last info is read: the steps before it need not produce theirs (a duality gap costs
            # about a step; these solvers' steps are small programs, so tracing the step twice costs little)
            s = c.state
            if block > 1:
                s, _ = jax.lax.scan(quiet, s, None, length=block - 1, unroll=unroll)
            s, last = step(s)
            infos = None
        else:
            # the objective comes with the step (e.g. with its gradient): one scan of the block carrying the last
            # info, so the step (for a learned prior, the expensive program) is traced and compiled once
            def carried(sc: tuple[Any, Array], _: None) -> tuple[tuple[Any, Array], None]:
                s, info = step(sc[0])
                return (s, loss_of(info).astype(jnp.float32)), None

            (s, last), _ = jax.lax.scan(carried, (c.state, jnp.float32(jnp.nan)), None, length=block, unroll=unroll)
            infos = None
        f = loss_of(last)
        if criterion in GAP_CRITERIA:
            settled = gap_of(last) <= tol  # a NaN gap is never settled
        else:
            settled = jnp.isfinite(c.prev) & (jnp.abs(c.prev - f)
                                              <= tol * jnp.maximum(jnp.maximum(jnp.abs(f), jnp.abs(c.prev)), 1.0))
        k = c.k + 1
        if progress:
            progress_mod.tick(progress_offset + k * block)
        code = jnp.where(~jnp.isfinite(f), NONFINITE,
                         jnp.where(settled, CONVERGED, jnp.where(k >= n_blocks, CAPPED, -1))).astype(jnp.int32)
        new_buf = c.buf
        if history:
            new_buf = jax.tree_util.tree_map(lambda b, i: jax.lax.dynamic_update_slice_in_dim(b, i, c.k * block, 0),
                                             c.buf, infos)
        return Carry(s, k, f, code, new_buf)

    out = jax.lax.while_loop(cond, block_body, Carry(state, jnp.int32(0), jnp.float32(jnp.nan), jnp.int32(-1), buf))
    return LoopOutput(out.state, out.k * block, out.code, out.buf)
