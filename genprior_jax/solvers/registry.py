"""The method registry: :data:`METHODS`, one :class:`Method` per reconstruction method, and what differs per method.

Each entry carries the solver wrapper that builds the solver and its hyper parameters and calls the runner
(``csgm``, ``tv``, ...), the Hyper NamedTuple of its traced hyper-parameters, its flags (needs a trained prior,
linear operators only), its posterior summary (:mod:`.summaries`), its run-option defaults (e.g. the tolerance
a converging solver stops at), the keywords whose defaults follow from others (Langevin's burn-in and thinning)
and whether it models a model error. A method's keyword defaults live in one place, the keyword defaults of its
wrapper (which read them from the module's Hyper instance, e.g. ``CSGM_HYPER``); :func:`defaults` reads them
back with the entry's run-option and derived defaults, and :func:`~genprior_jax.solvers.dispatch.reconstruct`
(``gp.reconstruct``), the CLI, the demo and the benchmarks all go through here, so they cannot disagree.

Adding a solver: write one module ``solvers/<name>.py`` with its Hyper NamedTuple, its ``<name>_solver(...) ->
Solver`` (pure ``init`` / ``step`` / ``objective`` / ``estimate``) and a wrapper ``<name>(prior?, key, y, op, *,
hyper fields..., num_steps=..., options=None, **run_options)`` that builds both and calls
:func:`~genprior_jax.solvers.runner.run`; then add one :class:`Method` entry below.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from .ald import ALDHyper, ald
from .analysis import AnalysisHyper, analysis
from .bayes import BayesHyper, map_estimate, variational
from .csgm import ASIM_RUN_DEFAULTS, CSGMHyper, asim, csgm
from .diffpir import DiffPIRHyper, diffpir
from .diffusion_common import sample_summary
from .dip import DIPHyper, dip
from .dps import DPSHyper, dps
from .langevin import LangevinHyper, langevin, langevin_schedule
from .lasso import LASSO_RUN_DEFAULTS, LassoHyper, lasso
from .patch_prior import PatchHyper, patchnr
from .pnp import PNP_RUN_DEFAULTS, PnPHyper, pnp
from .summaries import SummaryFn, langevin_chain_summary, vi_summary
from .tv import TV_RUN_DEFAULTS, TVHyper, tv
from .types import Result


class Method(NamedTuple):
    """One reconstruction method.

    Attributes:
        name: the registry key (``--method`` in the CLI).
        solve: the solver wrapper; called as ``solve(prior, key, y, op, **kw)`` or, without a prior,
            ``solve(key, y, op, **kw)``.
        hyper: the Hyper NamedTuple of its traced hyper-parameters.
        needs_prior: it needs a trained prior (latent-space and Bayesian methods).
        linear_only: it needs the adjoint ``A^T`` (Lasso, TV).
        fixed: keywords this entry always passes (``basis="dct"`` for ``lasso-dct``).
        lam: the keyword a generic regularization weight (the CLI's ``--lam``) sets, or None.
        lr: the keyword a generic step size (the CLI's ``--lr``) sets, or None.
        summary: one line for help texts.
        any_size: the trained prior is fully convolutional (patches, a diffusion U-Net), so the method
            reconstructs images of any size (patchnr, the diffusion methods); otherwise a trained prior fixes the
            image shape.
        summarize: its posterior summary (:class:`~genprior_jax.solvers.summaries.SummaryFn`), or None for a
            point estimate (``result.x``); a method with one can return posterior samples (:attr:`posterior`).
        run_defaults: the run options (:class:`~genprior_jax.solvers.options.RunOptions` fields) the wrapper sets
            when the caller leaves them unset, e.g. the tolerance of a solver that converges (the same mapping the
            wrapper applies).
        derived: ``derived(kw) -> {keyword: value}``: the defaults that follow from other keywords ``kw`` (the
            method's keywords with their defaults), e.g. Langevin's ``burn_in`` and ``thin`` from ``num_steps``.
        default_prior: the prior the CLI loads when ``--prior`` is not given (methods that need one).
        model_error: it models an image-space model error (``model_error=tau`` or ``"auto"``, :mod:`.model_error`):
            the methods with a likelihood of known noise level, whose key is split into a solve and a sampling key.
    """

    name: str
    solve: Callable[..., Result]
    hyper: type
    needs_prior: bool
    linear_only: bool = False
    fixed: Mapping[str, Any] = {}
    lam: str | None = "lam"
    lr: str | None = "learning_rate"
    summary: str = ""
    any_size: bool = False
    summarize: SummaryFn | None = None
    run_defaults: Mapping[str, Any] = {}
    derived: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    model_error: bool = False
    default_prior: str = "vae-mnist"

    @property
    def posterior(self) -> bool:
        """It can return posterior samples and a per-pixel std (it has a posterior summary: VI, Langevin)."""
        return self.summarize is not None


def _langevin_derived(kw: Mapping[str, Any]) -> dict[str, Any]:
    burn_in, thin = langevin_schedule(kw["num_steps"], kw["burn_in"], kw["thin"])
    num_samples = 8 * int(kw["num_chains"]) if kw.get("num_samples") is None else kw["num_samples"]
    return {"burn_in": burn_in, "thin": thin, "num_samples": num_samples}


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("csgm", csgm, CSGMHyper, True,
           summary="CSGM: min_z 1/2 ||A G(z) - y||^2 + lam ||z||^2 (Adam, restarts)"),
    Method("asim", asim, CSGMHyper, True, run_defaults=ASIM_RUN_DEFAULTS,
           summary="Asim et al.: z-space MAP with a flow prior (L-BFGS, z0 = 0)"),
    Method("analysis", analysis, AnalysisHyper, True,
           summary="Oberlin-Verm analysis: min_x 1/2 ||A x - y||^2 + lam ||E(x)||^2"),
    Method("map", map_estimate, BayesHyper, True, model_error=True,
           summary="Bayesian MAP over the latent (BRGM)"),
    Method("vi", variational, BayesHyper, True, summarize=vi_summary, model_error=True,
           summary="mean-field variational posterior over the latent (BRGM)"),
    Method("langevin", langevin, LangevinHyper, True, lr="step_size", summarize=langevin_chain_summary,
           derived=_langevin_derived, model_error=True,
           summary="MALA / ULA posterior sampling over the latent"),
    Method("lasso-pixel", lasso, LassoHyper, False, linear_only=True, fixed={"basis": "pixel"}, lr=None,
           run_defaults=LASSO_RUN_DEFAULTS, summary="Lasso in the pixel basis (FISTA)"),
    Method("lasso-dct", lasso, LassoHyper, False, linear_only=True, fixed={"basis": "dct"}, lr=None,
           run_defaults=LASSO_RUN_DEFAULTS, summary="Lasso in the DCT basis (FISTA)"),
    Method("lasso-wavelet", lasso, LassoHyper, False, linear_only=True, fixed={"basis": "wavelet"}, lr=None,
           run_defaults=LASSO_RUN_DEFAULTS, summary="Lasso in a wavelet basis (FISTA)"),
    Method("tv", tv, TVHyper, False, linear_only=True, lr=None, run_defaults=TV_RUN_DEFAULTS,
           summary="total variation (Chambolle-Pock PDHG)"),
    Method("dip", dip, DIPHyper, False, summary="Deep Image Prior (untrained generator): lam weighs TV(x)"),
    Method("patchnr", patchnr, PatchHyper, True, linear_only=True, any_size=True, default_prior="patch-flow",
           summary="patch-flow prior: min_x 1/2 ||A x - y||^2 + lam mean -log p(patches), any image size"),
    Method("dps", dps, DPSHyper, True, lr="step_size", any_size=True, summarize=sample_summary,
           default_prior="diffusion-mnist",
           summary="diffusion posterior sampling (Chung et al. 2023): guidance through the denoiser, any operator"),
    Method("diffpir", diffpir, DiffPIRHyper, True, linear_only=True, lr=None, any_size=True,
           summarize=sample_summary, default_prior="diffusion-mnist",
           summary="DiffPIR (Zhu et al. 2023): diffusion steps with a proximal data step"),
    Method("ald", ald, ALDHyper, True, lr="step_size", any_size=True, summarize=sample_summary,
           default_prior="diffusion-mnist",
           summary="annealed Langevin with the diffusion prior's score (Jalal et al. 2021)"),
    Method("pnp", pnp, PnPHyper, True, linear_only=True, lr=None, any_size=True, run_defaults=PNP_RUN_DEFAULTS,
           default_prior="diffusion-mnist",
           summary="plug-and-play ADMM with the diffusion denoiser (fixed-point residual certified)"),
)}

BAYES = tuple(k for k, m in METHODS.items() if m.model_error)  # methods with a likelihood (kept for old imports)


def get_method(name: str) -> Method:
    """The registry entry ``name``; ``ValueError`` listing the valid names otherwise."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {sorted(METHODS)}")
    return METHODS[name]


def defaults(name: str) -> dict[str, Any]:
    """Every default that applies to method ``name``: the wrapper's keyword defaults, the defaults that follow from
    them (``derived``: Langevin's ``burn_in`` and ``thin`` at the default ``num_steps``), the run-option defaults
    the wrapper sets (``run_defaults``: e.g. ``tol``) and the entry's ``fixed`` keywords."""
    m = get_method(name)
    params = inspect.signature(m.solve).parameters.values()
    out = {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY and p.default is not p.empty}
    out.pop("options", None)
    out = {**out, **m.fixed}
    if m.derived is not None:
        out.update(m.derived(out))
    return {**out, **m.run_defaults}
