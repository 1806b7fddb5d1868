"""Noise models given once: ``measure`` samples from them (one image or a batch) and the Bayesian methods use their
likelihood; the deprecated keywords (``sigma``, ``prior_weight``, ``num_keep``, ``num_draws``) still work and warn."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import linear_generate  # G(z) = W z + b on 4x4x1 images, shared

import genprior_jax as gp
from genprior_jax.likelihoods import Gaussian, Logistic, likelihood_for
from genprior_jax.operators import GaussianCS, GaussianNoise, LogisticNoise, OneBit, measure
from genprior_jax.priors import Prior
from genprior_jax.solvers import langevin, map_estimate, reconstruct, variational

SHAPE = (4, 4, 1)
D = 3


@pytest.fixture(scope="module")
def problem():
    kw, kb, ka, kz, kn = jax.random.split(jax.random.key(0), 5)
    params = {"W": jax.random.normal(kw, (16, D)) / 3.0, "b": 0.5 + 0.1 * jax.random.normal(kb, (16,))}
    prior = Prior("linear", (D,), SHAPE, linear_generate, params)
    op = GaussianCS(ka, SHAPE, 6)
    x = jax.vmap(lambda z: linear_generate(params, z))(jax.random.normal(kz, (2, D)))
    y = measure(kn, op, x, GaussianNoise(0.3))
    return prior, op, y


@pytest.mark.parametrize("noise", [0.1, GaussianNoise(0.1), LogisticNoise(0.2)], ids=["float", "gaussian", "logistic"])
def test_batch_measure_equals_the_per_image_result(noise):
    op = GaussianCS(jax.random.key(1), SHAPE, 5)
    op = OneBit(op) if isinstance(noise, LogisticNoise) else op
    x = jax.random.uniform(jax.random.key(2), (3, *SHAPE))
    key = jax.random.key(3)
    batch = measure(key, op, x, noise)
    keys = jax.random.split(key, 3)
    per_image = jnp.stack([measure(k, op, xi, noise) for k, xi in zip(keys, x, strict=True)])
    assert batch.shape == (3, *op.out_shape)
    np.testing.assert_allclose(batch, per_image, rtol=1e-6, atol=1e-6)  # batched A x: float rounding apart
    np.testing.assert_array_equal(batch, jax.vmap(measure, (0, None, 0, None))(keys, op, x, noise))  # old pattern
    assert not np.allclose(batch[0], batch[1])  # one key per image: independent noise


@pytest.mark.parametrize("shape", [(28, 28, 1), (2, 3, 4, 4, 1), (4, 4)], ids=["other-image", "two-batch-axes", "2d"])
def test_measure_refuses_other_shapes_naming_both(shape):
    op = GaussianCS(jax.random.key(1), SHAPE, 5)
    with pytest.raises(ValueError, match=r"measure: expected x of shape op.in_shape \(4, 4, 1\) .*got " +
                       str(shape).replace("(", r"\(").replace(")", r"\)")):
        measure(jax.random.key(0), op, jnp.zeros(shape), 0.1)


@pytest.mark.parametrize("noise, match", [
    pytest.param("0.1", "measure: expected a noise model", id="string"),
    pytest.param(LogisticNoise(0.1), "measure: LogisticNoise is the noise of a one-bit channel.*GaussianCS",
                 id="one-bit-noise-on-linear-operator"),
])
def test_measure_refuses_a_noise_that_is_not_one(noise, match):
    op = GaussianCS(jax.random.key(1), SHAPE, 5)
    with pytest.raises(ValueError, match=match):
        measure(jax.random.key(0), op, jnp.zeros(SHAPE), noise)


def test_noise_models_are_pytrees_with_traced_parameters():
    op = GaussianCS(jax.random.key(1), SHAPE, 5)
    x = jnp.ones(SHAPE)
    f = jax.jit(lambda noise: measure(jax.random.key(0), op, x, noise))
    y1, y2 = f(GaussianNoise(0.1)), f(GaussianNoise(0.2))
    assert f._cache_size() == 1  # sigma is a leaf: a new value does not recompile
    np.testing.assert_allclose(y2 - op(x), 2 * (y1 - op(x)), rtol=1e-4, atol=1e-6)
    assert Gaussian is GaussianNoise and Logistic is LogisticNoise  # the old likelihood names


def test_map_with_a_noise_model_equals_the_deprecated_sigma(problem):
    prior, op, y = problem
    kw = dict(num_steps=5, num_restarts=1, learning_rate=0.1)
    new = map_estimate(prior, jax.random.key(1), y, op, noise=GaussianNoise(0.3), lam=0.5, **kw)
    with pytest.warns(DeprecationWarning, match="'sigma' is deprecated.*use 'noise'"):
        with pytest.warns(DeprecationWarning, match="'prior_weight' is deprecated.*use 'lam'"):
            old = map_estimate(prior, jax.random.key(1), y, op, sigma=0.3, prior_weight=0.5, **kw)
    np.testing.assert_array_equal(new.x, old.x)
    other = map_estimate(prior, jax.random.key(1), y, op, noise=GaussianNoise(0.05), lam=0.5, **kw)
    assert not np.allclose(other.x, new.x, atol=1e-3)  # the noise level reaches the likelihood
    with pytest.raises(ValueError, match="got both 'sigma' and 'noise'"):
        map_estimate(prior, jax.random.key(1), y, op, sigma=0.3, noise=0.3, **kw)


def test_vi_and_langevin_rename_their_sample_counts(problem):
    prior, op, y = problem
    with pytest.warns(DeprecationWarning, match="'num_samples' is deprecated.*'num_elbo_samples'"):
        old = variational(prior, jax.random.key(1), y, op, noise=0.3, num_samples=4, num_steps=5)
    new = variational(prior, jax.random.key(1), y, op, noise=0.3, num_elbo_samples=4, num_steps=5)
    np.testing.assert_array_equal(old.x, new.x)
    kw = dict(noise=0.3, num_steps=8, burn_in=4, thin=1, num_chains=2)
    with pytest.warns(DeprecationWarning, match="'num_keep' is deprecated.*'num_samples'"):
        old = langevin(prior, jax.random.key(2), y, op, num_keep=3, **kw)
    new = langevin(prior, jax.random.key(2), y, op, num_samples=6, **kw)
    assert new.state.moments.ring.shape[1:3] == (3, 2)  # per chain: num_samples / num_chains
    np.testing.assert_array_equal(old.x, new.x)
    with pytest.raises(ValueError, match="num_samples a positive multiple of num_chains"):
        langevin(prior, jax.random.key(2), y, op, num_samples=5, **kw)
    with pytest.warns(DeprecationWarning, match="'num_draws' is deprecated.*'num_samples'"):
        rec = reconstruct(prior, jax.random.key(3), y, op, method="vi", posterior=True, num_draws=5, noise=0.3,
                          num_steps=5)
    assert rec.samples is not None and rec.samples.shape[:2] == (2, 5)


def test_one_bit_samples_follow_the_likelihood():
    """LogisticNoise on a OneBit operator: the empirical rate of y = +1 over many draws is the likelihood's
    p(y = +1 | x) = sigmoid(A x / T), entry by entry, and exp(-energy) of a +-1 vector is its probability."""
    noise = LogisticNoise(0.2)
    op = OneBit(GaussianCS(jax.random.key(4), SHAPE, 8))
    x = jax.random.uniform(jax.random.key(5), SHAPE)
    n = 20000
    ys = measure(jax.random.key(6), op, jnp.broadcast_to(x, (n, *SHAPE)), noise)
    assert set(np.unique(np.asarray(ys)).tolist()) <= {-1.0, 1.0}
    pred = op(x)
    p = np.asarray(noise.prob_positive(pred))
    assert np.ptp(p) > 0.3  # the probe is informative: the probabilities differ across entries
    rate = np.asarray(jnp.mean(ys > 0, axis=0))
    np.testing.assert_allclose(rate, p, atol=4 * np.sqrt(0.25 / n))
    lik = likelihood_for(op, noise)
    assert lik is noise  # the noise model is its own likelihood
    for y in (jnp.ones_like(pred), -jnp.ones_like(pred), ys[0]):
        prob = np.prod(np.where(np.asarray(y) > 0, p, 1 - p))
        np.testing.assert_allclose(np.exp(-float(lik.energy(op, pred, y))), prob, rtol=1e-4)


def test_one_bit_map_uses_the_noise_models_temperature():
    prior = gp.priors.Prior("linear", (D,), SHAPE, linear_generate,
                            {"W": jax.random.normal(jax.random.key(7), (16, D)) / 3.0, "b": jnp.zeros(16)})
    op = OneBit(GaussianCS(jax.random.key(8), SHAPE, 12), temperature=0.1)
    x = linear_generate(prior.params, jnp.array([1.0, -1.0, 0.5]))
    y = measure(jax.random.key(9), op, x, LogisticNoise(0.05))
    kw = dict(num_steps=5, num_restarts=1, learning_rate=0.1)
    a = map_estimate(prior, jax.random.key(1), y, op, noise=LogisticNoise(0.05), **kw)
    b = map_estimate(prior, jax.random.key(1), y, op, noise=LogisticNoise(1.0), **kw)
    assert not np.allclose(a.state.z, b.state.z, atol=1e-3)  # the temperature given is the one used
    with pytest.raises(ValueError, match="map_estimate: expected temperature > 0"):
        map_estimate(prior, jax.random.key(1), y, op, noise=LogisticNoise(0.0), **kw)


def test_reconstruct_reads_the_deprecated_sigma_everywhere(problem):
    """``gp.reconstruct(..., sigma=s)`` is ``noise=s`` for the solve *and* for the posterior samples it draws."""
    prior, op, y = problem
    kw = dict(method="vi", posterior=True, num_samples=3, num_steps=5)
    new = reconstruct(prior, jax.random.key(4), y, op, noise=0.3, **kw)
    with pytest.warns(DeprecationWarning, match="'sigma' is deprecated.*use 'noise'"):
        old = reconstruct(prior, jax.random.key(4), y, op, sigma=0.3, **kw)
    np.testing.assert_array_equal(new.x, old.x)
    np.testing.assert_array_equal(new.samples, old.samples)
    other = reconstruct(prior, jax.random.key(4), y, op, noise=0.05, **kw)
    assert not np.allclose(other.samples, new.samples, atol=1e-4)
