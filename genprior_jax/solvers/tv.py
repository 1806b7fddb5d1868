"""Total-variation regularised least squares by the Chambolle–Pock primal-dual method (PDHG).

    x_hat = argmin_{x in X}  1/2 ||A x - y||^2 + lam TV(x),      X = [0, 1]^n (``box=True``) or R^n

with the isotropic TV of :func:`~genprior_jax.transforms.tv_norm` (forward differences, Neumann boundary, each
channel's TV summed; ``skimage.restoration.denoise_tv_chambolle``'s definition, whose ``weight`` is ``lam``
for ``A = I``). The data term is ``1/2 ||A x - y||^2``, as in every objective of the package.

Chambolle & Pock (2011), Algorithm 1 with ``theta = 1``, on ``K = [A; D]``, ``F(u, w) = 1/2 ||u - y||^2 +
lam ||w||_{2,1}``, ``G = indicator of X``::

    q  <- (q + sigma (A xb - y)) / (1 + sigma)             # prox of sigma F1*,  F1*(q) = 1/2 ||q||^2 + <q, y>
    r  <- proj_{|r_ijc| <= lam}(r + sigma_tv D xb)         # prox of sigma_tv F2*, pointwise over the 2 differences
    x' <- proj_X(x - tau (A^T q + D^T r)),   xb <- 2 x' - x

Step sizes ``tau = rho / L`` with ``L^2 = a + 8``, ``a = 1.05 ||A||^2`` (``||A||^2`` by power iteration as in the
Lasso, ``||D||^2 < 8``), and one dual step per block, ``sigma = w / (tau a)``, ``sigma_tv = (1 - w) / (tau 8)``
with ``w = min(a / (a + 8), 1/2)``: ``tau (sigma ||A||^2 + sigma_tv ||D||^2) < 1``, the condition of PDHG with a
block-diagonal dual step (Pock & Chambolle 2011), so the iterates converge for any ``rho > 0`` (the traced
``step_ratio``); ``rho`` only sets the speed. For ``a <= 8`` (masks, blur, down-sampling, denoising) this is the
single step ``sigma = sigma_tv = 1 / (rho L)``; a large ``||A||`` (tomography: ``a`` ~ 10^4 at 256x256) would make
that single step starve the TV dual, and the split gives it half the budget instead (64x64 phantom, 30 angles:
relative objective gap after 1000 steps 8e-4 instead of 2e-2; Gaussian CS m = 100: 6e-6 instead of 1e-5).
The convergence bound ``L (||x*||^2 / rho + rho ||p*||^2) / N`` is smallest at ``rho = ||x*|| / ||p*||``, and
the TV dual ``r*`` has size ``lam``, so ``rho`` should scale like ``1 / lam``: ``step_ratio <= 0`` (the default) picks
``rho = 0.1 / max(lam, 1e-3)``, the best of a grid of ``c / lam`` measured on MNIST (28x28 in ``[0, 1]``)
Gaussian CS at ``m = 100`` and on denoising, for ``lam`` from 0.001 to 0.3 (500 steps reach a relative duality
gap ``< 1e-3``). Start ``x = xb = 0``, ``q = r = 0``.

Stopping (``tol``, default :data:`TV_TOL`): a certified relative duality gap (:mod:`.loop`). With ``box=True`` the
dual objective ``D(q, r) = -1/2 ||q||^2 - <q, y> - sum max(-(A^T q + D^T r), 0)`` of the PDHG dual iterate (its
TV part projected onto ``|r_ijc| <= lam``, so always feasible) bounds the minimum from below, and each step
reports, at the ``x`` it returns, the gap ``P(x) - D(q, r)`` as the sum of three Fenchel-Young gaps, each a sum of
non-negative terms (no cancellation in float32)::

    1/2 ||A x - y - q||^2 + sum_ijc (lam |(D x)_ijc| - <r_ijc, (D x)_ijc>) + sum_i (s_i^+ (1 - x_i) + s_i^- x_i)

with ``s = -(A^T q + D^T r)``; it stops once ``gap <= tol * D`` (criterion ``"duality_gap"``), which certifies
``(P(x) - P*) / P* <= tol``. Without the box (``box=False``) the dual needs ``A^T q + D^T r = 0`` exactly; the
last term is then the partial gap over the box ``x +- delta``, ``delta = max |x_i|``, i.e. ``delta sum |s_i|``
(criterion ``"partial_duality_gap"``: a certificate when a minimizer differs from the iterate by at most
``delta`` in every pixel). The gap costs one more ``A x`` and ``D x``, at the checks only. Measured with the
defaults (``tol = 1e-4``, cap 3000 steps; reference: 20,000 steps of this solver, whose own certified gap is
< 5e-6): MNIST Gaussian CS (m = 100, lam 0.01) stops at 670 steps, 3.1e-5 above the minimum; camera 64x64
denoising (lam 0.1) 650 steps, 5.8e-5; 50 % inpainting (lam 0.01) 930 steps, 5.7e-5; a 32x32 phantom from 12
Radon angles 1550 steps, 1.4e-5 (the former rule, an objective change < 1e-6 over 10 steps, stopped it at 690
steps 9.1e-5 above the minimum, with no bound; the former cap of 1000 steps could not certify it).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from ..operators.base import LinearOperator
from ..operators.numerics import operator_norm_sq
from ..operators.validation import require_linear
from ..transforms import Gradient, tv_norm
from ..transforms.finite_diff import GRADIENT_NORM_SQ_BOUND, _total, pair_norm
from .loop import DUALITY_GAP, PARTIAL_DUALITY_GAP, GapInfo, relative_gap
from .options import RunOptions, with_run_defaults
from .runner import Problem, Result, Solver, run

Array = jax.Array


class TVHyper(NamedTuple):
    lam: Array | float = 0.01
    step_ratio: Array | float = 0.0  # rho: tau = rho / L, sigma = 1 / (rho L); <= 0: 0.1 / max(lam, 1e-3)


TV_HYPER = TVHyper()


class TVState(NamedTuple):
    x: Array  # primal iterate, op.in_shape
    x_bar: Array  # extrapolated point 2 x_k - x_{k-1}
    q: Array  # dual variable of the data term, op.out_shape
    r: Array  # dual variable of the TV term, (*op.in_shape, 2)
    tau: Array
    sigma: Array  # dual step of the data term
    sigma_tv: Array  # dual step of the TV term


@functools.cache
def tv_solver(box: bool = True) -> Solver:
    """The PDHG :class:`Solver` for TV-regularised least squares (``box``: constrain ``x`` to ``[0, 1]``)."""

    def objective(state: TVState, problem: Problem, hyper: TVHyper, params: Any) -> Array:
        r = problem.op.mv(state.x) - problem.y
        return 0.5 * jnp.sum(r**2) + hyper.lam * tv_norm(state.x)

    def init(key: Array, problem: Problem, hyper: TVHyper, params: Any) -> TVState:
        op = problem.op
        a = 1.05 * operator_norm_sq(op, key)
        norm = jnp.sqrt(a + GRADIENT_NORM_SQ_BOUND)
        rho = jnp.where(hyper.step_ratio > 0, hyper.step_ratio, 0.1 / jnp.maximum(hyper.lam, 1e-3))
        tau = rho / norm
        split = a > GRADIENT_NORM_SQ_BOUND  # w = 1/2 (module docstring); else the single step 1 / (rho L)
        sigma = jnp.where(split, 0.5 / (tau * a), 1.0 / (rho * norm))
        sigma_tv = jnp.where(split, 0.5 / (tau * GRADIENT_NORM_SQ_BOUND), 1.0 / (rho * norm))
        x = jnp.zeros(op.in_shape, jnp.float32)
        return TVState(x, x, jnp.zeros(op.out_shape, jnp.float32), jnp.zeros((*op.in_shape, 2), jnp.float32),
                       tau, sigma, sigma_tv)

    def certificate(x: Array, q: Array, r: Array, kt_p: Array, problem: Problem, hyper: TVHyper) -> GapInfo:
        """``GapInfo(P(x), relative gap)`` at ``(x, q, r)`` with ``kt_p = K^T (q, r)``: the gap as the sum of the
        three Fenchel-Young gaps (module docstring), each a sum of non-negative terms (no cancellation)."""
        res = problem.op.mv(x) - problem.y
        g = Gradient(problem.op.in_shape).mv(x)
        mag = pair_norm(g)
        primal = 0.5 * _total(res**2) + hyper.lam * _total(mag)
        fy_data = 0.5 * _total((res - q) ** 2)
        fy_tv = _total(hyper.lam * mag - (r[..., 0] * g[..., 0] + r[..., 1] * g[..., 1]))
        s_ = -kt_p
        if box:
            fy_set = _total(jnp.maximum(s_, 0.0) * (1.0 - x) + jnp.maximum(-s_, 0.0) * x)
        else:  # the box x +- delta, delta = max |x| (partial gap; module docstring)
            fy_set = jnp.max(jnp.abs(x)) * _total(jnp.abs(s_))
        return GapInfo(primal, relative_gap(primal, fy_data + fy_tv + fy_set))

    def step(state: TVState, problem: Problem, hyper: TVHyper, params: Any) -> tuple[TVState, GapInfo]:
        op, grad = problem.op, Gradient(problem.op.in_shape)
        q = (state.q + state.sigma * (op.mv(state.x_bar) - problem.y)) / (1.0 + state.sigma)
        r = state.r + state.sigma_tv * grad.mv(state.x_bar)
        r = r * (hyper.lam / jnp.maximum(pair_norm(r), jnp.maximum(hyper.lam, 1e-30)))[..., None]
        kt_p = op.rmv(q) + grad.rmv(r)
        x = state.x - state.tau * kt_p
        if box:
            x = jnp.clip(x, 0.0, 1.0)
        new = state._replace(x=x, x_bar=2.0 * x - state.x, q=q, r=r)
        return new, certificate(x, q, r, kt_p, problem, hyper)  # read at checks only: XLA drops it elsewhere

    def estimate(state: TVState, problem: Problem, hyper: TVHyper, params: Any) -> Array:
        return state.x

    return Solver(init, step, objective, estimate, DUALITY_GAP if box else PARTIAL_DUALITY_GAP)


def tv_fixed_steps(key: Array, problem: Problem, lam: float | Array, num_steps: int) -> Array:
    """``x`` after exactly ``num_steps`` PDHG steps of TV over ``[0, 1]`` with weight ``lam`` (the default step
    ratio) for one ``problem``: no runner, no tolerance, so it traces inside ``jit`` / ``vmap`` (a TV start or a
    classical inverse within a larger compiled step). ``key`` feeds the operator-norm estimate."""
    solver, hyper = tv_solver(True), TVHyper(lam, jnp.float32(0.0))
    state = jax.lax.fori_loop(0, num_steps, lambda _, st: solver.step(st, problem, hyper, None)[0],
                              solver.init(key, problem, hyper, None))
    return solver.estimate(state, problem, hyper, None)


def _check_nonnegative(value: float | Array, name: str) -> None:
    if isinstance(value, jax.core.Tracer):
        return
    arr = np.asarray(value)
    if arr.shape != () or not np.isfinite(arr) or arr < 0:
        raise ValueError(f"tv: expected a finite scalar {name} >= 0, got {value!r}")


TV_TOL = 1e-4  # certified relative duality gap (P(x) - D) / D: the default stopping rule (module docstring)
# run options tv sets when unset: its tolerance, and batch_size="auto" (large images stream one at a time)
TV_RUN_DEFAULTS: Mapping[str, Any] = MappingProxyType({"tol": TV_TOL, "batch_size": "auto"})


def tv(key: Array, y: Array, op: LinearOperator, *, lam: float | Array = TV_HYPER.lam, num_steps: int = 3000,
       box: bool = True, step_ratio: float | Array = TV_HYPER.step_ratio, options: RunOptions | None = None,
       **run_options: Any) -> Result:
    """TV-regularised least squares ``argmin 1/2 ||A x - y||^2 + lam TV(x)`` (over ``[0, 1]^n`` if ``box``).

    ``y``: ``(B, *op.out_shape)`` or one measurement; ``lam >= 0`` and ``step_ratio`` (``rho``; ``<= 0``: the
    automatic choice of the module docstring) are traced, so a sweep does not recompile; ``box`` is static.
    ``key`` seeds the power iteration for ``||A||``. ``res.x`` is the final primal iterate (in ``[0, 1]`` with
    ``box``, unclipped otherwise); ``res.state`` (:class:`TVState`) holds the dual variables.

    Stops on a certificate by default: at most ``num_steps`` PDHG steps, each problem stopping once its relative
    duality gap is below ``tol`` (default ``TV_TOL``; checked every ``check_every`` steps), so
    ``(P(x) - P*) / P* <= tol`` where ``res.converged``; ``res.criterion`` names the certificate
    (``tol=None`` runs the fixed count). ``res.history`` (``history=True``) holds each step's
    :class:`~genprior_jax.solvers.loop.GapInfo` (objective and relative gap at the iterate after the step).

    A batch runs with ``batch_size="auto"`` unless told otherwise: large images (256x256x3) stream through one at
    a time, where a vmapped batch was measured up to 2x slower per image than a loop (``benchmarks/tv_batch.py``).
    """
    _check_nonnegative(lam, "lam")
    require_linear(op, "tv")
    run_options = with_run_defaults(options, run_options, TV_RUN_DEFAULTS)
    return run(tv_solver(bool(box)), key, y, op, TVHyper(lam, step_ratio), None, num_steps=num_steps,
               num_restarts=1, options=options, **run_options)
