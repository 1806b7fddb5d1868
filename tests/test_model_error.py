"""The model-error (image-space residual) model: exact on a linear-Gaussian model, tau recovered, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import linear_generate  # G(z) = W z + b on 4x4x1 images, shared

import genprior_jax as gp
from genprior_jax.operators import BoxMask, Downsample, GaussianCS, GaussianNoise, OneBit, RandomMask, measure
from genprior_jax.priors import Prior
from genprior_jax.solvers import (
    Status,
    estimate_model_error,
    langevin,
    langevin_summary,
    map_estimate,
    reconstruct,
    sample_q,
    variational,
)
from genprior_jax.solvers.model_error import data_energy, residual_mean, sample_residual
from genprior_jax.solvers.runner import trace_count

SHAPE = (4, 4, 1)
D = 3
SIGMA = 0.3
TAU = 0.25


def dense(op):
    n = int(np.prod(op.in_shape))
    cols = jax.vmap(lambda e: op.mv(e.reshape(op.in_shape)).reshape(-1))(jnp.eye(n))
    return np.asarray(cols, np.float64).T  # (m, n)


@pytest.fixture(scope="module")
def model():
    """z ~ N(0, I_3), x = W z + b + e, e ~ N(0, TAU^2 I_16), y = A x + eta: every posterior in closed form."""
    kw, kb, ka, kz, ke, kn = jax.random.split(jax.random.key(0), 6)
    params = {"W": jax.random.normal(kw, (16, D)) / 3.0, "b": 0.5 + 0.1 * jax.random.normal(kb, (16,))}
    prior = Prior("linear", (D,), SHAPE, linear_generate, params)
    op = GaussianCS(ka, SHAPE, 10)
    x = linear_generate(params, jax.random.normal(kz, (D,))) + TAU * jax.random.normal(ke, SHAPE)
    y = measure(kn, op, x, SIGMA)
    A, (W, b) = dense(op), (np.asarray(params[k], np.float64) for k in ("W", "b"))
    yv = np.asarray(y, np.float64).reshape(-1)
    C = SIGMA**2 * np.eye(A.shape[0]) + TAU**2 * A @ A.T
    M = A @ W
    z_prec = np.eye(D) + M.T @ np.linalg.solve(C, M)
    z_mean = np.linalg.solve(z_prec, M.T @ np.linalg.solve(C, yv - A @ b))
    sx = W @ W.T + TAU**2 * np.eye(16)  # prior covariance of x
    x_cov = np.linalg.inv(np.linalg.inv(sx) + A.T @ A / SIGMA**2)
    x_mean = x_cov @ (np.linalg.solve(sx, b) + A.T @ yv / SIGMA**2)
    return prior, op, y, z_mean, z_prec, x_mean, x_cov


@pytest.mark.parametrize("make_op", [lambda: GaussianCS(jax.random.key(1), (6, 6, 1), 10),
                                     lambda: BoxMask((6, 6, 1), 3), lambda: Downsample((6, 6, 1), 2),
                                     lambda: RandomMask(jax.random.key(2), (6, 6, 1), 0.5)])
def test_data_energy_is_the_marginal_likelihood(make_op):
    """r^T (sigma^2 I + tau^2 A A^T)^-1 r / 2 against a dense solve; tau = 0 gives ||r||^2 / (2 sigma^2)."""
    op = make_op()
    A = dense(op)
    r = jax.random.normal(jax.random.key(3), op.out_shape)
    rv = np.asarray(r, np.float64).reshape(-1)
    C = SIGMA**2 * np.eye(A.shape[0]) + TAU**2 * A @ A.T
    np.testing.assert_allclose(float(data_energy(op, r, SIGMA, TAU)), 0.5 * rv @ np.linalg.solve(C, rv), rtol=1e-4)
    np.testing.assert_allclose(float(data_energy(op, r, SIGMA, 0.0)), rv @ rv / (2 * SIGMA**2), rtol=1e-5)
    mean = np.asarray(residual_mean(op, r, SIGMA, TAU), np.float64).reshape(-1)
    np.testing.assert_allclose(mean, TAU**2 * A.T @ np.linalg.solve(C, rv), rtol=1e-4, atol=1e-6)


def test_residual_draws_have_the_conditional_law():
    """Matheron's rule: draws of e | r have mean tau^2 A^T C^-1 r and covariance tau^2 I - tau^4 A^T C^-1 A."""
    op = GaussianCS(jax.random.key(4), SHAPE, 6)
    A = dense(op)
    r = jax.random.normal(jax.random.key(5), op.out_shape)
    n = 20000
    e = jax.vmap(lambda k: sample_residual(k, op, r, SIGMA, TAU))(jax.random.split(jax.random.key(6), n))
    e = np.asarray(e, np.float64).reshape(n, -1)
    C = SIGMA**2 * np.eye(A.shape[0]) + TAU**2 * A @ A.T
    mean = TAU**2 * A.T @ np.linalg.solve(C, np.asarray(r, np.float64).reshape(-1))
    cov = TAU**2 * np.eye(16) - TAU**4 * A.T @ np.linalg.solve(C, A)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(e.mean(0) - mean) < 4 * sd / np.sqrt(n))
    tol = 4 * np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(np.cov(e.T) - cov) < tol)
    assert np.all(np.diag(cov) < TAU**2 - 1e-4)  # the data did shrink it: a test that can tell e from prior noise


