"""Likelihoods: each kind's energy and misfit against direct formulas, the kind each operator implies, and the
Bayesian energy built on them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genprior_jax.likelihoods import Gaussian, GaussianModelError, Logistic, likelihood_for, misfit
from genprior_jax.operators import GaussianCS, OneBit, PhaseRetrieval, RandomMask, SubsampledFourier
from genprior_jax.solvers.energy import latent_energy
from genprior_jax.solvers.runner import Problem

SHAPE = (4, 4, 1)


def test_gaussian_energy_is_scaled_misfit(key):
    op = GaussianCS(key, SHAPE, 10)
    pred, y = jax.random.normal(key, (10,)), jax.random.normal(jax.random.key(1), (10,))
    sq = float(np.sum((np.asarray(pred) - np.asarray(y)) ** 2))
    lik = likelihood_for(op, 0.3)
    assert isinstance(lik, Gaussian)
    np.testing.assert_allclose(float(lik.misfit(op, pred, y)), sq, rtol=1e-6)
    np.testing.assert_allclose(float(lik.energy(op, pred, y)), sq / (2 * 0.3**2), rtol=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        lik.misfit(op, pred, y[:3])


def test_one_bit_has_the_logistic_likelihood_without_sigma(key):
    op = OneBit(GaussianCS(key, SHAPE, 12), temperature=0.2)
    pred = jax.random.normal(key, (12,))
    y = jnp.where(jax.random.normal(jax.random.key(3), (12,)) > 0, 1.0, -1.0)
    ref = np.logaddexp(0.0, -np.asarray(y) * np.asarray(pred) / 0.2).sum()
    for sigma in (0.01, 1.0):  # the noise level does not rescale a logistic likelihood
        lik = likelihood_for(op, sigma)
        assert isinstance(lik, Logistic)
        np.testing.assert_allclose(float(lik.energy(op, pred, y)), ref, rtol=1e-5)
    np.testing.assert_allclose(float(misfit(op, pred, y)), ref, rtol=1e-5)


def test_model_error_energy_against_a_dense_solve(key):
    op = RandomMask(key, SHAPE, 0.5)
    r = jax.random.normal(key, op.out_shape)
    A = np.asarray(jax.vmap(op.mv)(jnp.eye(16).reshape(16, *SHAPE)).reshape(16, -1)).T  # (m, n)
    sigma, tau = 0.1, 0.3
    C = sigma**2 * np.eye(A.shape[0]) + tau**2 * A @ A.T
    rv = np.asarray(r).ravel()
    lik = likelihood_for(op, sigma, tau)
    assert isinstance(lik, GaussianModelError)
    np.testing.assert_allclose(float(lik.energy(op, jnp.zeros_like(r), r)), 0.5 * rv @ np.linalg.solve(C, rv),
                               rtol=1e-4)
    tau0 = GaussianModelError(sigma, 0.0).energy(op, jnp.zeros_like(r), r)  # tau = 0: the plain Gaussian
    np.testing.assert_allclose(float(tau0), float(Gaussian(sigma).energy(op, jnp.zeros_like(r), r)), rtol=1e-5)


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda key: likelihood_for(PhaseRetrieval(SubsampledFourier.random(key, SHAPE, 0.5)), 0.1, 0.2),
                 "needs a linear operator", id="phase-retrieval"),
    pytest.param(lambda key: likelihood_for(OneBit(GaussianCS(key, SHAPE, 5)), 0.1, 0.2), "needs a linear operator",
                 id="one-bit"),
    pytest.param(lambda key: likelihood_for(np.eye(3), 0.1),  # type: ignore[arg-type]
                 "expected a genprior_jax Operator", id="matrix-not-operator"),
])
def test_model_error_needs_a_linear_gaussian_operator(key, call, match):
    with pytest.raises(ValueError, match=match):
        call(key)


def test_a_linear_operator_with_its_own_likelihood_takes_no_model_error(key, monkeypatch):
    import genprior_jax.likelihoods as L

    # a linear operator registered with a likelihood of its own (here: logistic) cannot take model error either
    monkeypatch.setitem(L.BY_OPERATOR, RandomMask, lambda op: Logistic(1.0))
    mask = RandomMask(key, SHAPE, 0.5)
    assert isinstance(likelihood_for(mask, 0.1), Logistic)
    with pytest.raises(ValueError, match="has its own likelihood"):
        likelihood_for(mask, 0.1, 0.2)


def test_latent_energy_uses_the_operator_likelihood(key):
    """U(z) = likelihood energy + prior term + pixel term, for a Gaussian and a one-bit operator."""
    W = jax.random.normal(key, (16, 3)) * 0.3

    def generate(params, z):
        return (params @ z).reshape(SHAPE)

    class H:
        lam, pixel_weight, model_error = 1.0, 0.5, 0.0

    z = jnp.array([0.3, -0.2, 0.5])
    for op in (GaussianCS(key, SHAPE, 8), OneBit(GaussianCS(key, SHAPE, 8))):
        y = jnp.sign(jax.random.normal(jax.random.key(5), (8,)))
        u = latent_energy(generate, None, False)(z, jnp.float32(0.2), Problem(y, op), H(), W)
        pred = op.mv(generate(W, z))
        lik = likelihood_for(op, 0.2)
        expect = lik.energy(op, pred, y) + 0.5 * jnp.sum(z**2) + 0.5 * lik.misfit(op, pred, y)
        np.testing.assert_allclose(float(u), float(expect), rtol=1e-6)
