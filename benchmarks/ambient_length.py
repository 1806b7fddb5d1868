"""AmbientGAN vs its baselines as training goes on: IS / FD of each generator at several step counts, over seeds.

The committed 4000-step table (``ambient_mnist_seeds.md``) has the TV-inpainting baseline ahead of the AmbientGAN
at block-pixels p = 0.5. The AmbientGAN's generator gets gradients only through the unmasked half of each
simulated measurement, so it learns more slowly; the question is where each one stands once both have trained. Each
generator (same settings as ``ambient_mnist.py``: DCGAN ``dcgan-mnist``, batch 64, the fixed measured training set)
is trained in stages - 4000, 8000, ... steps, resumed from its saved training state, so a generator scored at 8000
steps is exactly the one that continued from its 4000-step state - and scored after each stage with the project's
classifier: inception-style score and Frechet distance of 500 samples to the 500 test digits.

    python benchmarks/ambient_length.py                                  # p = 0.5, 3 seeds, up to 16000 steps
    python benchmarks/ambient_length.py --quick                          # smoke run (~1 min)
    python benchmarks/ambient_length.py --loss wgan-gp --ckpt-dir benchmarks/.ambient_length_wgan --prefix X

``--loss wgan-gp``: the same DCGAN networks trained as a WGAN-GP (the AmbientGAN reference code's MNIST loss:
5 critic updates per step, each on its own batch, gradient penalty 10, Adam betas 0.5 / 0.9999; a "step" is one
generator update).

Results are written after every (stage, seed, mode), so an interrupted run keeps what it measured: a rerun with the
same ``--prefix`` keeps those scores, and resumes training from the checkpoints and training states in
``--ckpt-dir`` (not committed). Two processes must not write one prefix: seeds trained side by side get a prefix
each, and ``--report-only --merge OTHER`` folds their scores into the tables of ``--prefix`` afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import RESULTS, machine_info, machine_line, saved_step, write_json, write_text  # noqa: E402

import genprior_jax as gp  # noqa: E402
from genprior_jax.operators import parse_measurement  # noqa: E402
from genprior_jax.plotting import save_grid  # noqa: E402
from genprior_jax.sample_quality import mnist_classifier, sample_scores  # noqa: E402
from genprior_jax.training import WGAN_GP_REFERENCE, train_ambient_dcgan  # noqa: E402
from genprior_jax.training.ambient import tune_unmeasure  # noqa: E402

LABELS = {"ambient": "AmbientGAN", "unmeasure": "unmeasure (ii)", "ignore": "ignore (i)", "clean": "clean (bound)"}


def saved_run(path: str, args: argparse.Namespace) -> dict[str, Any] | None:
    """The results saved at ``path`` if they were scored like this run (same measurement, sample count, loss and
    data protocol), else ``None``."""
    if not os.path.isfile(path):
        return None
    with open(path) as fh:
        old = json.load(fh)
    same = (old["args"]["measurement"] == args.measurement and old["args"]["n_samples"] == args.n_samples
            and old["args"].get("loss", "ns") == args.loss and old["args"].get("draws", "once") == args.draws)
    return old if same else None


def title(args: argparse.Namespace) -> str:
    """The results file's title: the measurement, the loss and every setting that tells this run from the others
    (data protocol, simulated draws, length, seeds)."""
    loss = "" if getattr(args, "loss", "ns") == "ns" else ", WGAN-GP loss (the reference code's)"
    draws = "each digit measured once" if getattr(args, "draws", "once") == "once" else "fresh draws"
    k = getattr(args, "fake_draws", 1)
    fake = f", {k} draws per generated image" if k != 1 else ""
    seeds = (f"seed {args.seeds[0]}" if len(args.seeds) == 1 else "seeds " + ", ".join(map(str, args.seeds)))
    return (f"AmbientGAN vs baselines by training length{loss}: `{args.measurement}`, {draws}{fake}, "
            f"{max(args.stages)} steps, {seeds}")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--measurement", default="block-pixels:p=0.5")
    ap.add_argument("--stages", type=int, nargs="+", default=[4000, 8000, 12000, 16000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--modes", nargs="+", default=["ambient", "unmeasure", "ignore"],
                    choices=sorted(LABELS), help="trained at every stage, in this order, seed by seed")
    ap.add_argument("--draws", default="once", choices=["once", "fresh"],
                    help="once: the fixed measured training set; fresh: clean digits measured afresh at every step "
                         "(the reference code's protocol)")
    ap.add_argument("--loss", default="ns", choices=["ns", "wgan-gp"], help="GAN loss (module docstring)")
    ap.add_argument("--d-iters", type=int, default=WGAN_GP_REFERENCE["d_iters"],
                    help="wgan-gp: critic updates per generator update")
    ap.add_argument("--fake-draws", type=int, default=1,
                    help="AmbientGAN: simulated measurements per generated image (dcgan_train_step's fake_draws)")
    ap.add_argument("--n-samples", type=int, default=500)
    ap.add_argument("--ckpt-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".ambient_length"))
    ap.add_argument("--prefix", default="ambient_length")
    ap.add_argument("--quick", action="store_true", help="smoke run: 50 and 100 steps, seed 0")
    ap.add_argument("--report-only", action="store_true",
                    help="train nothing: rewrite the tables of --prefix from its saved scores, and its sample "
                         "grid from the checkpoints (e.g. after a run was stopped, or to show modes that later runs "
                         "left out)")
    ap.add_argument("--merge", nargs="+", default=[], metavar="PREFIX",
                    help="with --report-only: add the saved scores of these prefixes (same measurement, samples, "
                         "loss and draws; e.g. seeds trained in another process) to the tables of --prefix")
    args = ap.parse_args()
    if args.merge and not args.report_only:
        raise SystemExit("--merge goes with --report-only (a training run writes only its own --prefix)")
    if args.quick:
        args.stages, args.seeds, args.n_samples = [50, 100], [0], 200
        args.prefix, args.ckpt_dir = f"{args.prefix}_quick", args.ckpt_dir.rstrip(os.sep) + "_quick"
    if sorted(args.stages) != args.stages or len(set(args.stages)) != len(args.stages) or args.stages[0] < 1:
        raise SystemExit(f"--stages must increase strictly from >= 1; got {args.stages}")
    model = parse_measurement(args.measurement, (28, 28, 1))
    loss_kw: dict[str, Any] = {} if args.loss == "ns" else {**WGAN_GP_REFERENCE, "d_iters": args.d_iters}
    info = machine_info()
    t_start = time.perf_counter()
    sample_key = jax.random.key(12345)
    lam = None
    scores: dict[str, dict[str, dict[str, Any]]] = {}  # mode -> str(stage) -> str(seed) -> scores
    command = f"python benchmarks/{os.path.basename(__file__)} " + " ".join(sys.argv[1:])
    commands: list[str] = []  # every training run that scored into this prefix
    previous = os.path.join(RESULTS, f"{args.prefix}.json")
    old = saved_run(previous, args)
    if old is not None:  # a rerun keeps what an earlier (interrupted) run of this prefix scored
        scores = old["scores"]
        commands = old.get("commands", [])
        lam = old.get("unmeasure_lam")
        if args.report_only:  # the machine and versions that produced the scores, not this report's
            info = old["machine"]
        print(f"kept the scores of {previous}", flush=True)
    for other in args.merge:  # runs of other prefixes (e.g. seeds trained beside this one) join the tables
        path = os.path.join(RESULTS, f"{other}.json")
        more = saved_run(path, args)
        if more is None:
            raise SystemExit(f"--merge: no saved scores of this --measurement / --n-samples / --loss / --draws in "
                             f"{path}")
        if lam is not None and more.get("unmeasure_lam") not in (None, lam):
            raise SystemExit(f"--merge: {path} used the TV weight {more['unmeasure_lam']}, this prefix {lam}")
        lam = more.get("unmeasure_lam") if lam is None else lam
        for mode, by_stage in more["scores"].items():
            for stage, by_seed in by_stage.items():
                for seed, s in by_seed.items():
                    mine = scores.setdefault(mode, {}).setdefault(stage, {})
                    if seed in mine and mine[seed] != s:
                        raise SystemExit(f"--merge: {path} and {previous} disagree on {mode}, stage {stage}, seed "
                                         f"{seed}")
                    mine[seed] = s
        commands += [c for c in more.get("commands", []) if c not in commands]
        if old is None:
            info = more["machine"]
        print(f"merged the scores of {path}", flush=True)
    if args.report_only and not scores:
        raise SystemExit(f"--report-only: no saved scores of this --measurement / --n-samples / --loss / --draws in "
                         f"{previous}")
    if "unmeasure" in args.modes and not (args.report_only and lam is not None):  # a report keeps the saved weight
        lam, tuning = tune_unmeasure(model)
        print(f"unmeasure TV weight {lam} (validation PSNR {tuning})", flush=True)
    if not args.report_only and command not in commands:
        commands.append(command)
    if not args.report_only:  # the scorer (a report scores nothing)
        clf = mnist_classifier(0)
        test = gp.load_mnist("test").images
    samples: dict[str, np.ndarray] = {}
    samples_png = os.path.join(RESULTS, f"{args.prefix}_samples.png")

    def write() -> None:
        payload = {"machine": info, "args": vars(args), "unmeasure_lam": lam, "scores": scores,
                   "commands": commands, "seconds": round(time.perf_counter() - t_start, 1)}
        write_json(f"{args.prefix}.json", payload)
        md = [f"# {title(args)}", "",
              machine_line(info), "",
              ("Commands (each run keeps the scores of the ones before): " if len(commands) > 1 else "Command: ")
              + "; ".join(f"`{c}`" for c in (commands or [command]))
              + (" (tables rewritten from the saved scores)" if args.report_only else
                 f" ({payload['seconds']:.0f} s so far)") + ". DCGAN `dcgan-mnist` "
              + ("(non-saturating loss)" if args.loss == "ns" else
                 f"trained as a WGAN-GP ({args.d_iters} critic updates per generator step, penalty 10, Adam betas "
                 "0.5 / 0.9999)") + f", batch 64, seeds {args.seeds}, the 4,000 "
              + ("training digits each measured once (data seed 0)" if args.draws == "once" else
                 "clean training digits measured afresh every time a batch is used (`draws='fresh'`, the reference "
                 "code's protocol; baseline (ii) inverts each fresh measurement with 300 PDHG steps of TV)")
              + (f"; the AmbientGAN measures each generated image {args.fake_draws} times (`fake_draws`)"
                 if args.fake_draws != 1 else "")
              + "; each generator trained in stages, resumed from its "
              "own training state. IS = inception-style score of the project's MLP classifier (higher is better), "
              f"FD = Frechet distance in its features to the 500 test digits (lower is better), {args.n_samples} "
              f"samples. Mean ± sd over the seeds measured so far (n = how many). TV weight of (ii): {lam}.", "",
              "| steps | " + " | ".join(f"{LABELS[m]} IS / FD" for m in args.modes) + " |",
              "|---|" + "---|" * len(args.modes)]
        for stage in args.stages:
            cells = []
            for mode in args.modes:
                per = list(scores.get(mode, {}).get(str(stage), {}).values())
                if not per:
                    cells.append("-")
                    continue
                v_is = np.array([p["inception_score"] for p in per])
                v_fd = np.array([p["frechet_distance"] for p in per])
                sd = (lambda v, d: f" ± {v.std(ddof=1):.{d}f}" if len(v) > 1 else "")  # to the mean's digits
                cells.append(f"{v_is.mean():.2f}{sd(v_is, 2)} / {v_fd.mean():.1f}{sd(v_fd, 1)} (n = {len(per)})")
            md.append(f"| {stage} | " + " | ".join(cells) + " |")
        md += ["", "Per seed (IS / FD):", ""]
        for mode in args.modes:
            for stage in args.stages:
                per = scores.get(mode, {}).get(str(stage), {})
                if per:
                    md.append(f"- {LABELS[mode]}, {stage} steps: " + ", ".join(
                        f"seed {s} {p['inception_score']:.2f} / {p['frechet_distance']:.1f}" for s, p in per.items()))
        if samples or os.path.isfile(samples_png):
            md += ["", f"Samples (first seed, last stage reached): `{args.prefix}_samples.png`"]
        write_text(f"{args.prefix}.md", "\n".join(md) + "\n")

    for stage in args.stages:
        for seed in args.seeds:
            for mode in args.modes:
                path = os.path.join(args.ckpt_dir, f"{mode}_s{seed}")
                if str(seed) in scores.get(mode, {}).get(str(stage), {}) or args.report_only:
                    continue  # scored by an earlier run, or nothing to train
                have = saved_step(path)
                if have > stage:
                    raise SystemExit(f"{path} holds a generator at step {have} > {stage}; use another --ckpt-dir")
                if have < stage:
                    t0 = time.perf_counter()
                    fd_kw = {"fake_draws": args.fake_draws} if mode == "ambient" and args.fake_draws != 1 else {}
                    train_ambient_dcgan(None if mode == "clean" else model, mode, seed=seed, steps=stage, out=path,
                                        progress=False, resume=have > 0, unmeasure_lam=lam, draws=args.draws,
                                        **loss_kw, **fd_kw,
                                        command=f"python benchmarks/ambient_length.py (stage {stage})")
                    print(f"{mode} seed {seed}: {have} -> {stage} steps in {time.perf_counter() - t0:.0f} s",
                          flush=True)
                prior = gp.load_prior(path)
                x = np.asarray(prior.sample(sample_key, args.n_samples))
                s = sample_scores(clf, x, test)
                scores.setdefault(mode, {}).setdefault(str(stage), {})[str(seed)] = s
                if seed == args.seeds[0]:
                    samples[mode] = x[:12]
                print(f"stage {stage} seed {seed} {mode:10s} IS {s['inception_score']:.2f} FD "
                      f"{s['frechet_distance']:.1f}", flush=True)
                write()
        if samples:
            save_grid({LABELS[m]: samples[m] for m in args.modes if m in samples},
                      samples_png,
                      title=f"{args.measurement}: samples at {stage} steps (seed {args.seeds[0]})")
    if args.report_only:  # the grid again, from each mode's checkpoint (first seed) where its step was scored
        rows = {}
        for mode in args.modes:
            path = os.path.join(args.ckpt_dir, f"{mode}_s{args.seeds[0]}")
            step = saved_step(path)
            if str(args.seeds[0]) in scores.get(mode, {}).get(str(step), {}):
                x = np.asarray(gp.load_prior(path).sample(sample_key, args.n_samples))
                rows[f"{LABELS[mode]}, {step}"] = x[:12]
        if rows:
            save_grid(rows, samples_png, title=f"{args.measurement}: samples (seed {args.seeds[0]}) at the steps shown")
    write()


if __name__ == "__main__":
    main()