@pytest.mark.parametrize("batched", [False, True])
def test_estimate_model_error_recovers_tau(batched):
    shape, b, tau, sigma = (28, 28, 1), 64, 0.1, 0.05
    keys = jax.random.split(jax.random.key(7), 3)
    x0 = jnp.asarray(gp.load_mnist("test", n=b).images)
    op = (jax.vmap(lambda k: RandomMask(k, shape, 0.6))(jax.random.split(keys[0], b)) if batched
          else GaussianCS(keys[0], shape, 200))
    e = tau * jax.random.normal(keys[1], x0.shape)
    y = jax.vmap(measure, (0, 0 if batched else None, 0, None))(jax.random.split(keys[2], b), op, x0 + e, sigma)
    est = float(estimate_model_error(y, x0, op, sigma, op_batched=batched))  # the fit = the in-range part
    np.testing.assert_allclose(est, tau, rtol=0.05)
    assert float(estimate_model_error(y, x0 + e, op, sigma, op_batched=batched)) < 0.02  # residual = noise only
    bad = x0.at[0].set(jnp.nan)  # a diverged fit is left out, not propagated
    np.testing.assert_allclose(float(estimate_model_error(y, bad, op, sigma, op_batched=batched)), tau, rtol=0.05)


def test_map_with_model_error_is_the_posterior_mode(model):
    prior, op, y, z_mean, _, _, _ = model
    res = map_estimate(prior, jax.random.key(1), y, op, noise=GaussianNoise(SIGMA), model_error=TAU, optimizer="lbfgs",
                       num_steps=50)
    assert int(res.status) == Status.OK
    np.testing.assert_allclose(res.state.z, z_mean, rtol=1e-3, atol=1e-4)
    # the image is G(z*) + E[e | y, z*], the exact posterior mean of x (Gaussian: z* is the posterior mean)
    _, _, _, _, _, x_mean, _ = model
    np.testing.assert_allclose(np.asarray(res.x).reshape(-1), x_mean, atol=1e-3)


def test_vi_with_model_error_matches_the_mean_field_optimum(model):
    prior, op, y, z_mean, z_prec, _, _ = model
    res = variational(prior, jax.random.key(5), y, op, noise=SIGMA, model_error=TAU, num_elbo_samples=16,
                      learning_rate=0.02, num_steps=4000, schedule="cosine")
    mu, var = np.asarray(res.state.mu), np.exp(2 * np.asarray(res.state.log_s))
    assert np.all(np.abs(mu - z_mean) <= 0.05 * np.abs(z_mean) + 0.02 * np.sqrt(1 / np.diag(z_prec)))
    np.testing.assert_allclose(var, 1 / np.diag(z_prec), rtol=0.05)
    samples, mean, std = sample_q(prior, res, jax.random.key(6), 8, y=y, op=op, noise=SIGMA, model_error=TAU)
    assert samples.shape == (8, *SHAPE)
    gen = jax.vmap(lambda z: linear_generate(prior.params, z))(jnp.asarray(mu)[None])[0]
    assert float(jnp.abs(samples - gen).max()) > 0.05  # the residual draws are in the samples
    # the mean is Rao-Blackwellized: with s -> 0 every z_k = mu and it is G(mu) + E[e | y, mu] exactly, whatever
    # the e draws (their own average is off by ~ tau / sqrt(8))
    sharp = res._replace(state=res.state._replace(log_s=jnp.full_like(res.state.log_s, -30.0)))
    s2, m2, _ = sample_q(prior, sharp, jax.random.key(7), 8, y=y, op=op, noise=SIGMA, model_error=TAU)
    exact = gen + residual_mean(op, y - op.mv(gen), SIGMA, TAU)
    np.testing.assert_allclose(np.asarray(m2), np.asarray(exact), atol=1e-5)
    assert float(jnp.abs(s2.mean(0) - exact).max()) > 0.02
    with pytest.raises(ValueError, match="needs the measurements y"):
        sample_q(prior, res, jax.random.key(6), 8, model_error=TAU)


