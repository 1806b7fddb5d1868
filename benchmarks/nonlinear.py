"""Non-linear measurements, MRI and tomography on held-out MNIST digits.

Part 1 (non-linear, VAE prior, CSGM with the operator's own data loss): phase retrieval ``y = |A x + eta|``
with A of N(0, 1/m) entries, and 1-bit CS ``y = sign(A x + eta)`` (logistic surrogate loss), noise std
0.1/sqrt(m) per entry, vs m; per-pixel MSE and PSNR. Baseline: the all-zero image's error (no classical method
recovers from |Ax| or sign(Ax) without extra structure).

Part 2 (linear, noise std 0.01 per entry): subsampled Fourier (MRI, variable-density masks at several sampling
rates) and parallel-beam tomography (several angle counts): the flow prior (Asim et al.: L-BFGS, z0 = 0,
gamma = lam = 0), the VAE prior (CSGM, lam 0.05: the earlier runs' 0.1 against the data term ||A x - y||^2, now
halved), and TV-regularized least squares (PDHG) with lam tuned on validation digits.

    python benchmarks/nonlinear.py [--quick] [--parts nonlinear linear] [--n 50]

Writes benchmarks/results/nonlinear.{md,json} and nonlinear_<operator>.png grids.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import RESULTS, machine_info, machine_line, write_json, write_text  # noqa: E402

import genprior_jax as gp  # noqa: E402
from genprior_jax.operators import make_operator, measure  # noqa: E402
from genprior_jax.plotting import save_grid  # noqa: E402
from genprior_jax.solvers import backproject_batch, tv  # noqa: E402

SHAPE = (28, 28, 1)
TV_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)


def observe(key: jax.Array, spec: str, x: np.ndarray, sigma: float) -> tuple[Any, jax.Array]:
    k_op, k_noise = jax.random.split(key)
    op = make_operator(spec, k_op, SHAPE)
    y = measure(k_noise, op, jnp.asarray(x), sigma)  # the batch: one key per image
    return op, y


def scores(x: np.ndarray, x_hat: Any) -> dict[str, float]:
    x_hat = np.clip(np.asarray(x_hat), 0, 1)
    return {"mse": float(np.nanmean(np.asarray(gp.mse(x, x_hat)))),
            "psnr": float(np.nanmean(np.asarray(gp.psnr(x, x_hat))))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50, help="held-out test digits")
    ap.add_argument("--n-val", type=int, default=20, help="validation digits for TV's lam")
    ap.add_argument("--parts", nargs="+", default=["nonlinear", "linear"], choices=["nonlinear", "linear"])
    ap.add_argument("--phase-ms", type=int, nargs="+", default=[100, 200, 400, 800])
    ap.add_argument("--onebit-ms", type=int, nargs="+", default=[100, 200, 400, 800])
    ap.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.25, 0.5])
    ap.add_argument("--angles", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--steps", type=int, default=1000, help="CSGM Adam steps (VAE)")
    ap.add_argument("--restarts", type=int, default=10)
    ap.add_argument("--flow-steps", type=int, default=30, help="L-BFGS steps (flow)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    prefix = "nonlinear"
    if args.quick:
        args.n, args.n_val, args.steps, args.restarts, args.flow_steps = 4, 4, 20, 2, 3
        args.phase_ms, args.onebit_ms, args.rates, args.angles = [200], [200], [0.25], [8]
        prefix = "nonlinear_quick"
    command = " ".join(["python benchmarks/nonlinear.py", *sys.argv[1:]])
    x = gp.load_mnist("test", n=args.n).images
    x_val = gp.load_mnist("validation", n=args.n_val).images
    vae = gp.load_prior("vae-mnist")
    key = jax.random.key(args.seed)
    rows: list[dict[str, Any]] = []
    t_all = time.perf_counter()

    def record(part: str, spec: str, method: str, res_x: Any, secs: float, extra: dict[str, Any] | None = None,
               status: Any = None) -> np.ndarray:
        row = {"part": part, "operator": spec, "method": method, **scores(x, res_x), "seconds": secs,
               "nonfinite": int((np.asarray(status) != 0).sum()) if status is not None else 0, **(extra or {})}
        rows.append(row)
        tqdm.write(f"{spec:>24} {method:<10} MSE {row['mse']:.4f}  PSNR {row['psnr']:.2f}  ({secs:.0f} s)")
        return np.clip(np.asarray(res_x), 0, 1)

    def vae_csgm(k: jax.Array, y: jax.Array, op: Any) -> tuple[Any, float, Any]:
        t0 = time.perf_counter()
        # lam 0.05 on the data term 1/2 loss: the runs before it wrote 0.1 against the unhalved loss (same objective)
        res = jax.block_until_ready(gp.csgm(vae, k, y, op, lam=0.05, num_steps=args.steps,
                                            num_restarts=args.restarts))
        return res.x, time.perf_counter() - t0, res.status

    if "nonlinear" in args.parts:
        specs = [f"phase:m={m}" for m in args.phase_ms] + [f"onebit:m={m}" for m in args.onebit_ms]
        for spec in tqdm(specs, desc="non-linear"):
            m = int(spec.split("=")[1])
            op, y = observe(jax.random.fold_in(key, zlib.crc32(spec.encode()) % 2**31), spec, x, 0.1 / m**0.5)
            record("nonlinear", spec, "zero image", np.zeros_like(x), 0.0)
            x_hat, secs, status = vae_csgm(jax.random.fold_in(key, 1), y, op)
            got = record("nonlinear", spec, "VAE", x_hat, secs, status=status)
            if spec in (specs[len(args.phase_ms) // 2], specs[len(args.phase_ms) + len(args.onebit_ms) // 2]):
                save_grid({"truth": x[:8], "VAE": got[:8]}, os.path.join(RESULTS, f"{prefix}_{spec.split(':')[0]}.png"),
                          title=f"{spec}: CSGM with the VAE prior")

    if "linear" in args.parts:
        flow = gp.load_prior("glow-mnist")
        specs = [f"fourier:rate={r}" for r in args.rates] + [f"radon:angles={a}" for a in args.angles]
        for spec in tqdm(specs, desc="MRI / CT"):
            k_spec = jax.random.fold_in(key, zlib.crc32(spec.encode()) % 2**31)
            op, y = observe(k_spec, spec, x, 0.01)
            _, y_val = observe(k_spec, spec, x_val, 0.01)
            t0 = time.perf_counter()
            val = {lam: scores(x_val, tv(key, y_val, op, lam=lam, num_steps=500).x)["mse"] for lam in TV_GRID}
            lam = min(val, key=val.get)
            res = jax.block_until_ready(tv(key, y, op, lam=lam, num_steps=500))
            grid = {"truth": x[:8], "A^+ y": np.asarray(backproject_batch(y[:8], op))}  # A^T y is off-scale for CT
            grid["TV"] = record("linear", spec, "TV", res.x, time.perf_counter() - t0, {"lam": lam}, res.status)[:8]
            x_hat, secs, status = vae_csgm(jax.random.fold_in(key, 2), y, op)
            grid["VAE"] = record("linear", spec, "VAE", x_hat, secs, status=status)[:8]
            t0 = time.perf_counter()
            res = jax.block_until_ready(gp.asim(flow, key, y, op, num_steps=args.flow_steps))
            grid["Flow"] = record("linear", spec, "Flow", res.x, time.perf_counter() - t0, status=res.status)[:8]
            save_grid(grid, os.path.join(RESULTS, f"{prefix}_{spec.replace(':', '_').replace('=', '')}.png"),
                      title=f"{spec}, noise std 0.01")

    total = time.perf_counter() - t_all
    info = machine_info()
    write_json(f"{prefix}.json", {"command": command, "machine": info, "args": vars(args), "rows": rows,
                                  "total_seconds": total})
    lines = ["# Non-linear measurements, MRI and tomography on MNIST", "", f"Command: `{command}`  ",
             machine_line(info) + "  ",
             f"{args.n} held-out test digits. VAE: CSGM, Adam lr 0.01, {args.steps} steps, {args.restarts} restarts, "
             f"lam 0.05, data term = 1/2 the operator's loss (squared residual; logistic surrogate for 1-bit). Flow: "
             f"glow-mnist, L-BFGS {args.flow_steps} steps, z0 = 0, lam = 0. TV: PDHG 500 steps, lam picked on "
             f"{args.n_val} validation digits from {list(TV_GRID)}. Noise std: 0.1/sqrt(m) (phase, 1-bit, before "
             f"the modulus / sign), 0.01 (MRI, CT). Total {total:.0f} s.", "",
             "| operator | method | MSE/pixel | PSNR dB | seconds | note |", "|---|---|---|---|---|---|"]
    for r in rows:
        note = f"lam {r['lam']}" if "lam" in r else ("" if not r["nonfinite"] else f"{r['nonfinite']} non-finite")
        lines.append(f"| `{r['operator']}` | {r['method']} | {r['mse']:.4f} | {r['psnr']:.2f} | {r['seconds']:.0f} "
                     f"| {note} |")
    lines += ["", "Grids: " + ", ".join(f"[{f}]({f})" for f in sorted(os.listdir(RESULTS))
                                     if f.startswith(f"{prefix}_") and f.endswith(".png")) + ".",
              "", "The adversarial-defense table (range projection before a classifier, with adaptive attacks) is "
              "[defense_mnist.md](defense_mnist.md), from `python benchmarks/defense_mnist.py`."]
    text = "\n".join(lines) + "\n"
    write_text(f"{prefix}.md", text)
    print(text)


if __name__ == "__main__":
    main()
