"""Bayesian reconstruction over the latent: MAP and mean-field variational inference (BRGM, Marinescu et al.).

Model: ``z ~ N(0, I)``, ``y = A G(z) + eta`` with ``eta`` from the noise model ``noise`` (the one that
:func:`~genprior_jax.operators.measure` drew ``y`` with; ``GaussianNoise(sigma)``: ``eta ~ N(0, sigma^2 I)``), so

    U(z) = -log p(z | y) + const = ||A G(z) - y||^2 / (2 sigma^2) + lam * ||z||^2 / 2
                                   + pixel_weight * ||A G(z) - y||^2

(the first term is the noise model's energy: the logistic loss for ``LogisticNoise`` one-bit data)

(``pixel_weight`` is BRGM's extra pixel-L2 term, 0 by default; with ``image_prior=True`` and a flow the prior
term is the exact image negative log-likelihood ``-log p_G(G(z))`` instead of ``||z||^2 / 2``.) With
``model_error = tau > 0`` the image is ``x = G(z) + e``, ``e ~ N(0, tau^2 I)`` marginalized out: the first term
becomes ``r^T (sigma^2 I + tau^2 A A^T)^{-1} r / 2`` and images (estimates, samples) gain the residual's
conditional mean or a draw of it (:mod:`.model_error`). All weights, the noise model's parameters and ``tau`` are
traced (the noise model's kind is static); whether ``tau`` is used at all (``model_error`` not the literal ``0``)
is static. ``lam`` (the latent prior's weight) is 1 for the Bayesian posterior.

- :func:`map_estimate`: ``argmin_z U(z)``; with ``estimate_sigma=True`` ``log sigma`` is optimized jointly
  (flat prior on ``log sigma``: ``U`` gains ``n_y log sigma``).
- :func:`variational`: ``q(z) = N(mu, diag(s^2))`` maximizing the reparametrized ELBO
  ``E_q[-U(z)] + sum(log s)`` with ``num_elbo_samples`` Monte-Carlo draws per step. The entropy enters analytically,
  so it carries its gradient (BRGM's public code computes ``-0.5 ((w - mu) / s)^2`` at ``w = mu + s eps``, which is
  ``-eps^2 / 2`` and has none). For a linear-Gaussian model the optimum is known in closed form: ``mu`` is the
  exact posterior mean and ``s_i^2 = 1 / P_ii`` with ``P`` the posterior precision (tests check both).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp

from ..operators.noise import GaussianNoise
from ..priors.base import Prior, PriorStatic, prior_static
from .checks import check_hyper, deprecated_kwargs
from .energy import check_inputs, image_of, latent_energy, noise_sigma, uses_model_error
from .optim import check_optimizer, check_schedule, make_optimizer, minimizing_solver, optimizer_step
from .options import RunOptions
from .runner import Problem, Result, Solver, run

Array = jax.Array


class BayesHyper(NamedTuple):
    noise: Any = GaussianNoise(0.1)  # the noise model (its sigma: the initial value when it is estimated)
    learning_rate: Array | float = 0.01
    lam: Array | float = 1.0  # the latent prior's weight
    pixel_weight: Array | float = 0.0
    init_std: Array | float = 1.0  # z0 ~ N(0, init_std^2 I) (MAP); mu0 likewise (VI)
    model_error: Array | float = 0.0  # tau: std of the image-space residual x - G(z) (module docstring)


MAP_HYPER = BayesHyper()
VI_HYPER = BayesHyper(init_std=0.0)  # VI starts q at mu = 0


class MapState(NamedTuple):
    z: Array
    log_sigma: Array
    opt_state: Any


def _image_log_prob(s: PriorStatic, image_prior: bool, who: str) -> Callable[..., Array] | None:
    if image_prior and s.log_prob is None:
        raise ValueError(f"{who}: image_prior=True needs a prior with an exact log_prob (a flow), got {s.name!r}")
    return s.log_prob if image_prior else None


def map_solver(prior: Prior | PriorStatic, optimizer: str = "adam", estimate_sigma: bool = False,
               image_prior: bool = False, model_error: bool = False) -> Solver:
    """The MAP :class:`Solver` for ``prior`` (``log_prob`` used when ``image_prior``). Cached on the prior's static
    part (functions and shapes, never params): same architecture and options, same (compiled) solver."""
    s = prior_static(prior, "map_solver")
    return _map_solver(s.generate, s.latent_shape, optimizer, bool(estimate_sigma), bool(image_prior),
                       _image_log_prob(s, image_prior, "map_solver"), bool(model_error))


@functools.cache
def _map_solver(generate: Callable[..., Array], latent_shape: tuple[int, ...], optimizer: str,
                estimate_sigma: bool, image_prior: bool, log_prob: Callable[..., Array] | None,
                model_error: bool) -> Solver:
    check_optimizer(optimizer)
    if estimate_sigma and model_error:
        raise ValueError("map_estimate: estimate_sigma=True with model_error is not supported (the marginal "
                         "likelihood's log-determinant is not computed); estimate tau with estimate_model_error")
    energy = latent_energy(generate, log_prob, image_prior, model_error)
    image = image_of(generate, model_error)

    def loss(v: tuple[Array, Array], problem: Problem, hyper: BayesHyper, params: Any) -> Array:
        z, log_sigma = v
        if not estimate_sigma:
            return energy(z, hyper.noise, problem, hyper, params)
        return energy(z, GaussianNoise(jnp.exp(log_sigma)), problem, hyper, params) + problem.y.size * log_sigma

    def init_v(key: Array, problem: Problem, hyper: BayesHyper, params: Any) -> tuple[Array, Array]:
        z = hyper.init_std * jax.random.normal(key, latent_shape, jnp.float32)
        sigma = noise_sigma(hyper.noise) if estimate_sigma else 1.0  # log_sigma is unused otherwise
        return z, jnp.log(jnp.asarray(sigma, jnp.float32))

    solver = minimizing_solver(loss, init_v, lambda v, params: generate(params, v[0]), optimizer,
                               lambda hyper: make_optimizer(optimizer, hyper.learning_rate), MapState)
    if not model_error:
        return solver
    return solver._replace(estimate=lambda state, problem, hyper, params: image(state.z, problem, hyper, params))


class VIState(NamedTuple):
    mu: Array
    log_s: Array
    opt_state: Any
    key: Array


def vi_solver(prior: Prior | PriorStatic, num_elbo_samples: int = 4, optimizer: str = "adam",
              image_prior: bool = False, eval_samples: int = 32, schedule: str = "constant", num_steps: int = 1,
              model_error: bool = False) -> Solver:
    """The variational :class:`Solver` for ``prior`` (``log_prob`` used when ``image_prior``). Cached on the
    prior's static part (functions and shapes, never params): same architecture and options, same solver."""
    s = prior_static(prior, "vi_solver")
    return _vi_solver(s.generate, s.latent_shape, int(num_elbo_samples), optimizer, bool(image_prior),
                      _image_log_prob(s, image_prior, "vi_solver"), int(eval_samples), schedule, int(num_steps),
                      bool(model_error))


