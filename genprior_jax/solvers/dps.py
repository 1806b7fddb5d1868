"""Diffusion posterior sampling (DPS, Chung, Kim, McCann, Klasky & Ye, ICLR 2023) with a diffusion prior.

Each of the ``num_steps`` steps (one network evaluation and its vector-Jacobian product: NFE = ``num_steps``) goes
from level ``sigma_i`` to ``sigma_{i+1}`` (:mod:`.diffusion_common`)::

    x0 = x + lam (D(x, sigma_i) - x)                                        (Tweedie's estimate; lam = 1)
    x' = ddim_step(x, x0, sigma_i, sigma_{i+1}, eta)                        (eta = 1: the ancestral step)
    x' = x' - step_size * grad_x ||y - A(x0(x))||                          (the guidance, through the network)

with ``||y - A(x0)|| = sqrt(misfit)`` of the noise model's likelihood (Gaussian: the residual norm, as in DPS's
code; one-bit: the square root of the logistic loss), so any differentiable operator works: phase retrieval and
one-bit measurements included. ``step_size`` is DPS's ``zeta'`` (their code's ``scale``), in image units; it does
not depend on the noise level (DPS is not a calibrated posterior: ``noise`` only names the likelihood's kind).
``lam`` weighs the prior's score ``(D - x) / sigma^2`` (1: DPS as published; the vocabulary's prior weight).
``num_samples`` samples per measurement run side by side; ``result.x`` is their mean, the registry's summary gives
the per-pixel std and the samples.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..operators.noise import GaussianNoise
from ..priors.base import Prior, PriorStatic, prior_static
from .checks import check_hyper
from .diffusion_common import (
    SampleInfo,
    SampleState,
    check_diffusion,
    data_term,
    ddim_step,
    levels,
    refuse_tolerance,
    sampler_readouts,
    stack_denoiser,
    start,
)
from .options import RunOptions
from .runner import Problem, Result, Solver, run

Array = jax.Array


class DPSHyper(NamedTuple):
    noise: Any = GaussianNoise(0.1)  # the likelihood's kind (its misfit gives the guidance's residual norm)
    step_size: Array | float = 3.0  # zeta': the guidance step on grad ||y - A(x0)||
    lam: Array | float = 1.0  # the prior score's weight (1: DPS)
    eta: Array | float = 1.0  # 1: ancestral steps; 0: DDIM (deterministic between guidance steps)
    sigma_max: Array | float = 5.0  # the schedule (image units); defaults tuned on 8 validation digits, CS m = 100
    sigma_min: Array | float = 0.002


DPS_HYPER = DPSHyper()


def dps_solver(prior: Prior | PriorStatic, num_samples: int = 4, num_steps: int = 50) -> Solver:
    """The DPS :class:`Solver` (module docstring) for ``prior``'s denoiser, ``num_samples`` samples per measurement,
    a schedule of ``num_steps`` levels; cached on the prior's static part."""
    s = prior_static(prior, "dps_solver")
    return _dps_solver(s, int(num_samples), int(num_steps))


@functools.cache
def _dps_solver(static: PriorStatic, num_samples: int, num_steps: int) -> Solver:
    if num_samples < 1 or num_steps < 1:
        raise ValueError(f"dps: expected num_samples, num_steps >= 1, got {num_samples}, {num_steps}")

    def init(key: Array, problem: Problem, hyper: DPSHyper, params: Any) -> SampleState:
        return start(key, num_samples, tuple(problem.op.in_shape), levels(num_steps, hyper)[0])

    def step(state: SampleState, problem: Problem, hyper: DPSHyper, params: Any) -> tuple[SampleState, SampleInfo]:
        den = stack_denoiser(static, tuple(problem.op.in_shape))
        sig = levels(num_steps, hyper)
        s, s_next = sig[state.i], sig[state.i + 1]
        def residual_norm(x: Array) -> tuple[Array, Array]:
            x0 = x + hyper.lam * (den(params, x[None], s)[0] - x)
            return jnp.sqrt(2.0 * data_term(problem, hyper.noise, x0) + 1e-12), x0

        key, k_step = jax.random.split(state.key)
        (norms, x0), grads = jax.vmap(jax.value_and_grad(residual_norm, has_aux=True))(state.x)
        keys = jax.random.split(k_step, num_samples)
        x_next = jax.vmap(ddim_step, (0, 0, 0, None, None, None))(keys, state.x, x0, s, s_next, hyper.eta)
        x_next = x_next - hyper.step_size * grads
        info = SampleInfo(0.5 * jnp.mean(norms**2))
        return SampleState(x_next, x0, key, state.i + 1), info

    return Solver(init, step, *sampler_readouts())


def dps(prior: Prior, key: Array, y: Array, op: Any, *, noise: Any = DPS_HYPER.noise,
        step_size: float | Array = DPS_HYPER.step_size, lam: float | Array = DPS_HYPER.lam,
        eta: float | Array = DPS_HYPER.eta,
        sigma_max: float | Array = DPS_HYPER.sigma_max, sigma_min: float | Array = DPS_HYPER.sigma_min,
        num_steps: int = 50, num_samples: int = 4, options: RunOptions | None = None, **run_options: Any) -> Result:
    """DPS posterior sampling (module docstring) of ``num_samples`` images per measurement; ``result.x`` is their
    mean, ``result.state.x`` the samples ``(B, num_samples, *in_shape)``. NFE per sample = ``num_steps``.
    ``step_size``, ``eta``, ``sigma_max``, ``sigma_min`` are traced (a sweep does not recompile)."""
    refuse_tolerance(options, run_options, "dps")
    noise = check_diffusion(prior, op, noise, "dps", linear=False, gaussian=False)
    hyper = DPSHyper(noise, step_size, lam, eta, sigma_max, sigma_min)
    check_hyper(hyper, "dps", positive=("step_size", "lam", "sigma_max", "sigma_min"))
    solver = dps_solver(prior, int(num_samples), int(num_steps))
    return run(solver, key, y, op, hyper, prior.params, num_steps=int(num_steps), num_restarts=1, options=options,
               **run_options)
