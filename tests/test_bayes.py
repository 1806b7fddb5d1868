"""MAP, variational inference and Langevin sampling: exact on a linear-Gaussian model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import linear_generate  # G(z) = W z + b on 4x4x1 images, shared

import genprior_jax as gp
from genprior_jax.operators import BoxMask, GaussianCS, GaussianNoise, measure
from genprior_jax.priors import Prior
from genprior_jax.solvers import Status, langevin, langevin_summary, map_estimate, reconstruct, sample_q, variational
from genprior_jax.solvers.runner import trace_count

SHAPE = (4, 4, 1)
D = 3
SIGMA = 0.3
NOISE = GaussianNoise(SIGMA)


@pytest.fixture(scope="module")
def model():
    key = jax.random.key(0)
    kw, kb, ka, kz, kn = jax.random.split(key, 5)
    params = {"W": jax.random.normal(kw, (16, D)) / 3.0, "b": 0.5 + 0.1 * jax.random.normal(kb, (16,))}
    prior = Prior("linear", (D,), SHAPE, linear_generate, params)
    op = GaussianCS(ka, SHAPE, 6)
    x = linear_generate(params, jax.random.normal(kz, (D,)))
    y = measure(kn, op, x, NOISE)
    A, W, b = (np.asarray(a, np.float64) for a in (op.matrix, params["W"], params["b"]))
    M = A @ W
    precision = np.eye(D) + M.T @ M / SIGMA**2
    cov = np.linalg.inv(precision)
    mean = cov @ M.T @ (np.asarray(y, np.float64) - A @ b) / SIGMA**2
    return prior, op, y, mean, cov, precision


def test_map_is_the_posterior_mode(model):
    prior, op, y, mean, _, _ = model
    res = map_estimate(prior, jax.random.key(1), y, op, noise=NOISE, optimizer="lbfgs", num_steps=50)
    assert int(res.status) == Status.OK
    np.testing.assert_allclose(res.state.z, mean, rtol=1e-3, atol=1e-4)


def test_map_estimates_the_noise_level():
    """Denoising a generated image (n_y = 784 entries) with known truth noise: the joint MAP recovers sigma."""
    vae = gp.load_prior("vae-mnist")
    op = gp.operators.Identity((28, 28, 1))
    x = vae.generate(vae.params, jax.random.normal(jax.random.key(2), (20,)))
    y = measure(jax.random.key(3), op, jnp.stack([x, x]), GaussianNoise(0.2))  # two noisy copies
    res = map_estimate(vae, jax.random.key(4), y, op, noise=GaussianNoise(1.0), estimate_sigma=True,
                       learning_rate=0.02, num_steps=1500, num_restarts=2)
    est = np.exp(np.asarray(res.state.log_sigma))
    np.testing.assert_allclose(est, 0.2, rtol=0.1)


def test_vi_matches_the_mean_field_optimum(model):
    """For a Gaussian posterior N(m, P^-1) the best mean-field Gaussian has mean m and variances 1 / P_ii."""
    prior, op, y, mean, _, precision = model
    res = variational(prior, jax.random.key(5), y, op, noise=NOISE, num_elbo_samples=16, learning_rate=0.02,
                      num_steps=4000, schedule="cosine")
    assert int(res.status) == Status.OK
    mu, var = np.asarray(res.state.mu), np.exp(2 * np.asarray(res.state.log_s))
    assert np.all(np.abs(mu - mean) <= 0.05 * np.abs(mean) + 0.02 * np.sqrt(1 / np.diag(precision)))
    np.testing.assert_allclose(var, 1 / np.diag(precision), rtol=0.05)
    samples, m, s = sample_q(prior, res, jax.random.key(6), 64)
    assert samples.shape == (64, *SHAPE) and m.shape == SHAPE and s.shape == SHAPE


def test_vi_entropy_carries_gradient(model):
    """With a vanishing likelihood weight the ELBO optimum is the prior: s -> 1 (the BRGM bug would give s -> 0)."""
    prior, op, y, _, _, _ = model
    res = variational(prior, jax.random.key(7), y, op, noise=GaussianNoise(1e3), num_elbo_samples=8,
                      learning_rate=0.05, num_steps=2000, schedule="cosine")
    np.testing.assert_allclose(np.exp(np.asarray(res.state.log_s)), 1.0, rtol=0.05)


def test_langevin_warm_start_begins_at_the_map(model):
    """init_steps Adam steps on U from z = 0 put every chain at the posterior mode before sampling starts."""
    prior, op, y, mean, cov, _ = model
    kw = dict(noise=NOISE, step_size=1e-10, num_steps=2, burn_in=1, thin=1, num_samples=3, num_chains=3, init_std=0.0)
    warm = langevin(prior, jax.random.key(8), y, op, init_steps=1000, init_learning_rate=0.05, **kw)
    z = np.asarray(warm.state.z)
    assert z.shape == (3, D)
    np.testing.assert_allclose(z, np.broadcast_to(mean, z.shape), atol=0.02 * np.sqrt(np.diag(cov)).min())
    cold = langevin(prior, jax.random.key(8), y, op, **kw)  # without it the chains stay at z = 0
    np.testing.assert_allclose(np.asarray(cold.state.z), 0.0, atol=1e-3)
    with pytest.raises(ValueError, match="init_steps"):
        langevin(prior, jax.random.key(0), y, op, init_steps=-1)


@pytest.mark.parametrize("kernel", ["mala", "ula"])
def test_langevin_matches_the_posterior(model, kernel):
    prior, op, y, mean, cov, _ = model
    chains, keep = 200, 3
    res = langevin(prior, jax.random.key(8), y, op, noise=NOISE, kernel=kernel, step_size=0.01, num_steps=800,
                   num_chains=chains, burn_in=500, thin=100, num_samples=chains * keep, init_std=1.0)
    assert int(res.status) == Status.OK
    _, _, samples, acc = langevin_summary(res)
    W, b = np.asarray(prior.params["W"], np.float64), np.asarray(prior.params["b"], np.float64)
    z = np.linalg.lstsq(W, (np.asarray(samples, np.float64).reshape(-1, 16) - b).T, rcond=None)[0].T
    n = len(z)  # samples 100 steps apart on independent chains: treated as independent draws
    assert n == chains * keep
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(z.mean(0) - mean) < 4 * sd / np.sqrt(n)), (z.mean(0), mean)
    emp = np.cov(z.T)
    tol = 4 * np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    if kernel == "ula":  # ULA is biased by O(step size); allow it on top of the Monte-Carlo error
        tol = tol + 0.05 * np.abs(cov).max()
    assert np.all(np.abs(emp - cov) < tol), (emp, cov)
    if kernel == "mala":
        assert 0.5 < float(acc.mean()) <= 1.0


def test_langevin_step_adaptation(model):
    """A step 1000x too small (acceptance ~1) is tuned during burn-in toward the target acceptance, then frozen;
    the kept states still sample the posterior."""
    prior, op, y, mean, cov, _ = model
    chains, keep, burn = 200, 3, 400
    kw = dict(noise=NOISE, step_size=1e-5, num_steps=burn + 300, num_chains=chains, burn_in=burn, thin=100,
              num_samples=chains * keep, init_std=1.0)
    fixed = langevin(prior, jax.random.key(8), y, op, **kw)
    res = langevin(prior, jax.random.key(8), y, op, adapt=True, target_accept=0.6, **kw)
    assert int(res.status) == Status.OK
    h = float(res.state.step_size)
    assert float(fixed.state.step_size) == pytest.approx(1e-5) and h > 1e-3
    # the acceptance of the frozen kernel after burn-in: rerun it with the adapted step and no adaptation
    after = langevin(prior, jax.random.key(9), y, op, **{**kw, "step_size": h, "burn_in": 1, "num_steps": 200})
    assert 0.4 < float(langevin_summary(after)[3].mean()) < 0.8
    _, _, samples, _ = langevin_summary(res)
    W, b = np.asarray(prior.params["W"], np.float64), np.asarray(prior.params["b"], np.float64)
    z = np.linalg.lstsq(W, (np.asarray(samples, np.float64).reshape(-1, 16) - b).T, rcond=None)[0].T
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(z.mean(0) - mean) < 4 * sd / np.sqrt(len(z))), (z.mean(0), mean)
    tol = 4 * np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / len(z))
    assert np.all(np.abs(np.cov(z.T) - cov) < tol)


def test_no_recompilation_across_noise_and_weights(model):
    prior, op, y, _, _, _ = model
    map_estimate(prior, jax.random.key(0), y, op, noise=GaussianNoise(0.3), num_steps=10)
    variational(prior, jax.random.key(0), y, op, noise=GaussianNoise(0.3), num_steps=10)
    langevin(prior, jax.random.key(0), y, op, noise=GaussianNoise(0.3), num_steps=20, burn_in=10, thin=2,
             num_samples=8)
    before = trace_count()
    for sigma in (0.1, 0.5):
        noise = GaussianNoise(sigma)
        for w in (0.0, 2.0):
            map_estimate(prior, jax.random.key(0), y, op, noise=noise, lam=1.0 + w, pixel_weight=w, num_steps=10)
            variational(prior, jax.random.key(0), y, op, noise=noise, pixel_weight=w, num_steps=10)
            langevin(prior, jax.random.key(0), y, op, noise=noise, step_size=1e-3 * (1 + w), pixel_weight=w,
                     num_steps=20, burn_in=10, thin=2, num_samples=8)
    assert trace_count() == before


def test_diverging_ula_is_flagged_per_element(model):
    prior, op, y, _, _, _ = model
    ys = jnp.stack([y, y.at[0].set(jnp.nan), y])
    res = langevin(prior, jax.random.key(9), ys, op, noise=NOISE, kernel="ula", step_size=0.01, num_steps=50,
                   burn_in=10, thin=5, num_samples=8)
    np.testing.assert_array_equal(np.asarray(res.status), [0, Status.NONFINITE, 0])
    huge = langevin(prior, jax.random.key(9), y, op, noise=NOISE, kernel="ula", step_size=10.0, num_steps=200,
                    burn_in=10, thin=5, num_samples=8)
    assert int(huge.status) == Status.NONFINITE  # the chain blew up: reported, not raised
    mala = langevin(prior, jax.random.key(9), y, op, noise=NOISE, kernel="mala", step_size=10.0, num_steps=200,
                    burn_in=10, thin=5, num_samples=8)
    _, _, _, acc = langevin_summary(mala)
    assert int(mala.status) == Status.OK and float(acc.mean()) < 0.05  # MALA rejects instead of diverging


@pytest.mark.parametrize("solve, kwargs, match", [
    pytest.param(map_estimate, dict(noise=GaussianNoise(0.0)),
                 "map_estimate: expected the noise level sigma > 0 and finite, got 0.0", id="map-sigma-zero"),
    pytest.param(langevin, dict(noise=-1.0),
                 "langevin: expected the noise level sigma > 0 and finite, got -1.0", id="langevin-sigma-negative"),
    pytest.param(variational, dict(num_elbo_samples=0), r"num_elbo_samples \(K\) >= 1, got 0", id="vi-no-elbo-samples"),
    pytest.param(langevin, dict(num_steps=100, burn_in=100), "num_steps > burn_in", id="langevin-all-burn-in"),
    pytest.param(langevin, dict(kernel="hmc"), "unknown Langevin kernel", id="langevin-unknown-kernel"),
    pytest.param(langevin, dict(kernel="ula", adapt=True), "expected kernel 'mala', got 'ula'",
                 id="langevin-adapt-needs-mala"),
    pytest.param(langevin, dict(adapt=True, target_accept=1.5), "0 < target_accept < 1, got 1.5",
                 id="langevin-target-accept-above-1"),
    pytest.param(map_estimate, dict(image_prior=True), "image_prior=True needs a prior with an exact log_prob",
                 id="map-image-prior-without-log-prob"),
    pytest.param(reconstruct, dict(method="hmc"), "unknown method", id="reconstruct-unknown-method"),
    pytest.param(reconstruct, dict(method="map", posterior=True), "point estimate", id="reconstruct-map-posterior"),
])
def test_bad_input(model, solve, kwargs, match):
    prior, op, y, _, _, _ = model
    with pytest.raises(ValueError, match=match):
        solve(prior, jax.random.key(0), y, op, **kwargs)


def test_reconstruct_posterior_outputs_on_inpainting():
    """Box inpainting with the VAE: the posterior std is larger inside the hidden box than outside."""
    vae = gp.load_prior("vae-mnist")
    x = jnp.asarray(gp.load_mnist("test", n=3).images)
    op = BoxMask((28, 28, 1), 12)
    noise = GaussianNoise(0.05)  # given once: to measure and to the methods' likelihood
    y = measure(jax.random.key(0), op, x, noise)
    for method, kw in (("vi", dict(num_steps=800, learning_rate=0.02, num_elbo_samples=4, num_samples=8)),
                       ("langevin", dict(num_steps=600, burn_in=300, thin=10, num_samples=16, step_size=2e-4,
                                         init_std=0.0))):
        rec = reconstruct(vae, jax.random.key(1), y, op, method=method, posterior=True, noise=noise, **kw)
        assert rec.x.shape == (3, 28, 28, 1) and rec.std.shape == (3, 28, 28, 1)
        assert rec.samples.shape[0] == 3 and rec.samples.shape[2:] == (28, 28, 1)
        hidden = np.asarray(op.mask[..., 0] == 0)
        std = np.asarray(rec.std[..., 0])
        assert np.all(std[:, hidden].mean(1) > 2 * std[:, ~hidden].mean(1)), method
