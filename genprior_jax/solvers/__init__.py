"""Solvers as pure ``init``/``step`` functions run by one shared ``lax.scan`` / ``vmap`` runner."""

from .analysis import ANALYSIS_INITS, AnalysisHyper, AnalysisState, analysis, analysis_solver
from .bm3d import bm3d_denoise
from .bayes import BayesHyper, map_estimate, map_solver, variational, vi_solver
from .dip import (DIP_OPTIMIZERS, DIPHyper, DIPState, dip, dip_solver, learn_weight_prior, measurement_loss,
                  total_variation)
from .csgm import INITS, PENALTIES, CSGMHyper, CSGMState, asim, csgm, csgm_solver
from .inits import BACKPROJECTIONS, backproject, backproject_batch
from .lasso import BASES, FistaState, LassoHyper, lasso, lasso_solver, operator_norm_sq
from .optim import OPTIMIZERS, make_optimizer
from .langevin import KERNELS, LangevinHyper, langevin, langevin_solver
from .model_error import estimate_model_error, sample_residual
from .posterior import METHODS, Reconstruction, langevin_summary, reconstruct, sample_q
from .runner import (MemoryEstimate, Problem, Result, Solver, Status, estimate_memory, prepare_measurements, run,
                     trace_count)
from .tv import TVHyper, TVState, tv, tv_solver

__all__ = [
    "BayesHyper", "KERNELS", "LangevinHyper", "METHODS", "Reconstruction", "langevin", "langevin_solver",
    "langevin_summary", "map_estimate", "map_solver", "reconstruct", "sample_q", "variational", "vi_solver",
    "ANALYSIS_INITS", "AnalysisHyper", "AnalysisState", "BACKPROJECTIONS", "INITS", "PENALTIES", "analysis",
    "analysis_solver", "asim", "backproject", "backproject_batch", "BASES", "CSGMHyper", "CSGMState", "LassoHyper", "OPTIMIZERS", "Problem", "Result", "Solver", "Status",
    "csgm", "csgm_solver", "lasso", "lasso_solver", "make_optimizer", "operator_norm_sq", "prepare_measurements",
    "run", "trace_count", "MemoryEstimate", "estimate_memory", "FistaState", "TVHyper", "TVState", "bm3d_denoise",
    "tv", "tv_solver", "DIP_OPTIMIZERS", "DIPHyper", "DIPState", "dip", "dip_solver", "learn_weight_prior",
    "measurement_loss", "total_variation", "estimate_model_error", "sample_residual",
]
