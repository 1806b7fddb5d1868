"""The analysis formulation (Oberlin & Verm 2021): optimize the image, penalize its code.

    x_hat = argmin_x  1/2 ||A x - y||^2 + lam ||E(x)||^2

with ``E`` the prior's encoder: a flow's inverse (exact), or a VAE's encoder mean. Compare the synthesis
formulation ``G(argmin_z 1/2 ||A G(z) - y||^2 + lam ||z||^2)`` (:func:`~genprior_jax.solvers.csgm`, on the same
data scale: for a flow, ``E = G^{-1}``, both have the same minimisers at the same ``lam``). Start (static
``init``): ``"generate0"``, ``x0 = G(0)`` as in the paper; ``"adjoint"`` / ``"pinv"``, ``x0 = clip(A^T y)`` /
``clip(A^+ y)``. The estimate is the final ``x``, unclipped.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..likelihoods import misfit
from ..priors.base import Prior, PriorStatic, prior_static
from .checks import check_hyper
from .inits import BACKPROJECTIONS, backproject
from .optim import check_optimizer, check_schedule, make_optimizer, minimizing_solver
from .options import RunOptions
from .runner import Problem, Result, Solver, run

Array = jax.Array

ANALYSIS_INITS = ("generate0", *BACKPROJECTIONS)


class AnalysisHyper(NamedTuple):
    lam: Array | float = 0.1
    learning_rate: Array | float = 0.01


ANALYSIS_HYPER = AnalysisHyper()


class AnalysisState(NamedTuple):
    x: Array
    opt_state: Any


def analysis_solver(prior: Prior | PriorStatic, optimizer: str = "adam", schedule: str = "constant",
                    num_steps: int = 1, init: str = "generate0") -> Solver:
    """The analysis :class:`Solver` for ``prior`` (its ``encode``; ``generate`` for ``init="generate0"``). Cached
    on the prior's static part (functions and shapes, never params): same architecture and options, same solver."""
    s = prior_static(prior, "analysis_solver")
    if s.encode is None:
        raise ValueError(f"analysis_solver: prior {s.name!r} has no encoder; expected a flow or a VAE")
    return _analysis_solver(s.encode, s.generate, s.latent_shape, optimizer, schedule, int(num_steps), init)


@functools.cache
def _analysis_solver(encode: Callable[[Any, Array], Array], generate: Callable[[Any, Array], Array],
                     latent_shape: tuple[int, ...], optimizer: str, schedule: str, num_steps: int,
                     init: str) -> Solver:
    check_optimizer(optimizer)
    check_schedule(schedule)
    if init not in ANALYSIS_INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {ANALYSIS_INITS}")
    if schedule == "constant":
        num_steps = 1

    def opt_for(hyper: AnalysisHyper) -> Any:
        return make_optimizer(optimizer, hyper.learning_rate, schedule, num_steps)

    def loss(x: Array, problem: Problem, hyper: AnalysisHyper, params: Any) -> Array:
        data = misfit(problem.op, problem.op.mv(x), problem.y)  # ||A x - y||^2, or a non-linear operator's loss
        return 0.5 * data + hyper.lam * jnp.sum(encode(params, x) ** 2)

    def init_x(key: Array, problem: Problem, hyper: AnalysisHyper, params: Any) -> Array:
        if init == "generate0":
            return generate(params, jnp.zeros(latent_shape, jnp.float32))
        return backproject(problem, init)

    return minimizing_solver(loss, init_x, lambda x, params: x, optimizer, opt_for, AnalysisState)


def analysis(prior: Prior, key: Array, y: Array, op: Any, *, lam: float | Array = ANALYSIS_HYPER.lam,
             learning_rate: float | Array = ANALYSIS_HYPER.learning_rate, num_steps: int = 1000,
             optimizer: str = "adam", schedule: str = "constant", init: str = "generate0", num_restarts: int = 1,
             options: RunOptions | None = None, **run_options: Any) -> Result:
    """Oberlin–Verm analysis recovery with the prior's encoder (module docstring): ``lam`` (the weight of
    ``||E(x)||^2``) and ``learning_rate`` are traced. Every start and optimizer here is deterministic, so restarts
    (``num_restarts``, static) repeat one solve. ``Result.objective`` is ``1/2 ||A x - y||^2 + lam ||E(x)||^2`` at the
    returned ``x``."""
    if prior.encode is None:
        raise ValueError(f"analysis: prior {prior.name!r} has no encoder; expected a flow or a VAE")
    if tuple(op.in_shape) != tuple(prior.image_shape):
        raise ValueError(f"analysis: operator expects images of shape {op.in_shape}, prior {prior.name!r} "
                         f"generates {prior.image_shape}")
    solver = analysis_solver(prior, optimizer, schedule, int(num_steps), init)
    hyper = AnalysisHyper(lam, learning_rate)
    check_hyper(hyper, "analysis", positive=("learning_rate",))
    return run(solver, key, y, op, hyper, prior.params, num_steps=num_steps,
               num_restarts=num_restarts, options=options, **run_options)
