"""Solvers as pure ``init``/``step`` functions run by one shared ``lax.scan`` / ``vmap`` runner.

The front door is :func:`reconstruct` over the method registry :data:`METHODS` (:mod:`.methods`); each method
also has its own wrapper (``csgm``, ``tv``, ...). To run a solver of your own, build a :class:`Solver` and call
:func:`run` with :class:`RunOptions`. Internals (solver state types, init/penalty tables, test hooks) stay in
their modules.
"""

from .ald import ALDHyper, ald, ald_solver
from .analysis import AnalysisHyper, analysis, analysis_solver
from .bayes import BayesHyper, map_estimate, map_solver, variational, vi_solver
from .bm3d import bm3d_denoise
from .csgm import CSGMHyper, asim, csgm, csgm_solver
from .diffpir import DiffPIRHyper, diffpir, diffpir_solver
from .dip import DIPHyper, dip, dip_solver, learn_weight_prior
from .dps import DPSHyper, dps, dps_solver
from .inits import backproject, backproject_batch
from .langevin import LangevinHyper, langevin, langevin_solver
from .lasso import LassoHyper, lasso, lasso_solver
from .methods import METHODS, Method, Reconstruction, defaults, get_method, reconstruct, solve
from .model_error import estimate_model_error
from .options import RunOptions
from .patch_prior import PatchHyper, patch_nll, patch_prior_solver, patchnr
from .pnp import PnPHyper, pnp, pnp_solver
from .posterior import langevin_summary, sample_q
from .runner import MemoryEstimate, Problem, Result, Solver, Status, estimate_memory, run
from .tv import TVHyper, tv, tv_solver

__all__ = [
    # the front door
    "METHODS", "Method", "Reconstruction", "defaults", "get_method", "reconstruct", "solve",
    # the runner
    "MemoryEstimate", "Problem", "Result", "RunOptions", "Solver", "Status", "estimate_memory", "run",
    # methods: wrappers, their Hyper NamedTuples and solver factories
    "ALDHyper", "ald", "ald_solver",
    "AnalysisHyper", "analysis", "analysis_solver",
    "DiffPIRHyper", "diffpir", "diffpir_solver",
    "DPSHyper", "dps", "dps_solver",
    "PnPHyper", "pnp", "pnp_solver",
    "BayesHyper", "map_estimate", "map_solver", "variational", "vi_solver",
    "CSGMHyper", "asim", "csgm", "csgm_solver",
    "DIPHyper", "dip", "dip_solver", "learn_weight_prior",
    "LangevinHyper", "langevin", "langevin_solver",
    "LassoHyper", "lasso", "lasso_solver",
    "PatchHyper", "patch_nll", "patch_prior_solver", "patchnr",
    "TVHyper", "tv", "tv_solver",
    "bm3d_denoise",
    # posterior summaries and helpers
    "backproject", "backproject_batch", "estimate_model_error", "langevin_summary", "sample_q",
]
