"""Posterior summaries and the one-call :func:`reconstruct` API.

``reconstruct(prior, key, y, op, method=..., posterior=True)`` returns a :class:`Reconstruction` with the
point estimate (MAP image, or posterior mean), the per-pixel posterior std and ``K`` posterior samples:

- ``method="map"``: MAP only (``std`` and ``samples`` are None).
- ``method="vi"``: mean-field VI; samples ``G(mu + s eps)``, mean and std over ``num_draws`` draws.
- ``method="langevin"``: MALA/ULA chains; mean and std from the running sums over every kept state, samples
  from the kept ring buffer, acceptance rates per chain.

``model_error=tau`` (or ``"auto"``: estimated from a MAP fit of the same measurements by
:func:`~genprior_jax.solvers.model_error.estimate_model_error`) models the image as ``G(z) + e`` with
``e ~ N(0, tau^2 I)``; the samples then include draws of the residual, which the prior's range cannot produce
(:mod:`.model_error`). ``Reconstruction.model_error`` reports the tau used.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..priors.base import Prior
from .bayes import map_estimate, uses_model_error, variational
from .langevin import langevin
from .model_error import estimate_model_error, residual_mean, sample_residual
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
    model_error: Array | float = 0.0  # the tau used (estimated with model_error="auto")


def sample_q(prior: Prior, result: Result, key: Array, num_samples: int, *, y: Array | None = None,
             op: Any = None, sigma: float | Array | None = None, model_error: float | Array = 0.0,
             op_batched: bool = False) -> tuple[Array, Array, Array]:
    """Samples of a VI result: returns ``(samples (B, K, ...), mean, std)`` over the ``K`` draws.

    With ``model_error`` (tau) other than 0, each draw is ``G(z) + e`` with ``e`` drawn from ``e | y, z``, which
    needs the measurements ``y`` (as passed to :func:`variational`), ``op`` (batched if ``op_batched``) and
    ``sigma``; the returned mean is then the average of ``G(z_k) + E[e | y, z_k]`` (the residual's conditional
    mean rather than its draws: the same expectation without their noise), the std that of the draws."""
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
        if y is None or op is None or sigma is None:
            raise ValueError("sample_q: model_error needs the measurements y, the operator op and sigma")
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
    tau = kwargs.pop("model_error", 0.0)
    if isinstance(tau, str):
        if tau != "auto":
            raise ValueError(f"expected model_error to be a number >= 0 or 'auto', got {tau!r}")
        tau = _auto_model_error(prior, key, y, op, kwargs)
    if uses_model_error(tau):
        kwargs["model_error"] = tau
    if method == "map":
        if posterior:
            raise ValueError("method='map' gives a point estimate; use method='vi' or 'langevin' for posterior=True")
        res = map_estimate(prior, k_solve, y, op, **kwargs)
        return Reconstruction(res.x, None, None, res.status, None, res, tau)
    if method == "vi":
        res = variational(prior, k_solve, y, op, **kwargs)
        if not posterior:
            return Reconstruction(res.x, None, None, res.status, None, res, tau)
        samples, mean, std = sample_q(prior, res, k_sample, num_draws, y=y, op=op, sigma=kwargs.get("sigma", 0.1),
                                      model_error=tau, op_batched=kwargs.get("op_batched", False))
        return Reconstruction(mean, std, samples, res.status, None, res, tau)
    res = langevin(prior, k_solve, y, op, **kwargs)
    mean, std, samples, acc = langevin_summary(res)
    if not posterior:
        return Reconstruction(mean, None, None, res.status, acc, res, tau)
    return Reconstruction(mean, std, samples, res.status, acc, res, tau)


_MAP_KWARGS = ("sigma", "learning_rate", "prior_weight", "pixel_weight", "image_prior", "op_batched", "mesh",
               "batch_size", "progress")


def _auto_model_error(prior: Prior, key: Array, y: Array, op: Any, kwargs: dict[str, Any]) -> Array:
    """``model_error="auto"``: tau from a MAP fit (Adam, from z = 0, the solve's step count) of the batch."""
    fit = map_estimate(prior, jax.random.fold_in(key, 7), y, op, init_std=0.0, num_restarts=1,
                       num_steps=int(kwargs.get("num_steps", 1000)),
                       **{k: v for k, v in kwargs.items() if k in _MAP_KWARGS})
    yb, xb = (jnp.asarray(y), fit.x) if jnp.ndim(y) == len(op.out_shape) + 1 else (jnp.asarray(y)[None], fit.x[None])
    return estimate_model_error(yb, xb, op, kwargs.get("sigma", 0.1), op_batched=kwargs.get("op_batched", False))
