"""Diffusion priors and their solvers (issue 30), checked against closed forms on a Gaussian data set.

For images ``x ~ N(mu, diag(v))`` the MMSE denoiser is ``D(x, sigma) = mu + v / (v + sigma^2) (x - mu)``, and for
``y = A x + N(0, s^2 I)`` the posterior is Gaussian with covariance ``P = (diag(v)^-1 + A^T A / s^2)^-1`` and mean
``P (mu / v + A^T y / s^2)``. ALD and PnP-ADMM are exact for this prior (up to sampling error, and the ``sigma_min``
smoothing); DPS and DiffPIR are approximations of the posterior by design (their papers say so), so they are held
to a bound measured here, well inside the distance from the prior mean to the posterior mean.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genprior_jax as gp
from genprior_jax.priors import diffusion as dm
from genprior_jax.solvers.restarts import trace_count

SHAPE = (4, 4, 1)


def _gauss_denoise(p, x, sigma):
    return p["mu"] + p["var"] / (p["var"] + sigma**2) * (x - p["mu"])


def _gauss_generate(p, z):
    return p["mu"] + jnp.sqrt(p["var"]) * z


@pytest.fixture(scope="module")
def toy():
    k = jax.random.split(jax.random.key(0), 6)
    mu = 0.5 + 0.1 * jax.random.normal(k[0], SHAPE)
    var = jax.random.uniform(k[1], SHAPE, minval=0.01, maxval=0.05)
    prior = gp.Prior("gauss", SHAPE, SHAPE, _gauss_generate, {"mu": mu, "var": var}, denoise=_gauss_denoise)
    op = gp.operators.GaussianCS(k[2], SHAPE, m=8)
    s = 0.05
    x = prior.sample(k[3], 3)
    y = gp.measure(k[4], op, x, gp.GaussianNoise(s))
    n = int(np.prod(SHAPE))
    a = np.asarray(jax.vmap(lambda e: op.mv(e.reshape(SHAPE)))(jnp.eye(n)), np.float64).T
    v = np.asarray(var, np.float64).ravel()
    cov = np.linalg.inv(np.diag(1 / v) + a.T @ a / s**2)
    means = np.stack([cov @ (np.asarray(mu, np.float64).ravel() / v + a.T @ np.asarray(yy, np.float64) / s**2)
                      for yy in y])
    gap = float(np.abs(means - np.asarray(mu).ravel()).mean())  # what returning the prior mean would score
    return {"prior": prior, "op": op, "y": y, "s": s, "mean": means, "sd": np.sqrt(np.diag(cov)), "gap": gap,
            "key": k[5]}


def _err(toy, x):
    return float(np.abs(np.asarray(x).reshape(len(toy["y"]), -1) - toy["mean"]).mean())


def test_edm_denoiser_and_loss_against_a_gaussian_data_set():
    """The EDM machinery (image <-> model space, preconditioning, loss weighting) with the exact raw network of a
    Gaussian data set: ``denoise`` gives the closed-form MMSE denoiser, and that network minimizes the EDM loss
    (a network scaled by 0.9 / 1.1 or shifted by 0.1 scores worse on the same draws)."""
    mu_x, v_x = 0.4, 0.02  # image space: x ~ N(0.4, 0.02)
    mu_u, v_u = 2 * mu_x - 1, 4 * v_x  # model space u = 2 x - 1

    def exact_raw(scale=1.0, shift=0.0):
        def raw(u_in, c_noise):
            s = jnp.exp(4.0 * c_noise)[:, None, None, None]
            c_skip, c_out, c_in = dm.edm_coefficients(s)
            u = u_in / c_in
            d = mu_u + v_u / (v_u + s**2) * (u - mu_u)
            return scale * (d - c_skip * u) / c_out + shift
        return raw

    x = 0.3 + 0.1 * jax.random.normal(jax.random.key(1), (5, 6, 6, 1))
    for sigma in (0.01, 0.3, 5.0):
        d = (dm.edm_denoise(exact_raw(), 2 * x - 1, jnp.full((5,), 2 * sigma)) + 1) / 2
        np.testing.assert_allclose(d, mu_x + v_x / (v_x + sigma**2) * (x - mu_x), rtol=1e-4, atol=1e-5)
    data = mu_x + np.sqrt(v_x) * jax.random.normal(jax.random.key(2), (4096, 4, 4, 1))
    losses = {k: float(jnp.mean(dm.edm_loss_of(exact_raw(*k), jax.random.key(3), data)))
              for k in [(1.0, 0.0), (0.9, 0.0), (1.1, 0.0), (1.0, 0.1), (1.0, -0.1)]}
    best = losses.pop((1.0, 0.0))
    assert all(v > best * 1.001 for v in losses.values()), (best, losses)  # common random numbers: paired


def test_denoiser_any_size_and_grey_model_on_colour_images():
    config = dm.check_config({"image_shape": (8, 8, 1), "channels": (4, 4), "emb": 8, "sample_steps": 2})
    params = dm.init_diffusion(jax.random.key(0), config)
    params = jax.tree_util.tree_map(lambda a: a + 0.1, params)  # the output layer starts at 0: make it act
    prior = dm.diffusion_prior(params, config)
    den = jax.jit(prior.denoise)
    assert den(params, jnp.full((9, 13, 1), 0.5), 0.1).shape == (9, 13, 1)  # padded and cropped back
    rgb = jax.random.uniform(jax.random.key(1), (9, 13, 3))
    per_channel = jax.jit(dm.denoiser_for(prior.denoise, 1, rgb.shape))(params, rgb, 0.1)
    np.testing.assert_allclose(per_channel[..., 1:2], den(params, rgb[..., 1:2], 0.1), atol=1e-5)
    with pytest.raises(ValueError, match="3-channel denoiser"):
        dm.denoiser_for(prior.denoise, 3, (8, 8, 1))
    with pytest.raises(ValueError, match="expected a diffusion prior"):
        gp.dps(gp.load_prior("vae-mnist"), jax.random.key(0), jnp.zeros((784,)), gp.operators.Identity((28, 28, 1)))


def test_pnp_converges_to_the_exact_posterior_mean_with_a_certified_fixed_point(toy):
    r = gp.pnp(toy["prior"], toy["key"], toy["y"], toy["op"], noise=toy["s"], tol=1e-6)
    assert np.all(np.asarray(r.status) == gp.Status.OK) and bool(np.all(r.converged))
    assert r.criterion == "fixed_point_residual"
    assert _err(toy, r.x) < 2e-3 * toy["gap"] / 0.0929  # ~0.3 % of the prior-to-posterior distance
    assert np.all(np.asarray(r.steps) < 300)  # stopped by the certificate, not the step cap


def test_ald_samples_the_exact_posterior(toy):
    r = gp.reconstruct(toy["prior"], toy["key"], toy["y"], toy["op"], method="ald", posterior=True,
                       noise=toy["s"], num_samples=256, num_steps=2000, steps_per_level=100, sigma_min=0.002,
                       step_size=0.5)
    assert r.samples.shape == (3, 256, *SHAPE)
    sampling_error = float(toy["sd"].mean()) / np.sqrt(256) * np.sqrt(2 / np.pi)  # E|mean error| per pixel
    assert _err(toy, r.x) < 2.0 * sampling_error
    ratio = float(np.asarray(r.std).reshape(3, -1).mean() / toy["sd"].mean())
    assert 0.93 < ratio < 1.07, ratio


@pytest.mark.parametrize("method,kw,bound", [
    ("dps", {"num_steps": 200, "step_size": 0.1}, 0.25),
    ("diffpir", {"num_steps": 100, "lam": 1.0, "eta": 1.0}, 0.15),
])
def test_dps_and_diffpir_approximate_the_posterior(toy, method, kw, bound):
    """DPS / DiffPIR neglect the covariance of x0 | x_t, so they are biased even for a Gaussian prior (measured
    here: DPS ~0.13, DiffPIR ~0.07 of the prior-to-posterior distance); a broken guidance scores ~1."""
    r = gp.reconstruct(toy["prior"], toy["key"], toy["y"], toy["op"], method=method, posterior=True,
                       noise=toy["s"], num_samples=256, **kw)
    assert _err(toy, r.x) < bound * toy["gap"]
    ratio = float(np.asarray(r.std).reshape(3, -1).mean() / toy["sd"].mean())
    assert 0.5 < ratio < 1.5, ratio


def test_traced_hyper_parameters_do_not_recompile(toy):
    kw = {"num_samples": 2, "num_steps": 4}
    gp.dps(toy["prior"], toy["key"], toy["y"], toy["op"], step_size=0.1, **kw)
    gp.diffpir(toy["prior"], toy["key"], toy["y"], toy["op"], lam=1.0, noise=0.05, **kw)
    before = trace_count()
    for v in (0.2, 0.3):
        gp.dps(toy["prior"], toy["key"], toy["y"], toy["op"], step_size=v, eta=v, sigma_max=10 * v, **kw)
        gp.diffpir(toy["prior"], toy["key"], toy["y"], toy["op"], lam=v, noise=v / 4, sigma_min=v / 100, **kw)
    assert trace_count() == before
    # a new prior with other parameters (same functions) reuses the compiled solve too
    other = gp.Prior("gauss", SHAPE, SHAPE, _gauss_generate, jax.tree_util.tree_map(lambda a: a * 1.01,
                                                                                    toy["prior"].params),
                     denoise=_gauss_denoise)
    gp.dps(other, toy["key"], toy["y"], toy["op"], step_size=0.1, **kw)
    assert trace_count() == before


@pytest.mark.parametrize("method", ["dps", "diffpir", "ald", "pnp"])
def test_a_nan_measurement_fails_alone(toy, method):
    y = toy["y"].at[1, 0].set(jnp.nan)
    kw = {} if method == "pnp" else {"num_samples": 2, "num_steps": 20}
    r = gp.reconstruct(toy["prior"], toy["key"], y, toy["op"], method=method, noise=toy["s"], **kw)
    assert list(np.asarray(r.status)) == [gp.Status.OK, gp.Status.NONFINITE, gp.Status.OK]
    solo = gp.reconstruct(toy["prior"], toy["key"], toy["y"], toy["op"], method=method, noise=toy["s"], **kw)
    np.testing.assert_allclose(r.x[0], solo.x[0], atol=1e-5)
    np.testing.assert_allclose(r.x[2], solo.x[2], atol=1e-5)


def test_dps_and_ald_take_non_linear_operators(toy):
    op = gp.operators.PhaseRetrieval(gp.operators.GaussianCS(jax.random.key(3), SHAPE, m=24))
    y = gp.measure(jax.random.key(4), op, toy["prior"].sample(jax.random.key(5), 2), 0.01)
    for method in ("dps", "ald"):
        r = gp.reconstruct(toy["prior"], toy["key"], y, op, method=method, noise=0.01, num_samples=2, num_steps=20)
        assert np.all(np.asarray(r.status) == gp.Status.OK)
    with pytest.raises(ValueError, match="linear operator"):
        gp.diffpir(toy["prior"], toy["key"], y, op, noise=0.01)


def test_bad_input_is_named(toy):
    with pytest.raises(ValueError, match="tol=None"):
        gp.dps(toy["prior"], toy["key"], toy["y"], toy["op"], tol=1e-3)
    with pytest.raises(ValueError, match="LogisticNoise"):
        gp.pnp(toy["prior"], toy["key"], toy["y"], toy["op"], noise=gp.LogisticNoise(0.1))
    with pytest.raises(ValueError, match="eta"):
        gp.diffpir(toy["prior"], toy["key"], toy["y"], toy["op"], eta=1.5)
    with pytest.raises(ValueError, match="anneal_steps"):
        gp.pnp(toy["prior"], toy["key"], toy["y"], toy["op"], num_steps=5, anneal_steps=10)
