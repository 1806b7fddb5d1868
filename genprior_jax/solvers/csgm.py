"""Latent-space ("synthesis") recovery: CSGM (Bora et al. 2017) and the Asim et al. (2020) z-space MAP.

    z_hat = argmin_z  ||A G(z) - y||^2 + lam R(z),      x_hat = G(z_hat)

with the penalty ``R`` (static ``penalty``):

- ``"sq"``: ``||z||^2`` (CSGM; Asim et al.'s ``gamma ||z||^2``),
- ``"norm"``: ``||z||`` (Asim et al.'s unsquared variant),
- ``"nll"``: ``-log p_G(G(z))``, the exact negative log-likelihood of the image under a flow prior.

Initialisation (static ``init``): ``"random"``, ``z0 ~ N(0, init_std^2 I)`` per restart (``init_std = 0``
gives ``z0 = 0``); ``"adjoint"`` / ``"pinv"``, ``z0 = E(clip(A^T y))`` / ``E(clip(A^+ y))`` through the
prior's encoder (plus ``init_std`` noise). Optimizer: any of :data:`~genprior_jax.solvers.optim.OPTIMIZERS`
(Adam by default; defaults lr 0.01, 1000 steps, 10 restarts as in the csgm repo's MNIST script; L-BFGS as
GlowIP uses for flows). With ``A`` of ``N(0, 1/m)`` entries the sum of squares here equals the csgm repo's
*mean* squared residual with its ``N(0, 1)`` matrix, so ``lam = 0.1`` is its "VAE+Reg" setting. The restart
with the lowest final objective is kept.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..likelihoods import misfit
from ..priors.base import Prior
from .checks import check_hyper
from .inits import BACKPROJECTIONS, backproject
from .optim import check_optimizer, check_schedule, make_optimizer, minimizing_solver
from .options import RunOptions, default_tol
from .runner import Problem, Result, Solver, run

PENALTIES = ("sq", "norm", "nll")
INITS = ("random", *BACKPROJECTIONS)

Array = jax.Array


class CSGMHyper(NamedTuple):
    lam: Array | float = 0.1  # weight of ||z||^2 (0.1: Bora et al.'s "VAE+Reg" setting, see the module docstring)
    learning_rate: Array | float = 0.01
    init_std: Array | float = 1.0  # z0 ~ N(0, init_std^2 I); 0 gives z0 = 0


class CSGMState(NamedTuple):
    z: Array
    opt_state: Any


@functools.cache
def csgm_solver(generate: Callable[[Any, Array], Array], latent_shape: tuple[int, ...],
                optimizer: str = "adam", schedule: str = "constant", num_steps: int = 1, penalty: str = "sq",
                init: str = "random", encode: Callable[[Any, Array], Array] | None = None,
                log_prob: Callable[[Any, Array], Array] | None = None) -> Solver:
    """The latent-space :class:`Solver` for a generator ``generate(params, z)``; cached, so the same generator
    and options give the same (already compiled) solver. ``num_steps`` only matters for ``schedule="cosine"``;
    ``encode`` is needed by the back-projection inits and ``log_prob`` by ``penalty="nll"``."""
    check_optimizer(optimizer)
    check_schedule(schedule)
    if penalty not in PENALTIES:
        raise ValueError(f"unknown penalty {penalty!r}; expected one of {PENALTIES}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {INITS}")
    if init != "random" and encode is None:
        raise ValueError(f"init={init!r} needs a prior with an encoder (encode=None)")
    if penalty == "nll" and log_prob is None:
        raise ValueError("penalty='nll' needs a prior with an exact log_prob (a flow)")
    if schedule == "constant":
        num_steps = 1  # irrelevant: share one solver (and one compilation) across step counts

    def opt_for(hyper: CSGMHyper) -> Any:
        return make_optimizer(optimizer, hyper.learning_rate, schedule, num_steps)

    def loss(z: Array, problem: Problem, hyper: CSGMHyper, params: Any) -> Array:
        x = generate(params, z)
        data = misfit(problem.op, problem.op.mv(x), problem.y)
        if penalty == "sq":
            reg = jnp.sum(z**2)
        elif penalty == "norm":
            reg = jnp.sqrt(jnp.sum(z**2) + 1e-12)
        else:
            reg = -log_prob(params, x)  # type: ignore[misc]
        return data + hyper.lam * reg

    def init_z(key: Array, problem: Problem, hyper: CSGMHyper, params: Any) -> Array:
        z = hyper.init_std * jax.random.normal(key, latent_shape, jnp.float32)
        if init != "random":
            z = z + encode(params, backproject(problem, init)).reshape(latent_shape)  # type: ignore[misc]
        return z

    return minimizing_solver(loss, init_z, lambda z, params: generate(params, z), optimizer, opt_for, CSGMState)


CSGM_HYPER = CSGMHyper()
ASIM_HYPER = CSGMHyper(lam=0.0, init_std=0.0)  # GlowIP's CS setting: gamma = 0, z0 = 0


def csgm(prior: Prior, key: Array, y: Array, op: Any, *, lam: float | Array = CSGM_HYPER.lam,
         learning_rate: float | Array = CSGM_HYPER.learning_rate, init_std: float | Array = CSGM_HYPER.init_std,
         num_steps: int = 1000, num_restarts: int = 10, optimizer: str = "adam", schedule: str = "constant",
         penalty: str = "sq", init: str = "random", options: RunOptions | None = None,
         **run_options: Any) -> Result:
    """Recover images from ``y`` (``(B, *op.out_shape)`` or one) with the CSGM objective.

    ``lam``, ``learning_rate`` and ``init_std`` are traced (sweeps reuse the compiled code); ``num_steps``,
    ``num_restarts``, ``optimizer``, ``schedule`` (``"constant"`` or ``"cosine"`` decay to 0), ``penalty`` and
    ``init`` are static (see the module docstring). ``options`` (a
    :class:`~genprior_jax.solvers.options.RunOptions`, or its fields as keywords: ``batch_size``, ``mesh``,
    ``op_batched``, ``history``, ``unroll``, ``progress``) go to :func:`~genprior_jax.solvers.runner.run`, as in
    every solver wrapper. Returns a :class:`Result` whose ``state.z`` is the best latent, ``x = G(z)``.

    >>> import jax
    >>> import genprior_jax as gp
    >>> from genprior_jax.operators import GaussianCS, measure
    >>> prior = gp.load_prior("vae-mnist")
    >>> x = gp.load_mnist("test", n=2).images                      # (2, 28, 28, 1)
    >>> op = GaussianCS(jax.random.key(0), (28, 28, 1), m=100)
    >>> y = jax.vmap(measure, (0, None, 0, None))(jax.random.split(jax.random.key(1), 2), op, x, 0.01)
    >>> res = csgm(prior, jax.random.key(2), y, op, num_steps=200, num_restarts=2)
    >>> res.x.shape, res.status.tolist()
    ((2, 28, 28, 1), [0, 0])
    >>> bool(gp.mse(x, res.x).mean() < gp.mse(x, 0 * x).mean() / 3)
    True
    """
    if tuple(op.in_shape) != tuple(prior.image_shape):
        raise ValueError(f"csgm: operator expects images of shape {op.in_shape}, prior {prior.name!r} "
                         f"generates {prior.image_shape}")
    hyper = CSGMHyper(lam, learning_rate, init_std)
    check_hyper(hyper, "csgm", positive=("learning_rate",))
    solver = csgm_solver(prior.generate, tuple(prior.latent_shape), optimizer, schedule, int(num_steps), penalty,
                         init, prior.encode if init != "random" else None,
                         prior.log_prob if penalty == "nll" else None)
    return run(solver, key, y, op, hyper, prior.params, num_steps=num_steps,
               num_restarts=num_restarts, options=options, **run_options)


ASIM_TOL = 1e-4  # relative change of the objective over 10 L-BFGS iterations (absolute below 1)


def asim(prior: Prior, key: Array, y: Array, op: Any, *, gamma: float | Array = ASIM_HYPER.lam,
         num_steps: int = 2000, num_restarts: int = 1, optimizer: str = "lbfgs", init: str = "random",
         init_std: float | Array = ASIM_HYPER.init_std, penalty: str = "sq",
         learning_rate: float | Array = ASIM_HYPER.learning_rate, options: RunOptions | None = None,
         **run_options: Any) -> Result:
    """Asim et al. (2020) z-space MAP for an invertible prior: ``min_z ||A G(z) - y||^2 + gamma R(z)``, L-BFGS
    from ``z0 = 0`` (GlowIP's CS setting), the same solver as :func:`csgm` with other defaults.

    Solved to convergence by default: up to ``num_steps = 2000`` L-BFGS iterations, stopping when the objective
    changes by less than ``ASIM_TOL`` (relative, absolute below 1) over 10 iterations (``tol=None`` runs the
    fixed count). With the shipped glow-mnist, m = 500 Gaussian CS of 16 held-out digits stops by the tolerance
    after 250-1280 iterations (a cap of 1000 left 3 of 16 capped). GlowIP's "30 steps" are 30 calls of torch's
    ``LBFGS.step()``, each up to 20 iterations: about 600 iterations, not 30, and 30 iterations stop far from the
    minimum (``result.status`` says so)."""
    run_options = default_tol(options, run_options, ASIM_TOL)
    return csgm(prior, key, y, op, lam=gamma, learning_rate=learning_rate, init_std=init_std, num_steps=num_steps,
                num_restarts=num_restarts, optimizer=optimizer, penalty=penalty, init=init, options=options,
                **run_options)
