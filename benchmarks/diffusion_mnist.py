"""Diffusion priors on MNIST compressed sensing (issue 30): DPS, DiffPIR, annealed Langevin and PnP-ADMM with the
shipped ``diffusion-mnist`` prior, beside VAE-CSGM (Bora et al.) and Glow (``gp.asim``, Asim et al.).

Problems as ``csgm_mnist.py``: the first ``--n`` held-out test digits, one ``N(0, 1/m)`` matrix per digit, noise
std ``0.1 / sqrt(m)`` (``||eta|| ~ 0.1``), keys from ``fold_in(key(seed), m)``. Every method runs with its
defaults (``gp.defaults(name)``) and the noise level it was measured with; the diffusion samplers report the mean
of their ``num_samples`` samples. VAE-CSGM: ``lam = 0``, Adam 0.01, 1000 steps, 10 restarts (the csgm table's
setting); Glow: ``gp.asim`` defaults (L-BFGS from ``z0 = 0`` to its tolerance), with its final objective and
converged fraction; PnP reports its converged fraction (fixed-point residual <= tol). NFE = network evaluations
per image (DPS: each with its vector-Jacobian product; the samplers: per sample, times ``num_samples``).

    python benchmarks/diffusion_mnist.py                       # 16 digits, m = 25, 50, 100
    python benchmarks/diffusion_mnist.py --n 32 --ms 10 25 50 100 200 300 500 750
    python benchmarks/diffusion_mnist.py --quick               # smoke run

Writes benchmarks/results/diffusion_mnist.{md,json} and diffusion_mnist_examples.png.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import RESULTS, machine_info, machine_line, write_json, write_text  # noqa: E402
from csgm_mnist import make_problem  # noqa: E402

import genprior_jax as gp  # noqa: E402
from genprior_jax.plotting import save_grid  # noqa: E402

DIFFUSION = ("dps", "diffpir", "ald", "pnp")
METHODS = (*DIFFUSION, "VAE-CSGM", "Glow-asim")


def nfe(name: str, kw: dict, res: gp.Result) -> float:
    """Network evaluations per image: steps x samples for the samplers, the steps taken for PnP."""
    if name == "pnp":
        return float(np.mean(np.asarray(res.steps)))
    return float(kw["num_steps"] * kw["num_samples"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--ms", type=int, nargs="+", default=[25, 50, 100])
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--prior", default="diffusion-mnist")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out-prefix", default="diffusion_mnist")
    args = ap.parse_args()
    if args.quick:
        args.n, args.ms, args.out_prefix = 2, [100], "diffusion_mnist_quick"
    unknown = set(args.methods) - set(METHODS)
    if unknown:
        raise SystemExit(f"unknown methods {sorted(unknown)}; expected some of {list(METHODS)}")
    diffusion = gp.load_prior(args.prior)
    x = gp.load_mnist("test", n=args.n).images
    key = jax.random.key(args.seed)
    table: dict[str, dict[str, dict]] = {k: {} for k in args.methods}
    examples: dict[str, np.ndarray] = {"truth": np.asarray(x[:8])}
    t_all = time.perf_counter()
    for m in args.ms:
        k_test, _, k_solve = jax.random.split(jax.random.fold_in(key, m), 3)
        ops, y = make_problem(k_test, x, m)
        sigma = gp.noise_std_for_norm(0.1, m)
        for name in args.methods:
            t0 = time.perf_counter()
            extra: dict = {}
            if name in DIFFUSION:
                kw = {**gp.solvers.defaults(name), "noise": gp.GaussianNoise(sigma)}
                kw = {k: v for k, v in kw.items() if k not in ("tol", "batch_size")}
                res = gp.solvers.solve(name, diffusion, k_solve, y, ops, options=gp.RunOptions(op_batched=True),
                                       **kw)
                extra["nfe"] = nfe(name, {**gp.solvers.defaults(name), **kw}, res)
                if name == "pnp":
                    extra["converged"] = float(np.mean(np.asarray(res.converged)))
                    extra["objective"] = float(np.nanmean(np.asarray(res.objective)))
            elif name == "VAE-CSGM":
                res = gp.csgm(gp.load_prior("vae-mnist"), k_solve, y, ops, lam=0.0, num_steps=1000, num_restarts=10,
                              op_batched=True)
            else:
                res = gp.asim(gp.load_prior("glow-mnist"), k_solve, y, ops, op_batched=True)
                extra["converged"] = float(np.mean(np.asarray(res.converged)))
                extra["objective"] = float(np.nanmean(np.asarray(res.objective)))
                extra["iterations"] = float(np.mean(np.asarray(res.steps)))
            x_hat = jnp.clip(jax.block_until_ready(res.x), 0.0, 1.0)
            seconds = time.perf_counter() - t0
            err = np.asarray(gp.mse(x, x_hat))
            table[name][str(m)] = {"mse": float(err.mean()), "sem": float(err.std(ddof=1) / np.sqrt(len(err))),
                                   "psnr": float(np.asarray(gp.psnr(x, x_hat)).mean()),
                                   "seconds_per_image": seconds / len(x),
                                   "nonfinite": int((np.asarray(res.status) == gp.Status.NONFINITE).sum()), **extra}
            print(f"m={m} {name}: MSE {err.mean():.4f} ({seconds:.0f} s) {extra}", flush=True)
            if m == args.ms[-1]:
                examples[name] = np.asarray(x_hat[:8])
    total = time.perf_counter() - t_all
    info = machine_info()
    payload = {"machine": info, "args": vars(args), "seconds": total, "results": table,
               "defaults": {k: {kk: str(vv) for kk, vv in gp.solvers.defaults(k).items()} for k in DIFFUSION},
               "prior": args.prior}
    write_json(f"{args.out_prefix}.json", payload)
    save_grid(examples, os.path.join(RESULTS, f"{args.out_prefix}_examples.png"),
              title=f"MNIST CS, m = {args.ms[-1]}: first 8 of {args.n} held-out digits")
    methods = [k for k in METHODS if k in table]
    lines = [f"# Diffusion priors on MNIST compressed sensing ({args.n} held-out digits)", "",
             f"Command: `python benchmarks/diffusion_mnist.py {' '.join(sys.argv[1:])}`  ",
             f"{machine_line(info)}; total {total:.0f} s.  ",
             f"Prior `{args.prior}`; noise std 0.1/sqrt(m); every method at its defaults (VAE-CSGM: lam 0, 1000 Adam "
             "steps, 10 restarts; Glow: `gp.asim` defaults, L-BFGS to its tolerance).", "",
             "Mean per-pixel MSE (± standard error):", "",
             "| m | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for m in args.ms:
        lines.append(f"| {m} | " + " | ".join(f"{table[k][str(m)]['mse']:.4f} ± {table[k][str(m)]['sem']:.4f}"
                                             for k in methods) + " |")
    lines += ["", "Seconds per image, NFE per image (diffusion), converged fraction and mean final objective where the "
              "method converges (PnP: fixed-point residual; Glow: L-BFGS tolerance):", "",
              "| m | method | s/image | NFE | converged | objective | non-finite |", "|---|---|---|---|---|---|---|"]
    for m in args.ms:
        for k in methods:
            r = table[k][str(m)]
            lines.append(f"| {m} | {k} | {r['seconds_per_image']:.2f} | {r.get('nfe', '-')} | "
                         f"{r.get('converged', '-')} | {r.get('objective', '-')} | {r['nonfinite']} |")
    lines += ["", f"![examples]({args.out_prefix}_examples.png)", ""]
    write_text(f"{args.out_prefix}.md", "\n".join(lines))


if __name__ == "__main__":
    main()
