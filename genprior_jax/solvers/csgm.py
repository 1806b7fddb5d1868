"""Latent-space ("synthesis") recovery: CSGM (Bora et al. 2017) and the Asim et al. (2020) z-space MAP.

    z_hat = argmin_z  1/2 ||A G(z) - y||^2 + lam R(z),      x_hat = G(z_hat)

(the data term of every method, ``docs/guide/glossary.md``; a non-linear operator's loss, e.g. the logistic loss
of one-bit data, enters halved the same way) with the penalty ``R`` (static ``penalty``):

- ``"sq"``: ``||z||^2`` (CSGM; Asim et al.'s ``gamma ||z||^2`` with their data term ``||A G(z) - y||^2``: their
  ``gamma`` is ``2 lam``),
- ``"norm"``: ``||z||`` (Asim et al.'s unsquared variant),
- ``"nll"``: ``-log p_G(G(z))``, the exact negative log-likelihood of the image under a flow prior.

Initialisation (static ``init``): ``"random"``, ``z0 ~ N(0, init_std^2 I)`` per restart (``init_std = 0``
gives ``z0 = 0``); ``"adjoint"`` / ``"pinv"``, ``z0 = E(clip(A^T y))`` / ``E(clip(A^+ y))`` through the
prior's encoder (plus ``init_std`` noise). Optimizer: any of :data:`~genprior_jax.solvers.optim.OPTIMIZERS`
(Adam by default; defaults lr 0.01, 1000 steps, 10 restarts as in the csgm repo's MNIST script; L-BFGS as
GlowIP uses for flows). With ``A`` of ``N(0, 1/m)`` entries the sum of squares ``||A G(z) - y||^2`` equals the
csgm repo's *mean* squared residual with its ``N(0, 1)`` matrix, so its "VAE+Reg" setting ``lam = 0.1`` (no 1/2 on
its data term) is ``lam = 0.05`` here, the default. The restart with the lowest final objective is kept.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..likelihoods import misfit
from ..priors.base import Prior, PriorStatic, prior_static
from .checks import check_hyper, deprecated_rescaled_kwargs
from .inits import BACKPROJECTIONS, backproject
from .optim import check_optimizer, check_schedule, make_optimizer, minimizing_solver
from .options import RunOptions, with_run_defaults
from .runner import Problem, Result, Solver, run

PENALTIES = ("sq", "norm", "nll")
INITS = ("random", *BACKPROJECTIONS)

Array = jax.Array


class CSGMHyper(NamedTuple):
    lam: Array | float = 0.05  # weight of ||z||^2 (Bora et al.'s "VAE+Reg" 0.1 on the 1/2 data scale: module docstring)
    learning_rate: Array | float = 0.01
    init_std: Array | float = 1.0  # z0 ~ N(0, init_std^2 I); 0 gives z0 = 0


class CSGMState(NamedTuple):
    z: Array
    opt_state: Any


def csgm_solver(prior: Prior | PriorStatic, optimizer: str = "adam", schedule: str = "constant", num_steps: int = 1,
                penalty: str = "sq", init: str = "random") -> Solver:
    """The latent-space :class:`Solver` for ``prior`` (its ``generate``; ``encode`` for the back-projection inits,
    ``log_prob`` for ``penalty="nll"``). Cached on the prior's static part (its functions and shapes, never its
    params): priors of the same architecture and the same options give the same (already compiled) solver.
    ``num_steps`` only matters for ``schedule="cosine"``."""
    s = prior_static(prior, "csgm_solver")
    check_optimizer(optimizer)
    check_schedule(schedule)
    if penalty not in PENALTIES:
        raise ValueError(f"unknown penalty {penalty!r}; expected one of {PENALTIES}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {INITS}")
    if init != "random" and s.encode is None:
        raise ValueError(f"init={init!r} needs a prior with an encoder (encode=None)")
    if penalty == "nll" and s.log_prob is None:
        raise ValueError("penalty='nll' needs a prior with an exact log_prob (a flow)")
    return _csgm_solver(s.generate, s.latent_shape, optimizer, schedule, int(num_steps), penalty, init,
                        s.encode if init != "random" else None, s.log_prob if penalty == "nll" else None)


@functools.cache
def _csgm_solver(generate: Callable[[Any, Array], Array], latent_shape: tuple[int, ...], optimizer: str,
                 schedule: str, num_steps: int, penalty: str, init: str,
                 encode: Callable[[Any, Array], Array] | None,
                 log_prob: Callable[[Any, Array], Array] | None) -> Solver:
    if schedule == "constant":
        num_steps = 1  # irrelevant: share one solver (and one compilation) across step counts

    def opt_for(hyper: CSGMHyper) -> Any:
        return make_optimizer(optimizer, hyper.learning_rate, schedule, num_steps)

    def loss(z: Array, problem: Problem, hyper: CSGMHyper, params: Any) -> Array:
        x = generate(params, z)
        data = 0.5 * misfit(problem.op, problem.op.mv(x), problem.y)  # 1/2 ||A x - y||^2 (or 1/2 the op's loss)
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
ASIM_HYPER = CSGMHyper(lam=0.0, init_std=0.0)  # GlowIP's CS setting: gamma = 0 (lam = gamma / 2 = 0), z0 = 0


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
    >>> from genprior_jax.operators import GaussianCS, GaussianNoise, measure
    >>> prior = gp.load_prior("vae-mnist")
    >>> x = gp.load_mnist("test", n=2).images                      # (2, 28, 28, 1)
    >>> op = GaussianCS(jax.random.key(0), (28, 28, 1), m=100)
    >>> y = measure(jax.random.key(1), op, x, GaussianNoise(0.01))  # (2, 100): one key per image
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
    solver = csgm_solver(prior, optimizer, schedule, int(num_steps), penalty, init)
    if optimizer == "lbfgs":  # a line search under vmap runs every pair's slowest branch: one pair at a time on CPU
        run_options = with_run_defaults(options, run_options, {"vmap_size": "auto"})
    return run(solver, key, y, op, hyper, prior.params, num_steps=num_steps,
               num_restarts=num_restarts, options=options, **run_options)


# change of the objective over 10 L-BFGS iterations, relative (absolute below 1): 5e-5 on 1/2 ||A G(z) - y||^2 stops
# where the former 1e-4 on ||A G(z) - y||^2 did (asim's objectives end far below 1, where the test is absolute)
ASIM_TOL = 5e-5
# run options asim sets when unset: its tolerance, and one digit at a time on CPU (L-BFGS under vmap: RunOptions)
ASIM_RUN_DEFAULTS: Mapping[str, Any] = MappingProxyType({"tol": ASIM_TOL, "vmap_size": "auto"})


@deprecated_rescaled_kwargs({"gamma": ("lam", 0.5)}, "asim")
def asim(prior: Prior, key: Array, y: Array, op: Any, *, lam: float | Array = ASIM_HYPER.lam,
         num_steps: int = 2000, num_restarts: int = 1, optimizer: str = "lbfgs", init: str = "random",
         init_std: float | Array = ASIM_HYPER.init_std, penalty: str = "sq",
         learning_rate: float | Array = ASIM_HYPER.learning_rate, options: RunOptions | None = None,
         **run_options: Any) -> Result:
    """Asim et al. (2020) z-space MAP for an invertible prior: ``min_z 1/2 ||A G(z) - y||^2 + lam R(z)``, L-BFGS
    from ``z0 = 0`` (GlowIP's CS setting), the same solver as :func:`csgm` with other defaults.

    ``lam`` is the paper's (and this function's former keyword) ``gamma / 2``: their data term has no 1/2.
    ``gamma=g`` still works for one release as ``lam = g / 2`` (the same minimiser as before), with a
    ``DeprecationWarning``.

    Solved to convergence by default: up to ``num_steps = 2000`` L-BFGS iterations, stopping when the objective
    changes by less than ``ASIM_TOL`` (relative, absolute below 1) over 10 iterations (``tol=None`` runs the
    fixed count). With the shipped glow-mnist, m = 500 Gaussian CS of 16 held-out digits stops by the tolerance
    after 250-1280 iterations (a cap of 1000 left 3 of 16 capped). GlowIP's "30 steps" are 30 calls of torch's
    ``LBFGS.step()``, each up to 20 iterations: about 600 iterations, not 30, and 30 iterations stop far from the
    minimum (``result.status`` says so)."""
    check_hyper(CSGMHyper(lam, learning_rate, init_std), "asim", positive=("learning_rate",))
    run_options = with_run_defaults(options, run_options, ASIM_RUN_DEFAULTS)
    return csgm(prior, key, y, op, lam=lam, learning_rate=learning_rate, init_std=init_std, num_steps=num_steps,
                num_restarts=num_restarts, optimizer=optimizer, penalty=penalty, init=init, options=options,
                **run_options)
