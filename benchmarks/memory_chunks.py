"""Peak memory of a CSGM solve with and without chunking (``run(..., batch_size=...)``), 1,000 vs 10,000 problems.

VAE prior (``load_prior("vae-mnist")``), one shared Gaussian CS matrix with m = 100, noise ||eta|| ~ 0.1,
Adam lr 0.01, lam 0.05, 20 steps, 1 restart: the point is memory, not accuracy. The measurements are those of the
500 test digits, tiled to N with fresh noise per copy. Each configuration runs in a fresh subprocess, which
reports its peak resident set size (``ru_maxrss``) before and after the solve, the solve's wall time (compile
included) and ``estimate_memory``'s figure for one compiled call.

    PYTHONPATH=. python benchmarks/memory_chunks.py            # ~2-4 minutes on 2 cores
    python benchmarks/memory_chunks.py --sizes 1000 --unchunked 1000   # smoke run

Writes benchmarks/results/memory_chunks.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info, machine_line, write_json, write_text  # noqa: E402

MB = 2**20


def rss_now() -> int:
    """Current resident set size in bytes (Linux /proc)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def rss_peak() -> int:
    """Peak resident set size of this process so far, in bytes (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker(n: int, batch_size: int | None, steps: int, restarts: int, m: int, seed: int) -> dict:
    """One configuration in this (fresh) process; returns its measurements."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import genprior_jax as gp
    from genprior_jax.operators import GaussianCS, noise_std_for_norm
    from genprior_jax.solvers import CSGMHyper, csgm_solver
    from genprior_jax.solvers.runner import estimate_memory

    prior = gp.load_prior("vae-mnist")
    x = jnp.asarray(gp.load_mnist("test").images)  # (500, 28, 28, 1)
    k_op, k_solve = jax.random.split(jax.random.key(seed))
    op = GaussianCS(k_op, prior.image_shape, m)  # one shared A: a matrix per problem would be 31 MB per 100
    clean = np.asarray(jax.vmap(op.mv)(x))
    y = np.random.default_rng(seed).standard_normal((n, m), dtype=np.float32)  # in place: one (n, m) array
    y *= np.float32(noise_std_for_norm(0.1, m))
    for i in range(0, n, len(clean)):
        y[i:i + len(clean)] += clean[: n - i]
    solver = csgm_solver(prior)
    hyper = CSGMHyper(lam=0.05, learning_rate=0.01, init_std=1.0)
    before_now, before_peak = rss_now(), rss_peak()

    t0 = time.perf_counter()
    res = gp.solvers.run(solver, k_solve, y, op, hyper, prior.params, num_steps=steps, num_restarts=restarts,
                         batch_size=batch_size)
    jax.block_until_ready(res)
    wall = time.perf_counter() - t0
    after_peak = rss_peak()
    mse = float(jnp.mean((res.x[: len(x)] - x[: min(n, len(x))]) ** 2))  # sanity only: 20 steps
    est = estimate_memory(solver, y, op, hyper, prior.params, num_steps=steps, num_restarts=restarts,
                          batch_size=batch_size)
    return {"n": n, "batch_size": batch_size, "peak_rss_before_solve": before_peak, "rss_before_solve": before_now,
            "peak_rss": after_peak, "solve_growth": after_peak - before_now, "wall_s": wall, "mse_first_500": mse,
            "ok": int(np.sum(np.asarray(res.status) == 0)),
            "result_bytes": sum(a.nbytes for a in jax.tree_util.tree_leaves(res)),
            "estimate": {"per_chunk": est.per_chunk, "per_element": est.per_element, "fixed": est.fixed,
                         "chunk": est.chunk, "source": est.source}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="problem counts, chunked")
    ap.add_argument("--unchunked", type=int, nargs="*", default=[1000, 10000], help="problem counts, one call")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--restarts", type=int, default=1)
    ap.add_argument("--m", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", type=str, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker is not None:  # the subprocess: "N BATCH" (BATCH 0 = unchunked)
        n, bs = (int(v) for v in args.worker.split())
        out = worker(n, bs or None, args.steps, args.restarts, args.m, args.seed)
        print("RESULT" + json.dumps(out))
        return

    configs = [(n, args.batch_size) for n in args.sizes] + [(n, 0) for n in args.unchunked]
    runs = []
    for n, bs in configs:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", f"{n} {bs}", "--steps", str(args.steps),
               "--restarts", str(args.restarts), "--m", str(args.m), "--seed", str(args.seed)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"worker {n} {bs} failed:\n{proc.stderr[-3000:]}")
        r = json.loads([line for line in proc.stdout.splitlines() if line.startswith("RESULT")][-1][6:])
        r["process_s"] = time.perf_counter() - t0
        runs.append(r)
        print(f"N={n:6d} batch_size={bs or 'none':>5}: peak RSS {r['peak_rss'] / MB:7.1f} MiB "
              f"(before the solve {r['rss_before_solve'] / MB:6.1f}), solve {r['wall_s']:.1f} s", flush=True)

    def pick(n: int, chunked: bool) -> dict | None:
        return next((r for r in runs if r["n"] == n and (r["batch_size"] is not None) == chunked), None)

    ratios = {}
    for chunked in (True, False):
        a, b = pick(min(args.sizes), chunked), pick(max(args.sizes), chunked)
        if a is not None and b is not None and a is not b:
            ratios["chunked" if chunked else "unchunked"] = b["peak_rss"] / a["peak_rss"] - 1.0

    info = machine_info()
    cmdline = "python benchmarks/memory_chunks.py " + " ".join(sys.argv[1:])
    write_json("memory_chunks.json", {"machine": info, "command": cmdline.strip(), "settings": vars(args),
                                      "runs": runs, "peak_rss_increase": ratios})
    lines = [
        "# Peak memory with and without chunking: CSGM, VAE prior, m = 100",
        "",
        f"Command: `{cmdline.strip()}`  ",
        machine_line(info) + "  ",
        f"{args.steps} Adam steps, {args.restarts} restart(s), lam 0.05, lr 0.01; one shared 100 x 784 Gaussian "
        "matrix; the 500 test digits' measurements tiled to N with fresh noise. Each row is a fresh process; peak "
        "RSS is `ru_maxrss` (whole process: Python, JAX, the prior, the data and the results); 'solve growth' is "
        "the peak minus the resident size just before the solve (it includes compiling and the results, whose size "
        "is listed: the x estimates alone are N x 784 float32). The estimate is `estimate_memory` for one "
        "compiled call (XLA buffer assignment: arguments + outputs + temporaries). Wall times (compilation "
        "included) are indicative only: the machine was shared.",
        "",
        "| N | batch_size | peak RSS (MiB) | RSS before solve (MiB) | solve growth (MiB) | results (MiB) "
        "| estimate per call (MiB) | solve wall (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(f"| {r['n']:,} | {r['batch_size'] or 'none (one call)'} | {r['peak_rss'] / MB:.1f} | "
                     f"{r['rss_before_solve'] / MB:.1f} | {r['solve_growth'] / MB:.1f} | "
                     f"{r['result_bytes'] / MB:.1f} | "
                     f"{r['estimate']['per_chunk'] / MB:.1f} | {r['wall_s']:.1f} |")
    lines.append("")
    for name, ratio in ratios.items():
        lines.append(f"Peak RSS, {name}: N = {max(args.sizes):,} vs {min(args.sizes):,}: {100 * ratio:+.1f} %.  ")
    lines.append("")
    path = write_text("memory_chunks.md", "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
