"""Plug-and-play ADMM with a diffusion prior's denoiser (Venkatakrishnan, Bouman & Wohlberg 2013; the denoiser at
a decreasing, then fixed, noise level as in DPIR, Zhang et al. 2021): deterministic, with a certified fixed point.

For ``min_x 1/(2 s^2) ||A x - y||^2 + lam R(x)`` (``s`` the Gaussian noise std) with the denoiser read as a
proximal map, ``D(v, sigma) = prox_{sigma^2 R}(v)`` (exact for a Gaussian prior, whose MMSE and MAP denoisers
agree), scaled ADMM with penalty ``rho_k = lam / sigma_k^2`` is::

    x = argmin_u 1/2 ||A u - y||^2 + (lam s^2 / sigma_k^2) / 2 ||u - (z - u_k)||^2     (data step, conjugate gradients)
    z = D(x + u_k, sigma_k)                                                            (prior step: one NFE)
    u_{k+1} = (u_k + x - z) * sigma_{k+1}^2 / sigma_k^2                                (scaled dual, rescaled with rho)

``sigma_k`` falls geometrically from ``sigma_max`` to ``sigma_min`` over the first ``anneal_steps`` steps and
stays at ``sigma_min`` after. Whatever ``sigma_min``, a fixed point of the iteration at fixed ``sigma`` solves the
optimality conditions of the problem above (ADMM's fixed points are its minimizers), so for a Gaussian prior and
``lam = 1`` it is the exact posterior mean. Each step reports the relative fixed-point residual

    r = sqrt(||x - z||^2 + ||z - z_prev||^2) / max(||z||, 1e-12)          (inf while sigma is still annealing),

and with ``tol`` (default ``1e-3``) each problem stops when ``r <= tol`` (criterion ``"fixed_point_residual"``,
:mod:`.loop`). ``result.objective`` is the data term ``1/2 ||A z - y||^2`` at the estimate ``z``; ``lam``,
``sigma_max``, ``sigma_min`` and ``relax`` are traced.

A learned denoiser is not exactly a proximal map, so a fixed point need not exist: with ``diffusion-mnist`` on
compressed sensing the residual settles near 5e-4 at m = 100 (converged at the default ``tol = 1e-3``) and
oscillates near 1e-2 at m = 25 (not converged: ``Status.MAX_STEPS``, reported, the estimate kept).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..operators.noise import GaussianNoise
from ..priors.base import Prior, PriorStatic, prior_static
from .checks import check_hyper
from .diffusion_common import check_diffusion, data_prox, data_term, stack_denoiser
from .loop import FIXED_POINT, ResidualInfo
from .options import RunOptions, default_tol
from .runner import Problem, Result, Solver, run

Array = jax.Array

PNP_RUN_DEFAULTS = {"tol": 1e-3}


class PnPHyper(NamedTuple):
    noise: Any = GaussianNoise(0.1)  # the Gaussian noise of the measurements (weighs the data step)
    lam: Array | float = 1.0  # the prior's weight (1 with an exact denoiser: the MAP / posterior mean)
    sigma_max: Array | float = 5.0  # the denoiser's first level (image units)
    sigma_min: Array | float = 0.2  # the level it stays at (tuned on validation digits, MNIST CS m = 25 and 100)
    relax: Array | float = 1.0  # ADMM's relaxation alpha in (0, 2): x <- alpha x + (1 - alpha) z (same fixed points)


PNP_HYPER = PnPHyper()


class PnPState(NamedTuple):
    x: Array  # the data-step iterate
    z: Array  # the denoised iterate (the estimate)
    u: Array  # the scaled dual
    i: Array  # steps done


def pnp_sigma(i: Array, anneal_steps: int, hyper: PnPHyper) -> Array:
    """The denoiser's level at step ``i``: geometric from ``sigma_max`` to ``sigma_min`` over ``anneal_steps``
    steps, then ``sigma_min``."""
    t = jnp.minimum(i.astype(jnp.float32) / max(anneal_steps - 1, 1), 1.0)
    return jnp.asarray(hyper.sigma_max, jnp.float32) * (jnp.asarray(hyper.sigma_min, jnp.float32)
                                                        / jnp.asarray(hyper.sigma_max, jnp.float32)) ** t


def pnp_solver(prior: Prior | PriorStatic, anneal_steps: int = 20) -> Solver:
    """The PnP-ADMM :class:`Solver` (module docstring); cached on the prior's static part."""
    return _pnp_solver(prior_static(prior, "pnp_solver"), int(anneal_steps))


