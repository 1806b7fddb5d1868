"""What the Bayesian methods (MAP, VI, Langevin) share: the latent energy ``U(z)`` built on a likelihood, the
point image of a latent, and their argument checks.

    U(z) = -log p(y | G(z)) + lam * R(z) + pixel_weight * misfit(A G(z), y)

with ``-log p(y | x)`` the energy of the noise model ``noise`` (:mod:`genprior_jax.operators.noise`:
``GaussianNoise(sigma)`` gives ``||A x - y||^2 / (2 sigma^2)``, ``LogisticNoise`` the one-bit logistic loss; a one-bit
operator with Gaussian noise uses its own logistic likelihood; with model error ``tau`` the Gaussian likelihood of
:mod:`genprior_jax.likelihoods`) and ``R(z) = ||z||^2 / 2`` (or ``-log p_G(G(z))`` with ``image_prior``); ``lam``
is the latent prior's weight (1: the Bayesian posterior).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ..likelihoods import check_model_error_operator, likelihood_for
from ..operators.noise import GaussianNoise, check_noise
from ..priors.base import Prior
from .model_error import residual_mean
from .runner import Problem

Array = jax.Array


def uses_model_error(model_error: Any) -> bool:
    """The static flag: ``False`` only for the literal number 0 (any other value, traced or not, is used)."""
    return not (isinstance(model_error, (int, float)) and model_error == 0)


def latent_energy(generate: Callable[..., Array], log_prob: Callable[..., Array] | None, image_prior: bool,
                  model_error: bool = False) -> Callable[[Array, Any, Problem, Any, Any], Array]:
    """``U(z; noise)`` for one problem (``hyper`` needs ``lam``, ``pixel_weight``, ``model_error``): the
    likelihood's energy (:func:`~genprior_jax.likelihoods.likelihood_for` the operator and the noise model
    ``noise``, with tau when ``model_error`` is used) + ``lam`` times the prior term + ``pixel_weight`` times the
    likelihood's misfit (BRGM's pixel term)."""

    def energy(z: Array, noise: Any, problem: Problem, hyper: Any, params: Any) -> Array:
        x = generate(params, z)
        pred = problem.op.mv(x)
        lik = likelihood_for(problem.op, noise, hyper.model_error if model_error else None)
        data = lik.energy(problem.op, pred, problem.y)
        prior = -log_prob(params, x) if image_prior else 0.5 * jnp.sum(z**2)  # type: ignore[misc]
        return data + hyper.lam * prior + hyper.pixel_weight * lik.misfit(problem.op, pred, problem.y)

    return energy


def image_of(generate: Callable[..., Array], model_error: bool) -> Callable[[Array, Problem, Any, Any], Array]:
    """The point image of a latent: ``G(z)``, plus ``E[e | y, z]`` under the model-error model."""

    def image(z: Array, problem: Problem, hyper: Any, params: Any) -> Array:
        x = generate(params, z)
        if not model_error:
            return x
        r = problem.y - problem.op.mv(x)
        return x + residual_mean(problem.op, r, jnp.asarray(noise_sigma(hyper.noise)), hyper.model_error)

    return image


def noise_sigma(noise: Any) -> Any:
    """The Gaussian noise std of a noise model (model error and ``estimate_sigma`` need ``GaussianNoise``)."""
    if not isinstance(noise, GaussianNoise):
        raise ValueError(f"expected GaussianNoise (a noise std sigma), got {type(noise).__name__}")
    return noise.sigma


def check_inputs(prior: Prior, op: Any, noise: Any, image_prior: bool, who: str, model_error: Any = 0.0) -> Any:
    """Shared argument checks of the Bayesian methods (``ValueError`` naming ``who``); returns ``noise`` as a noise
    model (a number ``s``: ``GaussianNoise(s)``), its scale checked ``> 0``."""
    if tuple(op.in_shape) != tuple(prior.image_shape):
        raise ValueError(f"{who}: operator expects images of shape {op.in_shape}, prior {prior.name!r} "
                         f"generates {prior.image_shape}")
    noise = check_noise(noise, op, who, positive=True)
    if uses_model_error(model_error) and not isinstance(noise, GaussianNoise):
        raise ValueError(f"{who}: model_error needs GaussianNoise(sigma), got {type(noise).__name__}")
    if uses_model_error(model_error):
        check_model_error_operator(op, who)
        try:
            tau = float(model_error)
        except (TypeError, jax.errors.ConcretizationTypeError):
            tau = 0.0  # traced: nothing to check here
        if not tau >= 0:
            raise ValueError(f"{who}: expected model_error (tau) >= 0, got {tau}")
    if image_prior and prior.log_prob is None:
        raise ValueError(f"{who}: image_prior=True needs a prior with an exact log_prob (a flow)")
    return noise
