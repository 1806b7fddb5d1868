"""AmbientGAN: random measurement models, training through them, and the sample-quality scores."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import genprior_jax as gp
from genprior_jax.cli import main
from genprior_jax.operators import BlockPixels, KeepPatch, MeasurementModel, parse_measurement
from genprior_jax.priors.dcgan import CONFIGS, init_dcgan
from genprior_jax.sample_quality import (
    class_probabilities,
    classifier_features,
    frechet_distance,
    inception_score,
    mnist_classifier,
)
from genprior_jax.training import dcgan_train_step, measure_dataset, train_ambient_dcgan, unmeasure
from genprior_jax.training.ambient import measurement_keys

SHAPE = (28, 28, 1)


@pytest.mark.parametrize("spec", ["block-pixels:p=0.5", "block-pixels:p=0.3,theta=1", "keep-patch:size=10",
                                  "blur:gaussian=1.0,noise=0.1",
                                  "gaussian:m=4"])
def test_each_sample_gets_a_fresh_draw(spec):
    """A batch of identical images measured with different keys gives different measurements (fresh masks, patch
    positions, noise, projections); the same key gives the same measurement."""
    model = parse_measurement(spec, SHAPE)
    x = jnp.broadcast_to(gp.load_mnist("test", n=1).images[0], (6, *SHAPE))
    y = np.asarray(model.measure_batch(jax.random.key(0), x))
    assert y.shape == (6, *model.out_shape)
    flat = y.reshape(6, -1)
    assert all(not np.allclose(flat[i], flat[j]) for i in range(6) for j in range(i))
    again = np.asarray(model.measure_batch(jax.random.key(0), x))
    np.testing.assert_array_equal(y, again)


def test_masks_drawn_per_key_under_vmap():
    keys = jax.random.split(jax.random.key(1), 400)
    masks = np.asarray(jax.vmap(lambda k: BlockPixels(k, SHAPE, 0.3).mask)(keys))
    assert len({m.tobytes() for m in masks}) == 400
    assert abs(1.0 - masks.mean() - 0.3) < 0.01  # each pixel blocked with probability p
    assert masks.sum(axis=(1, 2, 3)).std() > 5  # a Binomial count, not a fixed one (RandomMask drops exactly)
    patches = np.asarray(jax.vmap(lambda k: KeepPatch(k, SHAPE, 7).mask)(keys))
    assert np.all(patches.sum(axis=(1, 2, 3)) == 49)
    corners = {tuple(np.argwhere(p[..., 0])[0]) for p in patches}
    assert len(corners) > 100 and all(0 <= r <= 21 and 0 <= c <= 21 for r, c in corners)


def test_parse_measurement_noise_and_image_shape():
    assert parse_measurement("blur:gaussian=1.0,noise=0.1", SHAPE) == MeasurementModel("blur:gaussian=1.0", SHAPE, 0.1)
    with pytest.raises(ValueError, match="expected an image of shape"):
        parse_measurement("block-pixels:p=0.5", SHAPE).measure(jax.random.key(0), jnp.zeros((28, 28, 3)))


@pytest.mark.parametrize("spec, message", [
    pytest.param("sr:factor=2", "image-shaped measurement", id="not-image-shaped"),
    pytest.param("nope:p=1", "unknown operator", id="unknown-operator"),
    pytest.param("block-pixels:p=2", r"p in \[0, 1\]", id="p-above-1"),
    pytest.param("block-pixels:q=0.5", "unknown key 'q'", id="unknown-key"),
    pytest.param("block-pixels:p=0.5,noise=-1", "noise >= 0", id="negative-noise"),
    pytest.param("keep-patch:size=40", "patch size", id="patch-too-large"),
    pytest.param("blur:gaussian=1,noise=x", "noise expected a number", id="noise-not-a-number"),
])
def test_parse_measurement_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_measurement(spec, SHAPE)


def test_with_theta_shows_the_mask_and_keeps_the_measurement():
    """``theta=1``: the measurement gains the draw's mask as a channel (1 where observed), the measured channel is
    the plain model's measurement with the same key, the spec round-trips, and bad uses are refused."""
    model = parse_measurement("block-pixels:p=0.5,theta=1", SHAPE)
    plain = parse_measurement("block-pixels:p=0.5", SHAPE)
    assert model.with_theta and model.out_shape == (28, 28, 2) and parse_measurement(model.full_spec, SHAPE) == model
    x = jnp.asarray(gp.load_mnist("test", n=3).images)
    keys = jax.random.split(jax.random.key(4), 3)
    y, y0 = np.asarray(jax.vmap(model.measure)(keys, x)), np.asarray(jax.vmap(plain.measure)(keys, x))
    np.testing.assert_array_equal(y[..., :1], y0)
    ops = [plain.operator(k) for k in keys]
    assert all(isinstance(op, BlockPixels) for op in ops)
    masks = np.stack([np.asarray(op.mask) for op in ops if isinstance(op, BlockPixels)])
    np.testing.assert_array_equal(y[..., 1:], masks)  # the channel is this draw's mask, not another one
    assert 0.4 < masks.mean() < 0.6 and not np.array_equal(masks[0], masks[1])
    for spec, message in [("gaussian:m=4,theta=1", "image-space"), ("block-pixels:p=0.5,theta=2", "0 or 1"),
                          ("block-pixels:p=0.5,theta=1,theta=0", "twice")]:
        with pytest.raises(ValueError, match=message):
            parse_measurement(spec, SHAPE)


