"""The method registry: the one front door to every reconstruction method.

Each entry of :data:`METHODS` is a :class:`Method`: the solver wrapper that builds the solver and its hyper
parameters and calls the runner (``csgm``, ``tv``, ...), the Hyper NamedTuple of its traced hyper-parameters,
and flags (needs a trained prior, linear operators only, returns a posterior). A method's defaults live in one
place, the keyword defaults of its wrapper (which read them from the module's Hyper instance, e.g.
``CSGM_HYPER``); :func:`defaults` reads them back, and :func:`reconstruct` (``gp.reconstruct``), the CLI, the demo
and the benchmarks all go through here, so they cannot disagree.

Adding a solver: write one module ``solvers/<name>.py`` with its Hyper NamedTuple, its ``<name>_solver(...) ->
Solver`` (pure ``init`` / ``step`` / ``objective`` / ``estimate``) and a wrapper ``<name>(prior?, key, y, op, *,
hyper fields..., num_steps=..., options=None, **run_options)`` that builds both and calls
:func:`~genprior_jax.solvers.runner.run`; then add one :class:`Method` entry below.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..operators.validation import require_linear
from ..priors.base import Prior
from .analysis import AnalysisHyper, analysis
from .bayes import BayesHyper, map_estimate, variational
from .csgm import CSGMHyper, asim, csgm
from .dip import DIPHyper, dip
from .energy import uses_model_error
from .langevin import LangevinHyper, langevin
from .lasso import LassoHyper, lasso
from .model_error import estimate_model_error
from .options import RunOptions, resolve_options
from .patch_prior import PatchHyper, patchnr
from .posterior import langevin_summary, sample_q
from .runner import Result
from .tv import TVHyper, tv

Array = jax.Array


class Method(NamedTuple):
    """One reconstruction method.

    Attributes:
        name: the registry key (``--method`` in the CLI).
        solve: the solver wrapper; called as ``solve(prior, key, y, op, **kw)`` or, without a prior,
            ``solve(key, y, op, **kw)``.
        hyper: the Hyper NamedTuple of its traced hyper-parameters.
        needs_prior: it needs a trained prior (latent-space and Bayesian methods).
        linear_only: it needs the adjoint ``A^T`` (Lasso, TV).
        posterior: it can return posterior samples and a per-pixel std (VI, Langevin).
        fixed: keywords this entry always passes (``basis="dct"`` for ``lasso-dct``).
        lam: the keyword a generic regularization weight (the CLI's ``--lam``) sets, or None.
        lr: the keyword a generic step size (the CLI's ``--lr``) sets, or None.
        summary: one line for help texts.
        any_size: the trained prior models patches, so the method reconstructs images of any size (patchnr);
            otherwise a trained prior fixes the image shape.
    """

    name: str
    solve: Callable[..., Result]
    hyper: type
    needs_prior: bool
    linear_only: bool = False
    posterior: bool = False
    fixed: dict[str, Any] = {}
    lam: str | None = "lam"
    lr: str | None = "learning_rate"
    summary: str = ""
    any_size: bool = False


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("csgm", csgm, CSGMHyper, True, summary="CSGM: min_z ||A G(z) - y||^2 + lam ||z||^2 (Adam, restarts)"),
    Method("asim", asim, CSGMHyper, True, lam="gamma",
           summary="Asim et al.: z-space MAP with a flow prior (L-BFGS, z0 = 0)"),
    Method("analysis", analysis, AnalysisHyper, True,
           summary="Oberlin-Verm analysis: min_x ||A x - y||^2 + lam ||E(x)||^2"),
    Method("map", map_estimate, BayesHyper, True, lam=None, summary="Bayesian MAP over the latent (BRGM)"),
    Method("vi", variational, BayesHyper, True, posterior=True, lam=None,
           summary="mean-field variational posterior over the latent (BRGM)"),
    Method("langevin", langevin, LangevinHyper, True, posterior=True, lam=None, lr="step_size",
           summary="MALA / ULA posterior sampling over the latent"),
    Method("lasso-pixel", lasso, LassoHyper, False, linear_only=True, fixed={"basis": "pixel"}, lr=None,
           summary="Lasso in the pixel basis (FISTA)"),
    Method("lasso-dct", lasso, LassoHyper, False, linear_only=True, fixed={"basis": "dct"}, lr=None,
           summary="Lasso in the DCT basis (FISTA)"),
    Method("lasso-wavelet", lasso, LassoHyper, False, linear_only=True, fixed={"basis": "wavelet"}, lr=None,
           summary="Lasso in a wavelet basis (FISTA)"),
    Method("tv", tv, TVHyper, False, linear_only=True, lr=None, summary="total variation (Chambolle-Pock PDHG)"),
    Method("dip", dip, DIPHyper, False, lam="lam_tv", summary="Deep Image Prior (untrained generator)"),
    Method("patchnr", patchnr, PatchHyper, True, linear_only=True, any_size=True,
           summary="patch-flow prior: min_x 1/2 ||A x - y||^2 + lam mean -log p(patches), any image size"),
)}

BAYES = ("map", "vi", "langevin")  # methods with a likelihood of known noise level sigma


def get_method(name: str) -> Method:
    """The registry entry ``name``; ``ValueError`` listing the valid names otherwise."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {sorted(METHODS)}")
    return METHODS[name]


def defaults(name: str) -> dict[str, Any]:
    """Every keyword of method ``name`` with its default (the wrapper's signature plus the entry's ``fixed``)."""
    m = get_method(name)
    params = inspect.signature(m.solve).parameters.values()
    out = {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY and p.default is not p.empty}
    out.pop("options", None)
    return {**out, **m.fixed}


def solve(name: str, prior: Prior | None, key: Array, y: Array, op: Any, *, options: RunOptions | None = None,
          **kwargs: Any) -> Result:
    """Run method ``name``'s solver: the runner's :class:`Result` (batched like ``y``)."""
    m = get_method(name)
    if m.needs_prior and prior is None:
        raise ValueError(f"method {name!r} needs a trained prior (gp.load_prior(...)), got prior=None")
    if m.linear_only:
        require_linear(op, name)
    clash = sorted(set(kwargs) & set(m.fixed))
    if clash:
        raise ValueError(f"method {name!r} fixes {clash}; choose another method instead of passing them")
    kw = {**m.fixed, **kwargs, "options": options}
    return m.solve(prior, key, y, op, **kw) if m.needs_prior else m.solve(key, y, op, **kw)


class Reconstruction(NamedTuple):
    x: Array  # (B, H, W, C): the estimate (MAP image, point estimate, or posterior mean for vi / langevin)
    std: Array | None  # (B, H, W, C) per-pixel posterior std (posterior=True)
    samples: Array | None  # (B, K, H, W, C) posterior samples (posterior=True)
    status: Array  # (B,)
    acceptance: Array | None  # (B, chains), Langevin only
    result: Result  # the runner's raw result
    model_error: Array | float = 0.0  # the tau used (estimated with model_error="auto")


def reconstruct(prior: Prior | None, key: Array, y: Array, op: Any, *, method: str = "map", posterior: bool = False,
                num_draws: int = 16, options: RunOptions | None = None, **kwargs: Any) -> Reconstruction:
    """Reconstruct with any method of :data:`METHODS`: ``gp.reconstruct(prior, key, y, op, method="tv")``.

    ``y``: ``(B, *op.out_shape)`` or one measurement; ``prior`` may be None for the methods that need none
    (``tv``, ``lasso-*``, ``dip``). ``kwargs`` are the method's keywords (:func:`defaults` lists them with their
    defaults); ``options`` / run-option keywords go to the runner. ``posterior=True`` (``vi``, ``langevin``) also
    returns the per-pixel std and ``num_draws`` samples (VI) or the kept chain states (Langevin).
    ``model_error=tau`` or ``"auto"`` (Bayesian methods; see :mod:`.model_error`) adds the image-space residual.
    """
    m = get_method(method)
    if posterior and not m.posterior:
        raise ValueError(f"method {method!r} gives a point estimate; posterior=True needs one of "
                         f"{[k for k, v in METHODS.items() if v.posterior]}")
    # the run options once, from options and any run-option keywords; kwargs keeps the method's own keywords
    options = resolve_options(options, {k: kwargs.pop(k) for k in list(kwargs) if k in RunOptions._fields},
                              "reconstruct")
    if method not in BAYES:
        if "model_error" in kwargs:
            raise ValueError(f"model_error applies to the Bayesian methods {BAYES}, not {method!r}")
        res = solve(method, prior, key, y, op, options=options, **kwargs)
        return Reconstruction(res.x, None, None, res.status, None, res, 0.0)
    k_solve, k_sample = jax.random.split(key)
    tau = kwargs.pop("model_error", 0.0)
    if isinstance(tau, str):
        if tau != "auto":
            raise ValueError(f"expected model_error to be a number >= 0 or 'auto', got {tau!r}")
        tau = _auto_model_error(prior, key, y, op, kwargs, options)  # type: ignore[arg-type]
    if uses_model_error(tau):
        kwargs["model_error"] = tau
    res = solve(method, prior, k_solve, y, op, options=options, **kwargs)
    if method == "map":
        return Reconstruction(res.x, None, None, res.status, None, res, tau)
    if method == "vi":
        if not posterior:
            return Reconstruction(res.x, None, None, res.status, None, res, tau)
        samples, mean, std = sample_q(prior, res, k_sample, num_draws, y=y, op=op,  # type: ignore[arg-type]
                                      sigma=kwargs.get("sigma", defaults("vi")["sigma"]), model_error=tau,
                                      op_batched=options.op_batched)
        return Reconstruction(mean, std, samples, res.status, None, res, tau)
    mean, std, samples, acc = langevin_summary(res)
    if not posterior:
        return Reconstruction(mean, None, None, res.status, acc, res, tau)
    return Reconstruction(mean, std, samples, res.status, acc, res, tau)


def _auto_model_error(prior: Prior, key: Array, y: Array, op: Any, kwargs: dict[str, Any],
                      options: RunOptions) -> Array:
    """``model_error="auto"``: tau from a MAP fit (Adam, from z = 0, the solve's step count) of the batch."""
    shared = set(defaults("map")) & set(kwargs) - {"num_steps", "num_restarts", "init_std", "optimizer",
                                                    "estimate_sigma", "model_error"}
    fit = map_estimate(prior, jax.random.fold_in(key, 7), y, op, init_std=0.0, num_restarts=1,
                       num_steps=int(kwargs.get("num_steps", defaults("map")["num_steps"])), options=options,
                       **{k: kwargs[k] for k in shared})
    batched = jnp.ndim(y) == len(op.out_shape) + 1
    yb, xb = (jnp.asarray(y), fit.x) if batched else (jnp.asarray(y)[None], fit.x[None])
    return estimate_model_error(yb, xb, op, kwargs.get("sigma", defaults("map")["sigma"]),
                                op_batched=options.op_batched)


def cli_overrides(name: str, *, steps: int | None = None, restarts: int | None = None, lam: float | None = None,
                  lr: float | None = None, noise: float | None = None) -> dict[str, Any]:
    """The method keywords that the CLI's generic flags set (``None``: the method's default)."""
    m, d = get_method(name), defaults(name)
    out: dict[str, Any] = {}
    if steps is not None:
        out["num_steps"] = steps
    if restarts is not None:
        if "num_restarts" not in d:
            raise ValueError(f"method {name!r} has no restarts (--restarts)")
        out["num_restarts"] = restarts
    if lam is not None:
        if m.lam is None:
            raise ValueError(f"method {name!r} has no regularization weight (--lam)")
        out[m.lam] = lam
    if lr is not None:
        if m.lr is None:
            raise ValueError(f"method {name!r} has no step size (--lr)")
        out[m.lr] = lr
    if noise is not None and "sigma" in d:
        out["sigma"] = max(float(noise), 1e-3)  # the likelihood's known noise level (> 0)
    return out
