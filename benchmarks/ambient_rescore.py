"""How much of a gap in IS / FD between two trained generators is the scores' own sampling noise?

``ambient_length.py`` scores each generator once: 500 samples drawn with one key (``jax.random.key(12345)``),
inception-style score (IS) and Frechet distance (FD) against the 500 test digits in the project's classifier
features. This script rescores saved generators with ``--draws`` sample sets - draw 0 is that same key, so it
reproduces the committed score; draw ``k >= 1`` uses ``fold_in(key(12345), k)`` - and reports mean, sd and range over
the draws, so a difference between two generators can be read against the spread of a single generator's score
(which comes from the samples only; seed-to-seed spread of training is on top of it).

    python benchmarks/ambient_rescore.py                   # the p = 0.5 generators at 64000 steps, 10 draws
    python benchmarks/ambient_rescore.py --ckpt "name=benchmarks/.ambient_length_long/clean_s0" --draws 5
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info, machine_line, saved_step, write_json, write_text  # noqa: E402

import genprior_jax as gp  # noqa: E402
from genprior_jax.sample_quality import mnist_classifier, sample_scores  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = [  # label=path of the p = 0.5 generators of ambient_length_{fresh_long,long}
    f"AmbientGAN, fresh draws, seed {s}=" + os.path.join(HERE, ".ambient_length_fresh_long", f"ambient_s{s}")
    for s in (0, 1, 2)] + [
    "(ii), fresh draws, seed 0=" + os.path.join(HERE, ".ambient_length_fresh_long", "unmeasure_s0")] + [
    f"(ii), fixed set, seed {s}=" + os.path.join(HERE, ".ambient_length_long", f"unmeasure_s{s}") for s in (0, 1)] + [
    "clean, seed 0=" + os.path.join(HERE, ".ambient_length_long", "clean_s0")]


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--ckpt", nargs="+", default=DEFAULT, metavar="LABEL=PATH",
                    help="generator checkpoints (DCGAN, as written by ambient_length.py) to rescore")
    ap.add_argument("--draws", type=int, default=10, help="sample sets per generator (draw 0: ambient_length's)")
    ap.add_argument("--n-samples", type=int, default=500)
    ap.add_argument("--prefix", default="ambient_rescore")
    args = ap.parse_args()
    if args.draws < 2:
        raise SystemExit(f"--draws must be >= 2 to give a spread; got {args.draws}")
    pairs = []
    for item in args.ckpt:
        label, sep, path = item.partition("=")
        if not sep or not os.path.isfile(os.path.join(path, "config.json")):
            raise SystemExit(f"--ckpt: expected LABEL=PATH of a saved generator, got {item!r}")
        pairs.append((label, path))
    info, t0 = machine_info(), time.perf_counter()
    clf = mnist_classifier(0)
    test = gp.load_mnist("test").images
    base = jax.random.key(12345)
    rows = []
    for label, path in pairs:
        step = saved_step(path)
        prior = gp.load_prior(path)
        per = [sample_scores(clf, np.asarray(prior.sample(base if k == 0 else jax.random.fold_in(base, k),
                                                          args.n_samples)), test) for k in range(args.draws)]
        v_is = np.array([p["inception_score"] for p in per])
        v_fd = np.array([p["frechet_distance"] for p in per])
        r = {"label": label, "path": os.path.relpath(path, os.path.dirname(HERE)), "step": step, "scores": per,
             "is_mean": float(v_is.mean()), "is_sd": float(v_is.std(ddof=1)), "fd_mean": float(v_fd.mean()),
             "fd_sd": float(v_fd.std(ddof=1)), "fd_range": [float(v_fd.min()), float(v_fd.max())]}
        rows.append(r)
        print(f"{label:32s} step {step}: IS {r['is_mean']:.2f} ± {r['is_sd']:.2f}, FD {r['fd_mean']:.1f} ± "
              f"{r['fd_sd']:.1f} (draw 0: {v_is[0]:.2f} / {v_fd[0]:.1f})", flush=True)
    command = f"python benchmarks/{os.path.basename(__file__)} " + " ".join(sys.argv[1:])
    seconds = round(time.perf_counter() - t0, 1)
    write_json(f"{args.prefix}.json", {"machine": info, "args": vars(args), "command": command, "rows": rows,
                                       "seconds": seconds})
    md = ["# Sampling noise of the IS / FD scores of trained generators", "", machine_line(info), "",
          f"Command: `{command.strip()}` ({seconds:.0f} s). Each generator scored on {args.draws} sets of "
          f"{args.n_samples} samples (draw 0 = `ambient_length.py`'s key, so its score is the committed one); IS = "
          "inception-style score of the project's MLP classifier (higher is better), FD = Frechet distance in its "
          "features to the 500 test digits (lower is better). The sd is over sample sets of one trained generator: "
          "the part of a score that is the metric's noise, not the training's.", "",
          "| generator | steps | IS mean ± sd | FD mean ± sd | FD range | draw 0 IS / FD |",
          "|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['label']} | {r['step']} | {r['is_mean']:.2f} ± {r['is_sd']:.2f} | {r['fd_mean']:.1f} ± "
                  f"{r['fd_sd']:.1f} | {r['fd_range'][0]:.1f} - {r['fd_range'][1]:.1f} | "
                  f"{r['scores'][0]['inception_score']:.2f} / {r['scores'][0]['frechet_distance']:.1f} |")
    write_text(f"{args.prefix}.md", "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
