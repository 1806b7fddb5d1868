"""A multi-scale flow applied as a pure function of its params, each level's flow steps run by ``lax.scan``.

:class:`~genprior_jax.priors.flow.MultiScaleFlow` unrolls ``levels x steps`` flow steps; XLA:CPU compiles that
stack (and its gradient, which the latent-space solvers need) step by step, ~3x slower than one scanned step per
level. This module evaluates the same parameters (the module's layout ``blocks_{level}_{index}``, ``priors_{level}``,
so checkpoints are unchanged) with the steps of a level stacked along a leading axis and scanned: the compiled
program holds one flow step per level. The result equals the module's to round-off (a test checks it).

Shapes (batched): ``forward(config, params, x)``: centred images ``(B, H, W, C)`` -> latents ``(B, D)`` and
``log|det dE/dx|`` ``(B,)``; ``inverse(config, params, z)``: ``(B, D)`` -> ``(B, H, W, C)``, ``log|det dG/dz|``.
"""

from __future__ import annotations

import math
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp

from .base import Array, Params
from .flow_layers import ActNorm, AffineCoupling, InvConv1x1, Reverse, SplitPrior, squeeze, unsqueeze
from .small_conv import DENSE_CONV_MAX_PIXELS, coupling_dense

__all__ = ["flow_forward", "flow_inverse", "latent_part_shapes", "logit_map", "sigmoid_map", "step_layers"]


def _apply(layer: nn.Module, params: Any, *args: Array, reverse: bool = False) -> tuple[Array, Array]:
    """``layer`` (a bijector of :mod:`.flow_layers`) with ``params``: ``(output, log|det|)``."""
    return cast(tuple[Array, Array], layer.apply({"params": params}, *args, reverse=reverse))


def step_layers(kind: str, hidden: int, floor: float) -> list[nn.Module]:
    """One flow step's layers in order (:class:`MultiScaleFlow` builds its steps from it, so the params' layout
    ``blocks_{level}_{len * step + j}`` and this module's reading of it cannot drift apart)."""
    if kind == "glow":
        return [ActNorm(), InvConv1x1(), AffineCoupling(hidden, floor)]
    return [ActNorm(), AffineCoupling(hidden, floor), Reverse()]


def _step_params(params: Params, level: int, s: int, per_step: int) -> list[Any]:
    """The params of step ``s`` of ``level``, one entry per layer position (``{}`` for a layer without params, e.g.
    :class:`Reverse`): ``blocks_{level}_{per_step * s + j}``."""
    return [params.get(f"blocks_{level}_{per_step * s + j}", {}) for j in range(per_step)]


def _run_level(config: dict[str, Any], params: Params, level: int, h: Array, reverse: bool,
               unroll: bool = False, dense: bool = False) -> tuple[Array, Array]:
    layers = step_layers(config["kind"], config["hidden"], config["scale_floor"])
    steps = config["steps"]
    dense = dense and h.shape[1] * h.shape[2] <= DENSE_CONV_MAX_PIXELS

    def step(h: Array, p: list[Any]) -> tuple[Array, Array]:
        logdet = jnp.zeros(h.shape[0], h.dtype)
        order = range(len(layers) - 1, -1, -1) if reverse else range(len(layers))
        for j in order:
            if dense and isinstance(layers[j], AffineCoupling):
                h, ld = coupling_dense(p[j], h, config["scale_floor"], reverse=reverse)
            else:
                h, ld = _apply(layers[j], p[j], h, reverse=reverse)
            logdet = logdet + ld
        return h, logdet

    if unroll:  # one step after another (training: XLA:CPU runs conv weight-gradients in a scan ~5x slower)
        logdet = jnp.zeros(h.shape[0], h.dtype)
        for s in (range(steps - 1, -1, -1) if reverse else range(steps)):
            h, ld = step(h, _step_params(params, level, s, len(layers)))
            logdet = logdet + ld
        return h, logdet
    per_step = [_step_params(params, level, s, len(layers)) for s in range(steps)]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *per_step)  # each leaf stacked over the steps
    h, lds = jax.lax.scan(step, h, stacked, reverse=reverse)
    return h, jnp.sum(lds, axis=0)