@functools.cache
def _vi_solver(generate: Callable[..., Array], latent_shape: tuple[int, ...], num_elbo_samples: int,
               optimizer: str, image_prior: bool, log_prob: Callable[..., Array] | None, eval_samples: int,
               schedule: str, num_steps: int, model_error: bool) -> Solver:
    check_optimizer(optimizer)
    check_schedule(schedule)
    if schedule == "constant":
        num_steps = 1

    def opt_for(hyper: BayesHyper) -> Any:
        return make_optimizer(optimizer, hyper.learning_rate, schedule, num_steps)
    if optimizer == "lbfgs":
        raise ValueError("variational: the ELBO is stochastic; expected optimizer adam, sgd or rmsprop, got 'lbfgs'")
    if num_elbo_samples < 1:
        raise ValueError(f"variational: expected num_elbo_samples (K) >= 1, got {num_elbo_samples}")
    energy = latent_energy(generate, log_prob, image_prior, model_error)
    image = image_of(generate, model_error)

    def neg_elbo(v: tuple[Array, Array], key: Array, k: int, problem: Problem, hyper: BayesHyper,
                 params: Any) -> Array:
        mu, log_s = v
        eps = jax.random.normal(key, (k, *latent_shape), jnp.float32)
        z = mu + jnp.exp(log_s) * eps
        u = jax.vmap(lambda zz: energy(zz, hyper.noise, problem, hyper, params))(z)
        return jnp.mean(u) - jnp.sum(log_s)  # -ELBO up to a constant: E_q[U] - H(q)

    def init(key: Array, problem: Problem, hyper: BayesHyper, params: Any) -> VIState:
        k_mu, k_run = jax.random.split(key)
        v = (hyper.init_std * jax.random.normal(k_mu, latent_shape, jnp.float32),
             jnp.full(latent_shape, jnp.log(0.1), jnp.float32))
        return VIState(*v, opt_for(hyper).init(v), k_run)

    def step(state: VIState, problem: Problem, hyper: BayesHyper, params: Any) -> tuple[VIState, Array]:
        key, k = jax.random.split(state.key)
        v, opt_state, value = optimizer_step(optimizer, opt_for(hyper),
                                             lambda v: neg_elbo(v, k, num_elbo_samples, problem, hyper, params),
                                             (state.mu, state.log_s), state.opt_state)
        return VIState(*cast(tuple[Array, Array], v), opt_state, key), value

    def objective(state: VIState, problem: Problem, hyper: BayesHyper, params: Any) -> Array:
        return neg_elbo((state.mu, state.log_s), jax.random.fold_in(state.key, 1), eval_samples, problem, hyper,
                        params)

    def estimate(state: VIState, problem: Problem, hyper: BayesHyper, params: Any) -> Array:
        return image(state.mu, problem, hyper, params)

    return Solver(init, step, objective, estimate)


