"""``genprior-jax demo``: CSGM on held-out MNIST digits, VAE prior vs Lasso-DCT (Bora et al. 2017, Fig. 1).

Writes ``demo.png`` (rows: truth / Lasso-DCT / VAE, PSNR under each digit) and ``metrics.json`` to the output
directory and prints a table of mean per-pixel MSE, PSNR and SSIM.
"""

from __future__ import annotations

import json
import os
import platform
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import metrics as M
from .data import load_mnist
from .operators import GaussianCS, GaussianNoise, measure
from .priors import load_prior
from .solvers import Status, reconstruct
from .solvers.checks import deprecated_kwargs
from .solvers.csgm import CSGM_HYPER

# Lasso-DCT weight for m = 100 (lam = sklearn alpha with the csgm scaling; data term 1/2 ||A S c - y||^2), tuned on
# the validation split by benchmarks/csgm_mnist.py (benchmarks/results/csgm_mnist.md: 0.3 at m = 100 on the former
# ||A S c - y||^2 scale, i.e. 0.15 here: the same solution).
LASSO_DCT_LAM = 0.15


def _summary(x: np.ndarray, x_hat: np.ndarray) -> dict[str, Any]:
    mse, psnr, ssim = (np.asarray(f(x, x_hat)) for f in (M.mse, M.psnr, M.ssim))
    return {
        "mse_mean": float(mse.mean()), "psnr_mean": float(psnr.mean()), "ssim_mean": float(ssim.mean()),
        "mse": mse.tolist(), "psnr": psnr.tolist(), "ssim": ssim.tolist(),
    }