def test_baselines_never_see_theta(monkeypatch):
    """With ``theta=1`` the AmbientGAN's discriminator gets measurement + mask (2 channels); the baselines train on
    the measured images alone (1 channel) and record that they did. (``train_dcgan`` is replaced by a recorder:
    what is checked is what ``train_ambient_dcgan`` hands it; the training itself is tested above and below.)"""
    import genprior_jax.training.ambient as ambient_module

    calls = {}

    def record(**kw):
        calls[kw["metadata"]["ambient_mode"]] = kw
        return None, dict(kw["metadata"])

    monkeypatch.setattr(ambient_module, "train_dcgan", record)
    spec = "block-pixels:p=0.5,theta=1"
    _, amb = train_ambient_dcgan(spec, "ambient", steps=1, progress=False)
    _, ign = train_ambient_dcgan(spec, "ignore", steps=1, progress=False)
    assert calls["ambient"]["data"].shape[1:] == (28, 28, 2) and calls["ambient"]["measurement"].with_theta
    assert calls["ignore"]["data"].shape[1:] == SHAPE and "measurement" not in calls["ignore"]
    np.testing.assert_array_equal(calls["ambient"]["data"][..., :1], calls["ignore"]["data"])  # same measured set
    assert amb["measurement_theta"] is True and ign["measurement_theta"] is False
    assert calls["ambient"]["measurement"].out_shape == (28, 28, 2)


