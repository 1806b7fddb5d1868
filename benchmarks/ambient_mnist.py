"""AmbientGAN on the embedded MNIST digits: generators learned from measurements only, against the paper's
baselines (Bora, Price & Dimakis, ICLR 2018, Section 6 / Figure 5).

For every measurement model, DCGANs (config ``dcgan-mnist``, identical training settings and seed) are trained on
the 4,000 training digits each measured once (:func:`genprior_jax.training.train_ambient_dcgan`):
``ambient`` (the discriminator sees measurements of real and of generated images, a fresh draw per generated
sample), ``ignore`` (a DCGAN on the measurements as if clean), ``unmeasure`` (a DCGAN on TV-inverted measurements,
the TV weight picked on clean validation digits: generous to the baseline), and once ``clean`` (the upper bound).

Quality (:mod:`genprior_jax.sample_quality`, the project's MLP classifier trained with seed 0): an inception-style
score and the Frechet distance in the classifier's hidden features between ``--n-samples`` generated digits and the
500 held-out test digits. Then the generators as CSGM priors on clean held-out compressed-sensing problems (Gaussian
A, noise norm 0.1, Adam to a tolerance, restarts): MSE, final objective and converged fraction.

    python benchmarks/ambient_mnist.py                       # the committed results (about 45 min on 2 cores)
    python benchmarks/ambient_mnist.py --quick            # smoke run (100 steps per generator, ~2 min)

Checkpoints go to ``--ckpt-dir`` (not committed); a checkpoint already there with the same step count is reused,
so an interrupted run resumes where it stopped.
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

import genprior_jax as gp  # noqa: E402
from genprior_jax.operators import GaussianCS, measure, noise_std_for_norm, parse_measurement  # noqa: E402
from genprior_jax.plotting import save_grid  # noqa: E402
from genprior_jax.sample_quality import mnist_classifier, sample_scores  # noqa: E402
from genprior_jax.training import train_ambient_dcgan  # noqa: E402
from genprior_jax.training.ambient import baseline_modes  # noqa: E402


def modes_for(spec: str) -> tuple[str, ...]:
    return baseline_modes(parse_measurement(spec, (28, 28, 1)))


def slug(spec: str, mode: str) -> str:
    return f"{mode}_{spec.replace(':', '_').replace(',', '_').replace('=', '')}" if mode != "clean" else "clean"


def train_or_load(spec: str, mode: str, seed: int, args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    path = os.path.join(args.ckpt_dir, slug(spec, mode) + ("" if seed == 0 else f"_s{seed}"))
    if os.path.isfile(os.path.join(path, "config.json")):
        with open(os.path.join(path, "config.json")) as fh:
            meta = json.load(fh)["metadata"]
        if meta.get("step") == args.steps and "metrics" in meta:
            print(f"reusing {path}", flush=True)
            return gp.load_prior(path), meta["metrics"]
    cmd = f"genprior-jax train ambient-dcgan --measurement {spec} --mode {mode} --steps {args.steps} --seed {seed}"
    if mode == "clean":
        cmd = f"genprior-jax train dcgan --steps {args.steps} --seed {seed}"
    _, metrics = train_ambient_dcgan(None if mode == "clean" else spec, mode, seed=seed, steps=args.steps,
                                     out=path, progress=False, command=cmd)
    print(f"trained {path}: {metrics['train_seconds']} s", flush=True)
    return gp.load_prior(path), metrics


def csgm_eval(prior: Any, m: int, args: argparse.Namespace) -> dict[str, float]:
    x = gp.load_mnist("test", n=args.csgm_n).images
    k_op, k_noise, k_solve = jax.random.split(jax.random.key(1000 + m), 3)
    op = GaussianCS(k_op, (28, 28, 1), m)
    y = measure(k_noise, op, jnp.asarray(x), noise_std_for_norm(0.1, m))  # the batch: one key per image
    t0 = time.perf_counter()
    res = gp.csgm(prior, k_solve, y, op, lam=args.csgm_lam, learning_rate=0.01, num_steps=args.csgm_cap,
                  num_restarts=args.csgm_restarts, optimizer=args.csgm_optimizer,
                  schedule="constant" if args.csgm_optimizer == "lbfgs" else "cosine", tol=args.csgm_tol,
                  check_every=10 if args.csgm_optimizer == "lbfgs" else 50)
    mse = np.asarray(gp.mse(x, res.x))
    return {"mse": float(np.mean(mse)), "mse_sem": float(np.std(mse) / np.sqrt(len(mse))),
            "objective": float(np.mean(np.asarray(res.objective))),
            "converged": float(np.mean(np.asarray(res.converged))), "steps": float(np.mean(np.asarray(res.steps))),
            "seconds": round(time.perf_counter() - t0, 1)}


def title(args: argparse.Namespace) -> str:
    """The results file's title, with what tells this run from the others: how many measurement models, which
    seeds."""
    n = len(args.ps) + len(args.extra)
    seeds = f"seed {args.seeds[0]}" if len(args.seeds) == 1 else "seeds " + ", ".join(map(str, args.seeds))
    return (f"AmbientGAN on MNIST: generators learned from measurements only ({n} measurement model"
            f"{'s' if n != 1 else ''}, {seeds})")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--ps", type=float, nargs="*", default=[0.1, 0.5, 0.8, 0.9], help="block-pixels probabilities")
    ap.add_argument("--extra", nargs="*", default=["blur:gaussian=1.0,noise=0.1", "keep-patch:size=14",
                                                   "gaussian:m=4"], help="other measurement specs")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0],
                    help="training seeds per generator (scores: mean +- sd over them; grids and CSGM: the first)")
    ap.add_argument("--n-samples", type=int, default=500)
    ap.add_argument("--csgm-p", type=float, default=0.5, help="block-pixels p whose generators go into CSGM")
    ap.add_argument("--csgm-ms", type=int, nargs="*", default=[50, 100, 200])
    ap.add_argument("--csgm-n", type=int, default=32)
    ap.add_argument("--csgm-lam", type=float, default=0.0)
    ap.add_argument("--csgm-optimizer", default="adam", choices=["lbfgs", "adam"],
                    help="adam (lr 0.01 decayed to 0 over the cap on a cosine, tolerance checked every 50 steps) or "
                         "lbfgs (every 10 iterations; a vmapped line search waits for its slowest problem)")
    ap.add_argument("--csgm-cap", type=int, default=2000)
    ap.add_argument("--csgm-tol", type=float, default=1e-4)
    ap.add_argument("--csgm-restarts", type=int, default=2)
    ap.add_argument("--ckpt-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".ambient_ckpts"))
    ap.add_argument("--prefix", default="ambient_mnist")
    ap.add_argument("--quick", action="store_true", help="smoke run: 100 steps, p = 0.5 and convolve + noise only")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.ps, args.extra, args.n_samples = 100, [0.5], ["blur:gaussian=1.0,noise=0.1"], 200
        args.csgm_n, args.csgm_ms, args.csgm_cap = 4, [100], 500
        args.prefix, args.ckpt_dir = f"{args.prefix}_quick", args.ckpt_dir.rstrip(os.sep) + "_quick"
    info = machine_info()
    t_start = time.perf_counter()

    clf = mnist_classifier(0)
    test = gp.load_mnist("test").images
    val = gp.load_mnist("validation").images
    ref = {"validation digits (real)": sample_scores(clf, val[: args.n_samples], test)}  # real digits: the ceiling
    specs = [f"block-pixels:p={p:g}" for p in args.ps] + list(args.extra)
    rows: dict[str, dict[str, Any]] = {}
    priors: dict[tuple[str, str], Any] = {}
    sample_key = jax.random.key(12345)

    def score(spec: str, mode: str) -> dict[str, Any]:
        per_seed = []
        for seed in args.seeds:
            prior, metrics = train_or_load(spec, mode, seed, args)
            if seed == args.seeds[0]:
                priors[(spec, mode)] = prior
            s = sample_scores(clf, np.asarray(prior.sample(sample_key, args.n_samples)), test)
            per_seed.append({**s, "seed": seed, "train_seconds": metrics.get("train_seconds"),
                             "unmeasure_lam": metrics.get("unmeasure_lam")})
            print(f"{spec:34s} {mode:10s} seed {seed} IS {s['inception_score']:.2f}  FD "
                  f"{s['frechet_distance']:.1f}", flush=True)
        row: dict[str, Any] = {"per_seed": per_seed, "unmeasure_lam": per_seed[0]["unmeasure_lam"]}
        for k in ("inception_score", "frechet_distance"):
            v = np.array([r[k] for r in per_seed])
            row[k], row[k + "_sd"] = float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
        if spec != "none":
            rows.setdefault(spec, {})[mode] = row
        return row

    clean_scores = score("none", "clean")
    prior_clean = priors[("none", "clean")]
    for spec in specs:
        for mode in modes_for(spec):
            score(spec, mode)
        grid = {"clean DCGAN": np.asarray(prior_clean.sample(sample_key, 12))}
        model = parse_measurement(spec, (28, 28, 1))
        if model.out_shape == model.image_shape:
            measured = model.measure_batch(jax.random.key(7), jnp.asarray(test[:12]))
            grid["measured data"] = np.clip(np.asarray(measured), 0, 1)
        for mode in modes_for(spec):
            grid[mode] = np.asarray(priors[(spec, mode)].sample(sample_key, 12))
        save_grid(grid, os.path.join(RESULTS, f"{args.prefix}_{slug(spec, 'samples')}.png"),
                  title=f"AmbientGAN, {spec}: samples ({args.steps} steps each)")

    csgm: dict[str, dict[int, dict[str, float]]] = {}
    spec_c = f"block-pixels:p={args.csgm_p:g}"
    for (spec, mode), prior in priors.items():
        if spec not in ("none", spec_c):
            continue
        label = "clean" if mode == "clean" else f"{mode} (p = {args.csgm_p:g})"
        for m in args.csgm_ms:
            csgm.setdefault(label, {})[m] = r = csgm_eval(prior, m, args)
            print(f"CSGM {label:22s} m={m:4d} MSE {r['mse']:.4f} obj {r['objective']:.4f} conv {r['converged']:.2f}",
                  flush=True)

    payload = {"machine": info, "args": vars(args), "reference": ref, "clean": clean_scores, "rows": rows,
               "csgm": {k: {str(m): v for m, v in d.items()} for k, d in csgm.items()},
               "seconds": round(time.perf_counter() - t_start, 1)}
    write_json(f"{args.prefix}.json", payload)

    def fmt(r: dict[str, Any]) -> str:
        if len(args.seeds) == 1:
            return f"{r['inception_score']:.2f} / {r['frechet_distance']:.1f}"
        return (f"{r['inception_score']:.2f} ± {r['inception_score_sd']:.2f} / {r['frechet_distance']:.1f} ± "
                f"{r['frechet_distance_sd']:.1f}")

    md = [f"# {title(args)}", "",
          machine_line(info), "",
          f"Command: `python benchmarks/{os.path.basename(__file__)} " + " ".join(sys.argv[1:]) + f"` "
          f"({payload['seconds']:.0f} s). Each generator: DCGAN `dcgan-mnist`, {args.steps} steps, batch 64, seeds "
          f"{args.seeds}; the 4,000 training digits each measured once (data seed 0). Scores: the project's MLP "
          f"classifier (seed 0); IS = inception-style score (10 at most; higher is better), FD = Frechet distance "
          f"in its hidden features to the 500 test digits (lower is better), from {args.n_samples} samples.", "",
          f"Reference: real validation digits IS {ref['validation digits (real)']['inception_score']:.2f}, FD "
          f"{ref['validation digits (real)']['frechet_distance']:.1f}; clean-data DCGAN (upper bound) IS / FD "
          f"{fmt(clean_scores)}." + (" With several seeds: mean ± sd over the seeds." if len(args.seeds) > 1
                                    else ""), "",
          "| measurement | AmbientGAN IS / FD | ignore (i) IS / FD | unmeasure (ii) IS / FD | TV weight of (ii) |",
          "|---|---|---|---|---|"]

    def cell(spec: str, mode: str) -> str:
        r = rows.get(spec, {}).get(mode)
        return "n/a" if r is None else fmt(r)

    for spec in specs:
        lam = rows[spec].get("unmeasure", {}).get("unmeasure_lam")
        md.append(f"| `{spec}` | {cell(spec, 'ambient')} | {cell(spec, 'ignore')} | {cell(spec, 'unmeasure')} | "
                  f"{'n/a' if lam is None else lam} |")
    md += ["", "n/a: the baseline does not apply (Gaussian projections are not images; nothing to invert outside a "
           "kept patch)."]
    if csgm:
        md += ["",
               f"## CSGM on clean held-out digits with these generators (block-pixels p = {args.csgm_p:g})", "",
               f"{args.csgm_n} test digits, Gaussian A (N(0, 1/m) entries), noise norm 0.1; CSGM lam "
               f"{args.csgm_lam:g}, "
               + ("L-BFGS" if args.csgm_optimizer == "lbfgs" else "Adam lr 0.01 with a cosine decay to 0 over the cap")
               + f", {args.csgm_restarts} restarts (z0 ~ N(0, I)), tolerance {args.csgm_tol:g} on the relative change "
               "per "
               f"{10 if args.csgm_optimizer == 'lbfgs' else 50} steps, cap {args.csgm_cap}. "
               "MSE per pixel (+- s.e.m.), final objective ||A G(z) - y||^2 (mean) and "
               "the converged fraction.", "",
               "| generator | " + " | ".join(f"m = {m}: MSE / objective / converged" for m in args.csgm_ms) + " |",
               "|---|" + "---|" * len(args.csgm_ms)]
        for label, d in csgm.items():
            md.append(f"| {label} | " + " | ".join(
                f"{d[m]['mse']:.4f} +- {d[m]['mse_sem']:.4f} / {d[m]['objective']:.3f} / {d[m]['converged']:.2f}"
                for m in args.csgm_ms) + " |")
    md += ["", "Samples: " + ", ".join(f"`{args.prefix}_{slug(s, 'samples')}.png`" for s in specs), ""]
    write_text(f"{args.prefix}.md", "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
