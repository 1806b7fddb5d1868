"""The shared runner, CSGM and Lasso: exactness, NaN safety, batching and no recompilation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import linear_generate, make_linear_prior  # G(z) = W z + b on 4x4x1 images, shared

import genprior_jax as gp
from genprior_jax.operators import GaussianCS, Identity, measure
from genprior_jax.solvers import Status, csgm, lasso
from genprior_jax.solvers.runner import trace_count

SHAPE = (4, 4, 1)
LATENT = 3


def nan_if_positive_generate(params, z):
    """Linear, but NaN wherever z[0] > 0: restarts that start or wander there diverge."""
    return linear_generate(params, z) + jnp.where(z[0] > 0, jnp.nan, 0.0)


def linear_prior(key, generate=linear_generate):
    return make_linear_prior(key, LATENT, scale=4.0, generate=generate)


def closed_form(prior, op, y, lam):
    M = np.asarray(op.matrix, np.float64) @ np.asarray(prior.params["W"], np.float64)
    rhs = M.T @ (np.asarray(y, np.float64) - np.asarray(op.matrix, np.float64) @ np.asarray(prior.params["b"]))
    return np.linalg.solve(M.T @ M + 2 * lam * np.eye(LATENT), rhs)  # min 1/2 ||M z - r||^2 + lam ||z||^2


def problems(key, prior, n=4, m=6, sigma=0.05):
    k_op, k_z, k_noise = jax.random.split(key, 3)
    ops = jax.vmap(lambda k: GaussianCS(k, SHAPE, m))(jax.random.split(k_op, n))
    z_true = jax.random.normal(k_z, (n, LATENT))
    x = jax.vmap(prior.generate, (None, 0))(prior.params, z_true)
    y = jax.vmap(measure, (0, 0, 0, None))(jax.random.split(k_noise, n), ops, x, sigma)
    return ops, y, x


@pytest.mark.parametrize("optimizer,schedule,steps", [("lbfgs", "constant", 60), ("adam", "cosine", 3000)])
@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_csgm_matches_closed_form_for_linear_generator(key, optimizer, schedule, steps, lam):
    prior = linear_prior(key)
    ops, y, _ = problems(jax.random.fold_in(key, 1), prior)
    res = csgm(prior, jax.random.fold_in(key, 2), y, ops, lam=lam, learning_rate=0.05, num_steps=steps,
               num_restarts=3, optimizer=optimizer, schedule=schedule, op_batched=True)
    assert np.all(np.asarray(res.status) == Status.OK)
    for i in range(len(y)):
        op_i = jax.tree_util.tree_map(lambda a: a[i], ops)
        z_star = closed_form(prior, op_i, y[i], lam)
        rel = np.linalg.norm(np.asarray(res.state.z[i]) - z_star) / np.linalg.norm(z_star)
        assert rel < 1e-3, (i, rel)


def test_sweeps_do_not_recompile(key):
    prior = linear_prior(key)
    op = GaussianCS(key, SHAPE, 6)
    x = prior.generate(prior.params, jnp.ones(LATENT))
    noisy = jax.jit(lambda k, s: jax.vmap(measure, (0, None, None, None))(jax.random.split(k, 3), op, x, s))
    csgm(prior, key, noisy(key, 0.1), op, lam=0.0, num_steps=20, num_restarts=2)
    before = trace_count()
    for lam in (0.0, 0.1, 1.0):
        for lr in (0.01, 0.05):
            for sigma in (0.0, 0.1, 1.0):
                res = csgm(prior, key, noisy(key, sigma), op, lam=lam, learning_rate=lr, num_steps=20, num_restarts=2)
    jax.block_until_ready(res.x)
    assert trace_count() == before
    assert noisy._cache_size() == 1
    csgm(prior, key, noisy(key, 0.1), op, lam=0.0, num_steps=21, num_restarts=2)  # a static change does recompile
    assert trace_count() == before + 1


def test_nan_measurement_is_isolated(key):
    prior = linear_prior(key)
    ops, y, _ = problems(key, prior, n=5)
    clean = csgm(prior, key, y, ops, num_steps=50, num_restarts=3, op_batched=True)
    dirty = csgm(prior, key, y.at[2, 0].set(jnp.nan), ops, num_steps=50, num_restarts=3, op_batched=True)
    np.testing.assert_array_equal(np.asarray(dirty.status), [0, 0, Status.NONFINITE, 0, 0])
    assert np.all(np.isnan(np.asarray(dirty.x[2]))) and np.isnan(float(dirty.objective[2]))
    keep = np.array([0, 1, 3, 4])
    np.testing.assert_array_equal(np.asarray(dirty.x)[keep], np.asarray(clean.x)[keep])
    np.testing.assert_array_equal(np.asarray(dirty.objective)[keep], np.asarray(clean.objective)[keep])


def test_diverged_restart_never_wins(key):
    prior = linear_prior(key, nan_if_positive_generate)
    op = GaussianCS(key, SHAPE, 6)
    x = linear_generate(prior.params, jnp.array([-1.5, 0.3, -0.2]))
    y = jnp.stack([op(x)] * 4)
    res = csgm(prior, key, y, op, num_steps=100, num_restarts=8, learning_rate=0.02)
    objs = np.asarray(res.restart_objectives)
    assert np.isnan(objs).any(axis=1).all(), "the test needs diverged restarts in every problem"
    assert np.isfinite(objs).any(axis=1).all()
    np.testing.assert_array_equal(np.asarray(res.status), 0)
    np.testing.assert_allclose(np.asarray(res.objective), np.nanmin(objs, axis=1))
    assert np.all(np.isfinite(np.asarray(res.x)))


def test_shared_and_batched_operators_agree(key):
    prior = linear_prior(key)
    ops, y, _ = problems(key, prior, n=3)
    batched = csgm(prior, key, y, ops, init_std=0.0, num_steps=100, num_restarts=2, op_batched=True)
    for i in range(3):
        op_i = jax.tree_util.tree_map(lambda a: a[i], ops)
        single = csgm(prior, jax.random.key(7), y[i], op_i, init_std=0.0, num_steps=100, num_restarts=2)
        assert single.x.shape == SHAPE and single.status.shape == ()
        np.testing.assert_allclose(np.asarray(single.x), np.asarray(batched.x[i]), rtol=1e-5, atol=1e-6)


def test_history(key):
    prior = linear_prior(key)
    op = GaussianCS(key, SHAPE, 6)
    y = jnp.stack([op(prior.generate(prior.params, jnp.ones(LATENT)))] * 2)
    res = csgm(prior, key, y, op, num_steps=30, num_restarts=4, history=True)
    assert res.history.shape == (2, 4, 30) and res.restart_objectives.shape == (2, 4)
    assert np.all(np.asarray(res.history[:, :, -1]) < np.asarray(res.history[:, :, 0]))
    assert csgm(prior, key, y, op, num_steps=3, num_restarts=1).history is None


@pytest.fixture(scope="module")
def prior_and_op():
    key = jax.random.key(0)
    return linear_prior(key), GaussianCS(key, SHAPE, 6)


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda prior, op, key: csgm(prior, key, jnp.zeros((2, 7)), op),
                 r"expected shape \(B, \*\(6,\)\) or \(6,\) for GaussianCS, got \(2, 7\)", id="csgm-y-shape"),
    pytest.param(lambda prior, op, key: csgm(prior, key, jnp.zeros((2, 6), jnp.int32), op),
                 "floating-point measurements y, got dtype int32", id="csgm-y-int"),
    pytest.param(lambda prior, op, key: csgm(prior, key, jnp.zeros((6,)), GaussianCS(key, (28, 28, 1), 6)),
                 r"operator expects images of shape \(28, 28, 1\)", id="csgm-operator-image-shape"),
    pytest.param(lambda prior, op, key: csgm(prior, key, jnp.zeros((3, 6)),
                                             jax.vmap(lambda k: GaussianCS(k, SHAPE, 6))(jax.random.split(key, 2)),
                                             op_batched=True),
                 "expected 3 operators", id="csgm-two-operators-three-y"),
    pytest.param(lambda prior, op, key: csgm(prior, key, jnp.zeros((6,)), op, optimizer="adamw"),
                 "unknown optimizer 'adamw'", id="csgm-unknown-optimizer"),
    pytest.param(lambda prior, op, key: csgm(prior, 0, jnp.zeros((6,)), op), "PRNG key", id="csgm-int-key"),
    pytest.param(lambda prior, op, key: csgm(prior, key, jnp.zeros((6,)), op, num_steps=0),
                 "num_steps >= 1", id="csgm-zero-steps"),
    pytest.param(lambda prior, op, key: gp.lasso(key, jnp.zeros((6,)), np.eye(6)),
                 "lasso: expected a linear operator", id="lasso-matrix-operator"),
    pytest.param(lambda prior, op, key: gp.lasso(key, jnp.zeros((6,)), op, basis="curvelet"),
                 "basis in", id="lasso-unknown-basis"),
])
def test_bad_inputs(prior_and_op, key, call, match):
    prior, op = prior_and_op
    with pytest.raises(ValueError, match=match):
        call(prior, op, key)


@pytest.mark.parametrize("basis", ["pixel", "dct"])
def test_lasso_satisfies_optimality_conditions(key, basis):
    """At the Lasso minimizer c = Psi x: |g_i| <= lam where c_i = 0 and g_i = -lam sign(c_i) elsewhere, with
    g = Psi (A^T (A x - y)) (data term 1/2 ||A x - y||^2)."""
    from genprior_jax.transforms import make_basis

    shape = (8, 8, 1)
    op = GaussianCS(key, shape, 40)
    x_true = gp.load_mnist("test", n=1).images[0, ::3, ::3][:8, :8]
    y = op(jnp.asarray(x_true))
    lam = 0.025
    res = lasso(key, y, op, lam=lam, basis=basis, num_steps=3000)
    xs = res.state.x
    analysis = make_basis(basis, shape).T
    g = np.asarray(analysis(op.T(op(xs) - y))).ravel()
    c = np.asarray(analysis(xs)).ravel()
    active = np.abs(c) > 1e-6
    assert active.sum() > 0 and (~active).sum() > 0
    np.testing.assert_allclose(g[active], -lam * np.sign(c[active]), atol=1e-3)
    assert np.all(np.abs(g[~active]) <= lam + 1e-3)
    assert float(res.x.min()) >= 0 and float(res.x.max()) <= 1


def test_lasso_identity_is_soft_threshold(key):
    op = Identity((6, 6, 1))
    y = jax.random.uniform(key, (6, 6, 1))
    res = lasso(key, y, op, lam=0.1, basis="pixel", num_steps=200)
    # argmin 1/2 ||x - y||^2 + lam |x|_1 = soft(y, lam)
    expected = jnp.clip(jnp.sign(y) * jnp.maximum(jnp.abs(y) - 0.1, 0), 0, 1)
    np.testing.assert_allclose(res.x, expected, atol=1e-5)


@pytest.mark.slow
@pytest.mark.optimized
def test_vae_prior_beats_lasso_at_m100(key):
    """The paper's headline on real data: at m = 100 the VAE prior's per-pixel error is several times lower."""
    prior = gp.load_prior("vae-mnist")
    x = gp.load_mnist("test", n=32).images
    op = GaussianCS(jax.random.key(1), (28, 28, 1), 100)
    y = measure(jax.random.key(2), op, jnp.asarray(x), 0.01)
    vae = csgm(prior, jax.random.key(3), y, op, lam=0.1)
    dct = gp.lasso(jax.random.key(4), y, op, lam=0.05, basis="dct", num_steps=1000)
    e_vae, e_dct = float(gp.mse(x, vae.x).mean()), float(gp.mse(x, dct.x).mean())
    assert e_vae < 0.02, e_vae
    assert e_dct > 3 * e_vae, (e_vae, e_dct)
