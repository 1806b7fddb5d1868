"""PatchNR's defaults: quality and time of candidate settings against the previous defaults, on held-out photos.

    python benchmarks/patchnr_defaults.py --configs old=stride=2,num_steps=500 new=stride=4,num_steps=250
    python benchmarks/patchnr_defaults.py --configs new2=stride=3,num_steps=300 --merge   # add to the last table

Each config is ``NAME=key=value,...``: keyword arguments of ``gp.reconstruct(prior, key, y, op, method="patchnr",
...)`` on top of the method's defaults (ints, floats or strings). Problems: the evaluation photos of
``real_images.py`` (grey, 256x256 by default: coins, moon, and the grey astronaut; ``--images``), the tasks
``deblur-gauss-2`` and ``sr-x2`` with noise std 0.01 (``--tasks``; the operators of ``real_images.py``), one call
per image, the shipped ``patch-flow`` prior. Per config and task: mean PSNR, seconds per image (the first image's
call includes compiling), steps, final objective. Writes benchmarks/results/patchnr_defaults.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jax  # noqa: E402
import numpy as np  # noqa: E402
from _common import RESULTS, machine_info, machine_line, write_json, write_text  # noqa: E402

import genprior_jax as gp  # noqa: E402
from genprior_jax.data import skimage_image  # noqa: E402
from genprior_jax.metrics import psnr  # noqa: E402
from genprior_jax.operators import make_operator  # noqa: E402

TASKS = {"deblur-gauss-2": "blur:gaussian=2.0", "sr-x2": "sr:factor=2", "inpaint-random-60": "mask:missing=0.6"}


def parse_config(text: str) -> tuple[str, dict[str, Any]]:
    name, _, rest = text.partition("=")
    kw: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        for cast in (int, float):
            try:
                kw[k] = cast(v)
                break
            except ValueError:
                continue
        else:
            kw[k] = v
    return name, kw


def run_config(kw: dict[str, Any], prior: Any, images: dict[str, np.ndarray], tasks: list[str],
               noise: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for task in tasks:
        rows = []
        for i, (name, x) in enumerate(images.items()):
            op = make_operator(TASKS[task], jax.random.key(1), x.shape)
            y = gp.measure(jax.random.key(100 + i), op, x, gp.GaussianNoise(noise))
            t0 = time.perf_counter()
            rec = gp.reconstruct(prior, jax.random.key(7), y, op, method="patchnr", **kw)
            x_hat = np.asarray(jax.block_until_ready(rec.x))
            secs = time.perf_counter() - t0
            rows.append({"image": name, "psnr": float(psnr(x, np.clip(x_hat, 0, 1))), "seconds": secs,
                         "steps": int(np.asarray(rec.result.steps)),
                         "objective": float(np.asarray(rec.result.objective))})
            print(f"  {task} {name}: {rows[-1]['psnr']:.2f} dB, {secs:.1f} s", flush=True)
        out[task] = rows
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", required=True, help="NAME=key=value,... (module docstring)")
    ap.add_argument("--images", nargs="+", default=["coins", "moon", "astronaut"])
    ap.add_argument("--tasks", nargs="+", default=["deblur-gauss-2", "sr-x2"], choices=sorted(TASKS))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--merge", action="store_true", help="keep the configs of the last results file")
    args = ap.parse_args()
    images = {n: skimage_image(n, args.size, gray=True)
              for n in args.images}
    prior = gp.load_prior("patch-flow")
    path = os.path.join(RESULTS, "patchnr_defaults.json")
    results: dict[str, Any] = {}
    if args.merge and os.path.exists(path):
        with open(path) as fh:
            results = json.load(fh)["configs"]
    for text in args.configs:
        name, kw = parse_config(text)
        print(f"{name}: {kw}", flush=True)
        results[name] = {"kwargs": kw, "tasks": run_config(kw, prior, images, args.tasks, args.noise),
                         "machine": machine_info()}
    info = machine_info()
    write_json("patchnr_defaults", {"configs": results, "machine": info, "images": args.images, "size": args.size,
                                    "noise": args.noise})
    lines = [f"# PatchNR settings: quality and time on {len(args.images)} held-out grey photos at {args.size}x"
             f"{args.size}", "", machine_line(info), "",
             f"Command: `python benchmarks/patchnr_defaults.py --configs ...` (module docstring); images "
             f"{', '.join(args.images)}; noise std {args.noise}; `gp.reconstruct(..., method=\"patchnr\", **kwargs)`; "
             "seconds per image: mean over the images, the first call's compile included (``first``).", "",
             "| config | kwargs | task | PSNR (dB) | s / image | first call (s) | steps | objective |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        for task, rows in r["tasks"].items():
            kw = ", ".join(f"{k}={v}" for k, v in r["kwargs"].items())
            lines.append(f"| {name} | {kw} | {task} | {np.mean([q['psnr'] for q in rows]):.2f} | "
                         f"{np.mean([q['seconds'] for q in rows]):.1f} | {rows[0]['seconds']:.1f} | "
                         f"{max(q['steps'] for q in rows)} | {np.mean([q['objective'] for q in rows]):.4g} |")
    write_text("patchnr_defaults.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
