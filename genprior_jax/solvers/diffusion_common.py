"""What the diffusion-prior solvers (:mod:`.dps`, :mod:`.diffpir`, :mod:`.ald`, :mod:`.pnp`) share.

- **The denoiser** of a prior with ``denoise`` (:mod:`genprior_jax.priors.diffusion`), applied to a stack of
  ``S`` images of the operator's shape (:func:`stack_denoiser`: any image size; a grey model denoises colour images
  channel by channel).
- **The schedule**: EDM's levels ``sigma_0 = sigma_max > ... > sigma_{N-1} = sigma_min``, ``sigma_N = 0``
  (:func:`~genprior_jax.priors.diffusion.karras_sigmas`), in image units; ``sigma_max`` / ``sigma_min`` are traced.
- **The sampling state** :class:`SampleState`: ``num_samples`` iterates per measurement (the posterior samples,
  vmapped inside one state, as Langevin's chains), a key and the step index. The runner runs one state per
  measurement (``num_restarts = 1``): the samples are the restarts, and all of them are kept.
- **The data step** :func:`data_prox`: ``argmin_x 1/2 ||A x - y||^2 + c/2 ||x - v||^2`` by conjugate gradients on
  ``(A^T A + c I) x = A^T y + c v`` from ``x = v`` (a fixed number of iterations, so it vmaps without a while loop);
  for a mask or the identity one iteration is exact.
- **The posterior summary** :func:`sample_summary` of the registry: mean, per-pixel std and the samples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..likelihoods import likelihood_for
from ..operators.base import LinearOperator
from ..operators.noise import GaussianNoise, check_noise
from ..priors.base import Prior, PriorStatic
from ..priors.diffusion import denoiser_for, karras_sigmas
from .options import RunOptions, resolve_options, tol_of
from .summaries import Summary
from .types import Problem, ReadoutFn, Result

Array = jax.Array
StackDenoiser = Callable[[Any, Array, Array], Array]

CG_ITERS = 20  # conjugate-gradient iterations of the data step (static)


class SampleState(NamedTuple):
    x: Array  # (num_samples, *in_shape): the iterates x_i (after the last step: the samples)
    x0: Array  # (num_samples, *in_shape): the last denoised estimate D(x_i, sigma_i) (DiffPIR: data-corrected)
    key: Array
    i: Array  # int32: steps done


class SampleInfo(NamedTuple):
    loss: Array  # mean over the samples of 1/2 ||A x0 - y||^2 at the step's denoised estimate


def sampler_readouts() -> tuple[ReadoutFn, ReadoutFn]:
    """The samplers' ``(objective, estimate)``: the data term averaged over the samples, and their mean."""

    def objective(state: SampleState, problem: Problem, hyper: Any, params: Any) -> Array:
        return mean_data_term(problem, hyper.noise, state.x)

    def estimate(state: SampleState, problem: Problem, hyper: Any, params: Any) -> Array:
        return jnp.mean(state.x, axis=0)

    return objective, estimate


def refuse_tolerance(options: RunOptions | None, run_options: dict[str, Any], who: str) -> None:
    """``ValueError`` if a tolerance was asked of a sampler (it has no objective to settle: it runs num_steps)."""
    if tol_of(resolve_options(options, run_options, who)) is not None:
        raise ValueError(f"{who}: a sampler has no objective to settle; expected tol=None (it runs num_steps)")


def check_diffusion(prior: Prior, op: Any, noise: Any, who: str, *, linear: bool, gaussian: bool) -> Any:
    """The shared argument checks (``ValueError`` naming ``who``): ``prior`` has a denoiser that can denoise
    ``op``'s images, ``op`` is linear where the method needs ``A^T`` (``linear``), ``noise`` is a noise model
    (``GaussianNoise`` with ``sigma > 0`` where ``gaussian``). Returns ``noise`` as a noise model."""
    if not isinstance(prior, Prior) or prior.denoise is None:
        name = getattr(prior, "name", type(prior).__name__)
        raise ValueError(f"{who}: expected a diffusion prior (one with denoise(params, x, sigma), e.g. "
                         f"gp.load_prior('diffusion-mnist')), got {name!r}")
    shape = tuple(op.in_shape)
    if len(shape) != 3:
        raise ValueError(f"{who}: expected an operator on images (H, W, C), got in_shape {shape}")
    denoiser_for(prior.denoise, int(prior.image_shape[-1]), shape)  # refuses a channel mismatch
    if linear and not isinstance(op, LinearOperator):
        raise ValueError(f"{who}: needs a linear operator (its data step uses A^T), got {type(op).__name__}")
    noise = check_noise(noise, op, who, positive=gaussian)
    if gaussian and not isinstance(noise, GaussianNoise):
        raise ValueError(f"{who}: expected GaussianNoise(sigma) (its data step is a Gaussian proximal step), got "
                         f"{type(noise).__name__}")
    return noise


