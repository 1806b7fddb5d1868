"""CSGM (Bora et al. 2017): recovery in the generator's latent space.

    z_hat = argmin_z  ||A G(z) - y||^2 + lam ||z||^2,      x_hat = G(z_hat)

with ``z0 ~ N(0, init_std^2 I)`` per restart and an optax optimizer (Adam by default; defaults lr 0.01,
1000 steps, 10 restarts as in the csgm repo's MNIST script). With ``A`` of ``N(0, 1/m)`` entries the sum of
squares here equals the csgm repo's *mean* squared residual with its ``N(0, 1)`` matrix, so ``lam = 0.1`` is
its "VAE+Reg" setting. The restart with the lowest final objective is kept.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from ..priors.base import Prior
from .optim import check_optimizer, check_schedule, make_optimizer, optimizer_step
from .runner import Problem, Result, Solver, run

Array = jax.Array


class CSGMHyper(NamedTuple):
    lam: Array | float = 0.0  # weight of ||z||^2
    learning_rate: Array | float = 0.01
    init_std: Array | float = 1.0  # z0 ~ N(0, init_std^2 I); 0 gives z0 = 0


class CSGMState(NamedTuple):
    z: Array
    opt_state: Any


@functools.lru_cache(maxsize=None)
def csgm_solver(generate: Callable[[Any, Array], Array], latent_shape: tuple[int, ...],
                optimizer: str = "adam", schedule: str = "constant", num_steps: int = 1) -> Solver:
    """The CSGM :class:`Solver` for a generator ``generate(params, z)``; cached, so the same generator and
    options give the same (already compiled) solver. ``num_steps`` only matters for ``schedule="cosine"``."""
    check_optimizer(optimizer)
    check_schedule(schedule)
    if schedule == "constant":
        num_steps = 1  # irrelevant: share one solver (and one compilation) across step counts

    def opt_for(hyper: CSGMHyper) -> Any:
        return make_optimizer(optimizer, hyper.learning_rate, schedule, num_steps)

    def loss(z: Array, problem: Problem, hyper: CSGMHyper, params: Any) -> Array:
        r = problem.op.mv(generate(params, z)) - problem.y
        return jnp.sum(r**2) + hyper.lam * jnp.sum(z**2)

    def init(key: Array, problem: Problem, hyper: CSGMHyper, params: Any) -> CSGMState:
        z = hyper.init_std * jax.random.normal(key, latent_shape, jnp.float32)
        return CSGMState(z, opt_for(hyper).init(z))

    def step(state: CSGMState, problem: Problem, hyper: CSGMHyper, params: Any) -> tuple[CSGMState, Array]:
        z, opt_state, value = optimizer_step(optimizer, opt_for(hyper), lambda z: loss(z, problem, hyper, params),
                                             state.z, state.opt_state)
        return CSGMState(z, opt_state), value

    def objective(state: CSGMState, problem: Problem, hyper: CSGMHyper, params: Any) -> Array:
        return loss(state.z, problem, hyper, params)

    def estimate(state: CSGMState, problem: Problem, hyper: CSGMHyper, params: Any) -> Array:
        return generate(params, state.z)

    return Solver(init, step, objective, estimate)


def csgm(prior: Prior, key: Array, y: Array, op: Any, *, lam: float | Array = 0.0,
         learning_rate: float | Array = 0.01, init_std: float | Array = 1.0, num_steps: int = 1000,
         num_restarts: int = 10, optimizer: str = "adam", schedule: str = "constant", op_batched: bool = False,
         history: bool = False) -> Result:
    """Recover images from ``y`` (``(B, *op.out_shape)`` or one) with the CSGM objective.

    ``lam``, ``learning_rate`` and ``init_std`` are traced (sweeps reuse the compiled code); ``num_steps``,
    ``num_restarts``, ``optimizer`` and ``schedule`` (``"constant"`` or ``"cosine"`` decay to 0) are static. Returns a :class:`Result` whose ``state.z`` is the best
    latent, ``x = G(z)``.
    """
    if tuple(op.in_shape) != tuple(prior.image_shape):
        raise ValueError(f"csgm: operator expects images of shape {op.in_shape}, prior {prior.name!r} "
                         f"generates {prior.image_shape}")
    solver = csgm_solver(prior.generate, tuple(prior.latent_shape), optimizer, schedule, int(num_steps))
    return run(solver, key, y, op, CSGMHyper(lam, learning_rate, init_std), prior.params, num_steps=num_steps,
               num_restarts=num_restarts, op_batched=op_batched, history=history)
