"""Batched TV solves vs a loop of single solves: time per image, compilation excluded.

``gp.tv(key, y_batch, op)`` (one compiled, vmapped call for the batch) against ``[gp.tv(key, y[i], op) for i]`` (one
compiled single solve, called B times), on the same measurements, with the same number of PDHG steps and no
tolerance (and, with ``--tol``, at 28x28 also with a tolerance, where the objective is read every step). Both
variants run once to compile, then ``--reps`` times interleaved; the table gives the median time per image.
Configurations: 28x28x1 (MNIST-sized, random images in [0, 1]) with B = 32 and 256x256x3 with B = 4 and 8, for the
identity (denoising), random-pixel inpainting (60 % missing), a Gaussian blur (sigma 1, 7x7, zero boundary) and, at
28x28, Gaussian CS with m = 100.

``gp.tv`` streams a batch with ``batch_size="auto"`` by default (one 256x256x3 image per compiled call, a whole
28x28 batch in one): the "batched" column is that default call.

Before the fix a batch was 2-6x slower per image than the loop on a 2-core EPYC: XLA:CPU (jax 0.10) handed the
batched reductions of the TV dual projection (``sum(r**2, axis=-1)`` over the length-2 gradient axis) and of
the TV norm to its YNNPACK reduce fusion, which is 10-60x slower than XLA's own loops on those shapes
(:func:`genprior_jax.transforms.finite_diff.pair_norm`).

    PYTHONPATH=. python benchmarks/tv_batch.py            # ~3 minutes on 2 cores
    PYTHONPATH=. python benchmarks/tv_batch.py --quick    # 28x28 only, fewer steps

Writes benchmarks/results/tv_batch.md (``--quick``: tv_batch_quick.md; ``--out NAME``: NAME.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info, machine_line, write_text  # noqa: E402


def operators(shape: tuple[int, int, int]) -> dict:
    import jax

    from genprior_jax.operators import Blur, GaussianCS, Identity, RandomMask

    key = jax.random.key(0)
    ops = {"identity": Identity(shape), "inpaint-60": RandomMask(key, shape, 0.6),
           "blur-gauss-1": Blur.gaussian(shape, 1.0)}
    if shape[0] * shape[1] * shape[2] <= 1024:
        ops["gaussian-cs-100"] = GaussianCS(key, shape, 100)
    return ops


def measure(shape: tuple[int, int, int], batch: int, steps: int, reps: int, tol: float | None) -> list[dict]:
    """Median seconds per image of the batched call and of the loop, for each operator at this size."""
    import jax
    import numpy as np

    import genprior_jax as gp

    key = jax.random.key(0)
    x = jax.random.uniform(jax.random.key(1), (batch, *shape))
    rows = []
    for name, op in operators(shape).items():
        y = jax.vmap(op.mv)(x)
        kw = {"lam": 0.02, "num_steps": steps, "tol": tol}

        def batched(y=y, op=op, kw=kw) -> None:
            jax.block_until_ready(gp.tv(key, y, op, **kw).x)

        def loop(y=y, op=op, kw=kw) -> None:
            for i in range(batch):
                jax.block_until_ready(gp.tv(key, y[i], op, **kw).x)

        batched(), loop()  # compile both
        tb, tl = [], []
        for _ in range(reps):
            for fn, acc in ((batched, tb), (loop, tl)):
                t0 = time.perf_counter()
                fn()
                acc.append(time.perf_counter() - t0)
        b, lp = float(np.median(tb)) / batch, float(np.median(tl)) / batch
        rows.append({"shape": shape, "batch": batch, "op": name, "steps": steps, "tol": tol, "batched_ms": 1e3 * b,
                     "loop_ms": 1e3 * lp, "ratio": b / lp})
        print(f"{'x'.join(map(str, shape)):>9} B={batch:2d} {name:16s} tol={tol}: batched {1e3 * b:8.2f} ms/image, "
              f"loop {1e3 * lp:8.2f} ms/image, ratio {b / lp:.2f}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="28x28 only, 100 steps, 2 repetitions")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tol", action="store_true", help="also time 28x28 with a tolerance (tol=1e-6, check_every 10)")
    ap.add_argument("--out", type=str, default=None, help="result file name without .md")
    args = ap.parse_args()

    import genprior_jax

    configs = [((28, 28, 1), 32, 100 if args.quick else 500)]
    if not args.quick:
        configs += [((256, 256, 3), 4, 50), ((256, 256, 3), 8, 50)]
    reps = 2 if args.quick else args.reps
    rows = []
    for shape, batch, steps in configs:
        rows += measure(shape, batch, steps, reps, None)
        if args.tol and shape[0] <= 28:  # with a tolerance the old code took minutes at 256x256
            rows += measure(shape, batch, steps, reps, 1e-6)

    info = machine_info()
    cmdline = ("python benchmarks/tv_batch.py " + " ".join(sys.argv[1:])).strip()
    lines = [
        "# Batched TV (PDHG) vs a loop of single solves: time per image"
        + (", with and without a tolerance" if args.tol else ", fixed step count"),
        "",
        f"Command: `{cmdline}`  ",
        machine_line(info) + "  ",
        f"genprior_jax imported from `{os.path.dirname(genprior_jax.__file__)}`.  ",
        f"lam 0.02, default step ratio, box constraint; median of {reps} interleaved repetitions after one "
        "compiling call each; random images in [0, 1]. 'loop' calls the compiled single solve B times. The "
        "machine was shared with a training job: absolute times are noisy, the ratio within a row is the point.",
        "",
        "| image | B | operator | steps | tol | batched (ms / image) | loop (ms / image) | batched / loop |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {'x'.join(map(str, r['shape']))} | {r['batch']} | {r['op']} | {r['steps']} | "
                     f"{r['tol'] if r['tol'] is not None else 'none'} | {r['batched_ms']:.2f} | "
                     f"{r['loop_ms']:.2f} | {r['ratio']:.2f} |")
    lines.append("")
    name = args.out or ("tv_batch_quick" if args.quick else "tv_batch")
    path = write_text(f"{name}.md", "\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
