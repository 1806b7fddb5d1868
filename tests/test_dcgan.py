"""DCGAN priors: shapes and ranges, the pixel-shuffle up-sampling, training, checkpoints, the CLI and CSGM."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genprior_jax as gp
from genprior_jax.cli import main
from genprior_jax.operators import GaussianCS, measure
from genprior_jax.priors.dcgan import (
    CONFIGS,
    Upsample,
    check_config,
    dcgan_functions,
    dcgan_modules,
    dcgan_prior,
    init_dcgan,
)
from genprior_jax.solvers import Status, csgm
from genprior_jax.training import train_dcgan
from genprior_jax.transforms import unsqueeze


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_configs_build_and_forward(name, key):
    config = CONFIGS[name]
    params = jax.jit(lambda k: init_dcgan(k, config))(key)  # jitted: eager init of the CelebA model is slow
    prior = dcgan_prior(params, config, name, log_d=True)
    latent, shape = config["latent"], config["image_shape"]
    assert prior.latent_shape == (latent,) and prior.image_shape == shape and prior.encode is None
    z = jax.random.normal(jax.random.key(1), (3, latent))
    x = jax.jit(jax.vmap(prior.generate, (None, 0)))(params, z)
    assert x.shape == (3, *shape)
    assert bool(jnp.all((x >= 0) & (x <= 1))) and float(jnp.std(x)) > 0
    gen, disc = dcgan_modules(config)
    batched = jax.jit(lambda p, z: gen.apply({"params": p["generator"]}, z))(params, z)
    np.testing.assert_allclose(batched, x, atol=1e-5)  # batched module == vmapped unbatched generate
    logits = jax.jit(lambda p, x: disc.apply({"params": p["discriminator"]}, x))(params, x)
    assert logits.shape == (3,)
    log_d = jax.jit(jax.vmap(prior.log_prob, (None, 0)))(params, x)
    np.testing.assert_allclose(log_d, np.log(1 / (1 + np.exp(-np.asarray(logits, np.float64)))), rtol=1e-4)
    assert bool(jnp.all(log_d <= 0))
    # load_prior's default has no log_prob: log D is not a density and must be asked for
    assert dcgan_prior(params, config, name).log_prob is None


@pytest.fixture(scope="module")
def mnist_params():
    return jax.jit(lambda k: init_dcgan(k, CONFIGS["dcgan-mnist"]))(jax.random.key(0))


def test_functions_are_cached(mnist_params):
    config, params = CONFIGS["dcgan-mnist"], mnist_params
    assert dcgan_prior(params, dict(config)).generate is dcgan_prior(params, check_config(config)).generate
    assert dcgan_functions(config)["log_d"] is dcgan_prior(params, config, log_d=True).log_prob


def test_pixel_shuffle_starts_as_nearest_upsampling(key):
    """ICNR init: a fresh conv + depth-to-space equals the conv (first c output channels) followed by a
    nearest-neighbour up-sampling, which checks the tiling against unsqueeze's channel order."""
    up = Upsample(5, "pixel_shuffle")
    x = jax.random.normal(key, (2, 6, 6, 3))
    params = up.init(jax.random.key(1), x)["params"]
    params = {"Conv_0": {**params["Conv_0"], "bias": jnp.tile(jnp.arange(5.0), 4)}}
    kernel = params["Conv_0"]["kernel"]
    assert kernel.shape == (3, 3, 3, 20)
    low = jax.lax.conv_general_dilated(x, kernel[..., :5], (1, 1), "SAME",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC")) + jnp.arange(5.0)
    expected = jnp.repeat(jnp.repeat(low, 2, axis=1), 2, axis=2)
    np.testing.assert_allclose(up.apply({"params": params}, x), expected, atol=1e-5)
    # after training the four sub-pixel kernels differ; the output is then unsqueeze(conv(x))
    params = jax.tree_util.tree_map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape), params)
    full = jax.lax.conv_general_dilated(x, params["Conv_0"]["kernel"], (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC")) + params["Conv_0"]["bias"]
    np.testing.assert_allclose(up.apply({"params": params}, x), unsqueeze(full), atol=1e-5)


@pytest.fixture(scope="module")
def log_d_prior(mnist_params):
    return dcgan_prior(mnist_params, CONFIGS["dcgan-mnist"], log_d=True)


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda prior: prior.generate(prior.params, jnp.zeros(31)),
                 r"expected a latent of shape \(32,\), got \(31,\)", id="generate-latent-size"),
    pytest.param(lambda prior: prior.generate(prior.params, jnp.zeros((2, 32))),
                 r"expected a latent of shape \(32,\), got \(2, 32\)", id="generate-batched-latent"),
    pytest.param(lambda prior: prior.log_prob(prior.params, jnp.zeros((28, 28))), "expected an image of shape",
                 id="log-prob-image-shape"),
    pytest.param(lambda prior: check_config({**CONFIGS["dcgan-mnist"], "upsample": "bilinear"}), "upsample",
                 id="config-unknown-upsample"),
    pytest.param(lambda prior: check_config({**CONFIGS["dcgan-mnist"], "image_shape": (32, 32, 1)}),
                 "doubled 2 times gives 28x28", id="config-image-shape"),
    pytest.param(lambda prior: check_config({**CONFIGS["dcgan-mnist"], "channels": (64, 30)}),
                 "not divisible by groups", id="config-channels-groups"),
    pytest.param(lambda prior: check_config({"latent": 3}), "missing keys", id="config-missing-keys"),
    pytest.param(lambda prior: train_dcgan("dcgan-cifar"), "unknown config", id="train-unknown-config"),
    pytest.param(lambda prior: train_dcgan("dcgan-celeba64", steps=1), "28x28x1 MNIST", id="train-celeba-on-mnist"),
    pytest.param(lambda prior: train_dcgan(steps=0), "expected steps >= 1", id="train-zero-steps"),
])
def test_bad_input(log_d_prior, call, match):
    with pytest.raises(ValueError, match=match):
        call(log_d_prior)


