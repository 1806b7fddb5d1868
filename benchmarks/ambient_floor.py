"""What each AmbientGAN baseline trains on, scored like a generator: the "data floor" of every mode.

A GAN trained on a data set can at best reproduce that set's distribution, so the inception-style score and the
Frechet distance of the **training data itself** (against the 500 held-out test digits, the same classifier, the
same 500-sample size as the generator scores of ``ambient_mnist.py`` / ``ambient_length.py``) bound what each mode
can reach:

- ``clean``: the clean training digits (the floor of the clean DCGAN and, in the limit, of the AmbientGAN, whose
  generator makes clean images);
- ``ignore`` (baseline i): the measurements themselves (clipped to ``[0, 1]``, the range of a generator);
- ``unmeasure`` (baseline ii): the measurements inverted by TV (:func:`~genprior_jax.training.ambient.unmeasure`,
  the TV weight tuned on clean validation digits exactly as the baseline's training does).

Where the unmeasured data score close to the clean data, baseline (ii) is trained on nearly clean digits and the
AmbientGAN can only beat it by less than the generators' own distance from their training data.

    python benchmarks/ambient_floor.py            # block-pixels p in {0.1, 0.5, 0.8, 0.9} and blur + noise (~2 min)
    python benchmarks/ambient_floor.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info, machine_line, write_json, write_text  # noqa: E402

import genprior_jax as gp  # noqa: E402
from genprior_jax.operators import parse_measurement  # noqa: E402
from genprior_jax.sample_quality import mnist_classifier, sample_scores  # noqa: E402
from genprior_jax.training.ambient import measure_dataset, measurement_keys, tune_unmeasure, unmeasure  # noqa: E402

SPECS = ["block-pixels:p=0.1", "block-pixels:p=0.5", "block-pixels:p=0.8", "block-pixels:p=0.9",
         "blur:gaussian=1.0,noise=0.1"]


def scored(clf: Any, x: np.ndarray, test: np.ndarray, size: int) -> dict[str, Any]:
    """Scores of each disjoint ``size``-subset of ``x``: means, sds and the per-subset values."""
    per = [sample_scores(clf, x[i:i + size], test) for i in range(0, len(x) - size + 1, size)]
    out: dict[str, Any] = {"n_subsets": len(per)}
    for k in ("inception_score", "frechet_distance"):
        v = np.array([p[k] for p in per])
        out[k] = float(v.mean())
        out[k + "_sd"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--specs", nargs="+", default=SPECS)
    ap.add_argument("--n", type=int, default=2000, help="training digits used (disjoint subsets of --size)")
    ap.add_argument("--size", type=int, default=500, help="images per score (the generators' sample size)")
    ap.add_argument("--prefix", default="ambient_floor")
    ap.add_argument("--quick", action="store_true", help="smoke run: block-pixels p = 0.5, 500 digits (~30 s)")
    args = ap.parse_args()
    if args.quick:
        args.specs, args.n, args.prefix = ["block-pixels:p=0.5"], args.size, f"{args.prefix}_quick"
    if args.n < args.size or args.size < 50:
        raise SystemExit(f"expected --n >= --size >= 50; got {args.n}, {args.size}")
    info, t0 = machine_info(), time.perf_counter()
    clf = mnist_classifier(0)
    test = gp.load_mnist("test").images
    train = gp.load_mnist("train").images
    clean, keys = train[:args.n], measurement_keys(len(train))[:args.n]  # the draws the training set uses
    rows: dict[str, Any] = {"clean": scored(clf, clean, test, args.size)}
    print("clean", rows["clean"], flush=True)
    for spec in args.specs:
        model = parse_measurement(spec, (28, 28, 1))
        y = measure_dataset(model, clean, keys)
        lam, tuning = tune_unmeasure(model)
        rows[spec] = {"ignore": scored(clf, np.clip(y, 0.0, 1.0), test, args.size),  # what a [0, 1] G can make
                      "unmeasure": scored(clf, unmeasure(model, y, keys, lam), test, args.size),
                      "unmeasure_lam": lam, "unmeasure_tuning_psnr": tuning}
        print(spec, rows[spec], flush=True)
    seconds = time.perf_counter() - t0
    write_json(f"{args.prefix}.json", {"machine": info, "args": vars(args), "rows": rows, "seconds": seconds})

    def cell(r: dict[str, Any]) -> str:
        return (f"{r['inception_score']:.2f} ± {r['inception_score_sd']:.2f} / "
                f"{r['frechet_distance']:.1f} ± {r['frechet_distance_sd']:.1f}")

    md = ["# What each AmbientGAN mode trains on, scored like a generator (the data floor)", "", machine_line(info),
          "",
          f"Command: `python benchmarks/{os.path.basename(__file__)} " + " ".join(sys.argv[1:])
          + f"` ({seconds:.0f} s). The first {args.n} training digits, measured with the training set's own draws "
          f"(data seed 0), scored in {args.n // args.size} disjoint sets of {args.size} against the 500 test digits: "
          "IS / FD, mean ± sd over the sets (the same classifier and sample size as the generator scores of "
          "`ambient_mnist.md`). A generator trained on a set cannot be expected to score better than the set itself.",
          "",
          f"Clean training digits (floor of the clean DCGAN and of the AmbientGAN): **{cell(rows['clean'])}**", "",
          "| measurement | ignore (i): the measurements | unmeasure (ii): TV-inverted | TV weight |",
          "|---|---|---|---|"]
    for spec in args.specs:
        r = rows[spec]
        md.append(f"| `{spec}` | {cell(r['ignore'])} | {cell(r['unmeasure'])} | {r['unmeasure_lam']} |")
    write_text(f"{args.prefix}.md", "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
