"""The seeds' CelebA setting in miniature: held-out ORL faces at 64x64, learned priors trained here vs baselines.

Data: ``python benchmarks/fetch_faces.py --out data/faces`` (people 1-32 train, 33-36 validate, 37-40 test: 40 test
faces, grey 92x112, centre-cropped to 92x92 and resized to 64x64 by ``crop_resize``, as training does). Priors, each
trained by its documented command (``--train`` runs them when a checkpoint is missing)::

    genprior-jax train vae   --data data/faces/train --validation data/faces/validation --size 64x64 --flip \\
        --steps 3000 --batch-size 32 --out priors/faces-vae
    genprior-jax train flow  --data data/faces/train --validation data/faces/validation --size 64x64 --flip \\
        --steps 3000 --batch-size 32 --out priors/faces-glow
    genprior-jax train dcgan --data data/faces/train --validation data/faces/validation --size 64x64 --flip \\
        --steps 3000 --batch-size 32 --out priors/faces-dcgan

``--n N`` keeps the first ``N`` shots of each test person, ``--csgm-restarts R`` lowers CSGM's restarts (a CSGM
solve of 40 faces x 10 restarts x 1000 Adam steps through a 64x64 conv decoder takes ~10 min here).

Tasks: Gaussian CS ``gaussian:m=M`` for M in 200, 500, 1000, 2000 (n = 4096) and a centred box covering 30 % of the
image (``box:size=35``), noise std 0.01 per entry. Methods (library defaults, ``gp.reconstruct`` through
``reconstruct_images``): Lasso-DCT, TV, DIP, VAE-CSGM (``csgm``), Glow (``asim``), DCGAN-CSGM (``csgm``). Every row
reports PSNR / SSIM (means over the test faces), the converged fraction, the mean final objective and seconds per
image. Writes ``benchmarks/results/faces[_quick].{md,json}`` and a grid per task.

    python benchmarks/faces.py --train      # trains missing priors (hours on 2 cores), then the table
    python benchmarks/faces.py --quick      # 4 faces, m = 1000 and the box, few steps: a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info, machine_line, write_json, write_text  # noqa: E402

from genprior_jax.data import load_image_files  # noqa: E402
from genprior_jax.operators import make_operator  # noqa: E402
from genprior_jax.priors import load_prior  # noqa: E402
from genprior_jax.reconstruction import reconstruct_images  # noqa: E402

TASKS = ["gaussian:m=200", "gaussian:m=500", "gaussian:m=1000", "gaussian:m=2000", "box:size=35"]
METHODS = [("lasso-dct", None), ("tv", None), ("dip", None), ("csgm", "faces-vae"), ("asim", "faces-glow"),
           ("csgm", "faces-dcgan")]
TRAIN = {"faces-vae": "vae", "faces-glow": "flow", "faces-dcgan": "dcgan"}


def train_missing(priors: str, data: str, steps: int) -> None:
    for name, model in TRAIN.items():
        out = os.path.join(priors, name)
        if os.path.isfile(os.path.join(out, "config.json")):
            continue
        cmd = [sys.executable, "-m", "genprior_jax", "train", model, "--data", os.path.join(data, "train"),
               "--validation", os.path.join(data, "validation"), "--size", "64x64", "--flip", "--steps", str(steps),
               "--batch-size", "32", "--out", out]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)


def write_results(args: argparse.Namespace, names: list[str], rows: list[dict[str, object]]) -> None:
    """The table so far (written after every task, so an interrupted run keeps what it measured)."""
    suffix = "_quick" if args.quick else ""
    info = machine_info()
    out = {"machine": info, "test_faces": names, "noise": args.noise, "rows": rows,
           "command": "python " + " ".join(sys.argv)}
    priors = []
    for name in TRAIN:
        cfg = os.path.join(args.priors, name, "config.json")
        if os.path.isfile(cfg):
            with open(cfg) as fh:
                meta = json.load(fh)["metadata"]
            val = meta["metrics"]
            priors.append(f"{name}: step {meta['step']} of `{meta['command']}`, validation {val['val_loss']:.4g} "
                          f"{val['loss_unit']}")
    out["priors"] = priors
    write_json(f"faces{suffix}.json", out)
    lines = [f"# ORL faces at 64x64: learned priors vs baselines{' (quick)' if args.quick else ''}", "",
             f"`{out['command']}`; {len(names)} test faces (people 37-40), noise {args.noise}; {machine_line(info)}",
             "", "Priors (trained here on people 1-32 with flips, validated on 33-36; checkpoint = best validation, "
             "latest for the DCGAN):", "", *[f"- {p}" for p in priors],
             "", "| task | method | prior | PSNR dB | SSIM | converged | mean objective | s / image |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| `{r['task']}` | {r['method']} | {r['prior'] or '-'} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
              f"{r['converged']:.2f} | {r['objective']:.4g} | {r['seconds_per_image']:.2f} |" for r in rows]
    write_text(f"faces{suffix}.md", "\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/faces")
    ap.add_argument("--priors", default="priors")
    ap.add_argument("--train", action="store_true", help="train the priors that are missing first")
    ap.add_argument("--train-steps", type=int, default=3000)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--csgm-restarts", type=int, default=None,
                    help="num_restarts of csgm (default: the library's 10; fewer on a 2-core CPU)")
    ap.add_argument("--n", type=int, default=None, help="the first N faces of each test person (default: all 10)")
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.train:
        train_missing(args.priors, args.data, args.train_steps)
    files = load_image_files(os.path.join(args.data, "test"), (64, 64), gray=True)
    if args.n is not None:  # files are sNN_KK: the first N shots of each of the 4 test people
        files = [f for f in files if int(f[0].split("_")[1].split(".")[0]) <= args.n]
    if args.quick:
        files = files[:4]
    names, images = [n for n, _ in files], np.stack([img for _, img in files])
    tasks = ["gaussian:m=1000", "box:size=35"] if args.quick else TASKS
    steps = {"steps": 20} if args.quick else {}
    rows = []
    print(f"{len(images)} test faces, tasks {tasks}", flush=True)
    for task in tasks:
        k_op, k_run = jax.random.split(jax.random.fold_in(jax.random.key(args.seed), TASKS.index(task)))
        op = make_operator(task, k_op, images.shape[1:])
        for method, prior_name in METHODS:
            prior = None
            if prior_name is not None:
                path = os.path.join(args.priors, prior_name)
                if not os.path.isdir(path):
                    print(f"skip {method} {prior_name}: no checkpoint at {path} (run with --train)", flush=True)
                    continue
                prior = load_prior(path)
            t0 = time.perf_counter()
            extra = {"restarts": args.csgm_restarts} if method == "csgm" and args.csgm_restarts else {}
            r = reconstruct_images(method, images, op, k_run, prior=prior, noise=args.noise, progress=False, **steps,
                                   **extra)
            seconds = time.perf_counter() - t0
            m = r["metrics"]
            rows.append({"task": task, "method": method, "prior": prior_name, "psnr": float(np.nanmean(m["psnr"])),
                         "ssim": float(np.nanmean(m["ssim"])), "converged": float(np.mean(r["converged"])),
                         "objective": float(np.nanmean(r["objective"])), "seconds_per_image": seconds / len(images)})
            print(rows[-1], flush=True)
        write_results(args, names, rows)
if __name__ == "__main__":
    main()
