"""``genprior-jax reconstruct``: any method x any registered operator on a set of images, in memory-bounded chunks.

The methods are those of the registry :data:`~genprior_jax.solvers.methods.METHODS`, run through the same front
door as the API (:func:`~genprior_jax.solvers.methods.reconstruct`), so the CLI and ``gp.reconstruct`` share
every default. The CLI's generic flags (``--steps``, ``--restarts``, ``--lam``, ``--lr``, ``--noise``) become the
method's keywords by :func:`~genprior_jax.solvers.methods.cli_overrides`.

:func:`reconstruct_images` measures ``y = A x + sigma * eps`` for every image, solves them in chunks of
``chunk_size`` measurements through the runner's ``batch_size`` option (one compilation; every image gets the
same PRNG key and the same result whatever the chunk size), and returns estimates and per-image metrics;
:func:`write_outputs` writes the PNG grid, ``metrics.csv``, ``metrics.json`` and ``summary.md``.
"""

from __future__ import annotations

import csv
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import metrics as M
from .operators import measure
from .operators.base import LinearOperator
from .operators.validation import check_number
from .priors.base import Prior
from .solvers import RunOptions, Status, backproject_batch, get_method, reconstruct
from .solvers.methods import cli_overrides

Array = jax.Array


def reconstruct_images(method: str, images: np.ndarray, op: Any, key: Array, *, prior: Prior | None = None,
                       noise: float = 0.0, chunk_size: int = 64, progress: bool = True,
                       **opts: Any) -> dict[str, Any]:
    """Measure and reconstruct ``images`` (``(N, H, W, C)`` in ``[0, 1]``) with ``method``.

    Returns ``{"x": (N, H, W, C) estimates, "seen": A^+ y (linear operators) or None, "status": (N,),
    "objective", "steps", "converged": (N,) the final objective, the steps taken and whether the tolerance was
    met (``Status.MAX_STEPS`` where the step cap came first),
    "metrics": {"mse", "psnr", "ssim"} arrays of shape (N,), "seconds": solve time}``. Images whose solve is not
    finite keep status ``Status.NONFINITE`` and NaN metrics; the others are unaffected.
    """
    entry = get_method(method)
    if entry.needs_prior and prior is None:
        raise ValueError(f"method {method!r} needs a trained prior (--prior NAME|PATH)")
    overrides = cli_overrides(method, steps=opts.pop("steps", None), restarts=opts.pop("restarts", None),
                              lam=opts.pop("lam", None), lr=opts.pop("lr", None), noise=noise)
    if opts:
        raise ValueError(f"reconstruct: unexpected options {sorted(opts)}")
    raw = np.asarray(images)
    if not np.issubdtype(raw.dtype, np.floating):
        raise ValueError(f"reconstruct: expected floating-point images in [0, 1], got dtype {raw.dtype} (8-bit images: "
                         "divide by 255)")
    images = raw.astype(np.float32)
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(op.in_shape):
        raise ValueError(f"reconstruct: expected images of shape (N, *{tuple(op.in_shape)}), got {images.shape}")
    if not np.all(np.isfinite(images)):
        raise ValueError("reconstruct: the images contain NaN or inf")
    if images.size and (images.min() < 0 or images.max() > 1):
        raise ValueError(f"reconstruct: expected images in [0, 1], got values in [{images.min():g}, {images.max():g}]")
    check_number(noise, "noise", "reconstruct")
    if int(chunk_size) < 1:
        raise ValueError(f"reconstruct: expected chunk_size >= 1, got {chunk_size}")
    n = images.shape[0]
    k_noise, k_solve = jax.random.split(key)
    y = jax.vmap(measure, in_axes=(0, None, 0, None))(jax.random.split(k_noise, n), op, jnp.asarray(images), noise)
    options = RunOptions(batch_size=min(int(chunk_size), n), progress=progress)
    t0 = time.perf_counter()
    rec = reconstruct(prior, k_solve, y, op, method=method, options=options, **overrides)
    x_hat, status = np.asarray(rec.x), np.asarray(rec.status)
    seconds = time.perf_counter() - t0
    status = status.astype(np.int32)
    x_eval = np.clip(x_hat, 0.0, 1.0)
    mets = {name: np.asarray(f(images, x_eval)) for name, f in (("mse", M.mse), ("psnr", M.psnr), ("ssim", M.ssim))}
    seen = None
    if isinstance(op, LinearOperator):
        seen = np.asarray(backproject_batch(y, op))
    res = rec.result
    return {"x": x_hat, "seen": seen, "status": status, "metrics": mets, "seconds": seconds,
            "objective": np.asarray(res.objective), "steps": np.asarray(res.steps),
            "converged": np.asarray(res.converged)}


