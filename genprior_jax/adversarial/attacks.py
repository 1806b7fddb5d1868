"""L-infinity evasion attacks on a differentiable classifier: FGSM and PGD.

A model is a ``logits_fn`` mapping a batch ``(B, H, W, C)`` of images in ``[0, 1]`` to ``(B, K)`` logits, where
row ``b`` depends on image ``b`` only (no batch statistics); then the gradient of the *summed* cross-entropy
is, row by row, each image's own input gradient, so one backward pass attacks the whole batch.

- FGSM (Goodfellow et al. 2015): ``x_adv = clip_[0,1](x + eps sign(grad_x L(x, y)))``.
- PGD (Madry et al. 2018): from ``x0 = clip_[0,1](x + U[-eps, eps])`` (``random_start``) or ``x``, repeat
  ``x <- clip_[0,1](clip_[x-eps, x+eps](x + step_size sign(grad_x L(x, y))))``; the last iterate is returned.

``L`` is the softmax cross-entropy with the true labels (an untargeted attack). So every output satisfies
``||x_adv - x||_inf <= eps`` and ``0 <= x_adv <= 1``. A non-finite gradient entry takes no step (sign 0).

A randomised model (e.g. a projection defense with random restarts) is attacked with ``keyed=True``:
``logits_fn(x, key)`` then receives a fresh key at every PGD step (an expectation over its randomness with
one sample per step). ``eps`` and ``step_size`` are traced (a sweep over them compiles once); ``logits_fn``,
``num_steps``, ``random_start`` and ``keyed`` are static, so keep ``logits_fn`` the same object across calls.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import optax

from ..operators.validation import check_key
from .classifier import check_batch

Array = jax.Array


def cross_entropy(logits: Array, labels: Array) -> Array:
    """Per-example softmax cross-entropy ``-log softmax(logits)[label]``: ``(B, K), (B,) -> (B,)``."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def input_gradient(logits_fn: Callable[..., Array], x: Array, labels: Array, *args: Any) -> Array:
    """``grad_x`` of ``sum_b cross_entropy(logits_fn(x, *args), labels)_b``, shape ``(B, H, W, C)``: row ``b`` is
    image ``b``'s own loss gradient for a per-image ``logits_fn``. Non-finite entries are set to 0."""
    g = jax.grad(lambda v: jnp.sum(cross_entropy(logits_fn(v, *args), labels)))(x)
    return jnp.where(jnp.isfinite(g), g, 0.0)


def _check_eps(eps: Any, who: str, name: str = "eps", positive: bool = False) -> None:
    if isinstance(eps, jax.core.Tracer):
        return
    value = float(eps)
    if not (value > 0 if positive else value >= 0) or value != value or value == float("inf"):
        raise ValueError(f"{who}: expected a finite {name} {'> 0' if positive else '>= 0'}, got {eps!r}")


@functools.partial(jax.jit, static_argnames=("logits_fn",))
def _fgsm(logits_fn: Callable[[Array], Array], x: Array, labels: Array, eps: Array) -> Array:
    return jnp.clip(x + eps * jnp.sign(input_gradient(logits_fn, x, labels)), 0.0, 1.0)


def fgsm(logits_fn: Callable[[Array], Array], x: Any, labels: Any, eps: float | Array) -> Array:
    """Fast gradient sign method: one step of size ``eps`` along the sign of the loss gradient.

    Args:
        logits_fn: ``(B, H, W, C) -> (B, K)`` logits, per-image, differentiable.
        x: clean images ``(B, H, W, C)`` in ``[0, 1]``.
        labels: ``(B,)`` true classes.
        eps: L-inf budget (``>= 0``).

    Returns:
        ``(B, H, W, C)`` adversarial images, ``||x_adv - x||_inf <= eps``, in ``[0, 1]``.
    """
    x, labels = check_batch(x, labels, None, "fgsm")
    _check_eps(eps, "fgsm")
    return _fgsm(logits_fn, x, labels, jnp.asarray(eps, jnp.float32))


@functools.partial(jax.jit, static_argnames=("logits_fn", "num_steps", "random_start", "keyed"))
def _pgd(logits_fn: Callable[..., Array], key: Array, x: Array, labels: Array, eps: Array, step_size: Array, *,
         num_steps: int, random_start: bool, keyed: bool) -> Array:
    k_start, k_steps = jax.random.split(key)
    x_adv = x
    if random_start:
        x_adv = jnp.clip(x + jax.random.uniform(k_start, x.shape, x.dtype, -eps, eps), 0.0, 1.0)

    def body(x_adv: Array, k: Array) -> tuple[Array, None]:
        g = input_gradient(logits_fn, x_adv, labels, *((k,) if keyed else ()))
        x_adv = jnp.clip(x_adv + step_size * jnp.sign(g), x - eps, x + eps)
        return jnp.clip(x_adv, 0.0, 1.0), None

    x_adv, _ = jax.lax.scan(body, x_adv, jax.random.split(k_steps, num_steps))
    return x_adv


def pgd(logits_fn: Callable[..., Array], key: Array, x: Any, labels: Any, *, eps: float | Array,
        step_size: float | Array = 0.01, num_steps: int = 40, random_start: bool = True,
        keyed: bool = False) -> Array:
    """Projected gradient descent (sign steps) on the cross-entropy within the L-inf ball of radius ``eps``.

    Args:
        logits_fn: ``(B, H, W, C) -> (B, K)`` logits, or ``(x, key) -> logits`` with ``keyed=True``.
        key: PRNG key for the random start and the per-step keys of a keyed model.
        x: clean images ``(B, H, W, C)`` in ``[0, 1]``.
        labels: ``(B,)`` true classes.
        eps: L-inf budget (``>= 0``; 0 returns ``x`` unchanged).
        step_size: size of each sign step (``> 0``; Madry et al. use 0.01 with 40 steps at eps 0.3).
        num_steps: number of steps (``>= 0``).
        random_start: start from a uniform point of the ball instead of ``x``.
        keyed: pass a fresh key to ``logits_fn`` at every step.

    Returns:
        ``(B, H, W, C)`` adversarial images (the last iterate), ``||x_adv - x||_inf <= eps``, in ``[0, 1]``.
    """
    check_key(key, "pgd")
    x, labels = check_batch(x, labels, None, "pgd")
    _check_eps(eps, "pgd")
    _check_eps(step_size, "pgd", "step_size", positive=True)
    if int(num_steps) != num_steps or num_steps < 0:
        raise ValueError(f"pgd: expected an integer num_steps >= 0, got {num_steps!r}")
    return _pgd(logits_fn, key, x, labels, jnp.asarray(eps, jnp.float32), jnp.asarray(step_size, jnp.float32),
                num_steps=int(num_steps), random_start=bool(random_start), keyed=bool(keyed))
