"""Classical baselines on MNIST Gaussian CS: Lasso in the pixel, DCT and wavelet bases, and TV (PDHG).

The csgm_mnist setting at one m: one N(0, 1/m) matrix per digit, noise std 0.1/sqrt(m) (||eta|| ~ 0.1). Each
method's lam is picked on --n-val validation digits from a small grid (the lowest mean per-pixel MSE), then
run once on --n-test held-out test digits; the reported time is that test run (already compiled by the sweep,
same shapes), the sweep time is reported separately.

    python benchmarks/baselines_check.py                  # 50 test + 50 validation digits, m = 100

Writes benchmarks/results/baselines_check.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info, machine_line, write_json, write_text  # noqa: E402
from csgm_mnist import make_problem  # noqa: E402

import genprior_jax as gp  # noqa: E402
from genprior_jax.solvers import tv  # noqa: E402

# Lasso's lam on the data term 1/2 ||A S c - y||^2 (issue 28): the earlier grid (0.003 .. 3.0) against
# ||A S c - y||^2, halved (the same solutions)
LASSO_GRID = (0.0015, 0.015, 0.15, 1.5)
TV_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--m", type=int, default=100)
    ap.add_argument("--n-test", type=int, default=50)
    ap.add_argument("--n-val", type=int, default=50)
    ap.add_argument("--lasso-steps", type=int, default=1000)
    ap.add_argument("--tv-steps", type=int, default=500)
    ap.add_argument("--wavelet", default="db4")
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    x_test = gp.load_mnist("test", n=args.n_test).images
    x_val = gp.load_mnist("validation", n=args.n_val).images
    k_test, k_val, k_solve = jax.random.split(jax.random.fold_in(jax.random.key(args.seed), args.m), 3)
    ops, y = make_problem(k_test, x_test, args.m)
    ops_v, y_v = make_problem(k_val, x_val, args.m)

    solvers: dict[str, tuple[tuple[float, ...], Callable[..., Any]]] = {
        "Lasso-pixel": (LASSO_GRID, lambda yy, oo, lam: gp.lasso(k_solve, yy, oo, lam=lam, basis="pixel",
                                                                  num_steps=args.lasso_steps, op_batched=True)),
        "Lasso-DCT": (LASSO_GRID, lambda yy, oo, lam: gp.lasso(k_solve, yy, oo, lam=lam, basis="dct",
                                                                num_steps=args.lasso_steps, op_batched=True)),
        f"Lasso-{args.wavelet}": (LASSO_GRID, lambda yy, oo, lam: gp.lasso(
            k_solve, yy, oo, lam=lam, basis="wavelet", wavelet=args.wavelet, levels=args.levels,
            num_steps=args.lasso_steps, op_batched=True)),
        "TV": (TV_GRID, lambda yy, oo, lam: tv(k_solve, yy, oo, lam=lam, num_steps=args.tv_steps, op_batched=True)),
    }
    results: dict[str, dict[str, Any]] = {}
    load = os.getloadavg()[0]  # other processes on the machine slow the wall times down
    t_start, cpu_start = time.perf_counter(), time.process_time()
    for name, (grid, solve) in solvers.items():
        t0 = time.perf_counter()
        val = [float(np.asarray(gp.mse(x_val, jax.block_until_ready(solve(y_v, ops_v, lam).x))).mean()) for lam in grid]
        sweep = time.perf_counter() - t0
        best = grid[int(np.argmin(val))]
        t0 = time.perf_counter()
        res = jax.block_until_ready(solve(y, ops, best))
        seconds = time.perf_counter() - t0
        err = np.asarray(gp.mse(x_test, res.x))
        results[name] = {"lam": best, "val_mse": dict(zip(map(str, grid), val)), "mse": float(err.mean()),
                         "sem": float(err.std(ddof=1) / np.sqrt(len(err))),
                         "psnr": float(np.asarray(gp.psnr(x_test, res.x)).mean()), "seconds": seconds,
                         "sweep_seconds": sweep,
                         "nonfinite": int((np.asarray(res.status) == gp.Status.NONFINITE).sum())}
        print(f"{name}: lam {best}, MSE {err.mean():.4f}, {seconds:.2f} s (sweep {sweep:.1f} s)", flush=True)
    total, cpu = time.perf_counter() - t_start, time.process_time() - cpu_start

    info = machine_info()
    write_json("baselines_check.json", {"machine": info, "args": vars(args), "lasso_grid": LASSO_GRID,
                                        "tv_grid": TV_GRID, "results": results, "total_seconds": total,
                                        "total_cpu_seconds": cpu, "load_average_1min": load})
    lines = [
        f"# Classical baselines on MNIST Gaussian CS, m = {args.m}", "",
        f"Command: `python benchmarks/baselines_check.py {' '.join(sys.argv[1:])}`".replace(" `", "`") + "  ",
        machine_line(info) + "  ",
        f"{args.n_test} test digits, one N(0, 1/m) matrix per digit, noise std 0.1/sqrt(m). lam picked on "
        f"{args.n_val} validation digits: Lasso (FISTA, {args.lasso_steps} steps, 1/2 ||Ax-y||^2 + lam||c||_1) over "
        f"{list(LASSO_GRID)}, wavelet {args.wavelet} with {args.levels} levels (28x28 zero-padded to a 32x32 "
        f"coefficient grid); TV (Chambolle-Pock, {args.tv_steps} steps, 1/2||Ax-y||^2 + lam TV(x), x in [0,1]) "
        f"over {list(TV_GRID)}. Time: wall time of the test-set solve, compiled; total with the sweeps {total:.0f} s "
        f"wall, {cpu:.0f} s CPU, machine load average {load:.1f} at the start.", "",
        "| method | lam | per-pixel MSE | PSNR (dB) | time (s) |", "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['lam']} | {r['mse']:.4f} ± {r['sem']:.4f} | {r['psnr']:.2f} | "
                     f"{r['seconds']:.2f} |")
    path = write_text("baselines_check.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
