"""Sparsity baselines: FISTA for the Lasso in a basis ``S`` (pixels, 2-D DCT or an orthonormal wavelet).

    c_hat = argmin_c 1/2 ||A S c - y||^2 + lam sum_i w_i |c_i|,        x_hat = clip(S c_hat, 0, 1)

with ``S`` the synthesis operator of :func:`~genprior_jax.transforms.make_basis` (``S S^T = I``). For a square
orthonormal ``S`` (pixels, DCT, a wavelet on sizes divisible by ``2^levels``) this is the same problem as
``argmin_x 1/2 ||A x - y||^2 + lam ||S^T x||_1``; for a zero-padded wavelet (28x28 with 3 levels: a 32x32
coefficient grid) it is the synthesis form, ``S`` being a Parseval frame.

The weights are ``w_i = 1``, except that for the wavelet basis with ``penalize_coarse=False`` the coarsest
approximation block of ``c`` (the top-left ``H'/2^L x W'/2^L`` of the padded coefficient grid, see
:class:`~genprior_jax.transforms.WaveletBasis`) has ``w_i = 0``: only the detail coefficients are sparse, as in
deepinv's wavelet prior (the coarse band holds the image's local means, which are not sparse).

FISTA (Beck & Teboulle 2009) on ``c`` with step ``1/L``, ``L = ||A S||^2`` estimated by power iteration on
``(A S)^T (A S)`` (40 iterations, then 5 % margin); the prox of ``lam sum_i w_i |c_i|`` is soft-thresholding of
coefficient ``i`` at ``lam w_i / L``. The state also carries the images ``x = S c`` and ``v = S v_c`` of the iterate
and of the momentum point (linear combinations, so two transforms per step). Start ``c0 = 0``; one restart (the
problem is convex). The momentum restarts adaptively (O'Donoghue & Candes 2015, gradient scheme: ``t = 1`` whenever
``<v_c - c_new, c_new - c> > 0``), which halves to thirds the steps to a 1e-4 gap on MNIST-sized problems (Gaussian
CS m = 100, DCT, lam 0.15: 461 steps instead of 933; sparse pixel Lasso: 217 instead of 664).

Stopping (``tol``, default :data:`LASSO_TOL`): a certified relative duality gap (criterion ``"duality_gap"``,
:mod:`.loop`). With ``M = A S``, the residual ``rho = y - M c`` of the iterate and ``g = M^T rho``, the dual point
``theta = s (M c - y)`` scaled by ``s = min(1, min_i lam w_i / |g_i|)`` is feasible, and the duality gap is the
sum of two Fenchel-Young gaps, each a sum of non-negative terms::

    gap = 1/2 (1 - s)^2 ||rho||^2 + sum_i (lam w_i |c_i| - s g_i c_i)      (<= tol * D, D = P(c) - gap <= P*)

so the returned iterate has ``(P(c) - P*) / P* <= tol``. Where some weights vanish (the wavelet's unpenalised
coarse band with ``penalize_coarse=False``; every coefficient at ``lam = 0``) no scaling makes ``theta``
feasible; those coefficients get the partial gap over the box ``|c_i' - c_i| <= delta``,
``delta = max |c_i|`` over them, i.e. the term ``delta sum_i s |g_i|`` (criterion ``"partial_duality_gap"``: a
certificate when a minimizer lies in that box). The gap costs one more gradient, at the checks only.

Data-term scale: ``1/2 ||A S c - y||^2``, as every objective of the package (until issue 28 it was
``||A S c - y||^2``: a ``lam`` of that scale is halved for the same solution, ``lam_new = lam_old / 2``).
Conversion from scikit-learn: ``Lasso(alpha)`` minimizes ``1/(2 m) ||X w - y||^2 + alpha ||w||_1`` over ``m``
samples, i.e. ours with ``A = X``, ``S = I`` and ``lam = m alpha`` (or, with the csgm repo's scaling
``A = X / sqrt(m)``, ``y = y_raw / sqrt(m)``: ``lam = alpha``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..operators.base import LinearOperator
from ..operators.numerics import operator_norm_sq
from ..operators.validation import require_linear
from ..transforms import BASES, make_basis
from ..transforms.wavelet import check_wavelet, detail_weights
from .checks import check_hyper
from .loop import DUALITY_GAP, PARTIAL_DUALITY_GAP, GapInfo, relative_gap
from .options import RunOptions, with_run_defaults
from .runner import Problem, Result, Solver, run

Array = jax.Array

__all__ = ["BASES", "FistaState", "LassoHyper", "lasso", "lasso_solver", "operator_norm_sq"]


class LassoHyper(NamedTuple):
    lam: Array | float = 0.1  # 1/2 data-term scale (0.2 before issue 28's ||A S c - y||^2 scale: the same solution)


LASSO_HYPER = LassoHyper()
# default of lasso(penalize_coarse=...): the wavelet's coarse band goes unpenalised (+0.7 dB PSNR on camera
# 256x256, 60 % random inpainting, noise 0.01, at every lam of a grid from 1e-3 to 1; the issue-14 measurement)
PENALIZE_COARSE = False


class FistaState(NamedTuple):
    x: Array  # S c, image of the iterate (in_shape of A)
    c: Array  # coefficients of the iterate (in_shape of S)
    v: Array  # S v_c, image of the momentum point
    v_c: Array  # coefficients of the momentum point
    t: Array
    lipschitz: Array


def _soft(u: Array, thresh: Array) -> Array:
    return jnp.sign(u) * jnp.maximum(jnp.abs(u) - thresh, 0.0)


@functools.cache
def lasso_solver(basis: str = "dct", wavelet: str = "db4", levels: int = 3, penalize_coarse: bool = True) -> Solver:
    """FISTA :class:`Solver` for the Lasso in ``basis`` (``wavelet``, ``levels`` and ``penalize_coarse`` only for
    ``"wavelet"``; ``penalize_coarse=False`` leaves the coarsest approximation block unpenalised)."""
    if basis not in BASES:
        raise ValueError(f"lasso: expected basis in {BASES}, got {basis!r}")
    if not isinstance(penalize_coarse, bool):
        raise ValueError(f"lasso: expected penalize_coarse to be a bool, got {penalize_coarse!r}")
    levels = check_wavelet(wavelet, levels, "lasso")

    def synthesis(problem: Problem) -> LinearOperator:
        return make_basis(basis, problem.op.in_shape, wavelet=wavelet, levels=levels)

    def weights(problem: Problem) -> Array | float:
        """``w`` of the module docstring: a constant ``(H', W', C)`` array, or the scalar 1."""
        if basis != "wavelet" or penalize_coarse:
            return 1.0
        return jnp.asarray(detail_weights(synthesis(problem).in_shape, levels))

    def objective(state: FistaState, problem: Problem, hyper: LassoHyper, params: Any) -> Array:
        r = problem.op.mv(state.x) - problem.y
        return 0.5 * jnp.sum(r**2) + hyper.lam * jnp.sum(weights(problem) * jnp.abs(state.c))

    def init(key: Array, problem: Problem, hyper: LassoHyper, params: Any) -> FistaState:
        s = synthesis(problem)
        c = jnp.zeros(s.in_shape, jnp.float32)
        x = jnp.zeros(s.out_shape, jnp.float32)
        lip = 1.05 * operator_norm_sq(problem.op @ s, key)
        return FistaState(x, c, x, c, jnp.float32(1.0), lip)

    def certificate(x: Array, c: Array, problem: Problem, hyper: LassoHyper) -> GapInfo:
        """``GapInfo(P(c), relative gap)`` at the iterate ``c`` (``x = S c``), module docstring."""
        op, s = problem.op, synthesis(problem)
        rho = problem.y - op.mv(x)
        g = s.rmv(op.rmv(rho))
        pen = jnp.broadcast_to(hyper.lam * weights(problem), c.shape)
        penalised = pen > 0.0
        ratio = jnp.where(penalised, jnp.abs(g) / jnp.where(penalised, pen, 1.0), 0.0)
        scale = 1.0 / jnp.maximum(1.0, jnp.max(ratio))
        res_sq = jnp.sum(rho**2)
        primal = 0.5 * res_sq + jnp.sum(pen * jnp.abs(c))
        fy_data = 0.5 * (1.0 - scale) ** 2 * res_sq
        fy_pen = jnp.sum(jnp.where(penalised, pen * jnp.abs(c) - scale * g * c, 0.0))
        delta = jnp.max(jnp.where(penalised, 0.0, jnp.abs(c)))
        fy_free = delta * scale * jnp.sum(jnp.where(penalised, 0.0, jnp.abs(g)))
        return GapInfo(primal, relative_gap(primal, fy_data + fy_pen + fy_free))

    def step(state: FistaState, problem: Problem, hyper: LassoHyper, params: Any) -> tuple[FistaState, GapInfo]:
        op, s = problem.op, synthesis(problem)
        grad_c = s.rmv(op.rmv(op.mv(state.v) - problem.y))
        c = _soft(state.v_c - grad_c / state.lipschitz, hyper.lam * weights(problem) / state.lipschitz)
        x = s.mv(c)
        # adaptive restart (O'Donoghue & Candes 2015, gradient scheme): the momentum is dropped (t = 1) when the
        # step c - c_prev points against the prox-gradient step c - v_c, which makes FISTA linearly convergent
        # near a sparse minimizer instead of oscillating (module docstring)
        restart = jnp.vdot(state.v_c - c, c - state.c) > 0.0
        t_prev = jnp.where(restart, 1.0, state.t)
        t = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t_prev**2))
        beta = (t_prev - 1.0) / t
        new = FistaState(x, c, x + beta * (x - state.x), c + beta * (c - state.c), t, state.lipschitz)
        return new, certificate(x, c, problem, hyper)  # read at checks only: XLA drops it elsewhere

    def estimate(state: FistaState, problem: Problem, hyper: LassoHyper, params: Any) -> Array:
        return jnp.clip(state.x, 0.0, 1.0)

    exact = basis != "wavelet" or penalize_coarse  # every weight positive: the scaled residual is dual feasible
    return Solver(init, step, objective, estimate, DUALITY_GAP if exact else PARTIAL_DUALITY_GAP)


LASSO_TOL = 1e-4  # certified relative duality gap (P(c) - D) / D: the default stopping rule (module docstring)
LASSO_RUN_DEFAULTS: Mapping[str, Any] = MappingProxyType({"tol": LASSO_TOL})  # run options lasso sets when unset


def lasso(key: Array, y: Array, op: LinearOperator, *, lam: float | Array = LASSO_HYPER.lam, basis: str = "dct",
          wavelet: str = "db4", levels: int = 3, penalize_coarse: bool = PENALIZE_COARSE, num_steps: int = 2000,
          options: RunOptions | None = None, **run_options: Any) -> Result:
    """Lasso baseline in the ``pixel``, ``dct`` or ``wavelet`` basis via FISTA on the shared runner.

    ``lam`` is traced (a sweep does not recompile); ``wavelet`` (one of
    :data:`~genprior_jax.transforms.WAVELETS`), ``levels`` and ``penalize_coarse`` (whether the coarsest
    approximation block pays ``lam |c_i|`` too; module docstring) select the wavelet Lasso (static). ``res.x`` is
    ``clip(S c, 0, 1)``; ``res.state.c`` holds the coefficients and ``res.state.x`` the unclipped image.

    Stops on a certificate by default: at most ``num_steps`` FISTA steps, each problem stopping once its relative
    duality gap is below ``tol`` (default ``LASSO_TOL``; checked every ``check_every`` steps), so
    ``(P(c) - P*) / P* <= tol`` where ``res.converged``; ``res.criterion`` names the certificate
    (``tol=None`` runs the fixed count). The objective is ``1/2 ||A S c - y||^2 + lam sum_i w_i |c_i|``.
    """
    require_linear(op, "lasso")
    check_hyper(LassoHyper(lam), "lasso")
    if basis != "wavelet":  # the wavelet options do not apply: one cached solver per basis
        wavelet, levels, penalize_coarse = "db4", 3, True
    return run(lasso_solver(basis, wavelet, levels, penalize_coarse), key, y, op, LassoHyper(lam), None,
               num_steps=num_steps, num_restarts=1, options=options,
               **with_run_defaults(options, run_options, LASSO_RUN_DEFAULTS))