def run_demo(out_dir: str = "demo_out", n_images: int = 16, m: int = 100, noise: float = 0.01, seed: int = 0,
             steps: int = 1000, restarts: int = 10, prior: str = "vae-mnist", lam: float = float(CSGM_HYPER.lam),
             lasso_lam: float = LASSO_DCT_LAM, verbose: bool = True) -> dict[str, Any]:
    """Run the demo and return the metrics dictionary that is also written to ``metrics.json``."""
    if m < 1 or n_images < 1 or not 0 <= noise < float("inf"):
        raise ValueError(f"demo: expected m >= 1, n >= 1, a finite noise >= 0; got m={m}, n={n_images}, "
                         f"noise={noise}")
    say = print if verbose else (lambda *a, **k: None)
    model = load_prior(prior)
    x = load_mnist("test", n=n_images).images
    k_op, k_noise, k_vae, k_lasso = jax.random.split(jax.random.key(seed), 4)
    op = GaussianCS(k_op, model.image_shape, m)
    sigma = float(noise)  # per-entry std, as in every subcommand (noise norm ~ sigma sqrt(m))
    y = measure(k_noise, op, jnp.asarray(x), GaussianNoise(sigma))  # the batch, one key per image

    say(f"recovering {n_images} held-out digits from m={m} Gaussian measurements (noise std {sigma}, "
        f"norm ~{sigma * m**0.5:.3g}) ...")
    t0 = time.perf_counter()
    res_vae = jax.block_until_ready(reconstruct(model, k_vae, y, op, method="csgm", lam=lam, num_steps=steps,
                                                num_restarts=restarts, progress=verbose))
    t_vae = time.perf_counter() - t0
    say(f"  VAE (CSGM, {restarts} restarts x {steps} Adam steps): {t_vae:.1f} s")
    t0 = time.perf_counter()
    res_lasso = jax.block_until_ready(reconstruct(None, k_lasso, y, op, method="lasso-dct", lam=lasso_lam,
                                                  num_steps=1000))
    t_lasso = time.perf_counter() - t0
    say(f"  Lasso-DCT (FISTA, 1000 steps): {t_lasso:.1f} s")

    x_vae, x_lasso = np.asarray(res_vae.x), np.asarray(res_lasso.x)
    results = {
        "config": {"prior": prior, "n_images": n_images, "m": m, "noise_std": sigma,
                   "noise_norm_expected": sigma * m**0.5,
                   "seed": seed, "steps": steps, "restarts": restarts, "lam": lam, "lasso_dct_lam": lasso_lam,
                   "split": "test", "jax": jax.__version__, "machine": platform.machine(),
                   "processor": platform.processor()},
        "vae": {**_summary(x, x_vae), "seconds": t_vae,
                "status_ok": int((np.asarray(res_vae.status) != Status.NONFINITE).sum())},
        "lasso_dct": {**_summary(x, x_lasso), "seconds": t_lasso,
                      "status_ok": int((np.asarray(res_lasso.status) != Status.NONFINITE).sum())},
    }
    os.makedirs(out_dir, exist_ok=True)
    from .plotting import save_grid

    png = save_grid(
        {"truth": x, "Lasso-DCT": x_lasso, "VAE": x_vae},
        os.path.join(out_dir, "demo.png"),
        captions={"Lasso-DCT": [f"{p:.1f}" for p in results["lasso_dct"]["psnr"]],
                  "VAE": [f"{p:.1f}" for p in results["vae"]["psnr"]]},
        title=f"CSGM on MNIST: m={m} Gaussian measurements, noise std {sigma:g} (PSNR dB under each digit)",
    )
    with open(os.path.join(out_dir, "metrics.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    say("")
    say(f"{'method':<12}{'MSE/pixel':>12}{'PSNR dB':>10}{'SSIM':>8}")
    for name, key in (("Lasso-DCT", "lasso_dct"), ("VAE", "vae")):
        r = results[key]
        say(f"{name:<12}{r['mse_mean']:>12.4f}{r['psnr_mean']:>10.2f}{r['ssim_mean']:>8.3f}")
    say(f"\nwrote {png} and {os.path.join(out_dir, 'metrics.json')}")
    return results


@deprecated_kwargs({"sigma": "noise", "num_draws": "num_samples"}, "run_posterior_demo")
def run_posterior_demo(out_dir: str = "posterior_out", prior: str = "vae-mnist", operator: str = "box:size=10",
                       method: str = "vi", n_images: int = 4, noise: float = 0.05, seed: int = 0, steps: int = 1000,
                       num_samples: int | None = None, model_error: float | str = 0.0, verbose: bool = True,
                       **run_options: Any) -> dict[str, Any]:
    """Posterior sampling demo: for each digit a row pair truth / measurement (A^+ y) / posterior mean / std map /
    a few samples, written to ``posterior.png`` with ``metrics.json`` (PSNR / SSIM of the mean, and the fraction of
    true pixels inside the samples' central 90 % interval). ``noise``: the Gaussian noise std, measured and given to
    the method as its noise model; ``num_samples``: posterior samples (None: the method's default, VI 16,
    Langevin 8 per chain; ``sigma`` / ``num_draws``: the deprecated names). ``model_error``: tau of the image-space
    residual ``x = G(z) + e`` (a number, or ``"auto"`` to estimate it from a MAP fit; 0: none). ``run_options``:
    run-option keywords for the solve (:class:`~genprior_jax.solvers.RunOptions` fields, e.g. ``tol=None``)."""
    from .operators import make_operator
    from .plotting import save_grid
    from .solvers import backproject_batch

    say = print if verbose else (lambda *a, **k: None)
    model = load_prior(prior)
    x = load_mnist("test", n=n_images).images
    k_op, k_noise, k_solve = jax.random.split(jax.random.key(seed), 3)
    op = make_operator(operator, k_op, model.image_shape)
    noise_model = GaussianNoise(noise)  # given once: measured with it, and the method's likelihood
    y = measure(k_noise, op, jnp.asarray(x), noise_model)
    kwargs: dict[str, Any] = {"num_steps": steps, "noise": noise_model}  # the method's defaults otherwise
    if method == "langevin":
        kwargs.update(adapt=True)  # the step tuned during burn-in: the demo runs any operator and noise level
    elif method != "vi":
        raise ValueError(f"posterior demo: expected method 'vi' or 'langevin', got {method!r}")
    say(f"posterior sampling ({method}) for {n_images} digits, operator {operator}, noise std {noise} ...")
    t0 = time.perf_counter()
    rec = jax.block_until_ready(reconstruct(model, k_solve, y, op, method=method, posterior=True,
                                            num_samples=num_samples, model_error=model_error, progress=verbose,
                                            **run_options, **kwargs))
    secs = time.perf_counter() - t0
    seen = np.asarray(backproject_batch(y, op))
    mean, std, samples = np.asarray(rec.x), np.asarray(rec.std), np.asarray(rec.samples)
    err = np.abs(mean - x)
    rows = {"truth": x, "A^+ y": seen, "mean": mean, "std x4": np.clip(4 * std, 0, 1), "|error|": err}
    for j in range(min(3, samples.shape[1])):
        rows[f"sample {j + 1}"] = samples[:, j]
    os.makedirs(out_dir, exist_ok=True)
    png = save_grid(rows, os.path.join(out_dir, "posterior.png"), cell=1.1,
                    title=f"{prior}, {operator}, {method}: posterior mean, std (x4) and samples")
    lo, hi = np.quantile(np.clip(samples, 0, 1), [0.05, 0.95], axis=1)
    results = {"config": {"prior": prior, "operator": operator, "method": method, "n_images": n_images,
                          "noise": noise, "seed": seed, "steps": steps, "num_samples": int(samples.shape[1]),
                          "model_error": model_error, **run_options},
               "model_error_used": float(rec.model_error),
               "coverage_90": float(((x >= lo) & (x <= hi)).mean()),
               "mean": _summary(x, mean), "seconds": secs,
               "status_ok": int((np.asarray(rec.status) != Status.NONFINITE).sum())}
    with open(os.path.join(out_dir, "metrics.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    say(f"posterior mean PSNR {results['mean']['psnr_mean']:.2f} dB, SSIM {results['mean']['ssim_mean']:.3f}, "
        f"90 % interval coverage {results['coverage_90']:.3f} (tau {results['model_error_used']:.3f}), "
        f"{secs:.1f} s; wrote {png}")
    return results