def latent_part_shapes(image_shape: tuple[int, int, int], levels: int) -> list[tuple[int, int, int]]:
    """Shapes of the factored-out parts, in the order they are concatenated into the flat latent."""
    h, w, c = image_shape
    shapes = []
    for level in range(levels):
        h, w, c = h // 2, w // 2, 4 * c
        if level < levels - 1:
            shapes.append((h, w, c - c // 2))
            c = c // 2
    shapes.append((h, w, c))
    return shapes


def logit_map(alpha: float, x: Array) -> tuple[Array, Array]:
    """Centred pixels -> ``logit(a + (1 - 2a)(x + 1/2))`` inside the pixel range, continued linearly (C^1)
    outside it, so the map is a bijection of the real line; returns ``(y, log|det dy/dx|)`` (batched)."""
    s = alpha + (1.0 - 2.0 * alpha) * (x + 0.5)
    sc = jnp.clip(s, alpha, 1.0 - alpha)
    y = jnp.log(sc) - jnp.log1p(-sc) + (s - sc) / (sc * (1.0 - sc))
    return y, _logit_log_det(alpha, sc)


def sigmoid_map(alpha: float, y: Array) -> tuple[Array, Array]:
    """The inverse of :func:`logit_map`; returns ``(x, log|det dx/dy|)``."""
    edge = math.log(alpha) - math.log1p(-alpha)
    yc = jnp.clip(y, edge, -edge)
    sc = jax.nn.sigmoid(yc)
    s = sc + (y - yc) * sc * (1.0 - sc)
    return (s - alpha) / (1.0 - 2.0 * alpha) - 0.5, -_logit_log_det(alpha, sc)


def _logit_log_det(alpha: float, sc: Array) -> Array:
    return jnp.sum(math.log(1.0 - 2.0 * alpha) - jnp.log(sc) - jnp.log1p(-sc), axis=(1, 2, 3))


def flow_forward(config: dict[str, Any], params: Params, x: Array, unroll: bool = False,
                 dense: bool = False) -> tuple[Array, Array]:
    """``E``: centred images ``(B, H, W, C)`` -> ``(z (B, D), log|det dE/dx| (B,))`` (``config`` checked).

    ``unroll=False`` scans each level's steps (a small program: quick to compile, the solvers' choice);
    ``unroll=True`` lays them out one after another (the training objective: its gradient with respect to the
    conv weights runs ~5x faster on XLA:CPU, measured on glow-mnist at batch 64: 0.18 vs 1.0 s per step).
    ``dense=True`` runs the couplings of levels of at most ``DENSE_CONV_MAX_PIXELS`` pixels as dense matrices
    (:mod:`.small_conv`: a patch flow's 3x3 level, ~4x faster on CPU; equal to round-off; the solvers' choice,
    while training keeps the convolutions so that the training commands give the shipped weights)."""
    b, levels = x.shape[0], config["levels"]
    logdet = jnp.zeros(b, x.dtype)
    h = x
    if config["logit_alpha"] > 0:
        h, logdet = logit_map(config["logit_alpha"], x)
    parts = []
    for level in range(levels):
        h, ld = _run_level(config, params, level, squeeze(h), reverse=False, unroll=unroll, dense=dense)
        logdet = logdet + ld
        if level < levels - 1:
            keep = h.shape[-1] // 2
            out, h = h[..., keep:], h[..., :keep]
            if config["split_prior"]:
                out, ld = _apply(SplitPrior(config["scale_floor"]), params[f"priors_{level}"], h, out)
                logdet = logdet + ld
            parts.append(out)
    parts.append(h)
    return jnp.concatenate([p.reshape(b, -1) for p in parts], axis=1), logdet


def flow_inverse(config: dict[str, Any], params: Params, z: Array, dense: bool = False) -> tuple[Array, Array]:
    """``G = E^{-1}``: latents ``(B, D)`` -> ``(centred images (B, H, W, C), log|det dG/dz| (B,))`` (``dense``:
    see :func:`flow_forward`)."""
    b, levels = z.shape[0], config["levels"]
    shapes = latent_part_shapes(config["image_shape"], levels)
    offsets = [0]
    for s in shapes:
        offsets.append(offsets[-1] + math.prod(s))
    parts = [z[:, offsets[i]:offsets[i + 1]].reshape((b, *shapes[i])) for i in range(len(shapes))]
    logdet = jnp.zeros(b, z.dtype)
    h = parts[-1]
    for level in reversed(range(levels)):
        if level < levels - 1:
            out = parts[level]
            if config["split_prior"]:
                out, ld = _apply(SplitPrior(config["scale_floor"]), params[f"priors_{level}"], h, out, reverse=True)
                logdet = logdet + ld
            h = jnp.concatenate([h, out], axis=-1)
        h, ld = _run_level(config, params, level, h, reverse=True, dense=dense)
        logdet = logdet + ld
        h = unsqueeze(h)
    if config["logit_alpha"] > 0:
        h, ld = sigmoid_map(config["logit_alpha"], h)
        logdet = logdet + ld
    return h, logdet
