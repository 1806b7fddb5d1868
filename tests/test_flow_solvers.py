"""Asim et al. z-space MAP and the Oberlin–Verm analysis formulation on small flows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genprior_jax as gp
from genprior_jax.operators import BoxMask, Downsample, GaussianCS, Identity, RandomMask
from genprior_jax.priors import flow_prior, init_flow
from genprior_jax.solvers import Problem, Status, analysis, asim, backproject, backproject_batch, csgm
from genprior_jax.solvers.runner import trace_count

SHAPE = (4, 4, 1)


@pytest.fixture(scope="module")
def prior():
    config = {"kind": "glow", "image_shape": SHAPE, "levels": 2, "steps": 2, "hidden": 8}
    x = jax.random.uniform(jax.random.key(0), (32, *SHAPE))
    return flow_prior(init_flow(jax.random.key(1), config, x), config, "tiny-glow")


def test_backprojections():
    x = jax.random.uniform(jax.random.key(0), (8, 8, 1))
    down = Downsample((8, 8, 1), 2)
    up = backproject(Problem(down(x), down), "pinv")
    np.testing.assert_allclose(up, jnp.repeat(jnp.repeat(down(x), 2, 0), 2, 1), atol=1e-5)  # A^+ = f^2 A^T
    mask = RandomMask(jax.random.key(1), (8, 8, 1), 0.5)
    np.testing.assert_allclose(backproject(Problem(mask(x), mask), "pinv"), mask(x), atol=1e-6)
    cs = GaussianCS(jax.random.key(2), (8, 8, 1), 100)  # over-determined: A^+ A = I
    y = cs(x)
    np.testing.assert_allclose(backproject(Problem(y, cs), "pinv"), x, atol=2e-3)
    with pytest.raises(ValueError, match="unknown back-projection"):
        backproject(Problem(y, cs), "dagger")


def test_backproject_batch_matches_one_at_a_time():
    xs = jax.random.uniform(jax.random.key(0), (3, 8, 8, 1))
    cs = GaussianCS(jax.random.key(2), (8, 8, 1), 40)
    ys = jax.vmap(cs)(xs)
    one = jnp.stack([backproject(Problem(yy, cs), "adjoint") for yy in ys])
    np.testing.assert_allclose(backproject_batch(ys, cs, "adjoint"), one, atol=1e-6)
    ops = jax.vmap(lambda k: GaussianCS(k, (8, 8, 1), 40))(jax.random.split(jax.random.key(3), 3))
    ys = jax.vmap(lambda o, xx: o(xx))(ops, xs)
    each = jnp.stack([backproject(Problem(ys[i], jax.tree_util.tree_map(lambda a: a[i], ops)), "pinv")
                      for i in range(3)])
    # A^+ y solves with A A^T (condition number ~70 for a 40 x 64 Gaussian A): float32 rounding, which differs
    # between a batched and a single solve, is amplified to ~1e-5; a wrong pairing of y and A is off by ~0.1
    np.testing.assert_allclose(backproject_batch(ys, ops, op_batched=True), each, atol=1e-4)


def test_asim_variants_run_and_fit(prior):
    op = GaussianCS(jax.random.key(3), SHAPE, 12)
    x = jnp.clip(prior.generate(prior.params, 0.5 * jax.random.normal(jax.random.key(4), (16,))), 0, 1)
    y = jnp.stack([op(x)] * 2)
    variants = [("sq", "random", "lbfgs"), ("norm", "random", "adam"), ("nll", "random", "adam"),
                ("sq", "adjoint", "adam"), ("sq", "pinv", "adam")]
    for penalty, init, optimizer in variants:
        res = asim(prior, jax.random.key(5), y, op, lam=5e-4, penalty=penalty, init=init, optimizer=optimizer,
                   learning_rate=0.05, num_steps=40 if optimizer == "lbfgs" else 300)
        # finite; L-BFGS meets the default tolerance (Adam's constant step may stop at the cap: MAX_STEPS)
        assert np.all(np.asarray(res.status) != Status.NONFINITE), (penalty, init)
        np.testing.assert_array_equal(np.asarray(res.converged), np.asarray(res.status) == Status.OK)
        if optimizer == "lbfgs":
            assert np.all(np.asarray(res.converged)), (penalty, init)
        resid = float(jnp.linalg.norm(op(res.x[0]) - y[0]) / jnp.linalg.norm(y[0]))
        assert resid < 0.05, (penalty, init, resid)


@pytest.fixture(scope="module")
def vae_problem():
    return gp.load_prior("vae-mnist"), GaussianCS(jax.random.key(0), (28, 28, 1), 10)


@pytest.mark.parametrize("kwargs, match", [
    pytest.param(dict(penalty="nll"), "penalty='nll' needs a prior with an exact log_prob", id="nll-without-log-prob"),
    pytest.param(dict(penalty="l1"), "unknown penalty", id="unknown-penalty"),
    pytest.param(dict(init="zeros"), "unknown init", id="unknown-init"),
])
def test_nll_penalty_needs_log_prob(vae_problem, kwargs, match):
    vae, op = vae_problem
    with pytest.raises(ValueError, match=match):
        csgm(vae, jax.random.key(0), jnp.zeros(10), op, **kwargs)


def test_analysis_denoises_towards_the_data_as_lam_vanishes(prior):
    op = Identity(SHAPE)
    y = jax.random.uniform(jax.random.key(6), (3, *SHAPE))
    res = analysis(prior, jax.random.key(0), y, op, lam=0.0, learning_rate=0.05, num_steps=300)
    np.testing.assert_allclose(res.x, y, atol=1e-3)  # lam = 0: x = argmin ||x - y||^2
    strong = analysis(prior, jax.random.key(0), y, op, lam=10.0, learning_rate=0.05, num_steps=300)
    code = jax.vmap(prior.encode, (None, 0))
    # a heavy penalty pulls the code towards 0, i.e. the image towards G(0)
    assert float(jnp.linalg.norm(code(prior.params, strong.x))) < float(jnp.linalg.norm(code(prior.params, y)))


def test_analysis_with_lbfgs_and_no_recompile(prior):
    op = BoxMask(SHAPE, 2)
    x = jax.random.uniform(jax.random.key(7), (2, *SHAPE))
    y = jax.vmap(op)(x)
    analysis(prior, jax.random.key(0), y, op, lam=0.1, optimizer="lbfgs", num_steps=20)
    before = trace_count()
    for lam in (0.0, 0.01, 1.0):
        res = analysis(prior, jax.random.key(0), y, op, lam=lam, optimizer="lbfgs", num_steps=20)
        assert np.all(np.asarray(res.status) == Status.OK)
    assert trace_count() == before


def test_analysis_with_the_vae_encoder():
    vae = gp.load_prior("vae-mnist")
    x = jnp.asarray(gp.load_mnist("test", n=2).images)
    op = BoxMask((28, 28, 1), 7)
    y = jax.vmap(op)(x)
    res = analysis(vae, jax.random.key(0), y, op, lam=0.01, num_steps=200, history=True)
    assert res.x.shape == (2, 28, 28, 1) and np.all(np.asarray(res.status) == Status.OK)
    # the objective went down from x0 = G(0) and the observed pixels fit the data
    assert np.all(np.asarray(res.objective) < np.asarray(res.history[:, 0, 0]))
    assert float(jnp.mean((jax.vmap(op)(res.x) - y) ** 2)) < 1e-3


def test_diverging_element_is_flagged_not_crashing(prior):
    op = Identity(SHAPE)
    y = jax.random.uniform(jax.random.key(8), (3, *SHAPE)).at[1].set(jnp.inf)
    res = analysis(prior, jax.random.key(0), y, op, lam=0.1, num_steps=10)
    np.testing.assert_array_equal(np.asarray(res.status), [0, Status.NONFINITE, 0])
    assert np.all(np.isfinite(np.asarray(res.x[0]))) and np.all(np.isfinite(np.asarray(res.x[2])))


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda prior: analysis(prior, jax.random.key(0), jnp.zeros((28, 28, 1)), Identity((28, 28, 1))),
                 r"operator expects images of shape \(28, 28, 1\)", id="operator-image-shape"),
    pytest.param(lambda prior: analysis(gp.Prior("g", (16,), SHAPE, prior.generate, prior.params),
                                        jax.random.key(0), jnp.zeros(SHAPE), Identity(SHAPE)),
                 "has no encoder", id="no-encoder"),
    pytest.param(lambda prior: analysis(prior, jax.random.key(0), jnp.zeros(SHAPE), Identity(SHAPE), init="zeros"),
                 "unknown init", id="unknown-init"),
])
def test_analysis_bad_input(prior, call, match):
    with pytest.raises(ValueError, match=match):
        call(prior)
