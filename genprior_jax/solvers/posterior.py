"""Posterior summaries and the one-call :func:`reconstruct` API.

``reconstruct(prior, key, y, op, method=..., posterior=True)`` returns a :class:`Reconstruction` with the
point estimate (MAP image, or posterior mean), the per-pixel posterior std and ``K`` posterior samples:

- ``method="map"``: MAP only (``std`` and ``samples`` are None).
- ``method="vi"``: mean-field VI; samples ``G(mu + s eps)``, mean and std over ``num_draws`` draws.
- ``method="langevin"``: MALA/ULA chains; mean and std from the running sums over every kept state, samples
  from the kept ring buffer, acceptance rates per chain.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..priors.base import Prior
from .bayes import map_estimate, variational
from .langevin import langevin
from .runner import Result

Array = jax.Array

METHODS = ("map", "vi", "langevin")


class Reconstruction(NamedTuple):
    x: Array  # (B, H, W, C): MAP image (map) or posterior mean (vi, langevin)
    std: Array | None  # (B, H, W, C) per-pixel posterior std
    samples: Array | None  # (B, K, H, W, C)
    status: Array  # (B,)
    acceptance: Array | None  # (B, chains), Langevin only
    result: Result  # the runner's raw result


def sample_q(prior: Prior, result: Result, key: Array, num_samples: int) -> tuple[Array, Array, Array]:
    """Samples of a VI result: returns ``(samples (B, K, ...), mean, std)`` over the ``K`` draws."""
    if int(num_samples) < 1:
        raise ValueError(f"expected num_samples (K) >= 1, got {num_samples}")
    mu, s = result.state.mu, jnp.exp(result.state.log_s)
    batched = mu.ndim == len(prior.latent_shape) + 1
    if not batched:
        mu, s = mu[None], s[None]
    eps = jax.random.normal(key, (mu.shape[0], int(num_samples), *mu.shape[1:]))
    z = mu[:, None] + s[:, None] * eps
    samples = jax.vmap(jax.vmap(prior.generate, (None, 0)), (None, 0))(prior.params, z)
    mean, std = samples.mean(1), samples.std(1)
    return (samples, mean, std) if batched else (samples[0], mean[0], std[0])


def langevin_summary(result: Result) -> tuple[Array, Array, Array, Array]:
    """``(mean, std, samples (B, num_keep * chains, ...), acceptance (B, chains))`` of a Langevin result."""
    st = result.state
    n = _expand_to(jnp.maximum(st.n_kept, 1.0), st.sum_x.ndim)
    mean = st.sum_x / n
    var = jnp.maximum(st.sum_x2 / n - mean**2, 0.0)
    samples = st.samples.reshape(st.samples.shape[:-5] + (-1,) + st.samples.shape[-3:])  # merge keep x chains
    acceptance = st.accepted / jnp.maximum(_expand_to(st.t.astype(jnp.float32), st.accepted.ndim), 1.0)
    return mean, jnp.sqrt(var), samples, acceptance


def _expand_to(a: Array, ndim: int) -> Array:
    """Append singleton axes to a per-problem array so it broadcasts against ``ndim``-dimensional ones."""
    return a.reshape(a.shape + (1,) * (ndim - a.ndim))


def reconstruct(prior: Prior, key: Array, y: Array, op: Any, *, method: str = "map", posterior: bool = False,
                num_draws: int = 16, **kwargs: Any) -> Reconstruction:
    """Bayesian reconstruction; ``kwargs`` go to :func:`map_estimate`, :func:`variational` or :func:`langevin`."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    k_solve, k_sample = jax.random.split(key)
    if method == "map":
        if posterior:
            raise ValueError("method='map' gives a point estimate; use method='vi' or 'langevin' for posterior=True")
        res = map_estimate(prior, k_solve, y, op, **kwargs)
        return Reconstruction(res.x, None, None, res.status, None, res)
    if method == "vi":
        res = variational(prior, k_solve, y, op, **kwargs)
        if not posterior:
            return Reconstruction(res.x, None, None, res.status, None, res)
        samples, mean, std = sample_q(prior, res, k_sample, num_draws)
        return Reconstruction(mean, std, samples, res.status, None, res)
    res = langevin(prior, k_solve, y, op, **kwargs)
    mean, std, samples, acc = langevin_summary(res)
    if not posterior:
        return Reconstruction(mean, None, None, res.status, acc, res)
    return Reconstruction(mean, std, samples, res.status, acc, res)
