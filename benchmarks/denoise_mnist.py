"""Denoising held-out MNIST digits: generative priors vs BM3D and TV (the GlowIP denoising table, on MNIST).

``y = x + sigma * eps`` with sigma in {0.05, 0.1, 0.2} (known). Methods:

- noisy input;
- Flow (Asim et al.): ``min_z 1/2 ||G(z) - y||^2 + lam ||z||^2``, L-BFGS from ``z0 = 0`` solved to convergence
  (``gp.asim``'s defaults; ``--flow-steps N`` for a fixed count, as the earlier runs' 20), lam
  picked on validation digits from a small grid (GlowIP sweeps its gamma for denoising; the grid is the earlier
  runs' gamma grid 0, 0.003, 0.01, 0.03 against ``||G(z) - y||^2``, halved: the same objectives). Not from
  ``z0 = E(y)``: a noisy digit is far out of the flow's distribution, ``E(y)`` has entries ~20 and ``G(E(y))``
  overflows to NaN in float32 (the sigmoid-scaled couplings divide by scales near 0 on the way back);
- VAE and DCGAN: Bayesian MAP over the latent with the known sigma (Adam, restarts);
- BM3D (the ``bm3d`` package, known sigma);
- TV (Chambolle–Pock), lam picked on validation digits.

    python benchmarks/denoise_mnist.py [--quick] [--n 50]

Writes benchmarks/results/denoise_mnist.{md,json} and denoise_mnist_sigma<s>.png grids.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import RESULTS, machine_info, machine_line, write_json, write_text  # noqa: E402

import genprior_jax as gp  # noqa: E402
from genprior_jax.operators import Identity, measure  # noqa: E402
from genprior_jax.plotting import save_grid  # noqa: E402

SHAPE = (28, 28, 1)
# asim's lam on the data term 1/2 ||G(z) - y||^2: the earlier runs' (and GlowIP's) gamma grid (0, 0.003, 0.01, 0.03)
# halved, the same objectives
FLOW_LAM_GRID = (0.0, 0.0015, 0.005, 0.015)
TV_GRID = (0.01, 0.03, 0.1, 0.3)
METHODS = ("noisy", "Flow", "VAE", "DCGAN", "BM3D", "TV")


def psnr(x: np.ndarray, x_hat: Any) -> float:
    return float(np.nanmean(np.asarray(gp.psnr(x, np.clip(np.asarray(x_hat), 0, 1)))))


def ssim(x: np.ndarray, x_hat: Any) -> float:
    return float(np.nanmean(np.asarray(gp.ssim(x, np.clip(np.asarray(x_hat), 0, 1)))))


def tuned(solve: Callable[[Any, Any], Any], grid: tuple[float, ...], x_val: np.ndarray, y_val: Any) -> float:
    """The grid value with the best validation PSNR."""
    scores = {v: psnr(x_val, solve(y_val, v)) for v in grid}
    return max(scores, key=scores.get)


def title(args: argparse.Namespace) -> str:
    """The results file's title, with what tells this run from the others: digits, noise levels, the flow's
    stopping rule."""
    flow = ""
    if "Flow" in args.methods:
        flow = f", flow {args.flow_steps} L-BFGS steps" if args.flow_steps else ", flow to convergence"
    return (f"Denoising MNIST: PSNR (dB) / SSIM of generative priors vs BM3D and TV ({args.n} digits, sigma "
            + ", ".join(f"{s:g}" for s in args.sigmas) + f"{flow})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50, help="held-out test digits")
    ap.add_argument("--n-val", type=int, default=20, help="validation digits for the Flow's and TV's lam")
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--steps", type=int, default=1000, help="Adam steps (VAE, DCGAN MAP)")
    ap.add_argument("--restarts", type=int, default=4)
    ap.add_argument("--flow-steps", type=int, default=None,
                    help="a fixed L-BFGS iteration count (default: gp.asim's, to its tolerance)")
    ap.add_argument("--out-prefix", default="denoise_mnist", help="results file names (a partial run: another one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    prefix = args.out_prefix
    if args.quick:
        args.n, args.n_val, args.steps, args.restarts, args.flow_steps, args.sigmas = 4, 4, 20, 1, 2, [0.1]
        prefix = "denoise_mnist_quick"
    command = "python benchmarks/denoise_mnist.py " + " ".join(sys.argv[1:])
    x = gp.load_mnist("test", n=args.n).images
    x_val = gp.load_mnist("validation", n=args.n_val).images
    op = Identity(SHAPE)
    key = jax.random.key(args.seed)
    priors = {name: gp.load_prior(p) for name, p in (("Flow", "glow-mnist"), ("VAE", "vae-mnist"),
                                                      ("DCGAN", "dcgan-mnist")) if name in args.methods}
    results: dict[str, dict[str, dict[str, Any]]] = {}
    t_all = time.perf_counter()
    for sigma in args.sigmas:
        k_sigma = jax.random.fold_in(key, int(round(sigma * 1000)))
        k_y, k_v, k_solve = jax.random.split(k_sigma, 3)
        noisy = lambda k, xs: measure(k, op, jnp.asarray(xs), gp.GaussianNoise(sigma))  # noqa: E731
        y, y_val = noisy(k_y, x), noisy(k_v, x_val)
        per: dict[str, dict[str, Any]] = {}
        grid: dict[str, np.ndarray] = {"truth": x[:8]}

        def record(name: str, x_hat: Any, secs: float, **extra: Any) -> None:
            per[name] = {"psnr": psnr(x, x_hat), "ssim": ssim(x, x_hat), "seconds": secs, **extra}
            grid[name] = np.clip(np.asarray(x_hat)[:8], 0, 1)
            tqdm.write(f"sigma {sigma}: {name:<6} PSNR {per[name]['psnr']:.2f}  SSIM {per[name]['ssim']:.3f}  "
                       f"({secs:.0f} s) {extra or ''}")

        for name in tqdm(args.methods, desc=f"sigma {sigma}"):
            t0 = time.perf_counter()
            if name == "noisy":
                record(name, y, 0.0)
            elif name == "Flow":
                flow = priors[name]

                def solve_flow(yy: Any, lam: float) -> Any:
                    return flow_result(yy, lam).x

                def flow_result(yy: Any, lam: float) -> Any:
                    if args.flow_steps is None:
                        return gp.asim(flow, k_solve, yy, op, lam=lam)
                    return gp.asim(flow, k_solve, yy, op, lam=lam, num_steps=args.flow_steps, tol=None)

                lam = tuned(solve_flow, FLOW_LAM_GRID, x_val, y_val)
                res = flow_result(y, lam)
                record(name, res.x, time.perf_counter() - t0, lam=lam,
                       objective=float(np.nanmean(np.asarray(res.objective))),
                       converged=float(np.mean(np.asarray(res.converged))),
                       steps=float(np.mean(np.asarray(res.steps))))
            elif name in ("VAE", "DCGAN"):
                res = gp.map_estimate(priors[name], k_solve, y, op, noise=gp.GaussianNoise(sigma), num_steps=args.steps,
                                      num_restarts=args.restarts, learning_rate=0.02)
                record(name, res.x, time.perf_counter() - t0, nonfinite=int((np.asarray(res.status) != 0).sum()))
            elif name == "BM3D":
                record(name, gp.bm3d_denoise(np.asarray(y), sigma), time.perf_counter() - t0)
            else:
                def solve_tv(yy: Any, lam: float) -> Any:
                    return gp.tv(k_solve, yy, op, lam=lam * sigma**2 / 0.01, num_steps=300).x

                lam = tuned(solve_tv, TV_GRID, x_val, y_val)
                record(name, solve_tv(y, lam), time.perf_counter() - t0, lam=lam * sigma**2 / 0.01)
        results[str(sigma)] = per
        save_grid(grid, os.path.join(RESULTS, f"{prefix}_sigma{sigma}.png"), title=f"denoising, sigma {sigma}")
    total = time.perf_counter() - t_all
    info = machine_info()
    write_json(f"{prefix}.json", {"command": command, "machine": info, "args": vars(args), "results": results,
                                  "total_seconds": total})
    sigmas = list(results)
    lines = [f"# {title(args)}", "", f"Command: `{command}`  ",
             machine_line(info) + "  ",
             f"{args.n} held-out test digits, y = x + sigma eps (sigma known). Flow: glow-mnist, Asim et al. "
             f"z-space MAP, L-BFGS "
             f"{'to convergence (gp.asim defaults)' if args.flow_steps is None else f'{args.flow_steps} steps'} "
             f"from z0 = 0, lam from {list(FLOW_LAM_GRID)} (data term 1/2 ||G(z) - y||^2; the earlier runs' gamma "
             "grid halved) "
             f"picked on {args.n_val} validation digits. VAE / DCGAN: MAP over the latent with the known sigma "
             f"(Adam lr 0.02, {args.steps} steps, {args.restarts} restarts). BM3D: `bm3d` 4.0.3 with the known "
             f"sigma. TV: Chambolle-Pock 300 steps, lam (scaled with sigma^2) picked on the validation digits. "
             f"Total {total:.0f} s.", "",
             "| method | " + " | ".join(f"sigma {s}" for s in sigmas) + " |",
             "|---|" + "---|" * len(sigmas)]
    for name in args.methods:
        cells = [f"{results[s][name]['psnr']:.2f} / {results[s][name]['ssim']:.3f}" for s in sigmas]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "Flow" in args.methods:
        lines += ["", "Flow solves (test digits): " + "; ".join(
            f"sigma {s}: final objective {results[s]['Flow']['objective']:.4g}, converged "
            f"{results[s]['Flow']['converged']:.2f}, mean L-BFGS iterations {results[s]['Flow']['steps']:.0f}"
            for s in sigmas)]
    lines += ["", "Picked: " + "; ".join(f"sigma {s}: " + ", ".join(
        f"{n} {k} {v:.3g}" for n, r in results[s].items() for k, v in r.items() if k in ("gamma", "lam"))
        for s in sigmas), "",
        "GlowIP (CelebA 64x64) for reference, sigma 0.05 / 0.1 / 0.2: Glow 34.04 / 30.48 / 27.09, BM3D 33.95 / 29.93 / "
        "25.16, noisy 26.22 / 20.49 / 15.05 dB.", ""]
    text = "\n".join(lines)
    write_text(f"{prefix}.md", text)
    print(text)


if __name__ == "__main__":
    main()
