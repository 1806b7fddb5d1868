"""Likelihoods ``p(y | x)``: the data term of every solver, in one place.

A likelihood is a NamedTuple of (traced) noise parameters with two pure methods on one measurement:

- ``misfit(op, pred, y)``: the data-fidelity term the *optimization* methods minimise (CSGM, analysis, DIP):
  ``||pred - y||^2`` for Gaussian noise, the logistic loss for one-bit data;
- ``energy(op, pred, y)``: ``-log p(y | x) + const``, what the *Bayesian* methods use (MAP, VI, Langevin):
  ``||pred - y||^2 / (2 sigma^2)``, the logistic loss itself, or ``r^T C^{-1} r / 2`` with model error.

``pred = op(x)`` is the operator's prediction (before ``op.observe``). The first two kinds are the noise models of
:mod:`genprior_jax.operators.noise` (which also sample the noise, for :func:`~genprior_jax.operators.measure`):

- :class:`GaussianNoise` ``(sigma)`` (alias ``Gaussian``): ``y = A x + eta``, ``eta ~ N(0, sigma^2 I)``.
- :class:`LogisticNoise` ``(temperature)`` (alias ``Logistic``): one-bit data ``y in {-1, +1}`` with a logistic
  quantiser, ``-log p(y | x) = sum softplus(-y * A x / temperature)`` (no ``sigma``: the temperature is the noise
  scale).
- :class:`GaussianModelError` ``(sigma, tau)``: ``x = G(z) + e``, ``e ~ N(0, tau^2 I)`` marginalized:
  ``y | z ~ N(A G(z), C)``, ``C = sigma^2 I + tau^2 A A^T`` applied by conjugate gradients (linear ``A`` only).

:func:`likelihood_for` picks the kind an operator's measurement model implies (:data:`BY_OPERATOR` maps operator
types with a non-Gaussian channel to their likelihood; register your own there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from .operators.base import LinearOperator, Operator, _check_same_shape
from .operators.noise import GaussianNoise, LogisticNoise, as_noise
from .operators.nonlinear import OneBit

Array = jax.Array

CG_MAXITER = 100
CG_TOL = 1e-6


class Likelihood(Protocol):
    def misfit(self, op: Operator, pred: Array, y: Array) -> Array: ...

    def energy(self, op: Operator, pred: Array, y: Array) -> Array: ...


# the Gaussian and one-bit kinds are the noise models themselves (one object samples and gives the likelihood)
Gaussian = GaussianNoise
Logistic = LogisticNoise


def apply_cov(op: LinearOperator, v: Array, sigma: Array | float, tau: Array | float) -> Array:
    """``C v = sigma^2 v + tau^2 A A^T v`` for one measurement-shaped ``v``."""
    return sigma**2 * v + tau**2 * op.mv(op.rmv(v))


def solve_cov(op: LinearOperator, v: Array, sigma: Array | float, tau: Array | float) -> Array:
    """``C^{-1} v`` by conjugate gradients (differentiable in ``v``; ``C`` is symmetric positive definite)."""
    sol, _ = jax.scipy.sparse.linalg.cg(lambda u: apply_cov(op, u, sigma, tau), v, tol=CG_TOL, maxiter=CG_MAXITER)
    return sol


class GaussianModelError(NamedTuple):
    """Gaussian noise ``sigma`` plus an image-space residual ``e ~ N(0, tau^2 I)`` marginalized out."""

    sigma: Array | float = 1.0
    tau: Array | float = 0.0

    def misfit(self, op: Operator, pred: Array, y: Array) -> Array:
        """``||pred - y||^2`` (the unweighted data term, as :class:`Gaussian`)."""
        return Gaussian(self.sigma).misfit(op, pred, y)

    def energy(self, op: Operator, pred: Array, y: Array) -> Array:
        """``r^T C^{-1} r / 2`` with ``r = y - pred``."""
        _check_same_shape(pred, y, "GaussianModelError.energy")
        r = y - pred
        return 0.5 * jnp.sum(r * solve_cov(op, r, self.sigma, self.tau))  # type: ignore[arg-type]


# operator types whose measurement channel is not additive Gaussian -> their likelihood
BY_OPERATOR: dict[type, Callable[[Any], Likelihood]] = {
    OneBit: lambda op: Logistic(op.temperature),
}


def likelihood_for(op: Operator, noise: Any = 1.0, tau: Array | float | None = None) -> Likelihood:
    """The likelihood of ``op``'s measurement model under the noise model ``noise`` (a number: the std of
    :class:`GaussianNoise`), with model error ``tau`` when given.

    A Gaussian ``noise`` on an operator of :data:`BY_OPERATOR` (one-bit) gives that operator's own likelihood
    (:class:`Logistic` of its temperature); any other noise model is its own likelihood."""
    if not isinstance(op, Operator):
        raise ValueError(f"expected a genprior_jax Operator, got {type(op).__name__}")
    noise = as_noise(noise, "likelihood_for")
    special = BY_OPERATOR.get(type(op))
    if tau is not None:
        check_model_error_operator(op, "likelihood_for")
        if not isinstance(noise, GaussianNoise):
            raise ValueError(f"likelihood_for: model_error needs GaussianNoise, got {type(noise).__name__}")
        return GaussianModelError(noise.sigma, tau)
    return special(op) if special is not None and isinstance(noise, GaussianNoise) else noise


def check_model_error_operator(op: Any, who: str) -> None:
    """``ValueError`` unless ``op`` is linear with the Gaussian likelihood (model error needs both)."""
    if not isinstance(op, LinearOperator):
        raise ValueError(f"{who}: model_error needs a linear operator (with an adjoint), got {type(op).__name__}")
    if type(op) in BY_OPERATOR:
        raise ValueError(f"{who}: model_error needs the Gaussian data term ||A x - y||^2; {type(op).__name__} "
                         "has its own likelihood")


def misfit(op: Operator, pred: Array, y: Array) -> Array:
    """The data-fidelity term of ``op``'s measurement model: ``likelihood_for(op).misfit(op, pred, y)``."""
    return likelihood_for(op).misfit(op, pred, y)


__all__ = ["BY_OPERATOR", "Gaussian", "GaussianModelError", "GaussianNoise", "Likelihood", "Logistic", "LogisticNoise",
           "apply_cov",
           "check_model_error_operator", "likelihood_for", "misfit", "solve_cov"]
