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


def test_classifier_bad_input(key):
    train = gp.load_mnist("validation", n=100)
    with pytest.raises(ValueError,
                       match=r"expected a batch of images of shape \(B, \*\(28, 28, 1\)\), got \(28, 28, 1\)"):
        adv.train_classifier(key, train.images[0], train.labels[:1])
    with pytest.raises(ValueError, match=r"expected integer labels of shape \(100,\)"):
        adv.train_classifier(key, train.images, train.labels[:99])
    with pytest.raises(ValueError, match=r"finite pixel values in \[0, 1\], got range"):
        adv.train_classifier(key, train.images * 2.0, train.labels)
    with pytest.raises(ValueError, match="epochs >= 1"):
        adv.train_classifier(key, train.images, train.labels, epochs=0)


# ---------------------------------------------------------------------------------------------- attacks


def test_input_gradient_matches_closed_form_and_per_example_grad(key):
    f, W, b = linear_model(key)
    x = jax.random.uniform(jax.random.fold_in(key, 1), (5, *SMALL))
    labels = jnp.array([0, 1, 2, 1, 0])
    g = np.asarray(adv.input_gradient(f, x, labels))
    np.testing.assert_allclose(g, linear_ce_gradient(W, b, x, labels), rtol=1e-4, atol=1e-5)
    for i in range(len(x)):  # the batched gradient is each image's own gradient
        gi = jax.grad(lambda v: adv.cross_entropy(f(v[None]), labels[i:i + 1])[0])(x[i])
        np.testing.assert_allclose(g[i], gi, rtol=1e-5, atol=1e-6)


def test_fgsm_matches_closed_form(key):
    f, W, b = linear_model(key)
    x = jax.random.uniform(jax.random.fold_in(key, 1), (6, *SMALL))
    labels = jnp.array([0, 1, 2, 0, 1, 2])
    eps = 0.15
    expected = np.clip(np.asarray(x) + eps * np.sign(linear_ce_gradient(W, b, x, labels)), 0, 1)
    np.testing.assert_allclose(adv.fgsm(f, x, labels, eps), expected, atol=1e-6)


def test_fgsm_and_pgd_reduce_accuracy(trained, key):
    clf, _, x, labels = trained
    clean = adv.accuracy(clf.logits, x, labels)
    x_fgsm = adv.fgsm(clf.logits, x, labels, 0.1)
    x_pgd = adv.pgd(clf.logits, key, x, labels, eps=0.1, step_size=0.01, num_steps=20)
    acc_fgsm, acc_pgd = adv.accuracy(clf.logits, x_fgsm, labels), adv.accuracy(clf.logits, x_pgd, labels)
    assert acc_fgsm < clean - 0.3, (clean, acc_fgsm)
    assert acc_pgd <= acc_fgsm and acc_pgd < 0.3, (acc_fgsm, acc_pgd)
    loss = lambda v: float(adv.cross_entropy(clf.logits(v), labels).mean())  # noqa: E731
    assert loss(x_pgd) > loss(x_fgsm) > loss(x)


def test_pgd_with_zero_eps_changes_nothing(trained, key):
    clf, _, x, labels = trained
    for random_start in (True, False):
        np.testing.assert_array_equal(adv.pgd(clf.logits, key, x[:20], labels[:20], eps=0.0,
                                              random_start=random_start), x[:20])
    np.testing.assert_array_equal(adv.fgsm(clf.logits, x[:20], labels[:20], 0.0), x[:20])


@pytest.mark.parametrize("eps", [0.05, 0.2, 0.3])
def test_attacks_stay_in_the_ball_and_the_box(trained, key, eps):
    clf, _, x, labels = trained
    x, labels = x[:32], labels[:32]
    for x_adv in (adv.fgsm(clf.logits, x, labels, eps),
                  adv.pgd(clf.logits, key, x, labels, eps=eps, step_size=0.05, num_steps=10)):
        x_adv = np.asarray(x_adv)
        assert x_adv.shape == x.shape and x_adv.dtype == np.float32
        assert np.max(np.abs(x_adv - np.asarray(x))) <= eps + 1e-6
        assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
        assert np.max(np.abs(x_adv - np.asarray(x))) > 0.5 * eps  # it does move


def test_pgd_keys_and_recompilation(trained, key):
    clf, _, x, labels = trained
    a = adv.pgd(clf.logits, key, x[:8], labels[:8], eps=0.1, num_steps=3)
    b = adv.pgd(clf.logits, key, x[:8], labels[:8], eps=0.1, num_steps=3)
    c = adv.pgd(clf.logits, jax.random.fold_in(key, 1), x[:8], labels[:8], eps=0.1, num_steps=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    size = adv.attacks._pgd._cache_size()
    adv.pgd(clf.logits, key, x[:8], labels[:8], eps=0.2, step_size=0.02, num_steps=3)  # traced eps, step_size
    assert adv.attacks._pgd._cache_size() == size


def test_attack_bad_input(key):
    f, _, _ = linear_model(key)
    x = jnp.full((2, *SMALL), 0.5)
    labels = jnp.array([0, 1])
    with pytest.raises(ValueError, match="expected a finite eps >= 0"):
        adv.fgsm(f, x, labels, -0.1)
    with pytest.raises(ValueError, match="expected a finite step_size > 0"):
        adv.pgd(f, key, x, labels, eps=0.1, step_size=0.0)
    with pytest.raises(ValueError, match="integer num_steps >= 0"):
        adv.pgd(f, key, x, labels, eps=0.1, num_steps=-1)
    with pytest.raises(ValueError, match=r"expected a batch of images of shape \(B, H, W, C\), got \(4, 4, 1\)"):
        adv.pgd(f, key, x[0], labels[:1], eps=0.1)
    with pytest.raises(ValueError, match=r"got range \[nan, nan\]"):
        adv.fgsm(f, x.at[0, 0, 0, 0].set(jnp.nan), labels, 0.1)
    with pytest.raises(ValueError, match="expected a PRNG key"):
        adv.pgd(f, 0, x, labels, eps=0.1)


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


def test_projection_bad_input(vae, key):
    with pytest.raises(ValueError, match=r"expected images of shape \(B, \*\(28, 28, 1\)\) or \(28, 28, 1\)"):
        adv.project_to_range(vae, key, jnp.zeros((2, 28, 28)))
    with pytest.raises(ValueError, match="unknown gradient 'exact'"):
        adv.defended_logits(lambda v: v, vae, adv.Projection(), "exact")


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
