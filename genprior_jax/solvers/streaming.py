"""Streaming summaries of a sampler's kept states: running sums (mean, per-pixel variance) and a ring buffer of
the last ``num_keep`` kept states, updated in O(1) memory inside the runner's scan.

``update(m, xs, keep)`` adds the batch of chain states ``xs`` ``(chains, *image_shape)`` when ``keep`` (a traced
bool); ``mean_std(m)`` returns the mean and std over every kept state of every chain.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class Moments(NamedTuple):
    total: Array  # (*image_shape) sum of kept states
    total_sq: Array  # (*image_shape) sum of their squares
    count: Array  # float32 number of kept states (chains count one each)
    ring: Array  # (num_keep, chains, *image_shape): the last num_keep kept batches
    slot: Array  # int32 next ring slot


def init(num_keep: int, chains: int, image_shape: tuple[int, ...]) -> Moments:
    zeros = jnp.zeros(image_shape, jnp.float32)
    return Moments(zeros, zeros, jnp.float32(0), jnp.zeros((num_keep, chains, *image_shape), jnp.float32),
                   jnp.int32(0))


def update(m: Moments, xs: Array, keep: Array) -> Moments:
    """``m`` with the chains' states ``xs`` added where ``keep``."""
    ring = jnp.where(keep, m.ring.at[m.slot % m.ring.shape[0]].set(xs), m.ring)
    return Moments(m.total + jnp.where(keep, jnp.sum(xs, 0), 0.0), m.total_sq + jnp.where(keep, jnp.sum(xs**2, 0), 0.0),
                   m.count + jnp.where(keep, xs.shape[0], 0), ring, m.slot + keep.astype(jnp.int32))


def mean_std(m: Moments) -> tuple[Array, Array]:
    """Mean and std over the kept states (leading batch axes of ``m`` broadcast)."""
    n = jnp.maximum(m.count, 1.0).reshape(m.count.shape + (1,) * (m.total.ndim - m.count.ndim))
    mean = m.total / n
    return mean, jnp.sqrt(jnp.maximum(m.total_sq / n - mean**2, 0.0))
