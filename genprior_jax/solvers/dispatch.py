"""The front door: :func:`solve` runs one method of the registry, :func:`reconstruct` (``gp.reconstruct``) also
applies the entry's model-error support and posterior summary. Nothing here names a method: what differs between
methods is carried by their :class:`~genprior_jax.solvers.registry.Method` entries.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..operators.validation import require_linear
from ..priors.base import Prior
from .bayes import map_estimate
from .checks import apply_deprecations, renamed_kwargs
from .energy import uses_model_error
from .model_error import estimate_model_error
from .options import RunOptions, resolve_options
from .registry import METHODS, defaults, get_method
from .summaries import point_summary
from .types import Result

Array = jax.Array

DEFAULT_NUM_SAMPLES = 16  # posterior samples a summary draws when the caller names none (VI)


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
                num_samples: int | None = None, options: RunOptions | None = None, **kwargs: Any) -> Reconstruction:
    """Reconstruct with any method of :data:`METHODS`: ``gp.reconstruct(prior, key, y, op, method="tv")``.

    ``y``: ``(B, *op.out_shape)`` or one measurement; ``prior`` may be None for the methods that need none
    (``tv``, ``lasso-*``, ``dip``). ``kwargs`` are the method's keywords (:func:`defaults` lists them with their
    defaults); ``options`` / run-option keywords go to the runner, the method's run-option defaults (e.g. its
    ``tol``) applying to those left unset (``tol=None`` runs the fixed step count). ``posterior=True`` (the
    methods with a posterior summary: ``vi``, ``langevin``) also returns the per-pixel std and ``num_samples``
    posterior samples (VI: 16 by default; a method whose wrapper keeps its own samples, Langevin, gets
    ``num_samples`` as its keyword). ``num_draws`` is the deprecated name of ``num_samples`` (given with
    ``num_samples``, the old VI call ``num_samples=K, num_draws=N``: ``num_samples`` is read as
    ``num_elbo_samples``). ``model_error=tau`` or ``"auto"`` (the methods with a likelihood; see
    :mod:`.model_error`) adds the image-space residual.
    """
    m = get_method(method)
    kwargs = apply_deprecations(m.solve, kwargs, method)  # old names (sigma, gamma, ...) read as the new ones
    if "num_draws" in kwargs:
        if num_samples is not None:  # the old VI call: num_samples (ELBO draws) next to num_draws (posterior draws)
            kwargs = {"num_elbo_samples": num_samples, **kwargs}
            warnings.warn("reconstruct: num_samples now counts posterior draws; pass the ELBO's Monte-Carlo draws as "
                          "num_elbo_samples", DeprecationWarning, stacklevel=2)
        num_samples = renamed_kwargs({"num_draws": kwargs.pop("num_draws")}, {"num_draws": "num_samples"},
                                     "reconstruct")["num_samples"]
    if num_samples is not None and int(num_samples) < 1:
        raise ValueError(f"reconstruct: expected num_samples >= 1, got {num_samples}")
    if num_samples is not None and "num_samples" in defaults(method):
        kwargs["num_samples"] = num_samples  # the method keeps its samples itself (Langevin's chains)
    if posterior and not m.posterior:
        raise ValueError(f"method {method!r} gives a point estimate; posterior=True needs one of "
                         f"{[k for k, v in METHODS.items() if v.posterior]}")
    # the run options once, from options and any run-option keywords; kwargs keeps the method's own keywords
    options = resolve_options(options, {k: kwargs.pop(k) for k in list(kwargs) if k in RunOptions._fields},
                              "reconstruct")
    if not m.model_error and "model_error" in kwargs:
        raise ValueError(f"model_error applies to the methods {[k for k, v in METHODS.items() if v.model_error]}, "
                         f"not {method!r}")
    tau: Any = 0.0
    k_solve, k_sample = jax.random.split(key) if m.model_error else (key, key)
    if m.model_error:
        tau = kwargs.pop("model_error", 0.0)
        if isinstance(tau, str):
            if tau != "auto":
                raise ValueError(f"expected model_error to be a number >= 0 or 'auto', got {tau!r}")
            tau = _auto_model_error(prior, key, y, op, kwargs, options)  # type: ignore[arg-type]
        if uses_model_error(tau):
            kwargs["model_error"] = tau
    res = solve(method, prior, k_solve, y, op, options=options, **kwargs)
    if m.summarize is None:
        out = point_summary(res)
    else:
        out = m.summarize(prior, res, k_sample, y, op, posterior=posterior,
                          num_samples=DEFAULT_NUM_SAMPLES if num_samples is None else int(num_samples),
                          method_kwargs={**defaults(method), **kwargs}, model_error=tau,
                          op_batched=bool(options.op_batched))
    return Reconstruction(out.x, out.std, out.samples, res.status, out.acceptance, res, tau)


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
    return estimate_model_error(yb, xb, op, kwargs.get("noise", defaults("map")["noise"]),
                                op_batched=options.op_batched)
