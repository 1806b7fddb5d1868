"""Posterior calibration of the diffusion samplers (DPS, DiffPIR, annealed Langevin) on MNIST, in the setting of
``posterior_mnist.py`` (noise std 0.05, known; its tasks, its calibration measures), beside that benchmark's
committed VI / Langevin rows (vae-mnist prior).

Per task and method: PSNR of the posterior mean (of ``--samples`` samples, clipped to [0, 1]), Spearman correlation
between the per-pixel std and the absolute error of the mean (per image, averaged), the fraction of true pixels in
the central 90 % interval (5 % / 95 % sample quantiles; all pixels and foreground), the mean std, NFE per image and
seconds. PnP-ADMM (deterministic) gives the point-estimate PSNR. Every method runs at its defaults apart from
``num_samples``.

    python benchmarks/diffusion_posterior.py                 # 8 digits, 8 samples, box and random inpainting
    python benchmarks/diffusion_posterior.py --n 16 --samples 16 --tasks inpaint-box-10x10 inpaint-random-60 sr-x2

Writes benchmarks/results/diffusion_posterior.{md,json}. The VI / Langevin rows are read from
``posterior_mnist.json`` (100 digits there: the first ``--n`` here are a subset, so compare with care).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import RESULTS, machine_info, machine_line, write_json, write_text  # noqa: E402
from posterior_mnist import NOISE, calibration, tasks  # noqa: E402

import genprior_jax as gp  # noqa: E402
from genprior_jax.operators import measure  # noqa: E402

SAMPLERS = ("dps", "diffpir", "ald")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--tasks", nargs="+", default=["inpaint-box-10x10", "inpaint-random-60"])
    ap.add_argument("--prior", default="diffusion-mnist")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    prefix = "diffusion_posterior"
    if args.quick:
        args.n, args.samples, args.tasks, prefix = 2, 2, ["inpaint-box-10x10"], "diffusion_posterior_quick"
    prior = gp.load_prior(args.prior)
    x = gp.load_mnist("test", n=args.n).images
    k_ops, k_y, k_solve, _ = jax.random.split(jax.random.key(args.seed), 4)  # as posterior_mnist.py
    all_tasks = tasks(k_ops, args.n)
    results: dict[str, dict[str, Any]] = {}
    t_start = time.perf_counter()
    for task in args.tasks:
        op, batched = all_tasks[task]
        y = jax.vmap(measure, (0, 0 if batched else None, 0, None))(jax.random.split(k_y, args.n), op,
                                                                    jnp.asarray(x), NOISE)
        row: dict[str, Any] = {}
        t0 = time.perf_counter()
        res = gp.pnp(prior, k_solve, y, op, noise=NOISE, op_batched=batched)
        row["pnp"] = {"psnr_mean": float(np.mean(np.asarray(gp.psnr(x, jnp.clip(res.x, 0, 1))))),
                      "converged": float(np.mean(np.asarray(res.converged))),
                      "nfe": float(np.mean(np.asarray(res.steps))), "seconds": time.perf_counter() - t0}
        for method in SAMPLERS:
            t0 = time.perf_counter()
            rec = gp.reconstruct(prior, k_solve, y, op, method=method, posterior=True, noise=NOISE,
                                 num_samples=args.samples, op_batched=batched)
            samples = np.clip(np.asarray(rec.samples), 0, 1)
            steps = gp.solvers.defaults(method)["num_steps"]
            row[method] = {**calibration(x, samples),
                           "psnr_mean": float(np.mean(np.asarray(gp.psnr(x, samples.mean(1))))),
                           "nfe": steps * args.samples, "seconds": time.perf_counter() - t0,
                           "nonfinite": int((np.asarray(rec.status) != 0).sum())}
            print(task, method, {k: round(v, 3) if isinstance(v, float) else v for k, v in row[method].items()},
                  flush=True)
        results[task] = row
    total = time.perf_counter() - t_start
    info = machine_info()
    write_json(f"{prefix}.json", {"machine": info, "args": vars(args), "seconds": total, "results": results})
    base: dict[str, Any] = {}
    path = os.path.join(RESULTS, "posterior_mnist.json")
    if os.path.exists(path):
        with open(path) as fh:
            base = json.load(fh)["results"].get("vae-mnist", {})
    lines = [f"# Diffusion samplers' posterior calibration on MNIST ({args.n} held-out digits, {args.samples} samples)",
             "", f"Command: `python benchmarks/diffusion_posterior.py {' '.join(sys.argv[1:])}`  ",
             f"{machine_line(info)}; total {total:.0f} s.  ",
             f"Prior `{args.prior}`; noise std 0.05 (known); every method at its defaults but `num_samples`. VI and "
             "Langevin (vae-mnist) rows: `posterior_mnist.json` (100 digits; the first "
             f"{args.n} are these).", "",
             "| task | method | PSNR of mean | Spearman(std, err) | Spearman fg | 90 % coverage | coverage fg | "
             "mean std | NFE/image | s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for task, row in results.items():
        p = row["pnp"]
        lines.append(f"| {task} | pnp (point, converged {p['converged']:.2f}) | {p['psnr_mean']:.2f} | | | | | | "
                     f"{p['nfe']:.0f} | {p['seconds']:.0f} |")
        for method in SAMPLERS:
            r = row[method]
            lines.append(f"| {task} | {method} | {r['psnr_mean']:.2f} | {r['spearman_all']:.3f} | "
                         f"{r['spearman_fg']:.3f} | {r['coverage_90']:.3f} | {r['coverage_90_fg']:.3f} | "
                         f"{r['mean_std']:.4f} | {r['nfe']} | {r['seconds']:.0f} |")
        for method in ("vi", "langevin"):
            r = base.get(task, {}).get(method)
            if r:
                lines.append(f"| {task} | {method} (vae-mnist, 100 digits) | {r['psnr_mean']:.2f} | "
                             f"{r['spearman_all']:.3f} | {r['spearman_fg']:.3f} | {r['coverage_90']:.3f} | "
                             f"{r.get('coverage_90_fg', float('nan')):.3f} | {r['mean_std']:.4f} | | "
                             f"{r['seconds']:.0f} |")
    write_text(f"{prefix}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
