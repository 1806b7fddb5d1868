"""Defense by projection onto the generator's range (Defense-GAN, Samangouei et al. 2018) and adaptive attacks.

The defended classifier classifies the image's projection onto the range of a generator ``G`` (any
:class:`~genprior_jax.priors.Prior`)::

    z_hat(x) = argmin_z 1/2 ||G(z) - x||^2 + lam ||z||^2,      P(x) = G(z_hat(x)),      f_def(x) = f(P(x))

which is CSGM (:func:`~genprior_jax.solvers.csgm`) with ``A = Identity``: Adam from ``z0 ~ N(0, init_std^2 I)``,
``num_restarts`` restarts, the one with the lowest objective kept (Defense-GAN: L Adam steps, R restarts).

Adaptive attacks (Athalye, Carlini & Wagner 2018) need ``grad_x L(f(P(x)), y)`` through the projection:

- BPDA (backward pass differentiable approximation): the forward pass computes ``P(x)``, the backward pass
  treats ``P`` as the identity, ``dP/dx ~ I``, so the gradient is ``grad_u L(f(u), y)`` at ``u = P(x)``.
  Implemented as ``x + stop_gradient(P(x) - x)``; no gradient enters the solver.
- Unrolled: the exact gradient through a *short* projection (few Adam steps and restarts), by reverse-mode
  differentiation of the solver's ``lax.scan``; memory grows with ``num_steps * num_restarts * B``.

Both run inside :func:`~genprior_jax.adversarial.attacks.pgd` with ``keyed=True``: each PGD step projects
with a fresh key (fresh restarts), so the attacker does not rely on the defender's random draw.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..operators.simple import Identity
from ..operators.validation import check_key
from ..priors.base import Prior
from ..solvers.csgm import csgm
from ..solvers.runner import Result, Status
from .attacks import pgd

Array = jax.Array
GRADIENTS = ("bpda", "unrolled")


class Projection(NamedTuple):
    """Settings of the range projection (the :func:`~genprior_jax.solvers.csgm` arguments of the same name)."""

    num_steps: int = 500
    num_restarts: int = 10
    learning_rate: float = 0.01
    lam: float = 0.0
    init_std: float = 1.0
    optimizer: str = "adam"
    init: str = "random"


def project_to_range(prior: Prior, key: Array, x: Any, *, num_steps: int = 500, num_restarts: int = 10,
                     learning_rate: float | Array = 0.01, lam: float | Array = 0.0, init_std: float | Array = 1.0,
                     optimizer: str = "adam", init: str = "random") -> Result:
    """Project images onto the range of ``prior.generate``: ``min_z 1/2 ||G(z) - x||^2 + lam ||z||^2``.

    Args:
        prior: any prior; ``init="adjoint"`` (start at the encoder's ``E(x)``) needs ``prior.encode``.
        key: PRNG key for the restarts.
        x: ``(B, *prior.image_shape)`` images, or one image of shape ``prior.image_shape``.
        num_steps, num_restarts, learning_rate, lam, init_std, optimizer, init: as in
            :func:`~genprior_jax.solvers.csgm` with ``A = Identity``.

    Returns:
        the solver's :class:`~genprior_jax.solvers.Result`: ``x = G(z_hat)`` (``(B, *image_shape)``),
        ``state.z = z_hat``, the objective, and a per-image ``status`` (``Status.NONFINITE`` and NaN outputs
        where no restart stayed finite, e.g. a NaN input; the other images are unaffected).
    """
    check_key(key, "project_to_range")
    shape = tuple(jnp.shape(x))
    if shape != tuple(prior.image_shape) and shape[1:] != tuple(prior.image_shape):
        raise ValueError(f"project_to_range: expected images of shape (B, *{tuple(prior.image_shape)}) or "
                         f"{tuple(prior.image_shape)} for prior {prior.name!r}, got {shape}")
    return csgm(prior, key, x, Identity(prior.image_shape), lam=lam, learning_rate=learning_rate, init_std=init_std,
                num_steps=num_steps, num_restarts=num_restarts, optimizer=optimizer, init=init)


@functools.cache
def defended_logits(logits_fn: Callable[[Array], Array], prior: Prior, projection: Projection = Projection(),
                    gradient: str = "bpda") -> Callable[[Array, Array], Array]:
    """The defended model ``(x, key) -> logits_fn(P(x))`` with ``P`` the range projection (``key``: its restarts).

    ``gradient`` chooses what ``jax.grad`` sees: ``"bpda"`` (``dP/dx = I``) or ``"unrolled"`` (differentiate
    through the solver: use a short ``projection``). The forward value is the same. Cached, so the same
    arguments return the same function object and jitted attacks do not recompile.
    """
    if gradient not in GRADIENTS:
        raise ValueError(f"defended_logits: unknown gradient {gradient!r}; expected one of {GRADIENTS}")
    settings = Projection(*projection)._asdict()

    def logits(x: Array, key: Array) -> Array:
        x_in = jax.lax.stop_gradient(x) if gradient == "bpda" else x
        x_proj = project_to_range(prior, key, x_in, **settings).x
        if gradient == "bpda":
            x_proj = x + jax.lax.stop_gradient(x_proj - x)
        return logits_fn(x_proj)

    return logits


def defended_predict(logits_fn: Callable[[Array], Array], prior: Prior, key: Array, x: Any,
                     projection: Projection = Projection()) -> tuple[Array, Result]:
    """Classify ``P(x)``: returns ``(predictions, projection_result)``; predictions are ``(B,)`` int32, ``-1``
    where the projection failed (``status == Status.NONFINITE``)."""
    res = project_to_range(prior, key, x, **Projection(*projection)._asdict())
    pred = jnp.argmax(logits_fn(res.x), axis=-1).astype(jnp.int32)
    return jnp.where(res.status != Status.NONFINITE, pred, -1), res


def _adaptive_pgd(gradient: str, logits_fn: Callable[[Array], Array], prior: Prior, key: Array, x: Any, labels: Any,
                  eps: float | Array, step_size: float | Array, num_steps: int, random_start: bool,
                  projection: Projection) -> Array:
    model = defended_logits(logits_fn, prior, Projection(*projection), gradient)
    return pgd(model, key, x, labels, eps=eps, step_size=step_size, num_steps=num_steps, random_start=random_start,
               keyed=True)


def bpda_pgd(logits_fn: Callable[[Array], Array], prior: Prior, key: Array, x: Any, labels: Any, *,
             eps: float | Array, step_size: float | Array = 0.01, num_steps: int = 40, random_start: bool = True,
             projection: Projection = Projection(num_steps=100, num_restarts=4, learning_rate=0.05)) -> Array:
    """PGD on the defended model with the BPDA gradient ``grad_u L(f(u), y)|_{u = P(x)}``.

    Every PGD step projects the current iterate (fresh restarts from ``key``) with ``projection``; its
    default (100 Adam steps of size 0.05, 4 restarts) costs 1/12 of the defense's own (500 x 10 steps of 0.01)
    and fits real digits as closely with the VAE prior (mean per-pixel ``||P(x) - x||^2`` 0.0113 vs 0.0111 on
    200 test digits): the attacker only needs a point near ``P(x)`` to take the classifier's gradient at. Arguments
    otherwise as :func:`~genprior_jax.adversarial.attacks.pgd`; returns ``(B, H, W, C)`` images within ``eps`` of
    ``x``.
    """
    return _adaptive_pgd("bpda", logits_fn, prior, key, x, labels, eps, step_size, num_steps, random_start,
                         projection)


def unrolled_pgd(logits_fn: Callable[[Array], Array], prior: Prior, key: Array, x: Any, labels: Any, *,
                 eps: float | Array, step_size: float | Array = 0.01, num_steps: int = 40, random_start: bool = True,
                 projection: Projection = Projection(num_steps=50, num_restarts=2, learning_rate=0.1)) -> Array:
    """PGD on the defended model with the exact gradient through a short unrolled projection (by default 50
    Adam steps of size 0.1, 2 restarts: with the VAE prior its fit to real digits, per-pixel ``||P(x) - x||^2``
    0.0121, is close to the defense's 500 x 10 projection, 0.0111)."""
    return _adaptive_pgd("unrolled", logits_fn, prior, key, x, labels, eps, step_size, num_steps, random_start,
                         projection)
