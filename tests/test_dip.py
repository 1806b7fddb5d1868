"""Deep Image Prior compressed sensing: untrained generators, TV, learned weight prior, the dip solver."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genprior_jax as gp
from genprior_jax.operators import GaussianCS
from genprior_jax.priors import (
    UntrainedGenerator,
    WeightPrior,
    default_deep_decoder,
    fit_weight_prior,
    layer_means,
    untrained_generator,
    weight_penalty,
)
from genprior_jax.priors.untrained import ChannelNorm, DCGANGenerator, conv2d
from genprior_jax.solvers import DIPHyper, Status, dip, dip_solver, learn_weight_prior
from genprior_jax.solvers.dip import measurement_loss, total_variation
from genprior_jax.solvers.runner import Problem, trace_count

SHAPE = (28, 28, 1)
N_SHARED = 10  # 3 problems x 10 steps: tests share this compilation where they can


def _toy_init(key: jax.Array) -> dict:
    k1, k2 = jax.random.split(key)
    return {"w1": jax.random.normal(k1, (4, 16)) / 2.0, "w2": jax.random.normal(k2, (16, 28 * 28)) / 4.0}


def _toy_generate(weights: dict, z: jax.Array) -> jax.Array:
    return jax.nn.sigmoid(jnp.tanh(z @ weights["w1"]) @ weights["w2"]).reshape(SHAPE)


# The solver-mechanics tests use this two-layer generator: XLA compiles it in a fraction of the time a
# convolutional one takes, and the solver treats every UntrainedGenerator alike.
TOY = UntrainedGenerator("toy", (4,), SHAPE, _toy_init, _toy_generate)


def _problems(key: jax.Array, b: int, m: int = 40) -> tuple[jax.Array, GaussianCS, jax.Array]:
    k_op, k_x, k_n = jax.random.split(key, 3)
    op = GaussianCS(k_op, SHAPE, m)
    x = jax.random.uniform(k_x, (b, *SHAPE))
    y = gp.measure(k_n, op, x, 0.01)
    return x, op, y


@functools.cache
def _jitted(gen, optimizer, num_steps, best_window):
    solver = dip_solver(gen, optimizer, False, num_steps if best_window else 1, best_window)

    def image_and_loss(state, problem):
        x = gen.generate(state.weights, state.z)
        return x, measurement_loss(x, problem)

    return jax.jit(solver.init), jax.jit(solver.step), jax.jit(image_and_loss)


def _reference_solve(gen, key, y, op, hyper, num_steps, optimizer="rmsprop", best_window=None):
    """One problem, one restart key, solved with the solver's pure functions in a Python loop (no scan, no vmap);
    returns the images and measurement losses of every iterate (the ``num_steps`` pre-step ones and the final)."""
    init, step, image_and_loss = _jitted(gen, optimizer, num_steps, best_window)
    problem = Problem(y, op)
    hyper = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float32), hyper)
    state = init(key, problem, hyper, None)
    xs, losses = [], []
    for i in range(num_steps + 1):
        x, loss = image_and_loss(state, problem)
        xs.append(np.asarray(x))
        losses.append(float(loss))
        if i < num_steps:
            state, _ = step(state, problem, hyper, None)
    return np.stack(xs), np.asarray(losses)


# -- generators ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,shape,kw,latent", [
    ("dcgan", (28, 28, 3), {"ngf": 2, "z_dim": 8}, (8,)),
    ("deep-decoder", (32, 16, 3), {"width": 4, "num_upsample": 3}, (4, 2, 4)),
])
def test_generator_shapes_and_range(key, name, shape, kw, latent):
    gen = untrained_generator(name, shape, **kw)
    assert gen.latent_shape == latent and gen.image_shape == shape
    assert untrained_generator(name, shape, **kw) is gen  # cached: the solver cache keys on it
    w, x = jax.jit(lambda k, z: (gen.init(k), gen.generate(gen.init(k), z)))(key, jax.random.normal(key, latent))
    assert x.shape == shape and bool(jnp.all((x >= 0) & (x <= 1)))
    assert float(jnp.std(x)) > 1e-3  # not a constant image
    assert gen.num_weights() == sum(a.size for a in jax.tree_util.tree_leaves(w))


@pytest.mark.parametrize("shape", [(303, 384, 1), (65, 70, 3)])
def test_deep_decoder_any_size(key, shape):
    # the default architecture for the size generates exactly the requested (odd, non-divisible) shape
    gen = untrained_generator("deep-decoder", shape)
    size = default_deep_decoder(shape)
    assert dict(gen.config) == size._asdict() and 2**size.num_upsample <= min(shape[:2])
    assert gen.latent_shape == (-(-shape[0] // 2**size.num_upsample), -(-shape[1] // 2**size.num_upsample),
                                size.width)
    x = jax.jit(lambda k: gen.generate(gen.init(k), jax.random.normal(k, gen.latent_shape)))(key)
    assert x.shape == shape and bool(jnp.all((x >= 0) & (x <= 1))) and float(jnp.std(x)) > 1e-3


def test_deep_decoder_defaults_fit_the_size():
    assert default_deep_decoder((28, 28, 1)) == (16, 2)  # the former fixed default, where it fitted
    assert default_deep_decoder((64, 64, 3)) == (16, 3)
    assert default_deep_decoder((256, 256, 3)) == (64, 5)
    assert default_deep_decoder((512, 512, 3)) == (128, 5)  # Heckel & Hand: k = 128, a 16 x 16 input
    for shape in [(28, 28, 1), (65, 70, 3), (303, 384, 1), (512, 512, 3)]:
        gen = untrained_generator("deep-decoder", shape)
        assert 8 * gen.num_weights() <= 1.1 * np.prod(shape) or dict(gen.config)["width"] == 16
    # sizes divisible by 2^u: exact x2 upsampling, the input 2^u times smaller
    assert untrained_generator("deep-decoder", (64, 32, 1), num_upsample=3).latent_shape[:2] == (8, 4)
    with pytest.raises(ValueError, match=r"expected 2\^num_upsample <= min\(H, W\).*got 2\^3 = 8"):
        untrained_generator("deep-decoder", (6, 40, 1), num_upsample=3)


def test_dip_at_a_non_divisible_size(key):
    shape = (27, 37, 3)
    op = gp.operators.RandomMask(key, shape, 0.5)
    y = op.mv(jax.random.uniform(key, shape))
    rec = gp.reconstruct(None, key, y, op, method="dip", num_steps=3)
    assert rec.x.shape == shape and bool(jnp.all(jnp.isfinite(rec.x)))
    assert int(rec.status) == Status.OK


def test_dcgan_conv_implementations_agree(key):
    gen, gen_lax = (untrained_generator("dcgan", SHAPE, ngf=2, z_dim=8, conv=c) for c in ("im2col", "lax"))
    w = gen.init(key)
    z = jax.random.normal(key, (8,))
    np.testing.assert_allclose(jax.jit(gen.generate)(w, z), jax.jit(gen_lax.generate)(w, z), atol=1e-5)


def test_generator_sizes():
    # Deep decoder, u = 2: 3 k^2 conv weights + 3 * 2k norm parameters + k C output weights.
    k = 16
    assert untrained_generator("deep-decoder", width=k).num_weights() == 3 * k * k + 6 * k + k
    # DCGAN_MNIST with ngf = 64, z_dim = 128 has the repo's 2.7 M weights (norm parameters included).
    g = 64
    convs = 128 * 8 * g * 4 + 8 * g * 4 * g * 16 + 4 * g * 2 * g * 9 + 2 * g * g * 9 + g * 9
    norms = 2 * (8 * g + 4 * g + 2 * g + g)
    assert untrained_generator("dcgan", ngf=64, z_dim=128).num_weights() == convs + norms


def test_generator_init_matches_the_module_initialisers(key):
    # one uniform draw for all kernels: same tree and shapes as Flax's init, U(+-1/sqrt(fan)) kernels, norms (1, 0)
    gen = untrained_generator("dcgan", SHAPE, ngf=8, z_dim=16)
    w = gen.init(key)
    flax_w = jax.eval_shape(DCGANGenerator(ngf=8, channels=1).init, key, jnp.zeros(16))["params"]
    assert jax.tree_util.tree_structure(w) == jax.tree_util.tree_structure(flax_w)
    assert [a.shape for a in jax.tree_util.tree_leaves(w)] == [a.shape for a in jax.tree_util.tree_leaves(flax_w)]
    kernel = np.asarray(w["Conv_1"]["kernel"])  # (4, 4, 64, 32): PyTorch ConvTranspose2d's fan is k^2 C_out
    bound = 1.0 / np.sqrt(4 * 4 * 32)
    assert np.abs(kernel).max() <= bound and abs(kernel.std() / (bound / np.sqrt(3)) - 1) < 0.02
    assert abs(kernel.mean()) < 0.02 * bound
    np.testing.assert_array_equal(w["ChannelNorm_0"]["scale"], 1.0)
    np.testing.assert_array_equal(w["ChannelNorm_0"]["offset"], 0.0)
    dd = untrained_generator("deep-decoder", SHAPE, width=64).init(key)["Conv_1"]["kernel"]  # fan_in = 64
    assert np.abs(dd).max() <= 1 / 8 and abs(np.asarray(dd).std() / (1 / 8 / np.sqrt(3)) - 1) < 0.05


@pytest.mark.parametrize("bad", [
    dict(name="gan"), dict(name="dcgan", image_shape=(3, 32, 1)),
    dict(name="deep-decoder", image_shape=(30, 30, 1), num_upsample=5),  # 2^5 > 30: a stage would not upsample
    dict(name="dcgan", ngf=0), dict(name="deep-decoder", width=2.5), dict(name="dcgan", image_shape=(28, 28)),
    dict(name="dcgan", conv="fft"), dict(name="deep-decoder", num_upsample=-1),
])
def test_generator_rejects_bad_config(bad):
    with pytest.raises(ValueError):
        untrained_generator(**bad)


@pytest.mark.parametrize("k,pad", [(1, 0), (2, 1), (3, 1), (4, 3)])
def test_conv2d_matches_lax_conv(key, k, pad):
    kx, kw = jax.random.split(key)
    x = jax.random.normal(kx, (7, 5, 3))
    w = jax.random.normal(kw, (k, k, 3, 4))
    ref = jax.lax.conv_general_dilated(x[None], w, (1, 1), [(pad, pad), (pad, pad)],
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))[0]
    np.testing.assert_allclose(conv2d(x, w, pad), ref, rtol=1e-5, atol=1e-5)


def test_channel_norm_standardises_each_channel(key):
    h = 3.0 + 2.0 * jax.random.normal(key, (6, 5, 4)) * jnp.arange(1, 5)
    out, _ = ChannelNorm().init_with_output(key, h)
    hn = np.asarray(h, np.float64)
    ref = (hn - hn.mean((0, 1))) / np.sqrt(hn.var((0, 1)) + 1e-5)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


# -- total variation ----------------------------------------------------------------------------------------------

def test_total_variation_matches_numpy_loops(key):
    x = np.asarray(jax.random.normal(key, (5, 7, 2)), np.float64)
    ref = 0.0
    for i in range(5):
        for j in range(7):
            for c in range(2):
                if i + 1 < 5:
                    ref += abs(x[i + 1, j, c] - x[i, j, c])
                if j + 1 < 7:
                    ref += abs(x[i, j + 1, c] - x[i, j, c])
    np.testing.assert_allclose(float(total_variation(jnp.asarray(x, jnp.float32))), ref, rtol=1e-5)
    assert float(total_variation(jnp.full((4, 4, 1), 0.3))) == 0.0


# -- the solver ---------------------------------------------------------------------------------------------------

DD = untrained_generator("deep-decoder", SHAPE, width=8)
DD_RUN = dict(generator=DD, num_steps=N_SHARED, num_restarts=2, learning_rate=3e-3, history=True)


def test_dip_shapes_and_loss_decreases(key):
    _, op, y = _problems(key, 3)
    res = dip(key, y, op, **DD_RUN)
    assert res.x.shape == (3, *SHAPE) and res.objective.shape == (3,) and res.history.shape == (3, 2, N_SHARED)
    assert res.restart_objectives.shape == (3, 2)
    assert res.state.best_x.shape == (3, *SHAPE) and res.state.z.shape == (3, *DD.latent_shape)
    assert np.all(np.asarray(res.status) == Status.OK)
    h = np.asarray(res.history)
    assert np.all(h[..., -3:].mean(-1) < 0.7 * h[..., 0]), h
    # the objective is the measurement loss of the returned image, the lowest over the restarts
    np.testing.assert_allclose(res.objective, jax.vmap(lambda xx, yy: measurement_loss(xx, Problem(yy, op)))(res.x, y),
                               rtol=1e-4)
    np.testing.assert_allclose(res.objective, np.min(res.restart_objectives, axis=1))


def test_batch_equals_per_image_runs(key):
    _, op, y = _problems(key, 3)
    res = dip(key, y, op, **DD_RUN)  # vmapped over 3 problems x 2 restarts, lax.scan over steps
    hyper = DIPHyper(DD_RUN["learning_rate"], 0.005, 0.0)  # dip's default lam
    for i, k_i in enumerate(jax.random.split(key, 3)):  # the runner's keys: one per problem, then per restart
        runs = [_reference_solve(DD, k, y[i], op, hyper, N_SHARED) for k in jax.random.split(k_i, 2)]
        objs = [lo.min() for _, lo in runs]
        np.testing.assert_allclose(res.restart_objectives[i], objs, rtol=2e-3)
        xs, lo = runs[int(np.argmin(objs))]
        np.testing.assert_allclose(res.x[i], xs[np.argmin(lo)], atol=2e-3)


@pytest.mark.parametrize("optimizer,lr,best_window", [("adam", 0.1, None), ("sgd", 6.0, None), ("sgd", 6.0, 5)])
def test_best_iterate_is_lowest_measurement_loss(key, optimizer, lr, best_window):
    # Constructed so that the last iterate is not the best: Adam with step 0.1 oscillates, its best iterate is 2
    # steps before the end; SGD with step 6.0 (on the data term 1/2 ||A x - y||^2) overshoots, its best iterate is
    # the initial one, outside a window of the last 5 steps.
    _, op, y = _problems(key, 1)
    y = y[0]  # one unbatched measurement
    # the overshooting SGD run amplifies float rounding (which differs between the jitted scan and the reference
    # loop) step by step: keep it short enough that both stay on the same trajectory
    n = 25 if best_window is None else 10
    res = dip(key, y, op, generator=TOY, num_steps=n, learning_rate=lr, lam=0.0, optimizer=optimizer,
              best_window=best_window)
    assert res.x.shape == SHAPE and res.objective.shape == ()
    rkey = jax.random.split(jax.random.split(key, 1)[0], 1)[0]  # the runner's key for problem 0, restart 0
    xs, losses = _reference_solve(TOY, rkey, y, op, DIPHyper(lr, 0.0, 0.0), n, optimizer, best_window)
    first = 0 if best_window is None else n - best_window
    best = first + int(np.argmin(losses[first:]))
    if best_window is None:
        assert losses[best] < 0.99 * losses[n], f"test construction: the final iterate should not be the best: {losses}"
    else:
        assert losses.min() < 0.95 * losses[best], f"test construction: the best should be outside the window: {losses}"
    np.testing.assert_allclose(float(res.objective), losses[best], rtol=1e-3)
    np.testing.assert_allclose(res.x, xs[best], atol=2e-3)


def test_nan_measurement_flags_only_that_element(key):
    _, op, y = _problems(key, 3)
    y_bad = y.at[1, 5].set(jnp.nan)
    res = dip(key, y_bad, op, generator=TOY, num_steps=N_SHARED)
    ref = dip(key, y, op, generator=TOY, num_steps=N_SHARED)
    np.testing.assert_array_equal(res.status, [Status.OK, Status.NONFINITE, Status.OK])
    assert bool(jnp.all(jnp.isnan(res.x[1]))) and bool(jnp.isnan(res.objective[1]))
    np.testing.assert_allclose(np.asarray(res.x)[[0, 2]], np.asarray(ref.x)[[0, 2]], atol=1e-6)


def test_hyper_parameters_are_traced(key):
    _, op, y = _problems(key, 3)
    dip(key, y, op, generator=TOY, num_steps=N_SHARED, lam=0.005)
    before = trace_count()
    dip(key, y, op, generator=TOY, num_steps=N_SHARED, lam=0.25, learning_rate=2e-3)
    assert trace_count() == before


@pytest.fixture(scope="module")
def two_problems():
    return _problems(jax.random.key(0), 2)


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda key, y, op: dip(key, y, op, generator=TOY, num_steps=2, lam_weights=1.0),
                 "needs a weight_prior", id="lam-weights-without-weight-prior"),
    pytest.param(lambda key, y, op: dip(key, y, op, generator=TOY, num_steps=2, optimizer="lbfgs"),
                 "optimizer", id="unknown-optimizer"),
    pytest.param(lambda key, y, op: dip(key, y, op, generator=untrained_generator("deep-decoder", (32, 32, 1)),
                                        num_steps=2), "generates", id="generator-image-shape"),
    pytest.param(lambda key, y, op: dip(key, y, op, generator=TOY, num_steps=2, lam_weights=1.0,
                                        weight_prior=WeightPrior(jnp.zeros(3), jnp.eye(3), jnp.eye(3))),
                 "weight arrays", id="weight-prior-size"),
    pytest.param(lambda key, y, op: dip(key, y[:, :5], op, generator=TOY, num_steps=2), "shape", id="y-shape"),
])
def test_dip_rejects_bad_input(two_problems, key, call, match):
    _, op, y = two_problems
    with pytest.raises(ValueError, match=match):
        call(key, y, op)


# -- the learned weight prior -------------------------------------------------------------------------------------

def test_fit_weight_prior_toy(key):
    n = 40
    ka, kb, kc = jax.random.split(key, 3)
    # three weight arrays whose means are correlated across runs
    common = jax.random.normal(ka, (n, 1, 1))
    weights = {"a": common + 0.1 * jax.random.normal(kb, (n, 3, 2)),
               "b": {"c": -2.0 * common[:, 0] + jax.random.normal(kc, (n, 5)), "d": 0.5 + jnp.zeros((n, 4))}}
    weights["b"]["d"] = weights["b"]["d"] + 0.3 * common[:, 0]
    feats = np.stack([np.asarray(weights["a"]).reshape(n, -1).mean(1), np.asarray(weights["b"]["c"]).mean(1),
                      np.asarray(weights["b"]["d"]).mean(1)], axis=1)  # jax.tree_util order: a, b.c, b.d
    prior = fit_weight_prior(weights, shrinkage=0.0, ridge=0.0)
    np.testing.assert_allclose(prior.mean, feats.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(prior.cov, np.cov(feats.T), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(prior.precision @ prior.cov, np.eye(3), atol=1e-3)
    s, r = 0.3, 0.01
    shrunk = fit_weight_prior(weights, shrinkage=s, ridge=r)
    c = np.cov(feats.T)
    np.testing.assert_allclose(shrunk.cov, (1 - s) * c + s * np.diag(np.diag(c)) + r * np.trace(c) / 3 * np.eye(3),
                               rtol=1e-4, atol=1e-7)
    # the penalty is the Mahalanobis distance of the layer means
    one = jax.tree_util.tree_map(lambda a: a[0], weights)
    d = feats[0] - feats.mean(0)
    np.testing.assert_allclose(weight_penalty(one, prior), d @ np.linalg.solve(c, d), rtol=1e-3)
    np.testing.assert_allclose(layer_means(one), feats[0], rtol=1e-5)


@pytest.mark.parametrize("samples, match", [
    pytest.param(lambda: {"a": jnp.ones((1, 3))}, "N >= 2", id="one-sample"),
    pytest.param(lambda: {"a": jnp.ones((4, 3)), "b": jnp.ones((5, 3))}, "common leading axis",
                 id="different-sample-counts"),
    pytest.param(lambda: {"a": jnp.full((4, 3), jnp.nan)}, "finite", id="nan-weights"),
    pytest.param(lambda: {"a": jnp.ones((4, 3)), "b": jnp.zeros((4, 2))}, "singular", id="no-variation"),
])
def test_fit_weight_prior_rejects_bad_input(samples, match):
    with pytest.raises(ValueError, match=match):
        fit_weight_prior(samples())


def test_learned_regularization_pulls_layer_means_to_the_prior(key):
    x, op, _ = _problems(key, 3)
    prior = learn_weight_prior(key, x, op, sigma=0.01, generator=TOY, num_steps=N_SHARED)
    num = len(jax.tree_util.tree_leaves(TOY.init(key)))
    assert prior.mean.shape == (num,) and prior.cov.shape == (num, num)
    assert bool(jnp.all(jnp.isfinite(prior.precision)))
    # a prior centred away from the weights' means: a large lam_weights moves the layer means towards it
    far = WeightPrior(prior.mean + 0.05, jnp.eye(num), jnp.eye(num))
    _, _, y = _problems(jax.random.key(3), 3)
    kw = dict(generator=TOY, num_steps=N_SHARED, learning_rate=3e-2)
    free = dip(key, y, op, **kw)
    reg = dip(key, y, op, lam_weights=5e2, weight_prior=far, **kw)
    dist = lambda res: np.linalg.norm(np.asarray(jax.vmap(layer_means)(res.state.weights)) - np.asarray(far.mean),
                                      axis=1)
    assert np.all(dist(reg) < 0.5 * dist(free))


@pytest.mark.slow
@pytest.mark.optimized
def test_dip_cs_recovers_mnist_digits():
    x = gp.load_mnist("test", n=4).images
    k_op, k_noise, k_solve = jax.random.split(jax.random.key(1), 3)
    m = 100
    op = GaussianCS(k_op, SHAPE, m)
    y = gp.measure(k_noise, op, x, 0.1 / m**0.5)
    res = dip(k_solve, y, op)
    assert np.all(np.asarray(res.status) == Status.OK)
    mse = float(gp.mse(x, res.x).mean())
    zero = float(jnp.mean(x**2))
    adjoint = float(gp.mse(x, jnp.clip(jax.vmap(op.T)(y), 0, 1)).mean())
    assert mse < 0.25 * min(zero, adjoint), (mse, zero, adjoint)


@pytest.mark.parametrize("shape", [(64, 64, 3), (65, 70, 3), (256, 256, 1)])
def test_dcgan_dip_generator_at_any_size(shape):
    """The DCGAN-style DIP generator builds at sizes other than 28 x 28 (odd ones too) and generates the exact
    shape in [0, 1]; its input is a small random map, its channels 8 ngf at the coarse end."""
    from genprior_jax.priors.untrained import deep_decoder_sizes, default_dcgan_upsample

    gen = untrained_generator("dcgan", shape, ngf=4)
    u = default_dcgan_upsample(shape)
    assert 4 <= gen.latent_shape[0] <= 7 and gen.latent_shape == (deep_decoder_sizes(shape[0], u)[0],
                                                                   deep_decoder_sizes(shape[1], u)[0], 4)
    w = gen.init(jax.random.key(0))
    x = gen.generate(w, jax.random.normal(jax.random.key(1), gen.latent_shape))
    assert x.shape == shape and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert float(jnp.std(x)) > 0  # not a constant image
    assert untrained_generator("dcgan", shape, ngf=4) is gen  # cached


def test_dip_dcgan_fits_a_64x64_rgb_image():
    """DIP with the DCGAN-style generator at 64 x 64 x 3: 60 % inpainting, a short fit beats the zero-filled
    measurement."""
    from genprior_jax.operators import RandomMask
    from genprior_jax.solvers import dip

    x = jnp.asarray(np.clip(np.random.default_rng(0).random((8, 8, 3)).repeat(8, 0).repeat(8, 1), 0, 1),
                    jnp.float32)
    op = RandomMask(jax.random.key(0), (64, 64, 3), 0.6)
    res = dip(jax.random.key(1), op(x), op, generator="dcgan", num_steps=300, learning_rate=0.01)
    assert res.x.shape == (1, 64, 64, 3) or res.x.shape == (64, 64, 3)
    err = float(jnp.mean((res.x.reshape(64, 64, 3) - x) ** 2))
    assert err < 0.5 * float(jnp.mean((op(x) - x) ** 2)), err
