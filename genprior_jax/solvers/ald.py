"""Annealed Langevin dynamics with a score prior (Jalal, Arvinte, Daras, Price, Dimakis & Tamir, NeurIPS 2021;
the sampler of Song & Ermon 2019).

Levels ``sigma_1 > ... > sigma_L`` geometric from ``sigma_max`` to ``sigma_min`` (``L = num_steps //
steps_per_level``), ``steps_per_level`` Langevin moves at each, ``a_l = step_size * sigma_l^2``::

    x' = x + a_l lam s(x, sigma_l) + sqrt(2 a_l) xi                        (the prior: score and noise)
    x  = argmin_u a_l E_l(u) + 1/2 ||u - x'||^2                            (linear A, Gaussian noise: implicit)
    x  = x' - a_l grad E_l(x)                                              (otherwise: explicit, any operator)

with the prior score ``s = (D(x, sigma_l) - x) / sigma_l^2`` and, for Gaussian noise of std ``s_y``, the annealed
likelihood ``E_l = ||A x - y||^2 / (2 (s_y^2 + sigma_l^2))`` (Jalal et al.'s ``gamma_l = sigma_l``: the noise the
level adds is counted in the data term); another noise model's energy as it is. The implicit data step (conjugate
gradients, :func:`~.diffusion_common.data_prox`) is this library's choice, not Jalal et al.'s (their MRI operators
have ``||A|| ~ 1``): an explicit step is stable only for ``a_l ||A||^2 / (s_y^2 + sigma_l^2) < 2``, which a
compressed-sensing matrix (``||A||^2 ~ (1 + sqrt(n / m))^2``) breaks at any useful step; the implicit one is stable
at every step and has the same ``O(a)`` accuracy. At the last level the chain targets ``p_{sigma_min}(x) p(y |
x)``, the posterior up to the ``sigma_min`` smoothing of the prior and the ``O(a)`` bias of the step (``lam``
weighs the prior's score: 1 is the posterior). NFE per sample = ``num_steps``. ``step_size`` (Song & Ermon's
``eps / sigma_L^2``), ``lam``, ``sigma_max`` and ``sigma_min`` are traced.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..likelihoods import likelihood_for
from ..operators.base import LinearOperator
from ..operators.noise import GaussianNoise
from ..priors.base import Prior, PriorStatic, prior_static
from .checks import check_hyper
from .diffusion_common import (
    SampleInfo,
    SampleState,
    check_diffusion,
    data_prox,
    mean_data_term,
    refuse_tolerance,
    sampler_readouts,
    stack_denoiser,
    start,
)
from .options import RunOptions
from .runner import Problem, Result, Solver, run

Array = jax.Array


class ALDHyper(NamedTuple):
    noise: Any = GaussianNoise(0.1)  # the noise model of the likelihood
    step_size: Array | float = 0.2  # a_l / sigma_l^2 (Song & Ermon's eps = 2e-5 at sigma_L = 0.01)
    lam: Array | float = 1.0  # the prior score's weight (1: the posterior)
    sigma_max: Array | float = 5.0
    sigma_min: Array | float = 0.05  # the last level (tuned on 8 validation digits, CS m = 100)


ALD_HYPER = ALDHyper()


def ald_levels(num_levels: int, sigma_min: Array | float, sigma_max: Array | float) -> Array:
    """``num_levels`` geometric levels from ``sigma_max`` down to ``sigma_min``."""
    t = jnp.arange(num_levels, dtype=jnp.float32) / max(num_levels - 1, 1)
    return jnp.asarray(sigma_max, jnp.float32) * (jnp.asarray(sigma_min, jnp.float32)
                                                  / jnp.asarray(sigma_max, jnp.float32)) ** t


def ald_solver(prior: Prior | PriorStatic, num_samples: int = 4, num_steps: int = 200,
               steps_per_level: int = 2) -> Solver:
    """The annealed-Langevin :class:`Solver` (module docstring); cached on the prior's static part."""
    return _ald_solver(prior_static(prior, "ald_solver"), int(num_samples), int(num_steps), int(steps_per_level))