def test_fake_draws_measure_each_generated_image_k_times():
    """``fake_draws = 2``: the discriminator gets 2B simulated measurements, two independent draws of each of the B
    generated images (different masks; equal where both observe a pixel); a ns and a WGAN-GP step run with them;
    the baselines and plain DCGANs refuse the option."""
    import optax

    from genprior_jax.training.dcgan import _STEP_KEYS, _networks

    model = parse_measurement("block-pixels:p=0.5", SHAPE)
    config = CONFIGS["dcgan-mnist"]
    items = tuple(sorted((k, v) for k, v in config.items() if k in _STEP_KEYS))  # as dcgan_train_step keys it
    _, _, _, generate = _networks(items, 2e-4, 0.5, 0.999, model, 2)
    params = init_dcgan(jax.random.key(0), config, model.out_shape)
    z = jax.random.normal(jax.random.key(1), (4, config["latent"]))
    y = np.asarray(generate(params["generator"], z, jax.random.key(2)))
    assert y.shape == (8, *SHAPE)
    for i in range(4):
        a, b = y[i], y[4 + i]
        both = (a != 0) & (b != 0)
        assert not np.array_equal(a != 0, b != 0) and both.any()
        np.testing.assert_allclose(a[both], b[both], rtol=1e-6)  # the same generated image under both masks
    data = measure_dataset(model, gp.load_mnist("train", n=8).images)
    for kw in ({}, {"loss": "wgan-gp", "d_iters": 1}):
        step = dcgan_train_step(config, measurement=model, fake_draws=2, **kw)
        opt = optax.adam(2e-4, b1=0.5)
        state = {"params": params, "ema": params["generator"],
                 "opt_state": {k: opt.init(v) for k, v in params.items()}}
        x = jnp.asarray(data) if not kw else jnp.asarray(data)[None]
        _, ld, lg = step(state, jnp.float32(0), jax.random.key(3), x)
        assert np.isfinite(float(ld)) and np.isfinite(float(lg))
    with pytest.raises(ValueError, match="fake_draws"):
        dcgan_train_step(config, fake_draws=2)  # no measurement model: nothing to draw
    with pytest.raises(ValueError, match="mode 'ambient' only"):
        train_ambient_dcgan("block-pixels:p=0.5", "unmeasure", steps=1, fake_draws=2, progress=False)


def test_unmeasure_inverts_with_the_operators_that_measured():
    """The TV inverse of baseline (ii) uses each digit's own mask: with no noise and a tiny TV weight, the estimate
    agrees with the measurement on the observed pixels (a mismatched mask would not)."""
    model = parse_measurement("block-pixels:p=0.5", SHAPE)
    x = gp.load_mnist("train", n=8).images
    keys = measurement_keys(8)
    y = measure_dataset(model, x, keys)
    est = unmeasure(model, y, keys, lam=1e-3, num_steps=300)
    observed = y != 0
    assert np.abs(est - x)[observed].max() < 0.05
    err_missing = np.abs(est - x)[(~observed) & (x > 0.5)].mean()
    assert err_missing < 0.5  # the hidden stroke pixels are filled in, not left at 0
    with pytest.raises(ValueError, match="image-space linear"):
        unmeasure(parse_measurement("gaussian:m=4", SHAPE), np.zeros((1, 28, 28, 8), np.float32), keys[:1], 0.01)


def test_ambient_step_compiles_once_and_sees_measurements():
    model = parse_measurement("block-pixels:p=0.5", SHAPE)
    config = CONFIGS["dcgan-mnist"]
    step = dcgan_train_step(config, measurement=model)
    params = init_dcgan(jax.random.key(0), config, model.out_shape)
    import optax

    opt = optax.adam(2e-4, b1=0.5)
    state = {"params": params, "ema": params["generator"],
             "opt_state": {k: opt.init(v) for k, v in params.items()}}
    data = measure_dataset(model, gp.load_mnist("train", n=16).images)
    losses = []
    for t in range(3):
        state, ld, lg = step(state, jnp.float32(t), jax.random.key(t), jnp.asarray(data))
        losses.append((float(ld), float(lg)))
    assert step._cache_size() == 1  # one compilation for every step
    assert dcgan_train_step(config, measurement=model) is step  # cached per model: a second run reuses it
    assert np.all(np.isfinite(losses))
    assert not jax.tree_util.tree_all(jax.tree_util.tree_map(jnp.array_equal, state["params"], params))


