"""The CLI's generic flags (``--steps``, ``--restarts``, ``--lam``, ``--lr``, ``--noise``) mapped onto each
method's own keywords, from its registry entry (:mod:`.registry`)."""

from __future__ import annotations

from typing import Any

from ..operators.noise import GaussianNoise
from .registry import defaults, get_method


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
    if noise is not None and "noise" in d:
        out["noise"] = GaussianNoise(max(float(noise), 1e-3))  # the likelihood's known noise model (sigma > 0)
    return out
