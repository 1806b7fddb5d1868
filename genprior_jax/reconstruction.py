"""``genprior-jax reconstruct``: any method x any registered operator on a set of images, in memory-bounded chunks.

A *method* is an entry of :data:`METHODS`: a function ``f(prior, key, y, op, opts) -> (x_hat, status)`` on one
chunk ``y`` of shape ``(B, *op.out_shape)``, returning ``x_hat`` of shape ``(B, *op.in_shape)``. ``opts`` holds the
user's overrides (``steps``, ``restarts``, ``lam``, ``lr``, ``noise``); a method fills in its own defaults.
Methods that need no trained prior (Lasso, TV, DIP) ignore ``prior``; Lasso and TV need a linear operator
(:data:`LINEAR_ONLY`), the latent-space methods also take the non-linear ones (phase retrieval, 1-bit).

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
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import metrics as M
from .operators import measure
from .operators.base import LinearOperator
from .operators.validation import require_linear
from .priors.base import Prior
from .solvers import Status, analysis, asim, backproject_batch, csgm, dip, lasso, reconstruct, tv

Array = jax.Array
Method = Callable[[Prior | None, Array, Array, Any, dict[str, Any]], tuple[Array, Array]]


def _opt(opts: dict[str, Any], name: str, default: Any) -> Any:
    value = opts.get(name)
    return default if value is None else value


def _run(opts: dict[str, Any]) -> dict[str, Any]:
    """The runner options every solver wrapper forwards: chunking and its progress bar."""
    return {"batch_size": opts["chunk_size"], "progress": opts["progress"]}


def _csgm(prior: Prior, key: Array, y: Array, op: Any, o: dict[str, Any]) -> tuple[Array, Array]:
    r = csgm(prior, key, y, op, lam=_opt(o, "lam", 0.1), learning_rate=_opt(o, "lr", 0.01),
             num_steps=_opt(o, "steps", 1000), num_restarts=_opt(o, "restarts", 10), **_run(o))
    return r.x, r.status


def _asim(prior: Prior, key: Array, y: Array, op: Any, o: dict[str, Any]) -> tuple[Array, Array]:
    r = asim(prior, key, y, op, gamma=_opt(o, "lam", 0.0), num_steps=_opt(o, "steps", 30),
             num_restarts=_opt(o, "restarts", 1), **_run(o))
    return r.x, r.status


def _analysis(prior: Prior, key: Array, y: Array, op: Any, o: dict[str, Any]) -> tuple[Array, Array]:
    r = analysis(prior, key, y, op, lam=_opt(o, "lam", 0.01), learning_rate=_opt(o, "lr", 0.01),
                 num_steps=_opt(o, "steps", 30), optimizer="lbfgs", **_run(o))
    return r.x, r.status


def _bayes(method: str) -> Method:
    def solve(prior: Prior, key: Array, y: Array, op: Any, o: dict[str, Any]) -> tuple[Array, Array]:
        kwargs: dict[str, Any] = {"sigma": max(float(o["noise"]), 1e-3), "num_steps": _opt(o, "steps", 1000)}
        if method in ("map", "vi"):
            kwargs["learning_rate"] = _opt(o, "lr", 0.02)
        if method == "map":
            kwargs["num_restarts"] = _opt(o, "restarts", 4)
        if method == "langevin":
            steps = kwargs["num_steps"]
            kwargs.update(burn_in=steps // 2, thin=max(steps // 32, 1), num_keep=8, init_std=0.0,
                          step_size=_opt(o, "lr", 5e-5))
        rec = reconstruct(prior, key, y, op, method=method, **kwargs, **_run(o))
        return rec.x, rec.status
    return solve


def _lasso(basis: str) -> Method:
    def solve(prior: Prior | None, key: Array, y: Array, op: Any, o: dict[str, Any]) -> tuple[Array, Array]:
        r = lasso(key, y, op, lam=_opt(o, "lam", 0.3), basis=basis, num_steps=_opt(o, "steps", 1000), **_run(o))
        return r.x, r.status
    return solve


def _tv(prior: Prior | None, key: Array, y: Array, op: Any, o: dict[str, Any]) -> tuple[Array, Array]:
    r = tv(key, y, op, lam=_opt(o, "lam", 0.003), num_steps=_opt(o, "steps", 500), **_run(o))
    return r.x, r.status


def _dip(prior: Prior | None, key: Array, y: Array, op: Any, o: dict[str, Any]) -> tuple[Array, Array]:
    r = dip(key, y, op, lam_tv=_opt(o, "lam", 0.01), learning_rate=_opt(o, "lr", 1e-3),
            num_steps=_opt(o, "steps", 1000), num_restarts=_opt(o, "restarts", 1), **_run(o))
    return r.x, r.status


# name -> (function, needs a trained prior)
METHODS: dict[str, tuple[Method, bool]] = {
    "csgm": (_csgm, True),
    "asim": (_asim, True),
    "analysis": (_analysis, True),
    "map": (_bayes("map"), True),
    "vi": (_bayes("vi"), True),
    "langevin": (_bayes("langevin"), True),
    "lasso-pixel": (_lasso("pixel"), False),
    "lasso-dct": (_lasso("dct"), False),
    "lasso-wavelet": (_lasso("wavelet"), False),
    "tv": (_tv, False),
    "dip": (_dip, False),
}


LINEAR_ONLY = ("lasso-pixel", "lasso-dct", "lasso-wavelet", "tv")  # these need the adjoint A^T


def check_method(name: str) -> tuple[Method, bool]:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {sorted(METHODS)}")
    return METHODS[name]


def reconstruct_images(method: str, images: np.ndarray, op: Any, key: Array, *, prior: Prior | None = None,
                       noise: float = 0.0, chunk_size: int = 64, progress: bool = True,
                       **opts: Any) -> dict[str, Any]:
    """Measure and reconstruct ``images`` (``(N, H, W, C)`` in ``[0, 1]``) with ``method``.

    Returns ``{"x": (N, H, W, C) estimates, "seen": A^+ y (linear operators) or None, "status": (N,),
    "metrics": {"mse", "psnr", "ssim"} arrays of shape (N,), "seconds": solve time}``. Images whose solve is not
    finite keep status ``Status.NONFINITE`` and NaN metrics; the others are unaffected.
    """
    fn, needs_prior = check_method(method)
    if needs_prior and prior is None:
        raise ValueError(f"method {method!r} needs a trained prior (--prior NAME|PATH)")
    if method in LINEAR_ONLY:
        require_linear(op, method)
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(op.in_shape):
        raise ValueError(f"reconstruct: expected images of shape (N, *{tuple(op.in_shape)}), got {images.shape}")
    if not np.all(np.isfinite(images)):
        raise ValueError("reconstruct: the images contain NaN or inf")
    if noise < 0 or int(chunk_size) < 1:
        raise ValueError(f"reconstruct: expected noise >= 0 and chunk_size >= 1, got {noise} and {chunk_size}")
    n = images.shape[0]
    k_noise, k_solve = jax.random.split(key)
    y = jax.vmap(measure, in_axes=(0, None, 0, None))(jax.random.split(k_noise, n), op, jnp.asarray(images), noise)
    opts = {**opts, "noise": noise, "chunk_size": min(int(chunk_size), n), "progress": progress}
    t0 = time.perf_counter()
    x_hat, status = fn(prior, k_solve, y, op, opts)
    x_hat, status = np.asarray(x_hat), np.asarray(status)
    seconds = time.perf_counter() - t0
    status = status.astype(np.int32)
    x_eval = np.clip(x_hat, 0.0, 1.0)
    mets = {name: np.asarray(f(images, x_eval)) for name, f in (("mse", M.mse), ("psnr", M.psnr), ("ssim", M.ssim))}
    seen = None
    if isinstance(op, LinearOperator):
        seen = np.asarray(backproject_batch(y, op))
    return {"x": x_hat, "seen": seen, "status": status, "metrics": mets, "seconds": seconds}


def write_outputs(out_dir: str, images: np.ndarray, result: dict[str, Any], config: dict[str, Any],
                  max_grid: int = 16) -> dict[str, str]:
    """Write ``reconstruction.png`` (truth / A^+ y / estimate / |error|), ``metrics.csv`` (one row per image),
    ``metrics.json`` (config, per-image and mean metrics) and ``summary.md``; returns their paths."""
    from .plotting import save_grid

    os.makedirs(out_dir, exist_ok=True)
    mets, status = result["metrics"], result["status"]
    ok = status == Status.OK
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
        w.writerow(["index", "status", "mse", "psnr", "ssim"])
        for i in range(len(images)):
            w.writerow([i, int(status[i]), *(f"{float(mets[m][i]):.6g}" for m in ("mse", "psnr", "ssim"))])
    paths["json"] = os.path.join(out_dir, "metrics.json")
    with open(paths["json"], "w") as fh:
        json.dump({"config": config, "summary": summary, "n_ok": int(ok.sum()), "n": len(images),
                   "seconds": result["seconds"], "status": status.tolist(),
                   **{m: v.tolist() for m, v in mets.items()}}, fh, indent=2)
    paths["md"] = os.path.join(out_dir, "summary.md")
    with open(paths["md"], "w") as fh:
        fh.write(f"| method | operator | noise | images | ok | MSE/pixel | PSNR dB | SSIM | seconds |\n"
                 f"|---|---|---|---|---|---|---|---|---|\n"
                 f"| {config['method']} | `{config['operator']}` | {config['noise']} | {len(images)} | {int(ok.sum())} | "
                 f"{summary['mse']:.4f} | {summary['psnr']:.2f} | {summary['ssim']:.3f} | {result['seconds']:.1f} |\n")
    return paths