def test_train_save_and_load(tmp_path):
    """Two steps end to end into a checkpoint that load_prior reads back."""
    out = str(tmp_path / "gan")
    params, metrics = train_dcgan(steps=2, out=out, progress=False, eval_steps=0)
    assert np.isfinite(metrics["final_d_loss"]) and np.isfinite(metrics["final_g_loss"])
    assert os.path.isfile(os.path.join(out, "samples.png")) and os.path.isdir(out + ".state")
    prior = gp.load_prior(out)
    assert prior.name == "gan" and prior.latent_shape == (32,) and prior.image_shape == (28, 28, 1)
    z = jax.random.normal(jax.random.key(3), (32,))
    direct = dcgan_prior(params, CONFIGS["dcgan-mnist"]).generate(params, z)
    np.testing.assert_allclose(prior.generate(prior.params, z), direct, atol=1e-6)
    with open(os.path.join(out, "config.json")) as fh:
        record = json.load(fh)
    assert record["kind"] == "dcgan" and record["metadata"]["step"] == 2
    assert record["metadata"]["metrics"]["steps"] == 2


@pytest.mark.slow
def test_resume_follows_the_uninterrupted_run(tmp_path):
    params, _ = train_dcgan(steps=2, progress=False, eval_steps=0)
    out2 = str(tmp_path / "gan2")
    train_dcgan(steps=1, out=out2, progress=False, eval_steps=0)
    resumed, _ = train_dcgan(steps=2, out=out2, resume=True, progress=False, eval_steps=0)
    for a, b in zip(jax.tree_util.tree_leaves(resumed), jax.tree_util.tree_leaves(params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="needs a training state"):
        train_dcgan(steps=2, out=str(tmp_path / "none"), resume=True, progress=False)


def test_cli_train_dcgan(tmp_path, capsys):
    out = tmp_path / "cli-gan"
    assert main(["train", "dcgan", "--out", str(out), "--steps", "2", "--eval-steps", "0"]) == 0
    assert "2 steps: d loss" in capsys.readouterr().out
    prior = gp.load_prior(str(out))
    with open(out / "config.json") as fh:
        assert json.load(fh)["metadata"]["command"].startswith("genprior-jax ")
    x = prior.sample(jax.random.key(0), 2)
    assert x.shape == (2, 28, 28, 1)


@pytest.fixture(scope="module")
def shipped():
    return gp.load_prior("dcgan-mnist")


def test_shipped_checkpoint(shipped):
    assert "dcgan-mnist" in gp.available_priors()
    assert shipped.config["upsample"] == "pixel_shuffle" and shipped.log_prob is None
    size = sum(os.path.getsize(os.path.join(gp.priors.registry.CHECKPOINT_DIR, "dcgan-mnist", f))
               for f in os.listdir(os.path.join(gp.priors.registry.CHECKPOINT_DIR, "dcgan-mnist")))
    assert size < 5e6
    x = shipped.sample(jax.random.key(0), 64)
    assert bool(jnp.all((x >= 0) & (x <= 1)))
    # digits: mostly dark background, some bright strokes, and not one image repeated (no full collapse)
    assert 0.05 < float(jnp.mean(x)) < 0.3
    assert float(jnp.mean(jnp.std(x, axis=0))) > 0.15


@pytest.mark.optimized
def test_csgm_with_shipped_prior_lowers_the_error(shipped):
    x = jnp.asarray(gp.load_mnist("test", n=4).images)
    m = 200
    k_op, k_noise, k_solve, k_start = jax.random.split(jax.random.key(0), 4)
    op = GaussianCS(k_op, (28, 28, 1), m)
    y = measure(k_noise, op, x, 0.1 / m**0.5)
    res = csgm(shipped, k_solve, y, op, num_steps=100, num_restarts=2, learning_rate=0.05)
    assert np.all(np.asarray(res.status) == Status.OK)
    final = np.asarray(gp.mse(x, res.x))
    start = np.asarray(gp.mse(x, shipped.sample(k_start, 4)))  # a random G(z0), z0 ~ N(0, I): where CSGM starts
    assert np.all(final < start), (final, start)
    assert final.mean() < 0.5 * start.mean(), (final, start)

    # penalty="nll" with log_d=True adds -lam log D(G(z)): check the reported objective independently
    with_d = dcgan_prior(shipped.params, shipped.config, shipped.name, log_d=True)
    lam = 0.25
    res_d = csgm(with_d, k_solve, y, op, num_steps=20, num_restarts=1, learning_rate=0.05, penalty="nll", lam=lam)
    log_d = jax.vmap(with_d.log_prob, (None, 0))(with_d.params, res_d.x)
    resid = jax.vmap(op.mv)(res_d.x) - y
    expected = 0.5 * jnp.sum(resid**2, axis=1) - lam * log_d  # data term 1/2 ||A x - y||^2
    np.testing.assert_allclose(res_d.objective, expected, rtol=1e-4)
