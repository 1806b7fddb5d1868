"""Langevin posterior sampling over the latent (Jalal et al. 2021 style), ULA and MALA.

Target ``p(z | y) ∝ exp(-U(z))`` with ``U`` the energy of :mod:`genprior_jax.solvers.bayes`. Proposal

    z' = z - eps_t grad U(z) + sqrt(2 eps_t) xi,      eps_t = step_size * (1 + t)^(-decay)

accepted always (``ULA``) or with the Metropolis–Hastings probability (``MALA``; a non-finite proposal is
rejected). The move is :func:`langevin_kernel`, a pure function of the chains. ``num_chains`` chains per
measurement live inside one solver state and are vmapped; the runner vmaps over measurements.

Phases: the solver's ``init`` draws the chains and runs the ``burn_in`` warm-up moves (the step adapted there when
``adapt``); each of the runner's ``num_steps - burn_in`` steps is one move of the frozen kernel, whose ``info`` is
:class:`LangevinInfo` (mean energy, acceptance probability); every ``thin``-th state contributes ``G(z)`` of every
chain to the streaming moments (:mod:`.streaming`: posterior mean, per-pixel std, and the last
``num_samples / num_chains`` states of each chain kept as the ``num_samples`` posterior samples). ``step_size`` and
``decay`` are traced.

Warm start (``init_steps > 0``): before sampling, ``init_steps`` Adam steps (rate ``init_learning_rate``, traced)
minimize
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
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import optax

from ..operators.noise import GaussianNoise
from ..priors.base import Prior, PriorStatic, prior_static
from . import streaming
from .checks import check_hyper, deprecated_kwargs
from .energy import check_inputs, latent_energy, noise_sigma, uses_model_error
from .model_error import sample_residual
from .options import RunOptions, resolve_options, tol_of
from .runner import Problem, Result, Solver, run

Array = jax.Array

KERNELS = ("ula", "mala")


class LangevinHyper(NamedTuple):
    noise: Any = GaussianNoise(0.1)  # the noise model of the likelihood
    step_size: Array | float = 2e-4
    decay: Array | float = 0.0
    lam: Array | float = 1.0  # the latent prior's weight
    pixel_weight: Array | float = 0.0
    init_std: Array | float = 0.0  # chains start at z = 0 (or the warm start) plus this much noise
    init_learning_rate: Array | float = 0.05  # Adam rate of the warm start (init_steps > 0)
    model_error: Array | float = 0.0  # tau, the std of the image-space residual x - G(z)
    target_accept: Array | float = 0.574  # acceptance rate the burn-in adaptation aims at (adapt=True)


LANGEVIN_HYPER = LangevinHyper()


class LangevinState(NamedTuple):
    z: Array  # (chains, *latent)
    energy: Array  # (chains,)
    grad: Array  # (chains, *latent)
    key: Array
    t: Array  # steps done, burn-in included
    accepted: Array  # (chains,) accepted proposals, burn-in included
    step_size: Array  # the base step (adapted during burn-in when adapt=True, then frozen)
    moments: streaming.Moments  # running sums and the ring buffer of kept images


class LangevinInfo(NamedTuple):
    loss: Array  # mean energy over the chains before the step
    acceptance: Array  # mean Metropolis-Hastings acceptance probability of the step (1 for ULA)


def langevin_kernel(energy_and_grad: Callable[[Array], tuple[Array, Array]], kernel: str) -> Callable[..., Any]:
    """One ULA / MALA move of a batch of chains: ``move(z, u, g, key, eps) -> (z, u, g, accept, alpha)`` with
    ``u``, ``g`` the energies and gradients at ``z`` (kept from the previous move) and ``alpha`` the acceptance
    probabilities; a non-finite proposal is rejected (MALA)."""

    def move(z: Array, u: Array, g: Array, key: Array, eps: Array) -> tuple[Array, ...]:
        k_noise, k_acc = jax.random.split(key)
        prop = z - eps * g + jnp.sqrt(2 * eps) * jax.random.normal(k_noise, z.shape)
        u_new, g_new = energy_and_grad(prop)
        if kernel == "ula":
            accept, alpha = jnp.ones(z.shape[0], bool), jnp.ones(z.shape[0])
        else:
            axes = tuple(range(1, z.ndim))

            def log_q(to: Array, frm: Array, g_frm: Array) -> Array:
                return -jnp.sum((to - frm + eps * g_frm) ** 2, axis=axes) / (4 * eps)

            log_alpha = -u_new + u + log_q(z, prop, g_new) - log_q(prop, z, g)
            log_alpha = jnp.where(jnp.isfinite(log_alpha), log_alpha, -jnp.inf)
            accept = jnp.log(jax.random.uniform(k_acc, (z.shape[0],))) < log_alpha
            alpha = jnp.exp(jnp.minimum(log_alpha, 0.0))
        sel = lambda a, b: jnp.where(accept.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)  # noqa: E731
        return sel(prop, z), jnp.where(accept, u_new, u), sel(g_new, g), accept, alpha

    return move


def langevin_solver(prior: Prior | PriorStatic, kernel: str = "mala", num_chains: int = 4, burn_in: int = 500,
                    thin: int = 10, num_keep: int = 8, image_prior: bool = False, init_steps: int = 0,
                    model_error: bool = False, adapt: bool = False) -> Solver:
    """The sampling :class:`Solver` for ``prior`` (``log_prob`` used when ``image_prior``): ``init`` draws the
    chains (warm start if ``init_steps``) and runs the ``burn_in`` warm-up moves (adapting the step when
    ``adapt``); each runner ``step`` is one move of the frozen kernel, every ``thin``-th of which is added to the
    streaming moments (:mod:`.streaming`). Cached on the prior's static part (functions and shapes, never params)."""
    s = prior_static(prior, "langevin_solver")
    if image_prior and s.log_prob is None:
        raise ValueError(f"langevin_solver: image_prior=True needs a prior with an exact log_prob (a flow), got "
                         f"{s.name!r}")
    return _langevin_solver(s.generate, s.latent_shape, s.image_shape, kernel, int(num_chains), int(burn_in),
                            int(thin), int(num_keep), bool(image_prior), s.log_prob if image_prior else None,
                            int(init_steps), bool(model_error), bool(adapt))


