"""Adversarial examples and the range-projection defense: classifier, FGSM / PGD, projection, BPDA."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genprior_jax as gp
from genprior_jax import adversarial as adv
from genprior_jax.priors import Prior
from genprior_jax.solvers import Status

N_TEST = 200
SMALL = (4, 4, 1)


@pytest.fixture(scope="module")
def trained():
    train = gp.load_mnist("train")
    clf, metrics = adv.train_classifier(jax.random.key(0), train.images, train.labels)
    test = gp.load_mnist("test", n=N_TEST)
    return clf, metrics, jnp.asarray(test.images), jnp.asarray(test.labels)


@pytest.fixture(scope="module")
def vae():
    return gp.load_prior("vae-mnist")


def linear_model(key, shape=SMALL, classes=3):
    """A linear softmax classifier ``logits = vec(x) W + b``, whose input gradient has a closed form."""
    kw, kb = jax.random.split(key)
    n = int(np.prod(shape))
    W = jax.random.normal(kw, (n, classes))
    b = jax.random.normal(kb, (classes,))
    return (lambda x: x.reshape(x.shape[0], -1) @ W + b), np.asarray(W, np.float64), np.asarray(b, np.float64)


def linear_ce_gradient(W, b, x, labels):
    """Closed form ``grad_x CE = W (softmax(vec(x) W + b) - onehot)``, reshaped, in float64."""
    flat = np.asarray(x, np.float64).reshape(len(x), -1)
    logits = flat @ W + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(x)), labels] -= 1.0
    return (p @ W.T).reshape(x.shape)


def affine_prior(key, latent=2):
    kw, kb = jax.random.split(key)
    n = int(np.prod(SMALL))
    params = {"W": jax.random.normal(kw, (n, latent)) / 3.0, "b": 0.5 + 0.1 * jax.random.normal(kb, (n,))}
    return Prior("affine", (latent,), SMALL, lambda p, z: (p["W"] @ z + p["b"]).reshape(SMALL), params)


# ---------------------------------------------------------------------------------------------- classifier


def test_classifier_accuracy_and_checkpoint(trained, tmp_path):
    clf, metrics, x, labels = trained
    acc = adv.accuracy(clf.logits, x, labels)
    assert acc > 0.95, (acc, metrics["seconds"])
    assert len(metrics["history"]) == metrics["epochs"]
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"]
    path = adv.save_classifier(str(tmp_path / "mlp"), clf, {"test_accuracy": acc})
    loaded = adv.load_classifier(path)
    assert loaded.config == {**clf.config, "hidden": list(clf.config["hidden"]),
                             "image_shape": list(clf.config["image_shape"])}
    np.testing.assert_array_equal(np.asarray(loaded.logits(x)), np.asarray(clf.logits(x)))
    gp.save_checkpoint(str(tmp_path / "other"), {"w": np.ones(2)}, "vae", {})
    with pytest.raises(ValueError, match="kind 'vae'; expected 'classifier'"):
        adv.load_classifier(str(tmp_path / "other"))


def test_random_shift_is_a_zero_filled_translation(key):
    x = jax.random.uniform(key, (16, 6, 5, 1))
    out = np.asarray(adv.random_shift(jax.random.fold_in(key, 1), x, 2))
    padded = np.pad(np.asarray(x), ((0, 0), (2, 2), (2, 2), (0, 0)))
    seen = set()
    for i in range(len(x)):
        matches = [(dy, dx) for dy, dx in itertools.product(range(5), range(5))
                   if np.array_equal(out[i], padded[i, dy:dy + 6, dx:dx + 5])]
        assert len(matches) == 1, i
        seen.add(matches[0])
    assert len(seen) > 3  # offsets are drawn per image
    np.testing.assert_array_equal(adv.random_shift(key, x, 0), x)


@pytest.fixture(scope="module")
def validation():
    return gp.load_mnist("validation", n=100)


@pytest.mark.parametrize("train, match", [
    pytest.param(lambda key, x, y: adv.train_classifier(key, x[0], y[:1]),
                 r"expected a batch of images of shape \(B, \*\(28, 28, 1\)\), got \(28, 28, 1\)", id="one-image"),
    pytest.param(lambda key, x, y: adv.train_classifier(key, x, y[:99]),
                 r"expected integer labels of shape \(100,\)", id="99-labels"),
    pytest.param(lambda key, x, y: adv.train_classifier(key, x * 2.0, y),
                 r"finite pixel values in \[0, 1\], got range", id="pixels-above-1"),
    pytest.param(lambda key, x, y: adv.train_classifier(key, x, y, epochs=0), "epochs >= 1", id="zero-epochs"),
])
def test_classifier_bad_input(validation, key, train, match):
    with pytest.raises(ValueError, match=match):
        train(key, validation.images, validation.labels)


@pytest.mark.parametrize("attack, match", [
    pytest.param(lambda f, key, x, labels: adv.fgsm(f, x, labels, -0.1), "expected a finite eps >= 0",
                 id="fgsm-negative-eps"),
    pytest.param(lambda f, key, x, labels: adv.pgd(f, key, x, labels, eps=0.1, step_size=0.0),
                 "expected a finite step_size > 0", id="pgd-zero-step-size"),
    pytest.param(lambda f, key, x, labels: adv.pgd(f, key, x, labels, eps=0.1, num_steps=-1),
                 "integer num_steps >= 0", id="pgd-negative-steps"),
    pytest.param(lambda f, key, x, labels: adv.pgd(f, key, x[0], labels[:1], eps=0.1),
                 r"expected a batch of images of shape \(B, H, W, C\), got \(4, 4, 1\)", id="pgd-one-image"),
    pytest.param(lambda f, key, x, labels: adv.fgsm(f, x.at[0, 0, 0, 0].set(jnp.nan), labels, 0.1),
                 r"got range \[nan, nan\]", id="fgsm-nan-image"),
    pytest.param(lambda f, key, x, labels: adv.pgd(f, 0, x, labels, eps=0.1), "expected a PRNG key",
                 id="pgd-int-key"),
])
def test_attack_bad_input(key, attack, match):
    f, _, _ = linear_model(key)
    x = jnp.full((2, *SMALL), 0.5)
    labels = jnp.array([0, 1])
    with pytest.raises(ValueError, match=match):
        attack(f, key, x, labels)


# ---------------------------------------------------------------------------------------------- defense


def test_projection_onto_affine_range_is_least_squares(key):
    prior = affine_prior(key)
    x = jax.random.uniform(jax.random.fold_in(key, 1), (3, *SMALL))
    res = adv.project_to_range(prior, jax.random.fold_in(key, 2), x, num_steps=400, num_restarts=2,
                               learning_rate=0.05)
    W, b = np.asarray(prior.params["W"], np.float64), np.asarray(prior.params["b"], np.float64)
    z_star = np.linalg.lstsq(W, np.asarray(x, np.float64).reshape(3, -1).T - b[:, None], rcond=None)[0].T
    np.testing.assert_allclose(res.state.z, z_star, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(res.x, (z_star @ W.T + b).reshape(x.shape), atol=1e-3)


def test_projection_of_a_generated_image_returns_it(vae, key):
    x = vae.sample(key, 4)
    res = adv.project_to_range(vae, jax.random.fold_in(key, 1), x, num_steps=300, num_restarts=4,
                               learning_rate=0.05)
    assert np.all(np.asarray(res.status) == Status.OK)
    err = np.asarray(gp.mse(x, res.x))
    real = gp.load_mnist("test", n=4).images
    err_real = np.asarray(gp.mse(real, adv.project_to_range(vae, key, real, num_steps=300, num_restarts=4,
                                                            learning_rate=0.05).x))
    assert err.max() < 1e-3 and err.max() < 0.2 * err_real.min(), (err, err_real)


def test_projection_nan_image_is_reported_per_image(trained, vae, key):
    clf, _, x, labels = trained
    x = x[:3].at[1, 5, 5, 0].set(jnp.nan)
    pred, res = adv.defended_predict(clf.logits, vae, key, x, adv.Projection(num_steps=20, num_restarts=2))
    np.testing.assert_array_equal(res.status, [Status.OK, Status.NONFINITE, Status.OK])
    assert int(pred[1]) == -1 and np.all(np.asarray(pred)[[0, 2]] >= 0)
    assert np.all(np.isfinite(np.asarray(res.x)[[0, 2]]))


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda vae, key: adv.project_to_range(vae, key, jnp.zeros((2, 28, 28))),
                 r"expected images of shape \(B, \*\(28, 28, 1\)\) or \(28, 28, 1\)", id="project-images-shape"),
    pytest.param(lambda vae, key: adv.defended_logits(lambda v: v, vae, adv.Projection(), "exact"),
                 "unknown gradient 'exact'", id="defense-unknown-gradient"),
])
def test_projection_bad_input(vae, key, call, match):
    with pytest.raises(ValueError, match=match):
        call(vae, key)


def test_bpda_gradient_is_the_classifier_gradient_at_the_projection(trained, vae, key):
    clf, _, x, labels = trained
    x, labels = x[:4], labels[:4]
    proj = adv.Projection(num_steps=30, num_restarts=2, learning_rate=0.05)
    model = adv.defended_logits(clf.logits, vae, proj, "bpda")
    assert adv.defended_logits(clf.logits, vae, proj, "bpda") is model  # cached: attacks do not recompile
    g = adv.input_gradient(model, x, labels, key)
    assert g.shape == x.shape and bool(jnp.all(jnp.isfinite(g)))
    x_proj = adv.project_to_range(vae, key, x, **proj._asdict()).x
    np.testing.assert_allclose(g, adv.input_gradient(clf.logits, x_proj, labels), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model(x, key), clf.logits(x_proj), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_unrolled_gradient_matches_finite_differences(key):
    prior = affine_prior(key)
    f, _, _ = linear_model(jax.random.fold_in(key, 1))
    x = jax.random.uniform(jax.random.fold_in(key, 2), (2, *SMALL))
    labels = jnp.array([0, 2])
    proj = adv.Projection(num_steps=5, num_restarts=1, learning_rate=0.1)
    model = adv.defended_logits(f, prior, proj, "unrolled")
    k = jax.random.fold_in(key, 3)
    g = adv.input_gradient(model, x, labels, k)
    assert g.shape == x.shape and float(jnp.max(jnp.abs(g))) > 0
    loss = lambda v: float(jnp.sum(adv.cross_entropy(model(v, k), labels)))  # noqa: E731
    d = jax.random.normal(jax.random.fold_in(key, 4), x.shape)
    h = 1e-2
    fd = (loss(x + h * d) - loss(x - h * d)) / (2 * h)
    np.testing.assert_allclose(float(jnp.sum(g * d)), fd, rtol=2e-2)


@pytest.mark.slow
def test_adaptive_attacks_respect_the_constraints(trained, vae, key):
    clf, _, x, labels = trained
    x, labels = x[:4], labels[:4]
    small = adv.Projection(num_steps=10, num_restarts=1, learning_rate=0.05)
    for attack in (adv.bpda_pgd, adv.unrolled_pgd):
        x_adv = np.asarray(attack(clf.logits, vae, key, x, labels, eps=0.2, step_size=0.05, num_steps=3,
                                  projection=small))
        assert x_adv.shape == x.shape
        assert np.max(np.abs(x_adv - np.asarray(x))) <= 0.2 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
        assert np.max(np.abs(x_adv - np.asarray(x))) > 0.1