@deprecated_kwargs({"sigma": "noise", "prior_weight": "lam"}, "map_estimate")
def map_estimate(prior: Prior, key: Array, y: Array, op: Any, *, noise: Any = MAP_HYPER.noise,
                 learning_rate: float | Array = MAP_HYPER.learning_rate, lam: float | Array = MAP_HYPER.lam,
                 pixel_weight: float | Array = MAP_HYPER.pixel_weight, init_std: float | Array = MAP_HYPER.init_std,
                 num_steps: int = 1000, num_restarts: int = 4, optimizer: str = "adam", estimate_sigma: bool = False,
                 image_prior: bool = False, model_error: float | Array = 0.0, options: RunOptions | None = None,
                 **run_options: Any) -> Result:
    """MAP latent ``argmin_z U(z)``; ``result.state.z`` and (estimated) ``exp(result.state.log_sigma)``.

    ``noise``: the noise model ``y`` was measured with (``GaussianNoise(sigma)``, ``LogisticNoise(temperature)``
    for one-bit data, or a number ``sigma``); ``lam``: the latent prior's weight. ``sigma=`` and ``prior_weight=``
    are the deprecated names of ``noise`` and ``lam``. ``estimate_sigma=True`` needs ``GaussianNoise`` (its sigma
    is the starting value). ``result.x``: ``G(z*)``, plus ``E[e | y, z*]`` when ``model_error`` (tau) is used."""
    noise = check_inputs(prior, op, noise, image_prior, "map_estimate", model_error)
    if estimate_sigma and not isinstance(noise, GaussianNoise):
        raise ValueError(f"map_estimate: estimate_sigma=True needs GaussianNoise, got {type(noise).__name__}")
    solver = map_solver(prior, optimizer, estimate_sigma, image_prior, uses_model_error(model_error))
    hyper = BayesHyper(noise, learning_rate, lam, pixel_weight, init_std, model_error)
    check_hyper(hyper, "map_estimate", positive=("learning_rate",))
    return run(solver, key, y, op, hyper, prior.params, num_steps=num_steps, num_restarts=num_restarts,
               options=options, **run_options)


@deprecated_kwargs({"sigma": "noise", "prior_weight": "lam", "num_samples": "num_elbo_samples"}, "variational")
def variational(prior: Prior, key: Array, y: Array, op: Any, *, noise: Any = VI_HYPER.noise,
                num_elbo_samples: int = 4, learning_rate: float | Array = VI_HYPER.learning_rate,
                lam: float | Array = VI_HYPER.lam, pixel_weight: float | Array = VI_HYPER.pixel_weight,
                init_std: float | Array = VI_HYPER.init_std, num_steps: int = 1000, num_restarts: int = 1,
                optimizer: str = "adam", schedule: str = "constant", image_prior: bool = False,
                model_error: float | Array = 0.0, options: RunOptions | None = None, **run_options: Any) -> Result:
    """Mean-field Gaussian VI over the latent; ``result.state.mu`` / ``exp(result.state.log_s)``.

    ``noise``: the noise model (as :func:`map_estimate`); ``num_elbo_samples``: Monte-Carlo draws of the ELBO per
    step (``sigma=``, ``prior_weight=`` and ``num_samples=`` are the deprecated names of ``noise``, ``lam`` and
    ``num_elbo_samples``). Draw ``num_samples`` posterior samples with
    :func:`genprior_jax.solvers.posterior.sample_q` (pass it ``y``, ``op``, ``noise`` and ``model_error`` when tau
    is used, so the draws include the residual) or ``gp.reconstruct(..., posterior=True, num_samples=...)``."""
    noise = check_inputs(prior, op, noise, image_prior, "variational", model_error)
    if int(num_elbo_samples) < 1:
        raise ValueError(f"variational: expected num_elbo_samples (K) >= 1, got {num_elbo_samples}")
    solver = vi_solver(prior, int(num_elbo_samples), optimizer, image_prior, 32, schedule, int(num_steps),
                       uses_model_error(model_error))
    hyper = BayesHyper(noise, learning_rate, lam, pixel_weight, init_std, model_error)
    check_hyper(hyper, "variational", positive=("learning_rate",))
    return run(solver, key, y, op, hyper, prior.params, num_steps=num_steps, num_restarts=num_restarts,
               options=options, **run_options)