@functools.cache
def _ald_solver(static: PriorStatic, num_samples: int, num_steps: int, steps_per_level: int) -> Solver:
    if num_samples < 1 or steps_per_level < 1 or num_steps < steps_per_level:
        raise ValueError(f"ald: expected num_samples, steps_per_level >= 1 and num_steps >= steps_per_level, got "
                         f"{num_samples}, {steps_per_level}, {num_steps}")
    num_levels = num_steps // steps_per_level

    def level(i: Array, hyper: ALDHyper) -> Array:
        return ald_levels(num_levels, hyper.sigma_min, hyper.sigma_max)[jnp.minimum(i // steps_per_level,
                                                                                     num_levels - 1)]

    def init(key: Array, problem: Problem, hyper: ALDHyper, params: Any) -> SampleState:
        return start(key, num_samples, tuple(problem.op.in_shape), jnp.asarray(hyper.sigma_max, jnp.float32))

    def step(state: SampleState, problem: Problem, hyper: ALDHyper, params: Any) -> tuple[SampleState, SampleInfo]:
        den = stack_denoiser(static, tuple(problem.op.in_shape))
        s = level(state.i, hyper)
        lik = likelihood_for(problem.op, hyper.noise)

        def energy(x: Array) -> Array:
            pred = problem.op.mv(x)
            if isinstance(lik, GaussianNoise):  # ||A x - y||^2 / (2 (s_y^2 + sigma_l^2))
                return 0.5 * lik.misfit(problem.op, pred, problem.y) / (jnp.asarray(lik.sigma) ** 2 + s**2)
            return lik.energy(problem.op, pred, problem.y)

        x0 = den(params, state.x, s)
        score = (x0 - state.x) / s**2
        a = hyper.step_size * s**2
        key, k_noise = jax.random.split(state.key)
        x_half = state.x + a * hyper.lam * score + jnp.sqrt(2.0 * a) * jax.random.normal(k_noise, state.x.shape)
        if isinstance(lik, GaussianNoise) and isinstance(problem.op, LinearOperator):
            c = (jnp.asarray(lik.sigma) ** 2 + s**2) / a
            x_next = jax.vmap(lambda v: data_prox(problem.op, problem.y, v, c))(x_half)
        else:
            x_next = x_half - a * jax.vmap(jax.grad(energy))(state.x)
        return SampleState(x_next, x0, key, state.i + 1), SampleInfo(mean_data_term(problem, hyper.noise, x0))

    return Solver(init, step, *sampler_readouts())


def ald(prior: Prior, key: Array, y: Array, op: Any, *, noise: Any = ALD_HYPER.noise,
        step_size: float | Array = ALD_HYPER.step_size, lam: float | Array = ALD_HYPER.lam,
        sigma_max: float | Array = ALD_HYPER.sigma_max,
        sigma_min: float | Array = ALD_HYPER.sigma_min, num_steps: int = 200, steps_per_level: int = 2,
        num_samples: int = 4, options: RunOptions | None = None, **run_options: Any) -> Result:
    """Annealed Langevin posterior sampling (module docstring): ``num_samples`` chains per measurement,
    ``result.x`` their mean, ``result.state.x`` the samples."""
    refuse_tolerance(options, run_options, "ald")
    noise = check_diffusion(prior, op, noise, "ald", linear=False, gaussian=False)
    hyper = ALDHyper(noise, step_size, lam, sigma_max, sigma_min)
    check_hyper(hyper, "ald", positive=("step_size", "lam", "sigma_max", "sigma_min"))
    solver = ald_solver(prior, int(num_samples), int(num_steps), int(steps_per_level))
    return run(solver, key, y, op, hyper, prior.params, num_steps=int(num_steps), num_restarts=1, options=options,
               **run_options)
