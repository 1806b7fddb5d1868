"""The prior protocol: what a solver sees of a generative model.

A :class:`Prior` bundles *pure functions over a params pytree* with static shapes:

- ``generate(params, z) -> x``: one latent ``z`` of shape ``latent_shape`` to one image ``x`` of shape
  ``image_shape`` (``(H, W, C)``, values in ``[0, 1]``); vmap it for batches.
- ``encode(params, x) -> z`` (optional): an image to a latent (a VAE's encoder mean, a flow's inverse).
- ``log_prob(params, x) -> scalar`` (optional): the exact image log-density in nats (flows).

Any JAX network can be plugged in by building a ``Prior`` around its apply function. Solvers key their
compilation cache on the *function objects*, so keep ``generate`` the same object across calls (a module-level
function or one cached per configuration, as :mod:`genprior_jax.priors.vae` does) to avoid recompiling.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array
Params = Any


@dataclasses.dataclass(frozen=True, eq=False)
class Prior:
    name: str
    latent_shape: tuple[int, ...]
    image_shape: tuple[int, int, int]
    generate: Callable[[Params, Array], Array]
    params: Params
    encode: Callable[[Params, Array], Array] | None = None
    log_prob: Callable[[Params, Array], Array] | None = None
    config: dict[str, Any] = dataclasses.field(default_factory=dict)

    def sample(self, key: Array, n: int) -> Array:
        """``n`` images ``G(z)``, ``z ~ N(0, I)``: shape ``(n, *image_shape)``."""
        z = jax.random.normal(key, (n, *self.latent_shape), jnp.float32)
        return jax.vmap(self.generate, in_axes=(None, 0))(self.params, z)

    def __repr__(self) -> str:
        n = sum(int(p.size) for p in jax.tree_util.tree_leaves(self.params))
        return (f"Prior({self.name!r}, latent_shape={self.latent_shape}, image_shape={self.image_shape}, "
                f"params={n:,}, encode={'yes' if self.encode else 'no'})")