def test_train_ambient_with_projections_writes_a_loadable_prior(tmp_path):
    """Gaussian projections: the discriminator's input is (A, y) as 4 + 4 channels; the checkpoint loads as an
    ordinary DCGAN prior that makes clean 28x28 digits."""
    out = tmp_path / "amb"
    _, metrics = train_ambient_dcgan("gaussian:m=4", "ambient", steps=6, out=str(out), progress=False,
                                     batch_size=16)
    assert metrics["measurement"] == {"spec": "gaussian:m=4", "noise": 0.0} and metrics["ambient_mode"] == "ambient"
    prior = gp.load_prior(str(out))
    assert prior.sample(jax.random.key(0), 2).shape == (2, *SHAPE)
    with open(out / "config.json") as fh:
        disc = json.load(fh)
    assert disc["metadata"]["measurement_spec"] == "gaussian:m=4"


@pytest.mark.parametrize("spec, mode, match", [
    pytest.param("gaussian:m=4", "ignore", "not images", id="baseline-on-projections"),
    pytest.param("keep-patch:size=14", "unmeasure", "image-space linear", id="unmeasure-non-linear"),
    pytest.param("keep-patch:size=14", "bogus", "unknown mode", id="unknown-mode"),
])
def test_train_ambient_refuses_a_mode_its_measurement_cannot_take(spec, mode, match):
    """Baselines that need image measurements (or a linear one to invert) refuse, as do unknown modes."""
    with pytest.raises(ValueError, match=match):
        train_ambient_dcgan(spec, mode, steps=1, progress=False)


def test_cli_trains_an_ambient_dcgan(tmp_path, capsys):
    out = tmp_path / "amb"
    assert main(["train", "ambient-dcgan", "--measurement", "block-pixels:p=0.5", "--steps", "5", "--batch-size",
                 "16", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "inception score" in text and "Frechet distance" in text
    with open(out / "config.json") as fh:
        meta = json.load(fh)["metadata"]
    assert meta["measurement"] == {"spec": "block-pixels:p=0.5", "noise": 0.0}
    assert meta["command"].startswith("genprior-jax ")
    assert main(["train", "ambient-dcgan", "--out", str(tmp_path / "x")]) == 2
    assert "--measurement SPEC is required" in capsys.readouterr().err
    assert main(["train", "dcgan", "--measurement", "block-pixels:p=0.5", "--out", str(tmp_path / "y")]) == 2
    assert main(["train", "dcgan", "--draws", "fresh", "--out", str(tmp_path / "z")]) == 2
    assert "--fake-draws apply to ambient-dcgan only" in capsys.readouterr().err
    assert main(["train", "ambient-dcgan", "--measurement", "block-pixels:p=0.5", "--draws", "fresh", "--steps", "2",
                 "--batch-size", "16", "--out", str(tmp_path / "f")]) == 0
    with open(tmp_path / "f" / "config.json") as fh:
        assert json.load(fh)["metadata"]["draws"] == "fresh"


def test_classifier_scores_on_real_digits_and_noise():
    """The inception-style score is near its maximum (10) on the held-out test digits and near 1 on noise; the
    Frechet distance is small between two sets of real digits and large against noise."""
    clf = mnist_classifier(0)
    test = gp.load_mnist("test").images
    val = gp.load_mnist("validation").images
    noise = np.asarray(jax.random.uniform(jax.random.key(1), (500, *SHAPE)))
    assert inception_score(class_probabilities(clf, test)) > 8.5
    assert inception_score(class_probabilities(clf, noise)) < 1.5
    f_test = classifier_features(clf, test)
    real = frechet_distance(classifier_features(clf, val), f_test)
    assert 0 < real < 0.1 * frechet_distance(classifier_features(clf, noise), f_test)


def test_inception_score_and_frechet_distance_closed_forms():
    eye = np.eye(10)
    assert inception_score(np.tile(eye, (3, 1))) == pytest.approx(10.0)
    assert inception_score(np.tile(np.full(10, 0.1), (5, 1))) == pytest.approx(1.0)
    assert inception_score(np.tile(eye[:1], (5, 1))) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(300, 6)) * 2.0 + 1.0
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s_a + s_b - 2 * np.real(scipy.linalg.sqrtm(s_a @ s_b)))
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-8)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ValueError, match="equal F"):
        frechet_distance(a, b[:, :5])
    with pytest.raises(ValueError, match="probabilities"):
        inception_score(np.full((2, 3), np.nan))


