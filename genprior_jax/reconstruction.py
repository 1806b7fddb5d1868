"""``genprior-jax reconstruct``: any method x any registered operator on a set of images, in memory-bounded chunks.

The methods are those of the registry :data:`~genprior_jax.solvers.methods.METHODS`, run through the same front
door as the API (:func:`~genprior_jax.solvers.methods.reconstruct`), so the CLI and ``gp.reconstruct`` share
every default. The CLI's generic flags (``--steps``, ``--restarts``, ``--lam``, ``--lr``, ``--noise``) become the
method's keywords by :func:`~genprior_jax.solvers.methods.cli_overrides`.

:func:`reconstruct_images` measures ``y = A x + eta`` (``GaussianNoise(noise)``) for every image, solves them in
chunks of ``chunk_size`` measurements through the runner's ``batch_size`` option (one compilation; every image gets the
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
from .operators import GaussianNoise, measure
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
    finite keep status ``Status.NONFINITE`` and NaN metrics; the others are unaffected. ``tol`` (the CLI's
    ``--tol``), when given, is the run option :attr:`~genprior_jax.solvers.RunOptions.tol` (``None``: exactly the
    method's number of steps); without it the method's default applies.
    """
    entry = get_method(method)
    if entry.needs_prior and prior is None:
        raise ValueError(f"method {method!r} needs a trained prior (--prior NAME|PATH)")
    overrides = cli_overrides(method, steps=opts.pop("steps", None), restarts=opts.pop("restarts", None),
                              lam=opts.pop("lam", None), lr=opts.pop("lr", None), noise=noise)
    run_kw = {"tol": opts.pop("tol")} if "tol" in opts else {}
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
    y = measure(k_noise, op, jnp.asarray(images), GaussianNoise(noise))  # one key per image, split from k_noise
    options = RunOptions(batch_size=min(int(chunk_size), n), progress=progress)
    t0 = time.perf_counter()
    rec = reconstruct(prior, k_solve, y, op, method=method, options=options, **run_kw, **overrides)
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


def _stems(names: list[str]) -> list[str]:
    """File-name stems for the saved reconstructions, made unique (``a.png`` and ``a.jpg`` -> ``a``, ``a-1``)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        stem = os.path.splitext(os.path.basename(name))[0] or "image"
        k = seen.get(stem, 0)
        seen[stem] = k + 1
        out.append(stem if k == 0 else f"{stem}-{k}")
    return out


def write_outputs(out_dir: str, groups: list[tuple[list[str], np.ndarray, dict[str, Any]]], config: dict[str, Any],
                  max_grid: int = 16) -> dict[str, str]:
    """Write, for ``groups`` of same-shape images ``(names, images, result of reconstruct_images)``: every
    reconstruction at native size (``images/<name>.png`` and ``arrays/<name>.npy``, float32, reloading exactly),
    a grid per shape (``reconstruction.png``, or ``reconstruction_<H>x<W>x<C>.png`` for several shapes: truth /
    A^+ y / estimate / |error|), ``metrics.csv`` (one row per image, keyed by file name), ``metrics.json`` (config,
    per-image and mean metrics) and ``summary.md``; returns the paths of the summary files and grids."""
    from PIL import Image

    from .plotting import save_grid

    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "arrays"), exist_ok=True)
    names = [n for g in groups for n in g[0]]
    stems = _stems(names)
    cat = {k: np.concatenate([np.asarray(g[2][k]) for g in groups]) for k in ("status", "objective", "steps",
                                                                                "converged")}
    mets = {m: np.concatenate([g[2]["metrics"][m] for g in groups]) for m in ("mse", "psnr", "ssim")}
    status, converged, steps, objective = cat["status"], cat["converged"], cat["steps"], cat["objective"]
    seconds = float(sum(g[2]["seconds"] for g in groups))
    ok = status != Status.NONFINITE  # finite estimates (converged, or stopped at the step cap)
    summary = {k: float(np.nanmean(np.where(ok, v, np.nan))) if ok.any() else float("nan") for k, v in mets.items()}
    paths: dict[str, str] = {}
    i = 0
    for gnames, images, result in groups:
        x_hat = np.asarray(result["x"], np.float32)
        for j in range(len(gnames)):
            stem = stems[i + j]
            np.save(os.path.join(out_dir, "arrays", f"{stem}.npy"), x_hat[j])
            img = np.round(np.clip(np.nan_to_num(x_hat[j]), 0, 1) * 255).astype(np.uint8)
            Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(
                os.path.join(out_dir, "images", f"{stem}.png"))
        k = min(max_grid, len(images))
        rows = {"truth": images[:k]}
        if result["seen"] is not None:
            rows["A^+ y"] = result["seen"][:k]
        rows[config["method"]] = x_hat[:k]
        rows["|error|"] = np.abs(np.clip(x_hat[:k], 0, 1) - images[:k])
        shape = "x".join(str(d) for d in images.shape[1:])
        grid = "reconstruction.png" if len(groups) == 1 else f"reconstruction_{shape}.png"
        paths[f"png{'' if len(groups) == 1 else '_' + shape}"] = save_grid(
            rows, os.path.join(out_dir, grid), captions={config["method"]: [f"{p:.1f}" for p in
                                                                             result["metrics"]["psnr"][:k]]},
            title=f"{config['method']} on {config['operator']}, noise {config['noise']}, {shape} "
                  f"(PSNR dB under each image)")
        i += len(gnames)
    paths["csv"] = os.path.join(out_dir, "metrics.csv")
    with open(paths["csv"], "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "file", "shape", "status", "mse", "psnr", "ssim", "objective", "steps", "converged"])
        shapes = ["x".join(str(d) for d in g[1].shape[1:]) for g in groups for _ in g[0]]
        for j in range(len(names)):
            w.writerow([j, names[j], shapes[j], int(status[j]),
                        *(f"{float(mets[m][j]):.6g}" for m in ("mse", "psnr", "ssim")),
                        f"{float(objective[j]):.6g}", int(steps[j]), int(bool(converged[j]))])
    paths["json"] = os.path.join(out_dir, "metrics.json")
    with open(paths["json"], "w") as fh:
        json.dump({"config": config, "summary": summary, "n_ok": int(ok.sum()), "n": len(names),
                   "n_converged": int(converged.sum()), "n_capped": int((status == Status.MAX_STEPS).sum()),
                   "seconds": seconds, "files": names, "saved": [f"arrays/{s}.npy" for s in stems],
                   "status": status.tolist(), "steps": steps.tolist(),
                   "converged": converged.astype(bool).tolist(), "objective": objective.tolist(),
                   **{m: v.tolist() for m, v in mets.items()}}, fh, indent=2)
    paths["md"] = os.path.join(out_dir, "summary.md")
    with open(paths["md"], "w") as fh:
        fh.write(f"| method | operator | noise | images | finite | converged | MSE/pixel | PSNR dB | SSIM | "
                 f"mean objective | seconds |\n"
                 f"|---|---|---|---|---|---|---|---|---|---|---|\n"
                 f"| {config['method']} | `{config['operator']}` | {config['noise']} | {len(names)} | "
                 f"{int(ok.sum())} | {int(converged.sum())} | "
                 f"{summary['mse']:.4f} | {summary['psnr']:.2f} | {summary['ssim']:.3f} | "
                 f"{float(np.nanmean(np.where(ok, objective, np.nan))) if ok.any() else float('nan'):.4g} | "
                 f"{seconds:.1f} |\n")
    return paths
