"""A learned patch prior for images of any size (PatchNR, Altekrueger et al. 2023; EPLL's idea with a flow).

The regularizer is the mean negative log-likelihood of the image's patches under a small flow ``p`` trained on
``k x k`` patches of natural images (:func:`~genprior_jax.training.train_patch_flow`)::

    R(x) = (H W C / (k^2 c)) * 1/N sum_{n=1..N} -log p(P_n x),      x_hat = argmin_x  1/2 ||A x - y||^2 + lam R(x)

(``c`` the prior's channels) with ``P_n`` the patch extraction of :mod:`genprior_jax.transforms.patches` (grid of
stride ``s``; the grid's offset is drawn afresh at every step when ``s > 1``, so every pixel is covered on average;
the objective that the runner's tolerance reads uses offset 0). This is the analysis formulation of Oberlin & Verm
with ``||E(x)||^2`` replaced by the exact patch NLL ``||E(p)||^2 / 2 - log|det dE/dp| + const``, and it scales to
any image size: ``p`` only ever sees ``k x k`` patches. A grey patch prior (``c = 1``) on an RGB image treats each
channel as a grey image. The mean patch NLL (PatchNR's regularizer) is scaled by the number of non-overlapping
patches that tile the image, ``H W C / (k^2 c)``: ``R`` is then the NLL (nats) of the image as a tiling of
independent patches, a sum over the image like TV's, so one ``lam`` serves every image size (about 1e-5 to 1e-4 for
images in ``[0, 1]`` with noise std 0.01, larger for operators with a large norm such as the Radon transform). Its
gradient flows back through the overlapping patches by the adjoint ``P^T`` (overlaps summed).

Optimizer: Adam on the pixels (``learning_rate`` traced, decayed to 0 over the step cap on a cosine by default: the
grid offset makes the gradient stochastic), as PatchNR (which uses Adam, a few hundred steps), from
``x0`` = the TV solution (``init="tv"``, the default: ``tv_steps`` PDHG steps of :func:`~genprior_jax.solvers.tv`
with weight ``tv_lam``, inside the same compiled solve), ``clip(A^+ y)`` (``"pinv"``) or ``clip(A^T y)``
(``"adjoint"``). A back-projection is a poor start for ill-conditioned operators (``A^+ y`` of a blur amplifies
the noise far beyond what a few hundred Adam steps undo), the TV solution a good one for all of them. The estimate
is the final ``x`` clipped to ``[0, 1]``.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..likelihoods import misfit
from ..priors.base import Prior, PriorStatic, prior_static
from ..transforms.patches import extract_patches, num_patches
from .checks import check_hyper
from .inits import BACKPROJECTIONS, backproject
from .optim import make_optimizer, optimizer_step
from .options import RunOptions
from .runner import Problem, Result, Solver, run
from .tv import tv_fixed_steps

PATCH_INITS = ("tv", *BACKPROJECTIONS)
PATCH_SCHEDULES = ("cosine", "constant")
PATCH_OPTIMIZERS = ("adam", "lbfgs")

Array = jax.Array

__all__ = ["PATCH_CHUNK", "PATCH_HYPER", "PATCH_INITS", "PATCH_OPTIMIZERS", "PATCH_SCHEDULES", "PatchHyper",
           "PatchState", "patch_nll", "patch_prior_solver", "patchnr"]


class PatchHyper(NamedTuple):
    lam: Array | float = 3e-5  # weight of R (R sums the patch NLLs over the image; ~1e-5 to 1e-4 for images)
    learning_rate: Array | float = 0.005
    tv_lam: Array | float = 0.003  # the TV start's weight (init="tv")


PATCH_HYPER = PatchHyper()


class PatchState(NamedTuple):
    x: Array  # the image iterate, op.in_shape
    opt_state: Any
    key: Array  # for the patch grid's offset at each step


def _channels_as_images(x: Array, c_prior: int) -> Array:
    """``(H, W, C)`` -> ``(G, H, W, c_prior)``: the image itself, or each channel as a grey image."""
    if x.shape[-1] == c_prior:
        return x[None]
    return jnp.moveaxis(x, -1, 0)[..., None]


PATCH_CHUNK = 2048
"""Patches per chunk of the streamed patch NLL (:func:`patch_nll`): memory is bounded by one chunk's flow
activations (and their gradient), whatever the image size."""


def patch_nll(log_prob: Any, params: Any, x: Array, size: int, stride: int = 1,
              offset: Array | tuple[int, int] = (0, 0), c_prior: int = 1, chunk: int | None = PATCH_CHUNK) -> Array:
    """``R(x) = (H W C / (k^2 c)) mean_n -log_prob(params, P_n x)`` (nats; module docstring) for one image ``x``
    ``(H, W, C)`` on the grid of ``stride`` and ``offset`` (every channel separately when ``c_prior = 1 < C``).

    ``chunk`` (static): the ``N`` patches go through the flow ``chunk`` at a time, by a ``lax.scan`` whose body is
    rematerialized (``jax.checkpoint``) in the gradient, so memory holds one chunk's activations instead of all
    ``N`` (a 512x512 RGB image at stride 2: 196,000 patches); the sum is the same up to float summation order.
    ``None``, or ``N <= chunk``: all patches at once."""
    if chunk is not None and (isinstance(chunk, bool) or int(chunk) != chunk or int(chunk) < 1):
        raise ValueError(f"patch_nll: expected chunk to be a positive integer or None, got {chunk!r}")
    imgs = _channels_as_images(x, c_prior)
    patches = jax.vmap(lambda img: extract_patches(img, size, stride, offset))(imgs)
    patches = patches.reshape(-1, size, size, c_prior)
    tiles = x.size / (size * size * c_prior)
    n = patches.shape[0]
    if chunk is None or n <= int(chunk):
        return -tiles * jnp.mean(jax.vmap(log_prob, (None, 0))(params, patches))
    chunk = int(chunk)
    n_chunks = -(-n // chunk)
    padded = jnp.concatenate([patches, jnp.zeros((n_chunks * chunk - n, *patches.shape[1:]), patches.dtype)])
    valid = (jnp.arange(n_chunks * chunk) < n).reshape(n_chunks, chunk)

    @jax.checkpoint
    def chunk_sum(block: Array, mask: Array) -> Array:
        return jnp.sum(jnp.where(mask, jax.vmap(log_prob, (None, 0))(params, block), 0.0))

    def body(total: Array, xs: tuple[Array, Array]) -> tuple[Array, None]:
        return total + chunk_sum(*xs), None

    total, _ = jax.lax.scan(body, jnp.zeros((), x.dtype),
                            (padded.reshape(n_chunks, chunk, *patches.shape[1:]), valid))
    return -tiles * total / n


def _check_prior(prior: Prior, image_shape: tuple[int, ...], stride: int, who: str) -> tuple[int, int]:
    if prior.log_prob is None:
        raise ValueError(f"{who}: expected a prior with a density (a patch flow), got {prior.name!r} without log_prob")
    k, k2, c_prior = (int(s) for s in prior.image_shape)
    if k != k2:
        raise ValueError(f"{who}: expected a prior on square patches, got image_shape {tuple(prior.image_shape)}")
    if len(image_shape) != 3 or (image_shape[-1] != c_prior and c_prior != 1):
        raise ValueError(f"{who}: a patch prior with {c_prior} channel(s) applies to images (H, W, {c_prior})"
                         f"{' or any (H, W, C), channel by channel' if c_prior == 1 else ''}; got {tuple(image_shape)}")
    num_patches(tuple(image_shape), k, stride)  # raises when the image is too small
    return k, c_prior


def patch_prior_solver(prior: Prior | PriorStatic, stride: int = 1, init: str = "tv", tv_steps: int = 300,
                       schedule: str = "cosine", num_steps: int = 200, optimizer: str = "adam") -> Solver:
    """The :class:`Solver` for ``1/2 ||A x - y||^2 + lam R(x)`` (module docstring) with the patch prior ``prior``
    (its ``log_prob`` on ``k x k x c`` patches, ``image_shape = (k, k, c)``): Adam on ``x`` with the step
    ``schedule`` over ``num_steps`` and a random grid offset per step, or L-BFGS on the fixed offset-0 grid
    (``optimizer="lbfgs"``: a deterministic objective, so the solve can converge to a tolerance). Cached on the
    prior's static part (``log_prob`` and the patch shape, never params)."""
    s = prior_static(prior, "patch_prior_solver")
    if s.log_prob is None:
        raise ValueError(f"patch_prior_solver: expected a prior with a density (a patch flow), got {s.name!r} "
                         f"without log_prob")
    if len(s.image_shape) != 3 or s.image_shape[0] != s.image_shape[1]:
        raise ValueError(f"patch_prior_solver: expected a prior on square patches (k, k, c), got image_shape "
                         f"{s.image_shape}")
    return _patch_prior_solver(s.log_prob, int(s.image_shape[0]), int(s.image_shape[-1]), int(stride), init,
                               int(tv_steps), schedule, int(num_steps), optimizer)