@pytest.mark.parametrize("data_kwargs, match", [
    pytest.param(lambda good: dict(data=np.zeros((64, *SHAPE), np.float32)),
                 r"expected data of dtype float32 and shape \(N, \*\(28, 28, 8\)\), got float32 \(64, 28, 28, 1\)",
                 id="images-not-measurements"),
    pytest.param(lambda good: dict(data=good.astype(np.float64)), "got float64", id="float64"),
    pytest.param(lambda good: dict(data=np.where(np.arange(good.size).reshape(good.shape) == 3, np.nan, good)
                                   .astype(np.float32)), "NaN or infinite", id="nan"),
    pytest.param(lambda good: {}, "needs data", id="no-data"),
])
def test_bad_training_data_is_refused_before_training(data_kwargs, match):
    """Measured data of the wrong shape, dtype or with NaNs (or none) raise ValueError naming what was expected and
    what came."""
    from genprior_jax.training import train_dcgan

    model = parse_measurement("gaussian:m=4", SHAPE)
    good = np.zeros((64, *model.out_shape), np.float32)
    with pytest.raises(ValueError, match=match):
        train_dcgan(steps=1, measurement=model, progress=False, **data_kwargs(good))


def test_images_of_the_wrong_shape_for_a_measurement_model_are_refused():
    with pytest.raises(ValueError, match=r"expected images of shape \(N, \*\(28, 28, 1\)\), got \(2, 28, 28\)"):
        measure_dataset(parse_measurement("gaussian:m=4", SHAPE), np.zeros((2, 28, 28), np.float32))


def test_unmeasure_draws_the_operator_measure_drew():
    """MeasurementModel.operator(key) is the operator measure(key, .) applies (noise-free masks: equal outputs)."""
    model = parse_measurement("block-pixels:p=0.5", SHAPE)
    x = jnp.asarray(gp.load_mnist("test", n=1).images[0])
    key = jax.random.key(3)
    np.testing.assert_array_equal(np.asarray(model.measure(key, x)), np.asarray(model.operator(key)(x)))


def test_fresh_draws_measure_and_invert_each_batch_anew():
    """draws='fresh' (the reference code's protocol): FreshDraws measures a clean batch exactly as measure_dataset
    does with the keys split from the step's key, a new key gives new masks, and with a TV weight it returns the
    TV inversion with the operators it drew (close to unmeasure's on the same measurements)."""
    from genprior_jax.training import FreshDraws

    model = parse_measurement("block-pixels:p=0.5", SHAPE)
    x = jnp.asarray(gp.load_mnist("train", n=8).images)
    key = jax.random.key(5)
    y = np.asarray(FreshDraws(model)(key, x))
    np.testing.assert_array_equal(y, measure_dataset(model, x, jax.random.split(key, 8)))
    assert not np.array_equal(y != 0, np.asarray(FreshDraws(model)(jax.random.key(6), x)) != 0)
    est = np.asarray(jax.jit(FreshDraws(model, lam=1e-3))(key, x))
    ref = unmeasure(model, y, jax.random.split(key, 8), lam=1e-3, num_steps=300)
    assert np.abs(est - ref).mean() < 0.01, np.abs(est - ref).mean()
    assert FreshDraws(model, 1e-3) == FreshDraws(model, 1e-3)  # hashable and equal: the step is cached per protocol