@functools.cache
def _pnp_solver(static: PriorStatic, anneal_steps: int) -> Solver:
    if anneal_steps < 1:
        raise ValueError(f"pnp: expected anneal_steps >= 1, got {anneal_steps}")

    def init(key: Array, problem: Problem, hyper: PnPHyper, params: Any) -> PnPState:
        shape = tuple(problem.op.in_shape)
        z = jnp.full(shape, 0.5, jnp.float32)
        return PnPState(z, z, jnp.zeros(shape, jnp.float32), jnp.int32(0))

    def step(state: PnPState, problem: Problem, hyper: PnPHyper, params: Any) -> tuple[PnPState, ResidualInfo]:
        den = stack_denoiser(static, tuple(problem.op.in_shape))
        s = pnp_sigma(state.i, anneal_steps, hyper)
        s_next = pnp_sigma(state.i + 1, anneal_steps, hyper)
        c = hyper.lam * jnp.asarray(hyper.noise.sigma) ** 2 / s**2
        x = data_prox(problem.op, problem.y, state.z - state.u, c)
        xr = hyper.relax * x + (1.0 - hyper.relax) * state.z
        z = den(params, (xr + state.u)[None], s)[0]
        u = (state.u + xr - z) * (s_next / s) ** 2
        norm = jnp.maximum(jnp.linalg.norm(z), 1e-12)
        r = jnp.sqrt(jnp.sum((x - z) ** 2) + jnp.sum((z - state.z) ** 2)) / norm
        r = jnp.where(state.i + 1 >= anneal_steps, r, jnp.inf)
        return PnPState(x, z, u, state.i + 1), ResidualInfo(data_term(problem, hyper.noise, z), r)

    def objective(state: PnPState, problem: Problem, hyper: PnPHyper, params: Any) -> Array:
        return data_term(problem, hyper.noise, state.z)

    def estimate(state: PnPState, problem: Problem, hyper: PnPHyper, params: Any) -> Array:
        return state.z

    return Solver(init, step, objective, estimate, FIXED_POINT)


def pnp(prior: Prior, key: Array, y: Array, op: Any, *, noise: Any = PNP_HYPER.noise,
        lam: float | Array = PNP_HYPER.lam, sigma_max: float | Array = PNP_HYPER.sigma_max,
        sigma_min: float | Array = PNP_HYPER.sigma_min, relax: float | Array = PNP_HYPER.relax, num_steps: int = 300,
        anneal_steps: int | None = None,
        options: RunOptions | None = None, **run_options: Any) -> Result:
    """PnP-ADMM (module docstring): deterministic; stops at ``tol`` (fixed-point residual, default 1e-3) or
    ``num_steps``. NFE = steps taken (``result.steps``). Needs a linear operator and ``GaussianNoise(sigma > 0)``.
    ``anneal_steps`` defaults to ``min(100, num_steps // 2)`` (at least 1)."""
    if anneal_steps is None:
        anneal_steps = max(1, min(100, int(num_steps) // 2))
    noise = check_diffusion(prior, op, noise, "pnp", linear=True, gaussian=True)
    hyper = PnPHyper(noise, lam, sigma_max, sigma_min, relax)
    check_hyper(hyper, "pnp", positive=("lam", "sigma_max", "sigma_min", "relax"))
    if isinstance(relax, (int, float)) and not 0 < relax < 2:
        raise ValueError(f"pnp: expected 0 < relax < 2 (ADMM's relaxation), got {relax}")
    if int(num_steps) < int(anneal_steps):
        raise ValueError(f"pnp: expected num_steps >= anneal_steps, got {num_steps} < {anneal_steps}")
    run_options = default_tol(options, run_options, PNP_RUN_DEFAULTS["tol"])
    return run(pnp_solver(prior, int(anneal_steps)), key, y, op, hyper, prior.params, num_steps=int(num_steps),
               num_restarts=1, options=options, **run_options)