def test_langevin_with_model_error_matches_the_image_posterior(model):
    """MALA over z plus exact residual draws: the x samples have the closed-form posterior mean and variances."""
    prior, op, y, _, _, x_mean, x_cov = model
    chains, keep = 200, 3
    res = langevin(prior, jax.random.key(8), y, op, noise=SIGMA, model_error=TAU, step_size=0.01, num_steps=800,
                   num_chains=chains, burn_in=500, thin=100, num_samples=chains * keep, init_std=1.0)
    assert int(res.status) == Status.OK
    _, _, samples, acc = langevin_summary(res)
    x = np.asarray(samples, np.float64).reshape(-1, 16)
    n = len(x)
    sd = np.sqrt(np.diag(x_cov))
    assert np.all(np.abs(x.mean(0) - x_mean) < 4 * sd / np.sqrt(n)), (x.mean(0), x_mean)
    var = x.var(0, ddof=1)
    assert np.all(np.abs(var - np.diag(x_cov)) < 4 * np.sqrt(2 / n) * np.diag(x_cov)), (var, np.diag(x_cov))
    assert 0.5 < float(acc.mean()) <= 1.0


def test_no_recompilation_across_tau(model):
    prior, op, y, _, _, _, _ = model
    kw = dict(num_steps=20, burn_in=10, thin=2, num_samples=8)
    variational(prior, jax.random.key(0), y, op, noise=GaussianNoise(0.3), model_error=0.1, num_steps=10)
    langevin(prior, jax.random.key(0), y, op, noise=GaussianNoise(0.3), model_error=0.1, **kw)
    before = trace_count()
    for tau in (0.05, 0.5):
        variational(prior, jax.random.key(0), y, op, noise=GaussianNoise(0.2), model_error=tau, num_steps=10)
        langevin(prior, jax.random.key(0), y, op, noise=GaussianNoise(0.2), model_error=tau, **kw)
    assert trace_count() == before


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda prior, op, y: variational(prior, jax.random.key(0), y, op, model_error=-0.1),
                 r"expected model_error \(tau\) >= 0, got -0.1", id="vi-negative-tau"),
    pytest.param(lambda prior, op, y: map_estimate(prior, jax.random.key(0), jnp.sign(y),
                                                   OneBit(GaussianCS(jax.random.key(0), SHAPE, 10)), model_error=0.1),
                 "needs a linear operator", id="map-one-bit"),
    pytest.param(lambda prior, op, y: map_estimate(prior, jax.random.key(0), y, op, model_error=0.1,
                                                   estimate_sigma=True),
                 "estimate_sigma=True with model_error", id="map-estimate-sigma"),
    pytest.param(lambda prior, op, y: reconstruct(prior, jax.random.key(0), y, op, method="vi", model_error="big"),
                 "a number >= 0 or 'auto'", id="reconstruct-tau-string"),
    pytest.param(lambda prior, op, y: estimate_model_error(y, jnp.zeros(SHAPE), op, SIGMA),
                 r"expected y of shape \(B", id="estimate-unbatched-images"),
])
def test_model_error_bad_input(model, call, match):
    prior, op, y, _, _, _, _ = model
    with pytest.raises(ValueError, match=match):
        call(prior, op, y)


def test_reconstruct_auto_model_error_widens_the_intervals():
    """VAE box inpainting: tau estimated from the MAP residual is > 0 and the 90 % intervals cover far more truth."""
    vae = gp.load_prior("vae-mnist")
    x = jnp.asarray(gp.load_mnist("test", n=8).images)
    op = BoxMask((28, 28, 1), 10)
    noise = GaussianNoise(0.05)
    y = measure(jax.random.key(0), op, x, noise)
    cover = {}
    for tau in (0.0, "auto"):
        rec = reconstruct(vae, jax.random.key(1), y, op, method="vi", posterior=True, num_samples=32, noise=noise,
                          num_steps=600, learning_rate=0.02, num_elbo_samples=2, init_std=0.0, model_error=tau)
        s = np.clip(np.asarray(rec.samples), 0, 1)
        lo, hi = np.quantile(s, [0.05, 0.95], axis=1)
        fg = np.asarray(x) > 0.1
        cover[tau] = float(((np.asarray(x) >= lo) & (np.asarray(x) <= hi))[fg].mean())
    assert 0.01 < float(rec.model_error) < 0.3
    assert cover["auto"] > 0.5 and cover["auto"] > 3 * cover[0.0], cover