def test_train_with_fresh_draws(tmp_path):
    """train_ambient_dcgan(draws='fresh') trains from the clean digits (the D sees fresh measurements), records the
    protocol in the checkpoint, and refuses an unknown protocol by name."""
    _, metrics = train_ambient_dcgan("block-pixels:p=0.5", "ambient", steps=3, draws="fresh", progress=False,
                                     out=str(tmp_path / "fresh"))
    assert metrics["draws"] == "fresh" and np.isfinite(metrics["final_d_loss"])
    prior = gp.load_prior(str(tmp_path / "fresh"))
    assert prior.sample(jax.random.key(0), 2).shape == (2, *SHAPE)
    with pytest.raises(ValueError, match=r"unknown draws 'twice'; expected one of \('once', 'fresh'\)"):
        train_ambient_dcgan("block-pixels:p=0.5", "ambient", steps=1, draws="twice", progress=False)


def test_wgan_gp_critic_loss_for_a_linear_critic():
    """f(v) = <w, v> + b has gradient w everywhere: the loss is <w, mean(fake) - mean(x)> + gp (||w|| - 1)^2 exactly,
    whatever the interpolation weights; for a critic with a non-constant gradient the weights matter."""
    from genprior_jax.training import wgan_gp_critic_loss

    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    x, fake = jax.random.normal(k1, (6, 4, 3)), jax.random.normal(k2, (6, 4, 3)) + 1.0
    w = jax.random.normal(k3, (4, 3))

    def linear(v):
        return jnp.sum(v * w, axis=(1, 2)) + 0.3

    expect = jnp.sum(w * (fake.mean(0) - x.mean(0))) + 7.0 * (jnp.linalg.norm(w) - 1.0) ** 2
    for seed in range(3):
        got = wgan_gp_critic_loss(linear, x, fake, jax.random.key(seed), 7.0)
        np.testing.assert_allclose(got, expect, rtol=1e-5)
    unit = w / jnp.linalg.norm(w)
    np.testing.assert_allclose(wgan_gp_critic_loss(lambda v: jnp.sum(v * unit, axis=(1, 2)), x, fake,
                                                   jax.random.key(0), 7.0),
                               jnp.sum(unit * (fake.mean(0) - x.mean(0))), rtol=1e-5)  # 1-Lipschitz: no penalty

    def quadratic(v):
        return jnp.sum(v**2, axis=(1, 2))

    a, b = (wgan_gp_critic_loss(quadratic, x, fake, jax.random.key(s), 7.0) for s in (0, 1))
    assert not np.isclose(a, b)


def test_wgan_gp_ambient_training_runs_d_iters_per_step(tmp_path, capsys):
    """WGAN-GP through block-pixels: each step takes d_iters real batches, compiles once, records its loss settings
    in the checkpoint; the non-saturating loss refuses d_iters > 1 and unknown losses are refused by name."""
    out = tmp_path / "wgan"
    _, metrics = train_ambient_dcgan("block-pixels:p=0.5", "ambient", steps=3, out=str(out), progress=False,
                                     batch_size=8, loss="wgan-gp", d_iters=2)
    assert metrics["loss"] == "wgan-gp" and metrics["d_iters"] == 2 and np.isfinite(metrics["final_d_loss"])
    model = parse_measurement("block-pixels:p=0.5", SHAPE)
    step = dcgan_train_step(CONFIGS["dcgan-mnist"], measurement=model, loss="wgan-gp", d_iters=2)
    assert step._cache_size() == 1
    assert gp.load_prior(str(out)).sample(jax.random.key(0), 2).shape == (2, *SHAPE)
    with pytest.raises(ValueError, match="d_iters"):
        dcgan_train_step(CONFIGS["dcgan-mnist"], d_iters=5)
    with pytest.raises(ValueError, match="unknown loss"):
        dcgan_train_step(CONFIGS["dcgan-mnist"], loss="hinge")
    assert main(["train", "ambient-dcgan", "--measurement", "block-pixels:p=0.5", "--d-iters", "3", "--out",
                 str(tmp_path / "x")]) == 2
    assert "--d-iters 3 needs --loss wgan-gp" in capsys.readouterr().err
    assert main(["train", "vae", "--loss", "wgan-gp", "--out", str(tmp_path / "y")]) == 2
    assert "apply to dcgan and ambient-dcgan only" in capsys.readouterr().err