@functools.cache
def _patch_prior_solver(log_prob: Any, size: int, c_prior: int, stride: int, init: str, tv_steps: int,
                        schedule: str, num_steps: int, optimizer: str) -> Solver:
    if init not in PATCH_INITS:
        raise ValueError(f"patchnr: unknown init {init!r}; expected one of {PATCH_INITS}")
    if schedule not in PATCH_SCHEDULES:
        raise ValueError(f"patchnr: unknown schedule {schedule!r}; expected one of {PATCH_SCHEDULES}")
    if optimizer not in PATCH_OPTIMIZERS:
        raise ValueError(f"patchnr: unknown optimizer {optimizer!r}; expected one of {PATCH_OPTIMIZERS}")

    def make_opt(hyper: PatchHyper) -> Any:
        return make_optimizer(optimizer, hyper.learning_rate, schedule, num_steps)

    def start(key: Array, problem: Problem, hyper: PatchHyper) -> Array:
        if init != "tv":
            return backproject(problem, init)
        return tv_fixed_steps(key, problem, hyper.tv_lam, tv_steps)

    def loss(x: Array, problem: Problem, hyper: PatchHyper, params: Any, offset: Array) -> Array:
        data = misfit(problem.op, problem.op.mv(x), problem.y)
        return 0.5 * data + hyper.lam * patch_nll(log_prob, params, x, size, stride, offset, c_prior)

    def init_fn(key: Array, problem: Problem, hyper: PatchHyper, params: Any) -> PatchState:
        k_start, key = jax.random.split(key)
        x = start(k_start, problem, hyper)
        return PatchState(x, make_opt(hyper).init(x), key)

    def step(state: PatchState, problem: Problem, hyper: PatchHyper, params: Any) -> tuple[PatchState, Array]:
        key, k_off = jax.random.split(state.key)
        random_grid = stride > 1 and optimizer != "lbfgs"
        offset = jax.random.randint(k_off, (2,), 0, stride) if random_grid else jnp.zeros(2, jnp.int32)
        x, opt_state, value = optimizer_step(optimizer, make_opt(hyper),
                                             lambda v: loss(v, problem, hyper, params, offset), state.x,
                                             state.opt_state)
        return PatchState(x, opt_state, key), value

    def objective(state: PatchState, problem: Problem, hyper: PatchHyper, params: Any) -> Array:
        return loss(state.x, problem, hyper, params, jnp.zeros(2, jnp.int32))

    def estimate(state: PatchState, problem: Problem, hyper: PatchHyper, params: Any) -> Array:
        return jnp.clip(state.x, 0.0, 1.0)

    return Solver(init_fn, step, objective, estimate)