def write_outputs(out_dir: str, images: np.ndarray, result: dict[str, Any], config: dict[str, Any],
                  max_grid: int = 16) -> dict[str, str]:
    """Write ``reconstruction.png`` (truth / A^+ y / estimate / |error|), ``metrics.csv`` (one row per image),
    ``metrics.json`` (config, per-image and mean metrics) and ``summary.md``; returns their paths."""
    from .plotting import save_grid

    os.makedirs(out_dir, exist_ok=True)
    mets, status = result["metrics"], result["status"]
    ok = status != Status.NONFINITE  # finite estimates (converged, or stopped at the step cap)
    converged = np.asarray(result.get("converged", np.zeros(len(status), bool)))
    steps = np.asarray(result.get("steps", np.zeros(len(status), int)))
    objective = np.asarray(result.get("objective", np.full(len(status), np.nan)))
    summary = {k: float(np.nanmean(np.where(ok, v, np.nan))) if ok.any() else float("nan") for k, v in mets.items()}
    k = min(max_grid, len(images))
    rows = {"truth": images[:k]}
    if result["seen"] is not None:
        rows["A^+ y"] = result["seen"][:k]
    rows[config["method"]] = result["x"][:k]
    rows["|error|"] = np.abs(np.clip(result["x"][:k], 0, 1) - images[:k])
    paths = {"png": save_grid(rows, os.path.join(out_dir, "reconstruction.png"),
                              captions={config["method"]: [f"{p:.1f}" for p in mets["psnr"][:k]]},
                              title=f"{config['method']} on {config['operator']}, noise {config['noise']} "
                                    f"(PSNR dB under each image)")}
    paths["csv"] = os.path.join(out_dir, "metrics.csv")
    with open(paths["csv"], "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "status", "mse", "psnr", "ssim", "objective", "steps", "converged"])
        for i in range(len(images)):
            w.writerow([i, int(status[i]), *(f"{float(mets[m][i]):.6g}" for m in ("mse", "psnr", "ssim")),
                        f"{float(objective[i]):.6g}", int(steps[i]), int(bool(converged[i]))])
    paths["json"] = os.path.join(out_dir, "metrics.json")
    with open(paths["json"], "w") as fh:
        json.dump({"config": config, "summary": summary, "n_ok": int(ok.sum()), "n": len(images),
                   "n_converged": int(converged.sum()), "n_capped": int((status == Status.MAX_STEPS).sum()),
                   "seconds": result["seconds"], "status": status.tolist(), "steps": steps.tolist(),
                   "converged": converged.astype(bool).tolist(), "objective": objective.tolist(),
                   **{m: v.tolist() for m, v in mets.items()}}, fh, indent=2)
    paths["md"] = os.path.join(out_dir, "summary.md")
    with open(paths["md"], "w") as fh:
        fh.write(f"| method | operator | noise | images | finite | converged | MSE/pixel | PSNR dB | SSIM | "
                 f"mean objective | seconds |\n"
                 f"|---|---|---|---|---|---|---|---|---|---|---|\n"
                 f"| {config['method']} | `{config['operator']}` | {config['noise']} | {len(images)} | "
                 f"{int(ok.sum())} | {int(converged.sum())} | "
                 f"{summary['mse']:.4f} | {summary['psnr']:.2f} | {summary['ssim']:.3f} | "
                 f"{float(np.nanmean(np.where(ok, objective, np.nan))) if ok.any() else float('nan'):.4g} | "
                 f"{result['seconds']:.1f} |\n")
    return paths
