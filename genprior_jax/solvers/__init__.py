"""Solvers as pure ``init``/``step`` functions run by one shared ``lax.scan`` / ``vmap`` runner."""

from .csgm import CSGMHyper, CSGMState, csgm, csgm_solver
from .lasso import BASES, LassoHyper, lasso, lasso_solver, operator_norm_sq
from .optim import OPTIMIZERS, make_optimizer
from .runner import Problem, Result, Solver, Status, prepare_measurements, run, trace_count

__all__ = [
    "BASES", "CSGMHyper", "CSGMState", "LassoHyper", "OPTIMIZERS", "Problem", "Result", "Solver", "Status",
    "csgm", "csgm_solver", "lasso", "lasso_solver", "make_optimizer", "operator_norm_sq", "prepare_measurements",
    "run", "trace_count",
]
