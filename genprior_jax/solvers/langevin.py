"""Langevin posterior sampling over the latent (Jalal et al. 2021 style), ULA and MALA.

Target ``p(z | y) ∝ exp(-U(z))`` with ``U`` the energy of :mod:`genprior_jax.solvers.bayes`. Proposal

    z' = z - eps_t grad U(z) + sqrt(2 eps_t) xi,      eps_t = step_size * (1 + t)^(-decay)

accepted always (``ULA``) or with the Metropolis–Hastings probability (``MALA``; a non-finite proposal is
rejected). ``num_chains`` chains per measurement live inside one solver state and are vmapped; the runner
vmaps over measurements. After ``burn_in`` steps, every ``thin``-th state contributes ``G(z)`` of every chain
to running sums (posterior mean and per-pixel std) and the last ``num_keep`` such states are kept as samples.
``step_size`` and ``decay`` are traced.

Warm start (``init_steps > 0``): before sampling, ``init_steps`` Adam steps (rate ``init_lr``, traced) minimize
``U`` from ``z = 0``, and the chains start at that approximate MAP point plus ``init_std`` times standard-normal
noise. Chains started at ``z = 0`` in a high-dimensional latent (a flow's, 784-d for MNIST) otherwise spend their
whole budget near the prior mean. The warm-up steps are not counted in ``num_steps``.

Step-size adaptation (``adapt=True``, MALA only): during burn-in the step follows a Robbins-Monro recursion on
its logarithm, ``log h <- log h + (1 + t)^(-0.6) (mean_chains alpha - target_accept)`` with ``alpha`` the
Metropolis-Hastings acceptance probability, so a step that was chosen too small (acceptance ~1, chains that
barely move) or too large grows or shrinks toward ``target_accept`` (traced, 0.574 by default, the optimum for
MALA in high dimension). From the end of burn-in the step is frozen, so the kept states are those of a fixed
MALA kernel. ``state.step_size`` holds the step reached.

Model error (``model_error = tau``, traced; :mod:`.model_error`): the chains target the latent posterior with
the residual ``e`` marginalized, and every kept state contributes ``G(z) + e`` with ``e`` an exact draw of
``e | y, z``.

A diverging ULA chain makes the objective non-finite, which the runner reports per measurement as
``Status.NONFINITE``.

Written here rather than taken from blackjax: the kernel is a dozen lines, it must carry the running
summaries inside the runner's scan state, and it keeps blackjax out of the dependencies.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import optax

from ..priors.base import Prior
from .energy import check_inputs, latent_energy, uses_model_error
from .model_error import sample_residual
from .options import RunOptions
from .runner import Problem, Result, Solver, run

Array = jax.Array

KERNELS = ("ula", "mala")


class LangevinHyper(NamedTuple):
    sigma: Array | float = 0.1
    step_size: Array | float = 1e-3
    decay: Array | float = 0.0
    prior_weight: Array | float = 1.0
    pixel_weight: Array | float = 0.0
    init_std: Array | float = 1.0
    init_lr: Array | float = 0.05  # Adam rate of the warm start (init_steps > 0)
    model_error: Array | float = 0.0  # tau, the std of the image-space residual x - G(z)
    target_accept: Array | float = 0.574  # acceptance rate the burn-in adaptation aims at (adapt=True)


class LangevinState(NamedTuple):
    z: Array  # (chains, *latent)
    energy: Array  # (chains,)
    grad: Array  # (chains, *latent)
    key: Array
    t: Array
    accepted: Array  # (chains,) accepted proposals
    sum_x: Array  # sum of kept G(z)
    sum_x2: Array
    n_kept: Array
    samples: Array  # (num_keep, chains, *image_shape), a ring buffer of the last kept states
    step_size: Array  # the base step (adapted during burn-in when adapt=True)


@functools.cache
def langevin_solver(generate: Callable[..., Array], latent_shape: tuple[int, ...], image_shape: tuple[int, ...],
                    kernel: str = "mala", num_chains: int = 4, burn_in: int = 500, thin: int = 10,
                    num_keep: int = 8, image_prior: bool = False, log_prob: Callable[..., Array] | None = None,
                    init_steps: int = 0, model_error: bool = False, adapt: bool = False) -> Solver:
    if kernel not in KERNELS:
        raise ValueError(f"unknown Langevin kernel {kernel!r}; expected one of {KERNELS}")
    if adapt and kernel != "mala":
        raise ValueError(f"langevin: adapt=True tunes the step to a Metropolis acceptance rate; expected kernel "
                         f"'mala', got {kernel!r}")
    if num_chains < 1 or thin < 1 or num_keep < 1 or burn_in < 0 or init_steps < 0:
        raise ValueError(f"langevin: expected num_chains, thin, num_keep >= 1 and burn_in, init_steps >= 0, got "
                         f"{num_chains}, {thin}, {num_keep}, {burn_in}, {init_steps}")
    energy_fn = latent_energy(generate, log_prob, image_prior, model_error)

    def energy_and_grad(z: Array, problem: Problem, hyper: LangevinHyper, params: Any) -> tuple[Array, Array]:
        return jax.vmap(jax.value_and_grad(lambda zz: energy_fn(zz, jnp.asarray(hyper.sigma), problem, hyper,
                                                                params)))(z)

    def warm_start(problem: Problem, hyper: LangevinHyper, params: Any) -> Array:
        """``init_steps`` Adam steps on ``U`` from ``z = 0``: the chains' common starting point."""
        opt = optax.adam(hyper.init_lr)
        grad_u = jax.grad(lambda zz: energy_fn(zz, jnp.asarray(hyper.sigma), problem, hyper, params))

        def body(_: Any, carry: tuple[Array, Any]) -> tuple[Array, Any]:
            z, opt_state = carry
            updates, opt_state = opt.update(grad_u(z), opt_state, z)
            return cast(Array, optax.apply_updates(z, updates)), opt_state

        z0 = jnp.zeros(latent_shape, jnp.float32)
        return jax.lax.fori_loop(0, init_steps, body, (z0, opt.init(z0)))[0]

    def init(key: Array, problem: Problem, hyper: LangevinHyper, params: Any) -> LangevinState:
        k_z, k_run = jax.random.split(key)
        z = hyper.init_std * jax.random.normal(k_z, (num_chains, *latent_shape), jnp.float32)
        if init_steps:
            z = z + warm_start(problem, hyper, params)
        u, g = energy_and_grad(z, problem, hyper, params)
        zeros = jnp.zeros(image_shape, jnp.float32)
        return LangevinState(z, u, g, k_run, jnp.int32(0), jnp.zeros(num_chains), zeros, zeros, jnp.float32(0),
                             jnp.zeros((num_keep, num_chains, *image_shape), jnp.float32),
                             jnp.asarray(hyper.step_size, jnp.float32))

    def step(state: LangevinState, problem: Problem, hyper: LangevinHyper, params: Any) -> tuple[LangevinState, Array]:
        key, k_noise, k_acc = jax.random.split(state.key, 3)
        eps = state.step_size * (1.0 + state.t.astype(jnp.float32)) ** (-hyper.decay)
        noise = jax.random.normal(k_noise, state.z.shape)
        prop = state.z - eps * state.grad + jnp.sqrt(2 * eps) * noise
        u_new, g_new = energy_and_grad(prop, problem, hyper, params)
        if kernel == "ula":
            accept = jnp.ones(num_chains, bool)
        else:
            axes = tuple(range(1, state.z.ndim))

            def log_q(to: Array, frm: Array, g_frm: Array) -> Array:
                return -jnp.sum((to - frm + eps * g_frm) ** 2, axis=axes) / (4 * eps)

            log_alpha = -u_new + state.energy + log_q(state.z, prop, g_new) - log_q(prop, state.z, state.grad)
            log_alpha = jnp.where(jnp.isfinite(log_alpha), log_alpha, -jnp.inf)
            accept = jnp.log(jax.random.uniform(k_acc, (num_chains,))) < log_alpha
        step_size = state.step_size
        if adapt:  # Robbins-Monro on log h during burn-in, frozen afterwards
            alpha = jnp.mean(jnp.exp(jnp.minimum(log_alpha, 0.0)))
            rate = (1.0 + state.t.astype(jnp.float32)) ** -0.6
            step_size = jnp.where(state.t < burn_in, step_size * jnp.exp(rate * (alpha - hyper.target_accept)),
                                  step_size)
        sel = lambda a, b: jnp.where(accept.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)  # noqa: E731
        z, u, g = sel(prop, state.z), jnp.where(accept, u_new, state.energy), sel(g_new, state.grad)
        t = state.t + 1
        keep = (t > burn_in) & ((t - burn_in) % thin == 0)
        x = jax.vmap(generate, (None, 0))(params, z)
        if model_error:  # each chain's image gains a draw of the residual e | y, z
            key, k_res = jax.random.split(key)
            r = problem.y - jax.vmap(problem.op.mv)(x)
            x = x + jax.vmap(lambda k, rr: sample_residual(k, problem.op, rr, jnp.asarray(hyper.sigma),
                                                           hyper.model_error))(jax.random.split(k_res, num_chains), r)
        sum_x = state.sum_x + jnp.where(keep, jnp.sum(x, 0), 0.0)
        sum_x2 = state.sum_x2 + jnp.where(keep, jnp.sum(x**2, 0), 0.0)
        n_kept = state.n_kept + jnp.where(keep, num_chains, 0)
        slot = ((t - burn_in) // thin) % num_keep
        samples = jnp.where(keep, state.samples.at[slot].set(x), state.samples)
        new = LangevinState(z, u, g, key, t, state.accepted + accept, sum_x, sum_x2, n_kept, samples, step_size)
        return new, jnp.mean(u)

    def objective(state: LangevinState, problem: Problem, hyper: LangevinHyper, params: Any) -> Array:
        return jnp.mean(state.energy)

    def estimate(state: LangevinState, problem: Problem, hyper: LangevinHyper, params: Any) -> Array:
        return state.sum_x / jnp.maximum(state.n_kept, 1.0)

    return Solver(init, step, objective, estimate)


def langevin(prior: Prior, key: Array, y: Array, op: Any, *, sigma: float | Array = 0.1,
             step_size: float | Array = 2e-4, decay: float | Array = 0.0, kernel: str = "mala",
             num_steps: int = 2000, num_chains: int = 4, burn_in: int | None = None, thin: int | None = None,
             num_keep: int = 8, prior_weight: float | Array = 1.0, pixel_weight: float | Array = 0.0,
             init_std: float | Array = 0.0,
             image_prior: bool = False, init_steps: int = 0, init_lr: float | Array = 0.05,
             model_error: float | Array = 0.0, adapt: bool = False, target_accept: float | Array = 0.574,
             options: RunOptions | None = None, **run_options: Any) -> Result:
    """Run ``num_chains`` Langevin chains per measurement. ``result.x`` is the posterior mean; see
    :func:`genprior_jax.solvers.posterior.langevin_summary` for the std, samples and acceptance rates.
    ``init_steps > 0`` starts the chains from an approximate MAP point (module docstring; ``init_lr`` traced).
    ``model_error`` (tau > 0): the image-space residual model of :mod:`.model_error`. ``adapt=True`` (MALA):
    the step is tuned during burn-in toward ``target_accept`` (traced); ``result.state.step_size`` is the step
    reached. ``burn_in`` defaults to half of ``num_steps`` and ``thin`` to a 50th of the steps after it, so
    changing ``num_steps`` alone keeps a valid schedule; the defaults (step 2e-4, chains from ``z = 0``) are the one
    recommended setting, used by :func:`~genprior_jax.solvers.posterior.reconstruct` and the CLI."""
    if burn_in is None:
        burn_in = int(num_steps) // 2
    if thin is None:
        thin = max((int(num_steps) - int(burn_in)) // 50, 1)
    check_inputs(prior, op, sigma, image_prior, "langevin", model_error)
    if int(num_steps) <= int(burn_in):
        raise ValueError(f"langevin: expected num_steps > burn_in, got {num_steps} <= {burn_in}")
    if isinstance(target_accept, (int, float)) and not 0 < target_accept < 1:
        raise ValueError(f"langevin: expected 0 < target_accept < 1, got {target_accept}")
    if adapt and int(burn_in) < 1:
        raise ValueError("langevin: adapt=True tunes the step during burn-in; expected burn_in >= 1, got 0")
    solver = langevin_solver(prior.generate, tuple(prior.latent_shape), tuple(prior.image_shape), kernel,
                             int(num_chains), int(burn_in), int(thin), int(num_keep), image_prior,
                             prior.log_prob if image_prior else None, int(init_steps), uses_model_error(model_error),
                             bool(adapt))
    hyper = LangevinHyper(sigma, step_size, decay, prior_weight, pixel_weight, init_std, init_lr, model_error,
                          target_accept)
    return run(solver, key, y, op, hyper, prior.params, num_steps=num_steps, num_restarts=1, options=options,
               **run_options)