@functools.cache
def _langevin_solver(generate: Callable[..., Array], latent_shape: tuple[int, ...], image_shape: tuple[int, ...],
                     kernel: str, num_chains: int, burn_in: int, thin: int, num_keep: int, image_prior: bool,
                     log_prob: Callable[..., Array] | None, init_steps: int, model_error: bool,
                     adapt: bool) -> Solver:
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
        return jax.vmap(jax.value_and_grad(lambda zz: energy_fn(zz, hyper.noise, problem, hyper, params)))(z)

    def mover(problem: Problem, hyper: LangevinHyper, params: Any) -> Callable[..., Any]:
        return langevin_kernel(lambda z: energy_and_grad(z, problem, hyper, params), kernel)

    def step_length(state: LangevinState, hyper: LangevinHyper) -> Array:
        return state.step_size * (1.0 + state.t.astype(jnp.float32)) ** (-hyper.decay)

    def warm_start(problem: Problem, hyper: LangevinHyper, params: Any) -> Array:
        """``init_steps`` Adam steps on ``U`` from ``z = 0``: the chains' common starting point."""
        opt = optax.adam(hyper.init_learning_rate)
        grad_u = jax.grad(lambda zz: energy_fn(zz, hyper.noise, problem, hyper, params))

        def body(_: Any, carry: tuple[Array, Any]) -> tuple[Array, Any]:
            z, opt_state = carry
            updates, opt_state = opt.update(grad_u(z), opt_state, z)
            return cast(Array, optax.apply_updates(z, updates)), opt_state

        z0 = jnp.zeros(latent_shape, jnp.float32)
        return jax.lax.fori_loop(0, init_steps, body, (z0, opt.init(z0)))[0]

    def warm_up(state: LangevinState, problem: Problem, hyper: LangevinHyper, params: Any) -> LangevinState:
        """The burn-in: ``burn_in`` moves, the step adapted by Robbins-Monro on ``log h`` toward
        ``target_accept`` when ``adapt``; nothing is kept."""
        move = mover(problem, hyper, params)

        def body(_: Any, st: LangevinState) -> LangevinState:
            key, k = jax.random.split(st.key)
            z, u, g, accept, alpha = move(st.z, st.energy, st.grad, k, step_length(st, hyper))
            step_size = st.step_size
            if adapt:
                rate = (1.0 + st.t.astype(jnp.float32)) ** -0.6
                step_size = step_size * jnp.exp(rate * (jnp.mean(alpha) - hyper.target_accept))
            return st._replace(z=z, energy=u, grad=g, key=key, t=st.t + 1, accepted=st.accepted + accept,
                               step_size=step_size)

        return jax.lax.fori_loop(0, burn_in, body, state)

    def init(key: Array, problem: Problem, hyper: LangevinHyper, params: Any) -> LangevinState:
        k_z, k_run = jax.random.split(key)
        z = hyper.init_std * jax.random.normal(k_z, (num_chains, *latent_shape), jnp.float32)
        if init_steps:
            z = z + warm_start(problem, hyper, params)
        u, g = energy_and_grad(z, problem, hyper, params)
        state = LangevinState(z, u, g, k_run, jnp.int32(0), jnp.zeros(num_chains),
                              jnp.asarray(hyper.step_size, jnp.float32),
                              streaming.init(num_keep, num_chains, image_shape))
        return warm_up(state, problem, hyper, params) if burn_in else state

    def images(key: Array, z: Array, problem: Problem, hyper: LangevinHyper, params: Any) -> Array:
        """``G(z)`` of every chain; with model error plus an exact draw of ``e | y, z``."""
        x = jax.vmap(generate, (None, 0))(params, z)
        if model_error:
            r = problem.y - jax.vmap(problem.op.mv)(x)
            sigma = jnp.asarray(noise_sigma(hyper.noise))
            x = x + jax.vmap(lambda k, rr: sample_residual(k, problem.op, rr, sigma,
                                                           hyper.model_error))(jax.random.split(key, num_chains), r)
        return x

    def step(state: LangevinState, problem: Problem, hyper: LangevinHyper,
             params: Any) -> tuple[LangevinState, LangevinInfo]:
        key, k_move, k_res = jax.random.split(state.key, 3)
        z, u, g, accept, alpha = mover(problem, hyper, params)(state.z, state.energy, state.grad, k_move,
                                                               step_length(state, hyper))
        t = state.t + 1
        keep = (t - burn_in) % thin == 0
        moments = streaming.update(state.moments, images(k_res, z, problem, hyper, params), keep)
        new = LangevinState(z, u, g, key, t, state.accepted + accept, state.step_size, moments)
        return new, LangevinInfo(jnp.mean(state.energy), jnp.mean(alpha))

    def objective(state: LangevinState, problem: Problem, hyper: LangevinHyper, params: Any) -> Array:
        return jnp.mean(state.energy)

    def estimate(state: LangevinState, problem: Problem, hyper: LangevinHyper, params: Any) -> Array:
        return streaming.mean_std(state.moments)[0]

    return Solver(init, step, objective, estimate)


