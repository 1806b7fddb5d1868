"""Adversarial examples and the generative-prior defense: a small MNIST classifier, FGSM / PGD attacks, the
projection onto a generator's range (Defense-GAN) and the adaptive attacks on it (BPDA, unrolled)."""

from .attacks import cross_entropy, fgsm, input_gradient, pgd
from .classifier import (
                         DEFAULT_CONFIG,
                         MLP,
                         Classifier,
                         accuracy,
                         init_classifier,
                         load_classifier,
                         make_classifier,
                         random_shift,
                         save_classifier,
                         train_classifier,
)
from .defense import GRADIENTS, Projection, bpda_pgd, defended_logits, defended_predict, project_to_range, unrolled_pgd

__all__ = [
    "DEFAULT_CONFIG", "GRADIENTS", "MLP", "Classifier", "Projection", "accuracy", "bpda_pgd", "cross_entropy",
    "defended_logits", "defended_predict", "fgsm", "init_classifier", "input_gradient", "load_classifier",
    "make_classifier", "pgd", "project_to_range", "random_shift", "save_classifier", "train_classifier",
    "unrolled_pgd",
]