def stack_denoiser(static: PriorStatic, in_shape: tuple[int, ...]) -> StackDenoiser:
    """``den(params, xs, sigma)``: the prior's ``D(x, sigma)`` on a stack ``xs`` ``(S, *in_shape)`` at one
    ``sigma``."""
    assert static.denoise is not None
    one = denoiser_for(static.denoise, int(static.image_shape[-1]), in_shape)
    return jax.vmap(one, (None, 0, None))


def levels(num_steps: int, hyper: Any) -> Array:
    """The ``num_steps + 1`` noise levels of a run (the last is 0), from ``hyper.sigma_max`` / ``sigma_min``."""
    return karras_sigmas(num_steps, hyper.sigma_min, hyper.sigma_max)


def start(key: Array, num_samples: int, shape: tuple[int, ...], sigma: Array) -> SampleState:
    """``num_samples`` draws ``0.5 + sigma z`` (the prior at noise ``sigma``, about its grey mean)."""
    k_x, k_run = jax.random.split(key)
    x = 0.5 + sigma * jax.random.normal(k_x, (num_samples, *shape), jnp.float32)
    return SampleState(x, jnp.full_like(x, 0.5), k_run, jnp.int32(0))


def ddim_step(key: Array, x: Array, x0: Array, sigma: Array, sigma_next: Array, eta: Array | float) -> Array:
    """One VE step from level ``sigma`` to ``sigma_next`` given the estimate ``x0`` of the clean image::

        x' = x0 + sqrt(sigma_next^2 - c^2) (x - x0) / sigma + c xi,
        c  = eta sigma_next sqrt(1 - sigma_next^2 / sigma^2)

    (``eta = 0``: DDIM, deterministic; ``eta = 1``: the ancestral (DDPM) step, the exact ``q(x' | x, x0)``)."""
    c = eta * sigma_next * jnp.sqrt(jnp.clip(1.0 - sigma_next**2 / sigma**2, 0.0, 1.0))
    eps = (x - x0) / sigma
    return x0 + jnp.sqrt(jnp.maximum(sigma_next**2 - c**2, 0.0)) * eps + c * jax.random.normal(key, x.shape)


def data_prox(op: LinearOperator, y: Array, v: Array, c: Array, iters: int = CG_ITERS) -> Array:
    """``argmin_x 1/2 ||A x - y||^2 + c/2 ||x - v||^2`` for one image ``v`` (module docstring), ``c > 0``."""
    b = op.rmv(y) + c * v

    def apply(u: Array) -> Array:
        return op.rmv(op.mv(u)) + c * u

    x = v
    r = b - apply(x)
    p = r
    rs = jnp.vdot(r, r)
    tiny = jnp.finfo(jnp.float32).tiny

    def body(_: int, carry: tuple[Array, Array, Array, Array]) -> tuple[Array, Array, Array, Array]:
        x, r, p, rs = carry
        ap = apply(p)
        alpha = rs / jnp.maximum(jnp.vdot(p, ap), tiny)
        alpha = jnp.where(rs > 0, alpha, 0.0)
        x, r = x + alpha * p, r - alpha * ap
        rs_new = jnp.vdot(r, r)
        p = r + jnp.where(rs > 0, rs_new / jnp.maximum(rs, tiny), 0.0) * p
        return x, r, p, rs_new

    return jax.lax.fori_loop(0, iters, body, (x, r, p, rs))[0]


def data_term(problem: Problem, noise: Any, x: Array) -> Array:
    """``1/2 ||A x - y||^2`` (Gaussian noise; the likelihood's misfit / 2 otherwise) of one image."""
    return 0.5 * likelihood_for(problem.op, noise).misfit(problem.op, problem.op.mv(x), problem.y)


def mean_data_term(problem: Problem, noise: Any, xs: Array) -> Array:
    """The data term averaged over a stack of samples: the samplers' reported objective."""
    return jnp.mean(jax.vmap(lambda x: data_term(problem, noise, x))(xs))


def sample_summary(prior: Prior | None, result: Result, key: Array, y: Array, op: Any, *, posterior: bool,
                   num_samples: int, method_kwargs: Mapping[str, Any], model_error: Any,
                   op_batched: bool) -> Summary:
    """The diffusion samplers' summary: ``x`` the mean of the samples (``result.x``); with ``posterior`` also the
    per-pixel std over the samples and the samples ``(B, S, *image_shape)``."""
    if not posterior:
        return Summary(result.x, None, None, None)
    samples = result.state.x
    return Summary(result.x, jnp.std(samples, axis=-4), samples, None)