def langevin_schedule(num_steps: int, burn_in: int | None = None, thin: int | None = None) -> tuple[int, int]:
    """``(burn_in, thin)`` of a run of ``num_steps``: ``burn_in`` defaults to ``num_steps // 2`` and ``thin`` to a
    50th of the steps after it (at least 1), so changing ``num_steps`` alone keeps a valid schedule. The registry
    reports these defaults (:func:`~genprior_jax.solvers.registry.defaults`)."""
    burn_in = int(num_steps) // 2 if burn_in is None else burn_in
    return burn_in, max((int(num_steps) - int(burn_in)) // 50, 1) if thin is None else thin


@deprecated_kwargs({"sigma": "noise", "prior_weight": "lam", "init_lr": "init_learning_rate"}, "langevin")
def langevin(prior: Prior, key: Array, y: Array, op: Any, *, noise: Any = LANGEVIN_HYPER.noise,
             step_size: float | Array = LANGEVIN_HYPER.step_size, decay: float | Array = LANGEVIN_HYPER.decay,
             kernel: str = "mala", num_steps: int = 2000, num_chains: int = 4, burn_in: int | None = None,
             thin: int | None = None, num_samples: int | None = None, lam: float | Array = LANGEVIN_HYPER.lam,
             pixel_weight: float | Array = LANGEVIN_HYPER.pixel_weight,
             init_std: float | Array = LANGEVIN_HYPER.init_std, image_prior: bool = False, init_steps: int = 0,
             init_learning_rate: float | Array = LANGEVIN_HYPER.init_learning_rate,
             model_error: float | Array = 0.0, adapt: bool = False,
             target_accept: float | Array = LANGEVIN_HYPER.target_accept,
             options: RunOptions | None = None, **run_options: Any) -> Result:
    """Run ``num_chains`` Langevin chains per measurement. ``result.x`` is the posterior mean; see
    :func:`genprior_jax.solvers.posterior.langevin_summary` for the std, samples and acceptance rates.
    ``noise``: the noise model ``y`` was measured with (as :func:`~genprior_jax.solvers.bayes.map_estimate`);
    ``lam``: the latent prior's weight. ``num_samples``: the posterior samples kept, the last
    ``num_samples / num_chains`` thinned states of each chain (a multiple of ``num_chains``; default 8 per chain,
    ``8 * num_chains``). Deprecated names:
    ``sigma`` (``noise``), ``prior_weight`` (``lam``), ``init_lr`` (``init_learning_rate``), ``num_keep`` (per
    chain: ``num_samples = num_keep * num_chains``).
    ``init_steps > 0`` starts the chains from an approximate MAP point (module docstring; ``init_learning_rate``
    traced). ``model_error`` (tau > 0): the image-space residual model of :mod:`.model_error`. ``adapt=True`` (MALA):
    the step is tuned during burn-in toward ``target_accept`` (traced); ``result.state.step_size`` is the step
    reached. ``burn_in`` defaults to half of ``num_steps`` and ``thin`` to a 50th of the steps after it, so
    changing ``num_steps`` alone keeps a valid schedule; the defaults (step 2e-4, chains from ``z = 0``) are the one
    recommended setting, used by :func:`~genprior_jax.solvers.posterior.reconstruct` and the CLI."""
    if "num_keep" in run_options:  # deprecated: kept states per chain
        warnings.warn("langevin: 'num_keep' is deprecated and will be removed in the next release; use "
                      "'num_samples' (all chains: num_samples = num_keep * num_chains)", DeprecationWarning,
                      stacklevel=3)
        num_samples = int(run_options.pop("num_keep")) * int(num_chains)
    if num_samples is None:
        num_samples = 8 * int(num_chains)
    if int(num_chains) < 1 or int(num_samples) < 1 or int(num_samples) % int(num_chains):
        raise ValueError(f"langevin: expected num_chains >= 1 and num_samples a positive multiple of num_chains "
                         f"(the last num_samples / num_chains states of each chain), got num_samples={num_samples}, "
                         f"num_chains={num_chains}")
    if tol_of(resolve_options(options, run_options, "langevin")) is not None:
        raise ValueError("langevin: a sampler has no objective to settle; expected tol=None (it runs num_steps)")
    burn_in, thin = langevin_schedule(num_steps, burn_in, thin)
    noise = check_inputs(prior, op, noise, image_prior, "langevin", model_error)
    if int(num_steps) <= int(burn_in):
        raise ValueError(f"langevin: expected num_steps > burn_in, got {num_steps} <= {burn_in}")
    if isinstance(target_accept, (int, float)) and not 0 < target_accept < 1:
        raise ValueError(f"langevin: expected 0 < target_accept < 1, got {target_accept}")
    if adapt and int(burn_in) < 1:
        raise ValueError("langevin: adapt=True tunes the step during burn-in; expected burn_in >= 1, got 0")
    solver = langevin_solver(prior, kernel, int(num_chains), int(burn_in), int(thin),
                             int(num_samples) // int(num_chains), image_prior, int(init_steps),
                             uses_model_error(model_error), bool(adapt))
    hyper = LangevinHyper(noise, step_size, decay, lam, pixel_weight, init_std, init_learning_rate, model_error,
                          target_accept)
    check_hyper(hyper, "langevin", positive=("step_size", "init_learning_rate", "target_accept"))
    # the burn-in runs inside init (the warm-up phase); the runner's steps are the sampling moves
    return run(solver, key, y, op, hyper, prior.params, num_steps=int(num_steps) - int(burn_in), num_restarts=1,
               options=options, **run_options)