def patchnr(prior: Prior, key: Array, y: Array, op: Any, *, lam: float | Array = PATCH_HYPER.lam,
            learning_rate: float | Array = PATCH_HYPER.learning_rate, tv_lam: float | Array = PATCH_HYPER.tv_lam,
            stride: int = 4, num_steps: int = 200, init: str = "tv", tv_steps: int = 300,
            schedule: str = "cosine", optimizer: str = "adam", num_restarts: int = 1, options: RunOptions | None = None,
            **run_options: Any) -> Result:
    """Reconstruct images of any size with a patch-flow prior (module docstring).

    Args:
        prior: a flow on ``k x k x c`` patches (``gp.load_prior("patch-flow")``); ``c = 1`` also serves RGB images.
        key: PRNG key (the TV start's power iteration, the patch grid's offsets).
        y: measurements ``(B, *op.out_shape)`` or one measurement.
        op: a linear operator on images of any size.
        lam: weight of ``R`` (traced).
        learning_rate: Adam's step on the pixels (traced).
        tv_lam: weight of the TV start (traced; the TV objective ``1/2 ||A x - y||^2 + tv_lam TV(x)``).
        stride: the patch grid's step (static). The grid's offset is drawn afresh at every step, so every pixel is
            covered over the steps; a stride of 4 evaluates a quarter of the patches of stride 2 per step. On an
            image with sides ``< k + stride - 1`` it is capped at ``min(H, W) - k + 1`` (every offset must hold a
            patch).
        num_steps: Adam steps, the cap when a tolerance is given (static). The defaults (stride 4, 200 steps) match
            the former ones (stride 2, 500 steps) with 1/10 of the flow evaluations: on 3 held-out 256x256 photos,
            deblurring 29.79 vs 29.32 dB, 2x SR 33.18 vs 33.18 dB, 26 s vs 370 s per image on 2 CPU cores
            (``benchmarks/results/patchnr_defaults.md``; stride 4 with 250 steps: 29.43 / 33.17 dB).
        init: ``"tv"``, ``"pinv"`` or ``"adjoint"`` (static).
        tv_steps: PDHG steps of the TV start (static).
        schedule: ``"cosine"`` (default: Adam's step decays to 0 over ``num_steps``) or ``"constant"`` (static).
            The patch grid's offset changes at every step, so the gradient is stochastic and Adam at a constant
            step keeps jittering around the minimizer (at 128x128, 3 of 4 solves ran to a 300-step cap without the
            objective settling to 1e-5); the decaying step lets it settle. Adam only.
        optimizer: ``"adam"`` (default; PatchNR's) or ``"lbfgs"`` (static): optax's L-BFGS with a line search on the
            fixed offset-0 grid (``learning_rate`` and ``schedule`` unused), a deterministic objective that a
            tolerance can certify as converged. Converged is not better here: on a 64x64 deblur the minimizer of
            ``R``'s objective is 4-8 dB below the 300-step Adam estimate (``benchmarks/patch_convergence.py``).
        num_restarts: solves per image with their own patch-grid offsets, the lowest final objective kept (static;
            the starts are deterministic, so restarts differ only with ``stride > 1`` and Adam).
        options: :class:`~genprior_jax.solvers.options.RunOptions` or its fields as keywords (``tol`` stops each
            image when ``1/2 ||A x - y||^2 + lam R(x)`` on the offset-0 grid settles).

    Returns:
        :class:`Result`; ``x`` in ``[0, 1]``, ``objective`` the final ``1/2 ||A x - y||^2 + lam R(x)``.
    """
    if isinstance(stride, bool) or int(stride) != stride or int(stride) < 1:
        raise ValueError(f"patchnr: expected stride to be a positive integer, got {stride!r}")
    k = int(prior.image_shape[0])
    if len(op.in_shape) == 3 and min(op.in_shape[:2]) >= k:  # an image smaller than a stride: fewer offsets
        stride = min(int(stride), int(min(op.in_shape[:2])) - k + 1)
    size, c_prior = _check_prior(prior, tuple(op.in_shape), int(stride), "patchnr")
    hyper = PatchHyper(lam, learning_rate, tv_lam)
    check_hyper(hyper, "patchnr", positive=("learning_rate",))
    if int(tv_steps) < 1:
        raise ValueError(f"patchnr: expected tv_steps >= 1, got {tv_steps}")
    solver = patch_prior_solver(prior, int(stride), init, int(tv_steps), schedule, int(num_steps), optimizer)
    return run(solver, key, y, op, hyper, prior.params, num_steps=num_steps, num_restarts=num_restarts,
               options=options, **run_options)
