"""Bora et al. (2017) Fig. 2a on MNIST: per-pixel reconstruction error vs number of Gaussian measurements.

Methods: VAE prior (CSGM, lam = 0), VAE+Reg (the csgm repo's lam = 0.1, our 0.05 on the data term
1/2 ||A G(z) - y||^2: the same objective), DCGAN prior (CSGM), Lasso in the pixel, 2-D DCT and
wavelet bases, TV, Deep Image Prior CS (untrained),
and the Glow flow prior with GlowIP's compressed-sensing settings (Asim et al.: L-BFGS, 30 steps, z0 = 0,
lam = 0). Settings as the csgm repo's MNIST script: A with N(0, 1/m) entries (one matrix per digit), noise
eta ~ N(0, 0.1^2/m) per entry (||eta|| ~ 0.1), Adam lr 0.01, 1000 steps, 10 restarts, restart with the
lowest objective kept. Lasso's lam is tuned per m and basis on the *validation* split (grid below), then
applied to the held-out test digits. Problems (matrices, noise) depend only on the seed and m, so methods
run separately (--methods, --merge) see the same measurements.

    python benchmarks/csgm_mnist.py                        # full: 200 test digits, 100 validation digits
    python benchmarks/csgm_mnist.py --methods Flow --merge # add one method to the existing results
    python benchmarks/csgm_mnist.py --quick                # smoke run

Writes benchmarks/results/csgm_mnist.{md,json,png} and csgm_mnist_examples.png.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import RESULTS, machine_info, machine_line, write_json, write_text  # noqa: E402

import genprior_jax as gp  # noqa: E402
from genprior_jax.operators import GaussianCS, measure, noise_std_for_norm  # noqa: E402
from genprior_jax.plotting import save_curves, save_grid  # noqa: E402

# Lasso's lam on the data term 1/2 ||A S c - y||^2 (issue 28): the earlier runs' grid (0.003 .. 3.0) against
# ||A S c - y||^2, halved (the same solutions). Results files written before record no "lasso_lam_scale": their
# tuned lams are on the old scale and are halved when read.
LASSO_GRID = (0.0015, 0.005, 0.015, 0.05, 0.15, 0.5, 1.5)
METHODS = ("VAE", "VAE+Reg", "DCGAN", "Lasso-pixel", "Lasso-DCT", "Lasso-wavelet", "TV", "DIP", "Flow")
LASSO_NAMES = {"pixel": "Lasso-pixel", "dct": "Lasso-DCT", "wavelet": "Lasso-wavelet"}
TV_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03)


def make_problem(key: jax.Array, x: np.ndarray, m: int) -> tuple[GaussianCS, jax.Array]:
    k_op, k_noise = jax.random.split(key)
    n = len(x)
    ops = jax.vmap(lambda k: GaussianCS(k, (28, 28, 1), m))(jax.random.split(k_op, n))
    sigma = noise_std_for_norm(0.1, m)
    y = jax.vmap(measure, in_axes=(0, 0, 0, None))(jax.random.split(k_noise, n), ops, jnp.asarray(x), sigma)
    return ops, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ms", type=int, nargs="+", default=[10, 25, 50, 100, 200, 300, 500, 750])
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--n-val", type=int, default=100)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--restarts", type=int, default=10)
    ap.add_argument("--lasso-steps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prior", default="vae-mnist")
    ap.add_argument("--flow", default="glow-mnist")
    ap.add_argument("--dcgan", default="dcgan-mnist")
    ap.add_argument("--dip-steps", type=int, default=1000)
    ap.add_argument("--dcgan-steps", type=int, default=None, help="CSGM steps for the DCGAN (default --steps)")
    ap.add_argument("--dcgan-restarts", type=int, default=None, help="restarts for the DCGAN (default --restarts)")
    ap.add_argument("--flow-steps", type=int, default=None,
                    help="fixed L-BFGS iterations for the flow (default: gp.asim's, solved to its tolerance)")
    ap.add_argument("--flow-chunk", type=int, default=20, help="problems per vmapped L-BFGS batch for the flow")
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--merge", action="store_true", help="update the existing results file instead of replacing it")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    ap.add_argument("--out-prefix", default="csgm_mnist")
    args = ap.parse_args()
    args.argv = sys.argv[1:]
    if args.quick:
        args.ms, args.n_test, args.n_val, args.steps, args.restarts, args.lasso_steps = [25, 100], 8, 8, 50, 2, 100
        args.out_prefix = "csgm_mnist_quick"

    unknown = set(args.methods) - set(METHODS)
    if unknown:
        raise SystemExit(f"unknown methods {sorted(unknown)}; expected some of {list(METHODS)}")
    prior = gp.load_prior(args.prior)
    flow = gp.load_prior(args.flow) if "Flow" in args.methods else None
    x_test = gp.load_mnist("test", n=args.n_test).images
    x_val = gp.load_mnist("validation", n=args.n_val).images
    key = jax.random.key(args.seed)
    table: dict[str, dict[int, dict[str, float]]] = {k: {} for k in args.methods}
    dcgan = gp.load_prior(args.dcgan) if "DCGAN" in args.methods else None
    tuned: dict[str, dict[int, float]] = {"pixel": {}, "dct": {}, "wavelet": {}, "tv": {}}
    examples: dict[str, np.ndarray] = {}

    def record(name: str, m: int, x_hat: jax.Array, status: jax.Array, seconds: float, **extra: float) -> None:
        err = np.asarray(gp.mse(x_test, x_hat))
        table[name][m] = {"mse": float(err.mean()), "sem": float(err.std(ddof=1) / np.sqrt(len(err))),
                          "psnr": float(np.asarray(gp.psnr(x_test, x_hat)).mean()), "seconds": seconds,
                          "nonfinite": int((np.asarray(status) == gp.Status.NONFINITE).sum()), **extra}
        if m == 100:
            examples[name] = np.asarray(x_hat[:12])

    t_start = time.perf_counter()
    for m in tqdm(args.ms, desc="m", unit="m"):
        k_m = jax.random.fold_in(key, m)
        k_test, k_val, k_solve = jax.random.split(k_m, 3)
        ops, y = make_problem(k_test, x_test, m)
        for name, lam in (("VAE", 0.0), ("VAE+Reg", 0.05)):  # VAE+Reg: the repo's 0.1 without our 1/2 data term
            if name not in args.methods:
                continue
            t0 = time.perf_counter()
            res = jax.block_until_ready(gp.csgm(prior, k_solve, y, ops, lam=lam, num_steps=args.steps,
                                                num_restarts=args.restarts, op_batched=True))
            record(name, m, res.x, res.status, time.perf_counter() - t0)
        if flow is not None:
            # chunks of --flow-chunk problems: a vmapped L-BFGS line search runs as long as its slowest problem,
            # so smaller batches finish much sooner (same problems, same results per problem up to the keys)
            t0 = time.perf_counter()
            xs, sts = [], []
            for i, lo in enumerate(range(0, len(y), args.flow_chunk)):
                sl = slice(lo, lo + args.flow_chunk)
                fixed = {} if args.flow_steps is None else {"num_steps": args.flow_steps, "tol": None}
                r = gp.asim(flow, jax.random.fold_in(k_solve, i), y[sl], jax.tree_util.tree_map(lambda a: a[sl], ops),
                            lam=0.0, optimizer="lbfgs", init_std=0.0, op_batched=True, **fixed)
                xs.append(jax.block_until_ready(r.x))
                sts.append(r)
            record("Flow", m, jnp.clip(jnp.concatenate(xs), 0.0, 1.0),
                   jnp.concatenate([r.status for r in sts]), time.perf_counter() - t0,
                   objective=float(np.mean(np.concatenate([np.asarray(r.objective) for r in sts]))),
                   converged=float(np.mean(np.concatenate([np.asarray(r.converged) for r in sts]))),
                   iterations=float(np.mean(np.concatenate([np.asarray(r.steps) for r in sts]))))
        if dcgan is not None:
            t0 = time.perf_counter()
            steps, restarts = args.dcgan_steps or args.steps, args.dcgan_restarts or args.restarts
            res = jax.block_until_ready(gp.csgm(dcgan, k_solve, y, ops, lam=0.0, num_steps=steps,
                                                num_restarts=restarts, op_batched=True))
            record("DCGAN", m, res.x, res.status, time.perf_counter() - t0, steps=steps, restarts=restarts)
        if "DIP" in args.methods:
            t0 = time.perf_counter()
            res = jax.block_until_ready(gp.dip(k_solve, y, ops, num_steps=args.dip_steps, op_batched=True))
            record("DIP", m, res.x, res.status, time.perf_counter() - t0)
        if "TV" in args.methods:
            ops_v, y_v = make_problem(k_val, x_val, m)
            val_err = [float(np.asarray(gp.mse(x_val, gp.tv(k_solve, y_v, ops_v, lam=lam, num_steps=500,
                                                               op_batched=True).x)).mean()) for lam in TV_GRID]
            best = TV_GRID[int(np.argmin(val_err))]
            tuned["tv"][m] = best
            t0 = time.perf_counter()
            r = jax.block_until_ready(gp.tv(k_solve, y, ops, lam=best, num_steps=500, op_batched=True))
            record("TV", m, r.x, r.status, time.perf_counter() - t0, lam=best)
        for basis, name in LASSO_NAMES.items():
            if name not in args.methods:
                continue
            ops_v, y_v = make_problem(k_val, x_val, m)
            val_err = []
            for lam in LASSO_GRID:
                r = gp.lasso(k_solve, y_v, ops_v, lam=lam, basis=basis, num_steps=args.lasso_steps, op_batched=True)
                val_err.append(float(np.asarray(gp.mse(x_val, r.x)).mean()))
            best = LASSO_GRID[int(np.argmin(val_err))]
            tuned[basis][m] = best
            t0 = time.perf_counter()
            r = jax.block_until_ready(gp.lasso(k_solve, y, ops, lam=best, basis=basis, num_steps=args.lasso_steps,
                                               op_batched=True))
            record(name, m, r.x, r.status, time.perf_counter() - t0, lam=best)
    total = time.perf_counter() - t_start

    results = {k: {str(m): v for m, v in d.items()} for k, d in table.items()}
    ex_path = os.path.join(RESULTS, f"{args.out_prefix}_examples.npz")
    json_path = os.path.join(RESULTS, f"{args.out_prefix}.json")
    runs = [{"methods": args.methods, "args": vars(args), "seconds": total, "machine": machine_info()}]
    new_examples = bool(examples)  # this run solved m = 100 (the example grids are drawn at m = 100 only)
    # concurrent --merge runs (one per method, say) take turns: the lock is held until this process exits
    lock = open(json_path + ".lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    if args.merge and os.path.exists(json_path):
        with open(json_path) as fh:
            old = json.load(fh)
        # merge per (method, m): a run of some m's of a method keeps that method's other m's
        results = {k: {**old["results"].get(k, {}), **results.get(k, {})} for k in {*old["results"], *results}}
        for basis in tuned:
            factor = 1.0 if old.get("lasso_lam_scale") == "half" else 0.5  # old files: ||Ax - y||^2 scale
            tuned[basis] = {**{int(k): v * factor for k, v in old["lasso_tuned_lam"].get(basis, {}).items()},
                            **tuned[basis]}
        runs = (old.get("runs") or [{"methods": list(old["results"]), "args": {**old.get("args", {}), "argv": []},
                                     "seconds": old.get("total_seconds", 0.0)}]) + runs
        if os.path.exists(ex_path):
            examples = {**dict(np.load(ex_path)), **examples}
    if examples:
        np.savez_compressed(ex_path, **examples)
    methods = [k for k in METHODS if k in results]
    ms = sorted({int(m) for k in methods for m in results[k]})
    table = {k: {int(m): v for m, v in results[k].items()} for k in methods}
    info = machine_info()
    payload = {"machine": info, "runs": runs, "lasso_grid": LASSO_GRID, "lasso_lam_scale": "half",
               "lasso_tuned_lam": {b: {str(m): v for m, v in d.items()} for b, d in tuned.items()}, "results": results}
    write_json(f"{args.out_prefix}.json", payload)
    save_curves(ms, {k: [table[k][m]["mse"] if m in table[k] else np.nan for m in ms] for k in methods},
                os.path.join(RESULTS, f"{args.out_prefix}.png"), "number of measurements m",
                "per-pixel reconstruction error (MSE)",
                title=f"CSGM on MNIST ({args.n_test} held-out digits, noise ||eta||=0.1)",
                errors={k: [table[k][m]["sem"] if m in table[k] else np.nan for m in ms] for k in methods})
    ex_png = f"{args.out_prefix}_examples.png" if not args.merge else \
        f"{args.out_prefix}_examples_{'_'.join(k.replace('+', '') for k in args.methods)}.png"
    if new_examples:
        save_grid({"truth": x_test[:12], **{k: examples[k] for k in methods if k in examples}},
                  os.path.join(RESULTS, ex_png),
                  title="m = 100 Gaussian measurements, first 12 held-out digits")
    dcgan_runs = sorted({(v["steps"], v["restarts"]) for v in table.get("DCGAN", {}).values() if "steps" in v})
    dcgan_settings = "".join(f", {st} steps and {rs} restarts" for st, rs in dcgan_runs)
    lines = [
        f"# CSGM on MNIST: per-pixel MSE vs m (Bora et al. 2017, Fig. 2a setting), {args.n_test} held-out digits", "",
        "Commands: " + "; ".join(
            f"`python benchmarks/csgm_mnist.py {' '.join(r['args'].get('argv', []))}`".replace(" `", "`")
            + (f" ({r['machine']['cpu']}, commit {r['machine'].get('git_commit')})"
               if r.get("machine") else "") for r in runs) + "  ",
        "Latest run: " + machine_line(info) + "  ",
        *(["Runs listed without a machine (recorded before runs kept one) were on the Intel(R) Xeon(R) Processor "
           "machine, 2 cores, same versions.  "] if any(not r.get("machine") for r in runs) else []),
        f"{args.n_test} held-out test digits (embedded MNIST, test split), one N(0, 1/m) matrix per digit, noise "
        f"std 0.1/sqrt(m); CSGM: Adam lr 0.01, {args.steps} steps, {args.restarts} restarts; Lasso: FISTA "
        f"{args.lasso_steps} steps, lam tuned per m on {args.n_val} validation digits over {list(LASSO_GRID)}; "
        f"Flow: {args.flow}, L-BFGS "
        + (f"{args.flow_steps} iterations" if args.flow_steps else "to convergence (gp.asim defaults: tol 5e-5, "
           "at most 2000 iterations)") + ", z0 = 0, lam = 0 (GlowIP's CS setting). VAE+Reg: lam 0.05 (the repo's 0.1; "
        "our data term is 1/2 ||A G(z) - y||^2). "
        f"DCGAN: {args.dcgan}, CSGM as the VAE (lam 0){dcgan_settings}. "
        f"TV: Chambolle-Pock 500 steps, lam tuned on validation over "
        f"{list(TV_GRID)}. DIP: untrained generator, no training data (Van Veen et al. settings), "
        f"{args.dip_steps} steps. "
        "Wall time per run: " + ", ".join(f"{'+'.join(r['methods'])} {r['seconds']:.0f} s" for r in runs) + ".", "",
        "Mean per-pixel MSE (± standard error of the mean):", "",
        "| m | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    def num(v: float) -> str:  # 4 decimals, or 2 significant digits below 1e-3 (a converged flow: ~2e-5)
        return f"{v:.4f}" if v >= 1e-3 or v == 0 else f"{v:.1e}"

    def cell(k: str, m: int) -> str:
        return f"{num(table[k][m]['mse'])} ± {num(table[k][m]['sem'])}" if m in table[k] else "-"

    for m in ms:
        lines.append(f"| {m} | " + " | ".join(cell(k, m) for k in methods) + " |")
    lines += ["", "Tuned Lasso lam (ours = scikit-learn alpha; data term 1/2 ||A S c - y||^2):", "",
              "| m | " + " | ".join(str(m) for m in ms) + " |", "|---|" + "---|" * len(ms),
              "| pixel | " + " | ".join(str(tuned["pixel"].get(m, "-")) for m in ms) + " |",
              "| DCT | " + " | ".join(str(tuned["dct"].get(m, "-")) for m in ms) + " |",
              "| wavelet (db4, 3 levels) | " + " | ".join(str(tuned["wavelet"].get(m, "-")) for m in ms) + " |",
              "| TV (1/2-weighted data term) | " + " | ".join(str(tuned["tv"].get(m, "-")) for m in ms) + " |", "",
              *(["Flow solves: final objective ||A G(z) - y||^2 (mean) / converged fraction / mean iterations: "
                 + "; ".join(f"m = {m}: {table['Flow'][m]['objective']:.4g} / {table['Flow'][m]['converged']:.2f}"
                             f" / {table['Flow'][m]['iterations']:.0f}"
                             for m in ms if m in table["Flow"] and "converged" in table["Flow"][m]), ""]
                if "Flow" in table else []),
              "Wall time per method and m (s): " + "; ".join(
                  f"{k}: " + ", ".join(f"{table[k][m]['seconds']:.1f}" for m in ms if m in table[k])
                  for k in methods), "",
              f"![error vs m]({args.out_prefix}.png)", "",
              "Examples at m = 100: " + ", ".join(
                  f"[{f}]({f})" for f in sorted(os.listdir(RESULTS))
                  if f.startswith(f"{args.out_prefix}_examples") and f.endswith(".png")), ""]
    path = write_text(f"{args.out_prefix}.md", "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
