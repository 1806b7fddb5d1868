"""DiffPIR (Zhu, Zhang, Liang, Cao, Wen, Timofte & Van Gool, CVPR 2023 workshops): diffusion sampling with a
proximal data step, for linear operators and Gaussian noise.

Each of the ``num_steps`` steps (one network evaluation, no gradient through it: NFE = ``num_steps``) goes from
level ``sigma_i`` to ``sigma_{i+1}`` (:mod:`.diffusion_common`)::

    x0    = D(x, sigma_i)                                                     (the prior step)
    x0^   = argmin_u 1/(2 s^2) ||A u - y||^2 + lam / (2 sigma_i^2) ||u - x0||^2    (the data step, s = noise std)
          = argmin_u 1/2 ||A u - y||^2 + (lam s^2 / sigma_i^2) / 2 ||u - x0||^2      (DiffPIR's rho_t)
    eps^  = (x - x0^) / sigma_i
    x'    = x0^ + sigma_{i+1} (sqrt(1 - eta) eps^ + sqrt(eta) xi)               (DiffPIR's zeta is ``eta``)

The data step is solved by conjugate gradients (:func:`~.diffusion_common.data_prox`). ``lam`` (DiffPIR's
``lambda``, 7 in the paper for deblurring), ``eta`` (their ``zeta``), ``sigma_max`` and ``sigma_min`` are traced.
``num_samples`` samples per measurement; ``result.x`` is their mean.
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
    data_prox,
    levels,
    mean_data_term,
    refuse_tolerance,
    sampler_readouts,
    stack_denoiser,
    start,
)
from .options import RunOptions
from .runner import Problem, Result, Solver, run

Array = jax.Array


class DiffPIRHyper(NamedTuple):
    noise: Any = GaussianNoise(0.1)  # the Gaussian noise the measurements carry (its sigma weighs the data step)
    lam: Array | float = 7.0  # the prior's weight in the data step (DiffPIR's lambda)
    eta: Array | float = 1.0  # share of fresh noise in each step (DiffPIR's zeta; 1: ancestral)
    sigma_max: Array | float = 5.0  # defaults tuned on 8 validation digits, CS m = 100 (eta 0.3: 2x the MSE)
    sigma_min: Array | float = 0.002


DIFFPIR_HYPER = DiffPIRHyper()


def diffpir_solver(prior: Prior | PriorStatic, num_samples: int = 4, num_steps: int = 50) -> Solver:
    """The DiffPIR :class:`Solver` (module docstring); cached on the prior's static part."""
    return _diffpir_solver(prior_static(prior, "diffpir_solver"), int(num_samples), int(num_steps))


@functools.cache
def _diffpir_solver(static: PriorStatic, num_samples: int, num_steps: int) -> Solver:
    if num_samples < 1 or num_steps < 1:
        raise ValueError(f"diffpir: expected num_samples, num_steps >= 1, got {num_samples}, {num_steps}")

    def init(key: Array, problem: Problem, hyper: DiffPIRHyper, params: Any) -> SampleState:
        return start(key, num_samples, tuple(problem.op.in_shape), levels(num_steps, hyper)[0])

    def step(state: SampleState, problem: Problem, hyper: DiffPIRHyper,
             params: Any) -> tuple[SampleState, SampleInfo]:
        den = stack_denoiser(static, tuple(problem.op.in_shape))
        sig = levels(num_steps, hyper)
        s, s_next = sig[state.i], sig[state.i + 1]
        x0 = den(params, state.x, s)
        c = hyper.lam * jnp.asarray(hyper.noise.sigma) ** 2 / s**2
        x0 = jax.vmap(lambda v: data_prox(problem.op, problem.y, v, c))(x0)
        key, k_noise = jax.random.split(state.key)
        eps = (state.x - x0) / s
        fresh = jax.random.normal(k_noise, state.x.shape)
        x_next = x0 + s_next * (jnp.sqrt(1.0 - hyper.eta) * eps + jnp.sqrt(hyper.eta) * fresh)
        return SampleState(x_next, x0, key, state.i + 1), SampleInfo(mean_data_term(problem, hyper.noise, x0))

    return Solver(init, step, *sampler_readouts())


def diffpir(prior: Prior, key: Array, y: Array, op: Any, *, noise: Any = DIFFPIR_HYPER.noise,
            lam: float | Array = DIFFPIR_HYPER.lam, eta: float | Array = DIFFPIR_HYPER.eta,
            sigma_max: float | Array = DIFFPIR_HYPER.sigma_max, sigma_min: float | Array = DIFFPIR_HYPER.sigma_min,
            num_steps: int = 50, num_samples: int = 4, options: RunOptions | None = None,
            **run_options: Any) -> Result:
    """DiffPIR (module docstring): ``num_samples`` samples per measurement, ``result.x`` their mean; NFE per sample
    = ``num_steps``. Needs a linear operator and ``GaussianNoise(sigma)``, ``sigma > 0``."""
    refuse_tolerance(options, run_options, "diffpir")
    noise = check_diffusion(prior, op, noise, "diffpir", linear=True, gaussian=True)
    hyper = DiffPIRHyper(noise, lam, eta, sigma_max, sigma_min)
    check_hyper(hyper, "diffpir", positive=("lam", "sigma_max", "sigma_min"))
    if isinstance(eta, (int, float)) and not 0 <= eta <= 1:
        raise ValueError(f"diffpir: expected 0 <= eta <= 1 (the share of fresh noise), got {eta}")
    solver = diffpir_solver(prior, int(num_samples), int(num_steps))
    return run(solver, key, y, op, hyper, prior.params, num_steps=int(num_steps), num_restarts=1, options=options,
               **run_options)
