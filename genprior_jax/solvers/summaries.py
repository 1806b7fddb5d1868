"""Posterior summaries as the registry calls them: one function per method that has one, carried by its
:class:`~genprior_jax.solvers.registry.Method` entry (``summarize``) and called by
:func:`~genprior_jax.solvers.dispatch.reconstruct` after the solve.

Every summary has the signature of :class:`SummaryFn` and returns a :class:`Summary`: the estimate ``x``
(``(B, *image_shape)``) and, where ``posterior=True`` was asked, the per-pixel std and the samples; Langevin's
acceptance rates always. Methods without a summary (MAP and the point estimates) report ``result.x``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

import jax

from ..priors.base import Prior
from .posterior import langevin_summary, sample_q
from .types import Result

Array = jax.Array


class Summary(NamedTuple):
    x: Array  # (B, *image_shape): the estimate reported (posterior mean for a sampler)
    std: Array | None  # (B, *image_shape) per-pixel posterior std (posterior=True)
    samples: Array | None  # (B, K, *image_shape) posterior samples (posterior=True)
    acceptance: Array | None  # (B, chains), Langevin only


class SummaryFn(Protocol):
    """``summarize(prior, result, key, y, op, *, posterior, num_samples, method_kwargs, model_error, op_batched)``.

    ``method_kwargs`` holds every keyword of the method (its defaults with the caller's on top), ``key`` is the
    sampling key (independent of the solve's), ``model_error`` the tau the solve used."""

    def __call__(self, prior: Prior | None, result: Result, key: Array, y: Array, op: Any, *, posterior: bool,
                 num_samples: int, method_kwargs: Mapping[str, Any], model_error: Any, op_batched: bool) -> Summary: ...


def point_summary(result: Result) -> Summary:
    """A point estimate: ``result.x``, no std, samples nor acceptance."""
    return Summary(result.x, None, None, None)


def vi_summary(prior: Prior | None, result: Result, key: Array, y: Array, op: Any, *, posterior: bool,
               num_samples: int, method_kwargs: Mapping[str, Any], model_error: Any, op_batched: bool) -> Summary:
    """Mean-field VI: ``result.x`` (``G(mu)``) without ``posterior``; with it, ``num_samples`` draws of
    :func:`~genprior_jax.solvers.posterior.sample_q`, their mean (reported as ``x``) and std."""
    if not posterior:
        return point_summary(result)
    assert prior is not None  # the registry's needs_prior
    samples, mean, std = sample_q(prior, result, key, num_samples, y=y, op=op, noise=method_kwargs["noise"],
                                  model_error=model_error, op_batched=op_batched)
    return Summary(mean, std, samples, None)


def langevin_chain_summary(prior: Prior | None, result: Result, key: Array, y: Array, op: Any, *, posterior: bool,
                           num_samples: int, method_kwargs: Mapping[str, Any], model_error: Any,
                           op_batched: bool) -> Summary:
    """Langevin: the mean over every kept chain state (reported as ``x``) and the chains' acceptance rates; with
    ``posterior`` also the std and the kept states (:func:`~genprior_jax.solvers.posterior.langevin_summary`)."""
    mean, std, samples, acc = langevin_summary(result)
    return Summary(mean, std, samples, acc) if posterior else Summary(mean, None, None, acc)
