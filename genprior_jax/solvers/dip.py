"""Compressed sensing with a Deep Image Prior (Van Veen et al. 2018, "Compressed Sensing with Deep Image Prior
and Learned Regularization"; the compsensing_dip repo).

The weights ``w`` of an untrained generator (:mod:`genprior_jax.priors.untrained`) with a fixed random input
``z ~ N(0, I)`` are fitted to one measurement::

    w_hat = argmin_w  1/2 ||A G_w(z) - y||^2 + lam TV(G_w(z)) + lam_weights LR(w),       x_hat = G_{w_t*}(z)

with the anisotropic total variation :func:`total_variation` and the learned regularization
``LR(w) = (mu(w) - m)^T S^{-1} (mu(w) - m)`` of a :class:`~genprior_jax.priors.untrained.WeightPrior` (fitted by
:func:`learn_weight_prior`). The estimate is the iterate ``t*`` with the lowest *measurement* loss
``1/2 ||A G_{w_t}(z) - y||^2`` over all iterates (or over the last ``best_window`` ones), kept in the solver state;
that loss is the solver's objective, so the runner keeps the restart with the best fit to ``y``, as the repo does.

Reference settings (repo, MNIST): RMSprop with lr ``1e-3`` and momentum 0.9, 1000 steps, one restart,
``lam_tv = 0.01``, ``lam_lr = 0``, ``A`` with ``N(0, 1/m)`` entries. Differences: images here are in ``[0, 1]``
(the repo's in ``[-1, 1]``, whose data term ``||A x - y||^2`` is 8 times our ``1/2 ||A x - y||^2`` and TV term 2
times ours: its ``lam_tv = 0.01`` is ``lam = 0.0025`` here; the default ``lam = 0.005`` keeps this module's former
``lam_tv = 0.01`` against ``||A x - y||^2``); optax's RMSprop averages squared gradients with decay 0.9 (PyTorch:
0.99); the repo picks the lowest *total* loss among the last 51 iterates (``best_window=51`` here, but by
measurement loss).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from ..likelihoods import misfit
from ..operators.noise import measure
from ..priors.untrained import (
    UntrainedGenerator,
    WeightPrior,
    check_weight_prior,
    fit_weight_prior,
    untrained_generator,
    weight_penalty,
)
from .checks import check_hyper, deprecated_rescaled_kwargs
from .optim import make_optimizer, optimizer_step
from .options import RunOptions
from .runner import Problem, Result, Solver, Status, run

Array = jax.Array

DIP_OPTIMIZERS = ("rmsprop", "adam", "sgd")

# Unrolling the runner's scan only slowed the im2col convolutions down (`benchmarks/dip_check.py --speed`, results in
# benchmarks/results/dip_check_speed.json), so DIP keeps the runner's default (no unrolling).


class DIPHyper(NamedTuple):
    learning_rate: Array | float = 1e-3
    lam: Array | float = 0.005  # weight of the anisotropic total variation of G_w(z) (formerly lam_tv = 0.01)
    lam_weights: Array | float = 0.0  # weight of the learned weight prior LR(w) (needs a WeightPrior; was lam_lr)


DIP_HYPER = DIPHyper()


class DIPState(NamedTuple):
    weights: Any  # the generator's weights (the optimization variable)
    z: Array  # the fixed input, latent_shape
    opt_state: Any  # the optimizer's state over the weights raveled into one vector (flat_weights)
    best_x: Array  # image of the iterate with the lowest measurement loss so far (zeros before any)
    best_loss: Array  # its measurement loss 1/2 ||A x - y||^2 (inf before any)
    step: Array  # int32 number of steps taken


def total_variation(x: Array) -> Array:
    """Anisotropic total variation of one image ``x`` ``(H, W, C)``:
    ``sum |x[i+1, j] - x[i, j]| + sum |x[i, j+1] - x[i, j]|`` over pixels and channels."""
    return jnp.sum(jnp.abs(jnp.diff(x, axis=0))) + jnp.sum(jnp.abs(jnp.diff(x, axis=1)))


def measurement_loss(x: Array, problem: Problem) -> Array:
    """The data term ``1/2 misfit(A x, y)``: ``1/2 ||A x - y||^2`` for a linear operator, half the surrogate loss of
    a non-linear one (e.g. the logistic loss of :class:`~genprior_jax.operators.OneBit`)."""
    return 0.5 * misfit(problem.op, problem.op.mv(x), problem.y)


def flat_weights(generator: UntrainedGenerator) -> tuple[Callable[[Any], Array], Callable[[Array], Any]]:
    """``(ravel, unravel)``: the generator's weight pytree as one ``(P,)`` vector (its leaves raveled and
    concatenated in ``jax.tree_util`` order, ``P`` = :meth:`~UntrainedGenerator.num_weights`) and back.

    The DIP optimizer updates this one vector: its update, the finiteness check and the rejection of a non-finite
    step are then a few array operations instead of a few per weight array, which cut the XLA compile time of a
    solve (``benchmarks/dip_compile.py``)."""
    shapes = jax.eval_shape(generator.init, jax.random.key(0))
    leaves, treedef = jax.tree_util.tree_flatten(shapes)
    sizes = [int(np.prod(leaf.shape)) for leaf in leaves]
    offsets = np.cumsum([0, *sizes])

    def ravel(weights: Any) -> Array:
        return jnp.concatenate([jnp.ravel(a) for a in jax.tree_util.tree_leaves(weights)])

    def unravel(v: Array) -> Any:
        return jax.tree_util.tree_unflatten(treedef, [v[int(o):int(o) + n].reshape(leaf.shape)
                                                      for o, n, leaf in zip(offsets, sizes, leaves)])

    return ravel, unravel


@functools.cache
def dip_solver(generator: UntrainedGenerator, optimizer: str = "rmsprop", learned_reg: bool = False,
               num_steps: int = 1, best_window: int | None = None) -> Solver:
    """The DIP :class:`Solver` for ``generator``; cached. ``params`` of the runner is the
    :class:`~genprior_jax.priors.untrained.WeightPrior` when ``learned_reg`` (else unused). The best iterate is
    tracked over steps ``>= num_steps - best_window`` (all steps if ``best_window`` is None) and the final
    iterate."""
    if optimizer not in DIP_OPTIMIZERS:
        raise ValueError(f"unknown DIP optimizer {optimizer!r}; expected one of {DIP_OPTIMIZERS}")
    first_tracked = 0 if best_window is None else max(int(num_steps) - int(best_window), 0)

    def opt_for(hyper: DIPHyper) -> Any:
        return make_optimizer(optimizer, hyper.learning_rate)

    ravel, unravel = flat_weights(generator)

    def init(key: Array, problem: Problem, hyper: DIPHyper, prior: Any) -> DIPState:
        kw, kz = jax.random.split(key)
        weights = generator.init(kw)
        z = jax.random.normal(kz, generator.latent_shape, jnp.float32)
        return DIPState(weights, z, opt_for(hyper).init(ravel(weights)),
                        jnp.zeros(generator.image_shape, jnp.float32), jnp.asarray(jnp.inf, jnp.float32),
                        jnp.asarray(0, jnp.int32))

    def step(state: DIPState, problem: Problem, hyper: DIPHyper, prior: Any) -> tuple[DIPState, Array]:
        def value_fn(v: Array) -> tuple[Array, tuple[Array, Array]]:
            w = unravel(v)
            x = generator.generate(w, state.z)
            data = measurement_loss(x, problem)
            total = data + hyper.lam * total_variation(x)
            if learned_reg:
                total = total + hyper.lam_weights * weight_penalty(w, prior)
            return total, (data, x)

        v, opt_state, (total, (data, x)) = optimizer_step(optimizer, opt_for(hyper), value_fn, ravel(state.weights),
                                                         state.opt_state, has_aux=True)
        better = (state.step >= first_tracked) & (data < state.best_loss)  # False for NaN
        return DIPState(unravel(v), state.z, opt_state, jnp.where(better, x, state.best_x),
                        jnp.where(better, data, state.best_loss), state.step + 1), total

    def best(state: DIPState, problem: Problem) -> tuple[Array, Array]:
        x = generator.generate(state.weights, state.z)
        data = measurement_loss(x, problem)
        better = data < state.best_loss
        return jnp.where(better, x, state.best_x), jnp.where(better, data, state.best_loss)

    def objective(state: DIPState, problem: Problem, hyper: DIPHyper, prior: Any) -> Array:
        return best(state, problem)[1]

    def estimate(state: DIPState, problem: Problem, hyper: DIPHyper, prior: Any) -> Array:
        return best(state, problem)[0]

    return Solver(init, step, objective, estimate)


def _generator(generator: str | UntrainedGenerator, image_shape: tuple[int, ...]) -> UntrainedGenerator:
    # "auto": Van Veen et al.'s DCGAN where it fits (28 x 28), the Deep Decoder at other sizes, with the default
    # architecture for the size (untrained.default_deep_decoder)
    if generator == "auto":
        generator = "dcgan" if tuple(image_shape[:2]) == (28, 28) else "deep-decoder"
    gen = untrained_generator(generator, tuple(image_shape)) if isinstance(generator, str) else generator  # type: ignore[arg-type]
    if not isinstance(gen, UntrainedGenerator):
        raise ValueError(f"dip: expected a generator name {('auto', 'dcgan', 'deep-decoder')} or an "
                         "UntrainedGenerator, "
                         f"got {type(generator).__name__}")
    if tuple(gen.image_shape) != tuple(image_shape):
        raise ValueError(f"dip: operator expects images of shape {tuple(image_shape)}, generator {gen.name!r} "
                         f"generates {gen.image_shape}")
    return gen


@deprecated_rescaled_kwargs({"lam_tv": ("lam", 0.5), "lam_lr": ("lam_weights", 0.5)}, "dip")
def dip(key: Array, y: Array, op: Any, *, generator: str | UntrainedGenerator = "auto", num_steps: int = 1000,
        num_restarts: int = 1, lam: float | Array = DIP_HYPER.lam, lam_weights: float | Array = DIP_HYPER.lam_weights,
        weight_prior: WeightPrior | None = None, learning_rate: float | Array = DIP_HYPER.learning_rate,
        optimizer: str = "rmsprop", best_window: int | None = None, options: RunOptions | None = None,
        **run_options: Any) -> Result:
    """Deep-Image-Prior recovery of images from ``y`` (``(B, *op.out_shape)`` or one measurement).

    Args:
        key: PRNG key; each restart of each problem draws its own initial weights and input ``z``.
        y, op: measurements and operator (``op_batched``: one operator per measurement).
        generator: ``"auto"`` (``"dcgan"`` at 28 x 28, ``"deep-decoder"`` at other sizes), ``"dcgan"``,
            ``"deep-decoder"`` (any ``H x W``, with the default architecture for ``op.in_shape``:
            :func:`~genprior_jax.priors.untrained.default_deep_decoder`) or an
            :class:`~genprior_jax.priors.untrained.UntrainedGenerator` from ``untrained_generator(...)``.
        lam: weight of the total variation of the image (the main regularization weight; traced).
        lam_weights: weight of the learned weight prior ``LR(w)`` (traced); nonzero needs ``weight_prior``.
            The former ``lam_tv`` / ``lam_lr`` (data term ``||A x - y||^2``) still work for one release as
            ``lam = lam_tv / 2`` / ``lam_weights = lam_lr / 2`` (the same objective), with a ``DeprecationWarning``.
        learning_rate: the optimizer's step (traced).
        weight_prior: the learned regularization (:func:`learn_weight_prior`), or None.
        num_steps, num_restarts, optimizer (:data:`DIP_OPTIMIZERS`), best_window: static.
        best_window: track the best iterate among the last ``best_window`` steps only (None: all steps).
        options: :class:`~genprior_jax.solvers.options.RunOptions` (or its fields as keywords), as for every
            solver; ``history`` records the total loss (data + TV + LR terms) at each iterate before its step.

    Returns:
        :class:`Result`; ``x`` is the lowest-measurement-loss iterate of the best restart, ``objective`` its
        measurement loss ``1/2 ||A x - y||^2`` (not the regularized total: DIP selects iterates and restarts by
        their fit to ``y``), ``state`` a :class:`DIPState` (``state.weights``: the final weights).
    """
    hyper = DIPHyper(learning_rate, lam, lam_weights)
    check_hyper(hyper, "dip", positive=("learning_rate",))
    gen = _generator(generator, tuple(op.in_shape))
    if best_window is not None and int(best_window) < 1:
        raise ValueError(f"dip: expected best_window >= 1 or None, got {best_window}")
    if weight_prior is None:
        if not isinstance(lam_weights, jax.core.Tracer) and float(np.asarray(lam_weights)) != 0.0:
            raise ValueError(f"dip: lam_weights = {lam_weights} needs a weight_prior (learn_weight_prior), got None")
    else:
        check_weight_prior(weight_prior, len(jax.tree_util.tree_leaves(jax.eval_shape(gen.init, jax.random.key(0)))),
                           "dip")
        if not all(bool(jnp.all(jnp.isfinite(a))) for a in weight_prior):
            raise ValueError("dip: expected a finite weight_prior, got non-finite values")
    solver = dip_solver(gen, optimizer, weight_prior is not None, int(num_steps) if best_window else 1,
                        None if best_window is None else int(best_window))
    return run(solver, key, y, op, hyper, weight_prior, num_steps=num_steps,
               num_restarts=num_restarts, options=options, **run_options)


def learn_weight_prior(key: Array, images: Array, op: Any, *, sigma: float | Array = 0.0,
                       shrinkage: float = 0.0, ridge: float = 1e-3, **dip_kwargs: Any) -> WeightPrior:
    """The learned regularization of Van Veen et al.: measure each training image ``images`` ``(N, *op.in_shape)``
    with ``op`` and noise ``sigma``, recover it with :func:`dip` (``dip_kwargs``; no learned regularization), and
    fit a :class:`WeightPrior` to the ``N`` final weights (:func:`~genprior_jax.priors.untrained.fit_weight_prior`,
    ``shrinkage`` and ``ridge`` as there). Runs whose solve failed (status not OK) are left out."""
    images = jnp.asarray(images, jnp.float32)
    if images.ndim != 1 + len(op.in_shape) or tuple(images.shape[1:]) != tuple(op.in_shape):
        raise ValueError(f"learn_weight_prior: expected images of shape (N, *{tuple(op.in_shape)}), "
                         f"got {tuple(images.shape)}")
    if {"weight_prior", "lam_weights", "lam_lr"} & set(dip_kwargs):
        raise ValueError("learn_weight_prior: the training runs use no learned regularization "
                         "(weight_prior/lam_weights)")
    k_noise, k_solve = jax.random.split(key)
    y = measure(k_noise, op, images, sigma)  # one key per image, split from k_noise
    res = dip(k_solve, y, op, **dip_kwargs)
    ok = np.asarray(res.status) != Status.NONFINITE
    weights = jax.tree_util.tree_map(lambda a: a[ok], res.state.weights)
    return fit_weight_prior(weights, shrinkage=shrinkage, ridge=ridge)
