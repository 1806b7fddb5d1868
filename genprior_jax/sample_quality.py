"""Quality of generated MNIST digits through the project's classifier (:mod:`genprior_jax.adversarial`).

- **Inception-style score** (Salimans et al. 2016, with the MNIST classifier in place of Inception, as AmbientGAN
  does): ``IS = exp(E_x KL(p(y|x) || p(y)))``, ``p(y) = E_x p(y|x)``. Between 1 (every image gets the same class
  distribution) and the number of classes (confident predictions spread evenly over the classes).
- **Frechet distance** (Heusel et al. 2017, "FID" with the classifier's last hidden layer as the feature map):
  ``||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)`` between Gaussian fits of two feature sets;
  0 for equal statistics. Compare only figures computed with the same classifier and sample sizes (the estimate
  is biased upwards for small samples).

:func:`mnist_classifier` trains the classifier deterministically (seed, 20 epochs, seconds on a CPU) and caches it
per process, so every score in a run and across runs uses the same network.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np

from .adversarial.classifier import Classifier, check_batch, train_classifier
from .data import load_mnist

Array = jax.Array


@functools.cache
def mnist_classifier(seed: int = 0, epochs: int = 20) -> Classifier:
    """The MLP classifier trained on the 4,000 embedded training digits (``train_classifier`` with key
    ``jax.random.key(seed)``), cached per ``(seed, epochs)``."""
    train = load_mnist("train")
    clf, _ = train_classifier(jax.random.key(seed), train.images, train.labels, epochs=epochs)
    return clf


@functools.cache
def _features_fn(hidden: tuple[str, ...]) -> Any:
    """The jitted hidden-layer map of an :class:`~genprior_jax.adversarial.MLP` whose ``Dense`` layers before the
    output are ``hidden``; cached, so repeated scoring compiles once per batch shape."""

    @jax.jit
    def feats(params: Any, xb: Array) -> Array:
        h = xb.reshape(xb.shape[0], -1)
        for name in hidden:
            h = jax.nn.relu(h @ params[name]["kernel"] + params[name]["bias"])
        return h

    return feats


def classifier_features(clf: Classifier, x: Any, batch_size: int = 500) -> np.ndarray:
    """``(B, F)`` float64 activations of the classifier's last hidden layer (after its ReLU) for images ``x``
    of shape ``(B, *clf.image_shape)`` in ``[0, 1]``."""
    x, _ = check_batch(x, np.zeros(len(x), np.int32), clf.image_shape, "classifier_features")
    feats = _features_fn(tuple(sorted(clf.params, key=lambda k: int(k.split("_")[-1])))[:-1])
    return np.concatenate([np.asarray(feats(clf.params, x[i:i + batch_size]), np.float64)
                           for i in range(0, len(x), batch_size)])


def class_probabilities(clf: Classifier, x: Any, batch_size: int = 500) -> np.ndarray:
    """``(B, classes)`` float64 softmax probabilities ``p(y | x)``."""
    x, _ = check_batch(x, np.zeros(len(x), np.int32), clf.image_shape, "class_probabilities")
    return np.concatenate([np.asarray(jax.nn.softmax(clf.logits(x[i:i + batch_size]), -1), np.float64)
                           for i in range(0, len(x), batch_size)])


def inception_score(probs: Any) -> float:
    """``exp(mean_i KL(p_i || mean_j p_j))`` of ``(B, classes)`` class probabilities (see the module docstring)."""
    p = np.asarray(probs, np.float64)
    if p.ndim != 2 or len(p) == 0 or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"inception_score: expected finite non-negative probabilities of shape (B, classes), got "
                         f"shape {p.shape}")
    p = p / p.sum(1, keepdims=True)
    marginal = p.mean(0, keepdims=True)
    eps = 1e-12
    kl = np.sum(p * (np.log(p + eps) - np.log(marginal + eps)), axis=1)
    return float(np.exp(kl.mean()))


def frechet_distance(feat_a: Any, feat_b: Any) -> float:
    """Frechet distance between Gaussian fits of two feature sets ``(N_a, F)`` and ``(N_b, F)`` (float64, the
    matrix square root by symmetric eigendecompositions: ``tr (S_a^1/2 S_b S_a^1/2)^1/2``)."""
    a, b = np.asarray(feat_a, np.float64), np.asarray(feat_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"frechet_distance: expected two (N, F) feature arrays with equal F and N >= 2, got "
                         f"{a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    trace_sqrt = float(np.sum(np.sqrt(np.clip(cross, 0.0, None))))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2.0 * trace_sqrt)


def sample_scores(clf: Classifier, samples: Any, reference: Any) -> dict[str, float]:
    """``{"inception_score", "frechet_distance"}`` of generated ``samples`` against ``reference`` images (e.g.
    the held-out test digits), both ``(N, *clf.image_shape)``."""
    return {"inception_score": inception_score(class_probabilities(clf, samples)),
            "frechet_distance": frechet_distance(classifier_features(clf, samples),
                                                 classifier_features(clf, reference))}


__all__ = ["class_probabilities", "classifier_features", "frechet_distance", "inception_score", "mnist_classifier",
           "sample_scores"]
