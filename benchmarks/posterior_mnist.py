"""Posterior sampling on MNIST (BRGM-style): MAP vs posterior mean, and how well the uncertainty is calibrated.

Tasks on held-out digits, noise std 0.05 (known): 10x10 centred box inpainting, random inpainting with 60 %
missing, x2 and x4 super-resolution. Priors: vae-mnist and glow-mnist. For each: the MAP latent (Adam) and
mean-field VI over the latent (Adam with cosine decay, K reparametrized samples per step), then ``draws``
posterior samples G(z), z ~ q; and MALA chains over the latent (``--methods vi langevin``). The methods
``vi+me`` and ``langevin+me`` add the model-error residual ``x = G(z) + e``, ``e ~ N(0, tau^2 I)``, with tau
estimated per task from the MAP residuals of the 100 measurements (no ground truth;
``genprior_jax.solvers.estimate_model_error``). Reported per task, prior and method:

- PSNR of the MAP image and of the posterior mean;
- calibration: Spearman correlation between the per-pixel posterior std and the absolute error of the
  posterior mean (per image, then averaged; goal > 0.5), and the fraction of true pixels inside the central
  90 % posterior interval (5 % / 95 % sample quantiles), on all pixels and on the foreground.

    python benchmarks/posterior_mnist.py [--quick]
    python benchmarks/posterior_mnist.py --priors glow-mnist --merge   # add the flow rows to an earlier run

Writes benchmarks/results/posterior_mnist.{md,json} and posterior_mnist_<prior>_<task>.png.
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
from scipy.stats import spearmanr
from tqdm.auto import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import RESULTS, machine_info, machine_line, write_json, write_text  # noqa: E402

import genprior_jax as gp  # noqa: E402
from genprior_jax.operators import BoxMask, Downsample, GaussianNoise, RandomMask, measure  # noqa: E402
from genprior_jax.plotting import save_grid  # noqa: E402
from genprior_jax.solvers import (  # noqa: E402
    backproject_batch,
    estimate_model_error,
    langevin,
    langevin_summary,
    map_estimate,
    sample_q,
    variational,
)

SHAPE = (28, 28, 1)
SIGMA = 0.05
NOISE = GaussianNoise(SIGMA)  # given once: it draws y, and it is every method's likelihood


def tasks(key: jax.Array, n: int) -> dict[str, tuple[object, bool]]:
    return {
        "inpaint-box-10x10": (BoxMask(SHAPE, 10), False),
        "inpaint-random-60": (jax.vmap(lambda k: RandomMask(k, SHAPE, 0.6))(jax.random.split(key, n)), True),
        "sr-x2": (Downsample(SHAPE, 2), False),
        "sr-x4": (Downsample(SHAPE, 4), False),
    }


METHODS = ("vi", "langevin", "vi+me", "langevin+me")


def calibration(x: np.ndarray, samples: np.ndarray) -> dict[str, float]:
    """PSNR of the sample mean and calibration of the sample std; ``x`` (n, H, W, C), ``samples`` (n, K, H, W, C).
    Images with a non-finite draw (a solve whose status is not OK) are left out and counted in ``excluded``."""
    finite = np.isfinite(samples.reshape(len(x), -1)).all(1)
    x, samples = x[finite], samples[finite]
    n = x.shape[0]
    mean, sd = samples.mean(1), samples.std(1)
    err = np.abs(mean - x).reshape(n, -1)
    sd = sd.reshape(n, -1)
    fg = (np.maximum(x.reshape(n, -1), mean.reshape(n, -1)) > 0.1)

    def rho(mask: np.ndarray) -> float:
        vals = [spearmanr(sd[i][mask[i]], err[i][mask[i]]).statistic for i in range(n)
                if mask[i].sum() > 2 and sd[i][mask[i]].std() > 0 and err[i][mask[i]].std() > 0]
        return float(np.mean(vals)) if vals else float("nan")

    lo, hi = np.quantile(samples, [0.05, 0.95], axis=1)
    inside = ((x >= lo) & (x <= hi)).reshape(n, -1)
    return {"coverage_90_fg": float(inside[fg].mean()), "n": n, "excluded": int((~finite).sum()),
            "psnr_mean": float(np.nanmean(np.asarray(gp.psnr(x, mean)))),
            "spearman_all": rho(np.ones_like(fg)), "spearman_fg": rho(fg),
            "coverage_90": float(((x >= lo) & (x <= hi)).mean()), "mean_std": float(sd.mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--priors", nargs="+", default=["vae-mnist", "glow-mnist"])
    ap.add_argument("--steps", type=int, nargs=2, default=[1000, 100], metavar=("VAE", "FLOW"),
                    help="Adam steps for MAP and VI, for the VAE and for the flow")
    ap.add_argument("--k", type=int, nargs=2, default=[4, 1], metavar=("VAE", "FLOW"), help="VI samples per step")
    ap.add_argument("--lr", type=float, nargs=2, default=[0.02, 0.05], metavar=("VAE", "FLOW"),
                    help="Adam step size for MAP and VI")
    ap.add_argument("--draws", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tasks", nargs="+", default=None)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--langevin-steps", type=int, nargs=2, default=[2000, 200], metavar=("VAE", "FLOW"))
    ap.add_argument("--langevin-chains", type=int, nargs=2, default=[4, 2], metavar=("VAE", "FLOW"))
    ap.add_argument("--langevin-step", type=float, nargs=2, default=[5e-5, 5e-5], metavar=("VAE", "FLOW"),
                    help="MALA step size")
    ap.add_argument("--langevin-init-steps", type=int, nargs=2, default=[0, 100], metavar=("VAE", "FLOW"),
                    help="Adam steps toward the MAP before the chains start (0: chains start at z = 0)")
    ap.add_argument("--adapt", action="store_true",
                    help="MALA: tune the step during burn-in toward acceptance 0.574 (from --langevin-step)")
    ap.add_argument("--merge", action="store_true",
                    help="keep an earlier run's rows for the priors / tasks / methods this run does not redo")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--report", action="store_true", help="only rewrite the markdown from the results JSON")
    args = ap.parse_args()
    prefix = "posterior_mnist"
    command = "python benchmarks/posterior_mnist.py " + " ".join(sys.argv[1:])
    if args.quick:
        args.n, args.steps, args.k, args.draws, prefix = 4, [20, 5], [1, 1], 8, "posterior_mnist_quick"
        args.langevin_steps = [40, 10]
    if args.report:
        with open(os.path.join(RESULTS, f"{prefix}.json")) as f:
            saved = json.load(f)
        print(write_report(prefix, saved["results"], saved["runs"]))
        return

    x = gp.load_mnist("test", n=args.n).images
    key = jax.random.key(args.seed)
    k_ops, k_y, k_solve, k_draw = jax.random.split(key, 4)
    all_tasks = tasks(k_ops, args.n)
    names = args.tasks or list(all_tasks)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    t_start = time.perf_counter()
    for prior_name in args.priors:
        prior = gp.load_prior(prior_name)
        is_flow = prior.log_prob is not None
        steps, k = (args.steps[1], args.k[1]) if is_flow else (args.steps[0], args.k[0])
        i = int(is_flow)
        lsteps, lchains, lstep = args.langevin_steps[i], args.langevin_chains[i], args.langevin_step[i]
        linit = args.langevin_init_steps[i]
        results[prior_name] = {}
        for task in tqdm(names, desc=prior_name):
            op, batched = all_tasks[task]
            y = jax.vmap(measure, (0, 0 if batched else None, 0, None))(jax.random.split(k_y, args.n), op,
                                                                        jnp.asarray(x), NOISE)
            lr = args.lr[i]
            t0 = time.perf_counter()
            res_map = map_estimate(prior, k_solve, y, op, noise=NOISE, num_steps=steps, op_batched=batched,
                                   learning_rate=lr, num_restarts=1, init_std=0.0)
            x_map = np.asarray(jnp.clip(res_map.x, 0, 1))
            tau = float(estimate_model_error(y, res_map.x, op, NOISE, op_batched=batched))
            row: dict[str, Any] = {"tau": tau, "psnr_map": float(np.nanmean(np.asarray(gp.psnr(x, x_map)))),
                                   "map_seconds": time.perf_counter() - t0, "steps": steps,
                                   "map_nonfinite": int((np.asarray(res_map.status) != 0).sum())}
            grid = {"truth": x[:8], "A^+ y": np.asarray(backproject_batch(
                y[:8], jax.tree_util.tree_map(lambda a: a[:8], op) if batched else op, op_batched=batched)),
                "MAP": x_map[:8]}
            for method in args.methods:
                t0 = time.perf_counter()
                me = tau if method.endswith("+me") else 0.0
                if method.startswith("vi"):
                    res = variational(prior, k_solve, y, op, noise=NOISE, num_steps=steps, op_batched=batched,
                                      learning_rate=lr, num_elbo_samples=k, schedule="cosine", init_std=0.0,
                                      model_error=me)
                    samples = jnp.clip(sample_q(prior, res, k_draw, args.draws, y=y, op=op, noise=NOISE,
                                                model_error=me, op_batched=batched)[0], 0, 1)  # clipped draws
                    extra: dict[str, Any] = {"k": k}
                else:
                    burn = lsteps // 2
                    res = langevin(prior, k_solve, y, op, noise=NOISE, num_steps=lsteps, burn_in=burn,
                                   num_chains=lchains, thin=max(1, (lsteps - burn) // 16), num_samples=16 * lchains,
                                   step_size=lstep, kernel="mala", init_std=0.0, op_batched=batched,
                                   init_steps=linit, init_learning_rate=lr, model_error=me, adapt=args.adapt)
                    _, _, samples, acc = langevin_summary(res)
                    samples = jnp.clip(samples, 0, 1)
                    extra = {"chains": lchains, "steps": lsteps, "burn_in": burn, "step_size": lstep,
                             "init_steps": linit,
                             "adapt": args.adapt, "adapted_step": float(np.mean(np.asarray(res.state.step_size))),
                             "acceptance": float(np.mean(np.asarray(acc)))}
                row[method] = {**calibration(x, np.asarray(samples)), **extra,
                               "nonfinite": int((np.asarray(res.status) != 0).sum()),
                               "seconds": time.perf_counter() - t0}
                mean, std = np.asarray(samples).mean(1), np.asarray(samples).std(1)
                grid.update({f"{method} mean": mean[:8], f"{method} std x4": np.clip(4 * std[:8], 0, 1),
                             f"{method} |err|": np.abs(mean[:8] - x[:8]),
                             f"{method} sample": np.asarray(samples[:8, 0])})
            # one grid per (prior, task, set of methods run): a --merge run does not overwrite earlier pictures
            suffix = "" if args.methods == ["vi", "langevin"] else "_" + "_".join(args.methods).replace("+", "-")
            row["grids"] = [f"{prefix}_{prior_name}_{task}{suffix}.png"]
            results[prior_name][task] = row
            save_grid(grid, os.path.join(RESULTS, row["grids"][0]),
                      title=f"{prior_name}, {task}: MAP; per method posterior mean, std (x4), |error|, one sample")
    total = time.perf_counter() - t_start
    info = machine_info()
    if args.merge and os.path.exists(os.path.join(RESULTS, f"{prefix}.json")):
        with open(os.path.join(RESULTS, f"{prefix}.json")) as f:
            old = json.load(f)
        runs = old.get("runs", [])
        for p, per in old["results"].items():  # merge per (prior, task, method): a new run's rows win
            for task, row in per.items():
                new = results.get(p, {}).get(task, {})
                grids = list(dict.fromkeys(row.get("grids", [f"{prefix}_{p}_{task}.png"]) + new.get("grids", [])))
                results.setdefault(p, {})[task] = {**row, **new, "grids": grids}
    else:
        runs = []
    runs.append({"command": command, "machine": info, "args": vars(args), "seconds": total})
    write_json(f"{prefix}.json", {"sigma": SIGMA, "results": results, "runs": runs})
    print(write_report(prefix, results, runs))


def write_report(prefix: str, results: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    """``<prefix>.md`` from the merged results and the list of runs (also ``--report``: from the JSON alone)."""
    lines = ["# Posterior sampling on MNIST: MAP vs posterior mean, calibration of the posterior std", "",
             "Runs (each wrote the rows of its priors):", ""]
    for r in runs:
        note = f" ({r['note']})" if r.get("note") else ""  # a remark added by hand to the run's JSON entry
        lines.append(f"- `{r['command']}`: {machine_line(r['machine'])}; {r['seconds']:.0f} s{note}")
    lines += ["", f"Held-out test digits, noise std {SIGMA} (known). MAP: Adam on the latent. VI: mean-field Gaussian, "
              "Adam with cosine decay, K reparametrized samples per step, then the draws below. Langevin: MALA chains "
              "started at z = 0, or after `init_steps` Adam steps toward the MAP (the row's JSON says which; "
              "`--langevin-init-steps`), the second half of the steps kept (16 states per chain); MALA acceptance "
              "over all steps, and with `--adapt` the step h reached by the burn-in adaptation (toward acceptance "
              "0.574). Statistics from draws "
              "clipped to [0, 1]. '+me' methods: the image is G(z) + e with e ~ N(0, tau^2 I) marginalized in the "
              "likelihood and drawn in the samples, tau estimated per task from the MAP residuals (no ground truth; "
              "column tau). Spearman: per image between per-pixel std and |posterior mean - truth|, averaged; "
              "Images whose solve ended non-finite (status != OK) are left out of the statistics (n counts the rest). "
              "'fg' restricts it to pixels where the truth or the mean exceeds 0.1 (the background is trivially "
              "right with ~0 std and inflates the all-pixel figure). Coverage: fraction of true pixels inside the "
              "central 90 % interval of the draws (all pixels; fg: the same foreground pixels, blank for rows run "
              "before that column existed).", "",
              "| prior | task | method | tau | n | PSNR MAP | PSNR post. mean | Spearman (all px) | Spearman (fg) | "
              "90 % coverage | coverage (fg) | mean std | MALA accept. | s |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for prior_name, per in results.items():
        for task, row in per.items():
            for method in METHODS:
                if method not in row:
                    continue
                r = row[method]
                acc = f"{r['acceptance']:.2f}" if "acceptance" in r else ""
                acc += f" (h {r['adapted_step']:.1e})" if r.get("adapt") else ""
                tau = f"{row['tau']:.3f}" if method.endswith("+me") else "0"
                cov_fg = f"{r['coverage_90_fg']:.3f}" if "coverage_90_fg" in r else ""
                lines.append(f"| {prior_name} | {task} | {method} | {tau} | {r['n']} | {row['psnr_map']:.2f} | "
                             f"{r['psnr_mean']:.2f} | {r['spearman_all']:.3f} | {r['spearman_fg']:.3f} | "
                             f"{r['coverage_90']:.3f} | {cov_fg} | {r['mean_std']:.4f} | {acc} | {r['seconds']:.0f} |")
    grids = [(p, t, g) for p in results for t in results[p]
             for g in results[p][t].get("grids", [f"{prefix}_{p}_{t}.png"])]
    lines += ["", "Grids: " + ", ".join(f"[{g[len(prefix) + 1:-4]}]({g})" for _, _, g in grids), ""]
    text = "\n".join(lines)
    write_text(f"{prefix}.md", text)
    return text


if __name__ == "__main__":
    main()
