"""Model error: the image is the generator's output plus a Gaussian residual, ``x = G(z) + e``.

A generative prior cannot represent every image (a 20-d VAE's range misses the details of most digits).
Conditioning on ``y = A G(z) + eta`` as if the truth were in the range gives a latent posterior whose
spread is far below the actual error: on MNIST inpainting with the VAE the 90 % intervals covered 2 % of the
true pixels. The hierarchical model here adds the residual ``e ~ N(0, tau^2 I)`` (``tau`` = ``model_error``):

    y | z ~ N(A G(z), C),      C = sigma^2 I + tau^2 A A^T                                 (e marginalized)
    -log p(y | z) = r^T C^{-1} r / 2 + const,      r = y - A G(z)
    e | y, z ~ N(tau^2 A^T C^{-1} r,  tau^2 I - tau^4 A^T C^{-1} A)

Samples of ``e`` come from Matheron's rule (exact, no square root of a covariance):
``e = e0 + tau^2 A^T C^{-1} (r - A e0 - sigma n)`` with ``e0 ~ N(0, tau^2 I)``, ``n ~ N(0, I)``.
``C^{-1}`` is applied by conjugate gradients, matrix-free; for masks and block-average down-sampling ``A A^T``
has at most two distinct eigenvalues and CG is exact after two iterations. With ``tau = 0`` everything reduces
to the plain model (``C = sigma^2 I``, ``e = 0``).

``tau`` can be estimated from the measurements alone (:func:`estimate_model_error`): by the method of moments
on a MAP fit, ``E ||y - A G(z*)||^2 ~= m sigma^2 + tau^2 ||A||_F^2``, pooled over a batch. The MAP residual is
slightly smaller than the true one (the fit absorbs ``dim z`` directions), so this errs towards a small ``tau``.

Only linear operators with the Gaussian data term (``op.loss`` the squared error) are supported.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ..likelihoods import GaussianModelError, check_model_error_operator, solve_cov
from ..operators.base import LinearOperator, Operator
from ..operators.noise import GaussianNoise, as_noise
from ..operators.numerics import frobenius_sq
from .checks import deprecated_kwargs

Array = jax.Array

def data_energy(op: LinearOperator, r: Array, sigma: Array | float, tau: Array | float) -> Array:
    """``-log p(y | z) + const = r^T C^{-1} r / 2`` for the residual ``r = y - A G(z)`` of one measurement
    (:class:`~genprior_jax.likelihoods.GaussianModelError`'s energy)."""
    return GaussianModelError(sigma, tau).energy(op, jnp.zeros_like(r), r)


def residual_mean(op: LinearOperator, r: Array, sigma: Array | float, tau: Array | float) -> Array:
    """``E[e | y, z] = tau^2 A^T C^{-1} r`` (image-shaped)."""
    return tau**2 * op.rmv(solve_cov(op, r, sigma, tau))


def sample_residual(key: Array, op: LinearOperator, r: Array, sigma: Array | float, tau: Array | float) -> Array:
    """One exact draw of ``e | y, z`` (image-shaped) by Matheron's rule (module docstring)."""
    k_e, k_n = jax.random.split(key)
    e0 = tau * jax.random.normal(k_e, op.in_shape, jnp.float32)
    n = sigma * jax.random.normal(k_n, op.out_shape, jnp.float32)
    return e0 + tau**2 * op.rmv(solve_cov(op, r - op.mv(e0) - op.observe(n), sigma, tau))


def noise_entries(op: Operator) -> Array:
    """``E ||observe(eta)||^2 / sigma^2``: the number of entries the noise reaches (``observe`` may mask some)."""
    return jnp.sum(op.observe(jnp.ones(op.out_shape, jnp.float32)) ** 2)


@deprecated_kwargs({"sigma": "noise"}, "estimate_model_error")
def estimate_model_error(y: Array, x_fit: Array, op: LinearOperator, noise: Any, *,
                         op_batched: bool = False) -> Array:
    """Method-of-moments ``tau`` from fits ``x_fit`` (e.g. MAP images) of a batch of measurements.

    ``y``: ``(B, *op.out_shape)``; ``x_fit``: ``(B, *op.in_shape)``; ``op`` shared, or batched with
    ``op_batched=True``; ``noise``: the ``GaussianNoise`` of ``y`` or its sigma. Returns the scalar
    ``tau = sqrt(max(sum_b ||y_b - A_b x_b||^2 - sigma^2 sum_b m_b, 0) / sum_b ||A_b||_F^2)``.
    """
    check_model_error_operator(op, "estimate_model_error")
    noise = as_noise(noise, "estimate_model_error")
    if not isinstance(noise, GaussianNoise):
        raise ValueError(f"estimate_model_error: expected GaussianNoise (a noise std sigma), got "
                         f"{type(noise).__name__}")
    sigma = noise.sigma
    y, x_fit = jnp.asarray(y), jnp.asarray(x_fit)
    if y.ndim != len(op.out_shape) + 1 or tuple(y.shape[1:]) != tuple(op.out_shape):
        raise ValueError(f"estimate_model_error: expected y of shape (B, *{tuple(op.out_shape)}), got {y.shape}")
    if tuple(x_fit.shape) != (y.shape[0], *op.in_shape):
        raise ValueError(f"estimate_model_error: expected x_fit of shape {(y.shape[0], *op.in_shape)}, "
                         f"got {x_fit.shape}")
    axis = 0 if op_batched else None
    res = jax.vmap(lambda o, xx, yy: jnp.sum((o.mv(xx) - yy) ** 2), (axis, 0, 0))(op, x_fit, y)
    if op_batched:
        frob, m = jax.vmap(frobenius_sq)(op), jax.vmap(noise_entries)(op)
    else:
        frob, m = jnp.full(res.shape, frobenius_sq(op)), jnp.full(res.shape, noise_entries(op))
    finite = jnp.isfinite(res)  # a diverged fit (NaN) is left out of the pooled estimate
    if not bool(jnp.any(finite)):
        raise ValueError("estimate_model_error: every fit x_fit is non-finite")
    excess = jnp.sum(jnp.where(finite, res - jnp.asarray(sigma, jnp.float32) ** 2 * m, 0.0))
    return jnp.sqrt(jnp.maximum(excess, 0.0) / jnp.sum(jnp.where(finite, frob, 0.0)))
