"""Posterior sampling on MNIST (BRGM-style): MAP vs posterior mean, and how well the uncertainty is calibrated.

Tasks on held-out digits, noise std 0.05 (known): 10x10 centred box inpainting, random inpainting with 60 %
missing, x2 and x4 super-resolution. Priors: vae-mnist and glow-mnist. For each: the MAP latent (Adam) and
mean-field VI over the latent (Adam with cosine decay, K reparametrized samples per step), then ``draws``
posterior samples G(z), z ~ q. Reported per task and prior:

- PSNR of the MAP image and of the posterior mean;
- calibration: Spearman correlation between the per-pixel posterior std and the absolute error of the
  posterior mean (per image, then averaged; goal > 0.5), and the fraction of true pixels inside the central
  90 % posterior interval (5 % / 95 % sample quantiles).

    python benchmarks/posterior_mnist.py [--quick]

Writes benchmarks/results/posterior_mnist.{md,json} and posterior_mnist_<prior>_<task>.png.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import spearmanr
from tqdm.auto import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import RESULTS, machine_info, machine_line, write_json, write_text  # noqa: E402

import genprior_jax as gp  # noqa: E402
from genprior_jax.operators import BoxMask, Downsample, RandomMask, measure  # noqa: E402
from genprior_jax.plotting import save_grid  # noqa: E402
from genprior_jax.solvers import Problem, backproject, map_estimate, sample_q, variational  # noqa: E402

SHAPE = (28, 28, 1)
SIGMA = 0.05


def tasks(key: jax.Array, n: int) -> dict[str, tuple[object, bool]]:
    return {
        "inpaint-box-10x10": (BoxMask(SHAPE, 10), False),
        "inpaint-random-60": (jax.vmap(lambda k: RandomMask(k, SHAPE, 0.6))(jax.random.split(key, n)), True),
        "sr-x2": (Downsample(SHAPE, 2), False),
        "sr-x4": (Downsample(SHAPE, 4), False),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--priors", nargs="+", default=["vae-mnist", "glow-mnist"])
    ap.add_argument("--steps", type=int, nargs=2, default=[1000, 100], metavar=("VAE", "FLOW"),
                    help="Adam steps for MAP and VI, for the VAE and for the flow")
    ap.add_argument("--k", type=int, nargs=2, default=[4, 1], metavar=("VAE", "FLOW"), help="VI samples per step")
    ap.add_argument("--draws", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tasks", nargs="+", default=None)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    prefix = "posterior_mnist"
    if args.quick:
        args.n, args.steps, args.k, args.draws, prefix = 4, [20, 5], [1, 1], 8, "posterior_mnist_quick"

    x = gp.load_mnist("test", n=args.n).images
    key = jax.random.key(args.seed)
    k_ops, k_y, k_solve, k_draw = jax.random.split(key, 4)
    all_tasks = tasks(k_ops, args.n)
    names = args.tasks or list(all_tasks)
    results: dict[str, dict[str, dict[str, float]]] = {}
    t_start = time.perf_counter()
    for prior_name in args.priors:
        prior = gp.load_prior(prior_name)
        is_flow = prior.log_prob is not None
        steps, k = (args.steps[1], args.k[1]) if is_flow else (args.steps[0], args.k[0])
        results[prior_name] = {}
        for task in tqdm(names, desc=prior_name):
            op, batched = all_tasks[task]
            y = jax.vmap(measure, (0, 0 if batched else None, 0, None))(jax.random.split(k_y, args.n), op,
                                                                        jnp.asarray(x), SIGMA)
            t0 = time.perf_counter()
            common = dict(sigma=SIGMA, num_steps=steps, op_batched=batched, learning_rate=0.02 if not is_flow else 0.01)
            res_map = map_estimate(prior, k_solve, y, op, num_restarts=1, init_std=0.0, **common)
            res_vi = variational(prior, k_solve, y, op, num_samples=k, schedule="cosine", init_std=0.0, **common)
            samples = jnp.clip(sample_q(prior, res_vi, k_draw, args.draws)[0], 0, 1)  # stats from clipped draws
            mean, std = samples.mean(1), samples.std(1)
            x_map = jnp.clip(res_map.x, 0, 1)
            jax.block_until_ready((x_map, mean))
            secs = time.perf_counter() - t0
            err = np.abs(np.asarray(mean) - x).reshape(args.n, -1)
            sd = np.asarray(std).reshape(args.n, -1)
            rho = np.array([spearmanr(sd[i], err[i]).statistic if sd[i].std() > 0 else np.nan for i in range(args.n)])
            lo, hi = np.quantile(np.asarray(samples), [0.05, 0.95], axis=1)
            inside = ((x >= lo) & (x <= hi)).reshape(args.n, -1).mean(1)
            results[prior_name][task] = {
                "psnr_map": float(np.nanmean(np.asarray(gp.psnr(x, x_map)))),
                "psnr_mean": float(np.nanmean(np.asarray(gp.psnr(x, mean)))),
                "spearman_std_vs_error": float(np.nanmean(rho)),
                "coverage_90": float(np.mean(inside)),
                "mean_std": float(sd.mean()),
                "nonfinite": int((np.asarray(res_map.status) != 0).sum() + (np.asarray(res_vi.status) != 0).sum()),
                "seconds": secs, "steps": steps, "k": k,
            }
            seen = jax.vmap(lambda yy, oo: backproject(Problem(yy, oo), "pinv"), (0, 0 if batched else None))(
                y[:8], jax.tree_util.tree_map(lambda a: a[:8], op) if batched else op)
            save_grid({"truth": x[:8], "A^+ y": np.asarray(seen), "MAP": np.asarray(x_map[:8]),
                       "post. mean": np.asarray(mean[:8]), "std x4": np.clip(4 * np.asarray(std[:8]), 0, 1),
                       "|error|": err[:8].reshape(-1, *SHAPE), "sample": np.asarray(samples[:8, 0])},
                      os.path.join(RESULTS, f"{prefix}_{prior_name}_{task}.png"),
                      title=f"{prior_name}, {task}: MAP, VI posterior mean, std (x4), |error| and one sample")
    total = time.perf_counter() - t_start
    info = machine_info()
    write_json(f"{prefix}.json", {"machine": info, "args": vars(args), "sigma": SIGMA, "results": results,
                                  "total_seconds": total})
    lines = ["# Posterior sampling on MNIST: MAP vs VI posterior mean, calibration of the posterior std", "",
             f"Command: `python benchmarks/posterior_mnist.py{' --quick' if args.quick else ''}`  ",
             machine_line(info) + "  ",
             f"{args.n} held-out test digits, noise std {SIGMA}; MAP and mean-field VI over the latent with Adam "
             f"(VAE: {args.steps[0]} steps, K = {args.k[0]}; flow: {args.steps[1]} steps, K = {args.k[1]}), "
             f"{args.draws} posterior draws. Total {total:.0f} s.", "",
             "| prior | task | PSNR MAP | PSNR post. mean | Spearman(std, error) | 90 % interval coverage | mean std |",
             "|---|---|---|---|---|---|---|"]
    for prior_name, per in results.items():
        for task, r in per.items():
            lines.append(f"| {prior_name} | {task} | {r['psnr_map']:.2f} | {r['psnr_mean']:.2f} | "
                         f"{r['spearman_std_vs_error']:.3f} | {r['coverage_90']:.3f} | {r['mean_std']:.4f} |")
    lines += ["", "Grids: " + ", ".join(f"[{p} {t}]({prefix}_{p}_{t}.png)" for p in results for t in results[p]), ""]
    text = "\n".join(lines)
    write_text(f"{prefix}.md", text)
    print(text)


if __name__ == "__main__":
    main()
