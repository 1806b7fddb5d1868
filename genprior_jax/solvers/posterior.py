"""Posterior summaries of a solver's result (used by :func:`~genprior_jax.solvers.methods.reconstruct`).

- :func:`sample_q`: draws ``G(mu + s eps)`` of a mean-field VI result, their mean and std (with the image-space
  residual of :mod:`.model_error` when tau > 0).
- :func:`langevin_summary`: mean and std from the running sums over every kept state of the chains, samples
  from the kept ring buffer, acceptance rates per chain.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from ..operators.noise import as_noise
from ..priors.base import Prior
from . import streaming
from .checks import deprecated_kwargs
from .energy import noise_sigma, uses_model_error
from .model_error import residual_mean, sample_residual
from .runner import Result

Array = jax.Array


@deprecated_kwargs({"sigma": "noise"}, "sample_q")
def sample_q(prior: Prior, result: Result, key: Array, num_samples: int, *, y: Array | None = None,
             op: Any = None, noise: Any = None, model_error: float | Array = 0.0,
             op_batched: bool = False) -> tuple[Array, Array, Array]:
    """Samples of a VI result: returns ``(samples (B, K, ...), mean, std)`` over the ``K`` draws.

    With ``model_error`` (tau) other than 0, each draw is ``G(z) + e`` with ``e`` drawn from ``e | y, z``, which
    needs the measurements ``y`` (as passed to :func:`variational`), ``op`` (batched if ``op_batched``) and
    ``noise`` (the ``GaussianNoise`` or its sigma; ``sigma=`` is its deprecated name); the returned mean is then
    the average of ``G(z_k) + E[e | y, z_k]`` (the residual's conditional mean rather than its draws: the same
    expectation without their noise), the std that of the draws."""
    if int(num_samples) < 1:
        raise ValueError(f"expected num_samples (K) >= 1, got {num_samples}")
    mu, s = result.state.mu, jnp.exp(result.state.log_s)
    batched = mu.ndim == len(prior.latent_shape) + 1
    if not batched:
        mu, s = mu[None], s[None]
    k_z, k_e = jax.random.split(key)
    eps = jax.random.normal(k_z if uses_model_error(model_error) else key, (mu.shape[0], int(num_samples),
                                                                               *mu.shape[1:]))
    z = mu[:, None] + s[:, None] * eps
    samples = jax.vmap(jax.vmap(prior.generate, (None, 0)), (None, 0))(prior.params, z)
    if uses_model_error(model_error):
        if y is None or op is None or noise is None:
            raise ValueError("sample_q: model_error needs the measurements y, the operator op and the noise")
        sigma = noise_sigma(as_noise(noise, "sample_q"))
        yb = jnp.asarray(y) if batched else jnp.asarray(y)[None]
        if yb.shape[0] != samples.shape[0]:
            raise ValueError(f"sample_q: expected {samples.shape[0]} measurements, got y of shape {jnp.shape(y)}")

        samples, mean = _add_residuals(jax.random.split(k_e, samples.shape[0]), op, yb, samples,
                                       jnp.asarray(sigma, jnp.float32), jnp.asarray(model_error, jnp.float32),
                                       op_batched=op_batched)
    else:
        mean = samples.mean(1)
    std = samples.std(1)
    return (samples, mean, std) if batched else (samples[0], mean[0], std[0])


@functools.partial(jax.jit, static_argnames="op_batched")
def _add_residuals(keys: Array, op: Any, y: Array, xs: Array, sigma: Array, tau: Array, *,
                   op_batched: bool) -> tuple[Array, Array]:
    """Per measurement ``b``: ``xs[b, k] + e_bk`` with ``e_bk`` drawn from ``e | y_b, z_k``, and the
    Rao-Blackwellized mean ``mean_k (xs[b, k] + E[e | y_b, z_k])`` (no 1/sqrt(K) noise from the draws).
    One compiled program per shapes and operator type: ``sigma`` and ``tau`` are traced."""

    def one(k: Array, o: Any, yy: Array, x: Array) -> tuple[Array, Array]:
        def each(kk: Array, xx: Array) -> tuple[Array, Array]:
            r = yy - o.mv(xx)
            return xx + sample_residual(kk, o, r, sigma, tau), xx + residual_mean(o, r, sigma, tau)

        draws, cond_means = jax.vmap(each)(jax.random.split(k, x.shape[0]), x)
        return draws, jnp.mean(cond_means, 0)

    return jax.vmap(one, (0, 0 if op_batched else None, 0, 0))(keys, op, y, xs)


def langevin_summary(result: Result) -> tuple[Array, Array, Array, Array]:
    """``(mean, std, samples (B, num_samples, ...), acceptance (B, chains))`` of a Langevin result."""
    st = result.state
    mean, std = streaming.mean_std(st.moments)
    ring = st.moments.ring
    samples = ring.reshape(ring.shape[:-5] + (-1,) + ring.shape[-3:])  # merge keep x chains
    acceptance = st.accepted / jnp.maximum(_expand_to(st.t.astype(jnp.float32), st.accepted.ndim), 1.0)
    return mean, std, samples, acceptance


def _expand_to(a: Array, ndim: int) -> Array:
    """Append singleton axes to a per-problem array so it broadcasts against ``ndim``-dimensional ones."""
    return a.reshape(a.shape + (1,) * (ndim - a.ndim))
