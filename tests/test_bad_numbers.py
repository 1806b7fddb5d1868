"""Every solver entry point refuses negative and non-finite hyper-parameters, naming the argument and the range."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genprior_jax as gp
from genprior_jax.operators import GaussianCS, measure

SHAPE = (28, 28, 1)


@pytest.fixture(scope="module")
def problem():
    op = GaussianCS(jax.random.key(0), SHAPE, 20)
    return gp.load_prior("vae-mnist"), op, jnp.zeros((20,))


@pytest.mark.parametrize("method,kw,message", [
    ("csgm", {"lam": -0.1}, r"csgm: expected lam >= 0 and finite, got -0.1"),
    ("csgm", {"learning_rate": -0.01}, r"csgm: expected learning_rate > 0 and finite, got -0.01"),
    ("csgm", {"lam": float("nan")}, r"csgm: expected lam >= 0 and finite, got nan"),
    ("asim", {"lam": -1.0}, r"asim: expected lam >= 0"),
    ("analysis", {"lam": -1e-3}, r"analysis: expected lam >= 0"),
    ("lasso-dct", {"lam": -0.3}, r"lasso: expected lam >= 0"),
    ("tv", {"lam": -0.01}, r"tv: expected a finite scalar lam >= 0"),
    ("dip", {"lam": -0.01}, r"dip: expected lam >= 0"),
    ("dip", {"learning_rate": 0.0}, r"dip: expected learning_rate > 0"),
    ("map", {"learning_rate": -0.01}, r"map_estimate: expected learning_rate > 0"),
    ("map", {"lam": -1.0}, r"map_estimate: expected lam >= 0"),
    ("vi", {"noise": gp.GaussianNoise(float("inf"))}, r"variational: expected the noise level sigma > 0 and finite"),
    ("map", {"noise": 0.0}, r"map_estimate: expected the noise level sigma > 0 and finite, got 0.0"),
    ("langevin", {"step_size": -1e-4}, r"langevin: expected step_size > 0"),
    ("langevin", {"decay": float("nan")}, r"langevin: expected decay >= 0"),
])
def test_negative_or_nonfinite_hyper_parameters_are_refused(problem, method, kw, message):
    prior, op, y = problem
    with pytest.raises(ValueError, match=message):
        gp.reconstruct(prior if gp.solvers.METHODS[method].needs_prior else None, jax.random.key(0), y, op,
                       method=method, num_steps=2, **kw)


@pytest.mark.parametrize("sigma", [-0.5, float("nan"), float("inf")])
def test_measure_refuses_a_bad_noise_level(problem, sigma):
    _, op, _ = problem
    with pytest.raises(ValueError, match="measure: expected the noise level sigma >= 0 and finite"):
        measure(jax.random.key(0), op, jnp.zeros(SHAPE), sigma)
    assert np.all(np.isfinite(measure(jax.random.key(0), op, jnp.zeros(SHAPE), 0.0)))
