"""Adversarial robustness of a range-projection defense on MNIST (Defense-GAN, Samangouei et al. 2018; the
adaptive-attack evaluation of Athalye, Carlini & Wagner 2018).

Classifier: the MLP of genprior_jax.adversarial (784-512-10, shift augmentation), trained on the embedded train
split (or loaded with --classifier). Defense: classify P(x) = G(z_hat), z_hat = argmin_z ||G(z) - x||^2 (CSGM with
A = Identity; Adam lr 0.01, 500 steps, 10 restarts by default; the VAE prior vae-mnist by default, any prior
with --prior). Attacks, all untargeted L-inf on the first --n-test held-out test digits:

- FGSM, and PGD (40 steps of 0.01, random start) on the undefended classifier, then passed through the defense
  (the "oblivious" / transfer setting Defense-GAN reports);
- BPDA-PGD: PGD on the defended model with dP/dx ~ I; each step projects with a cheaper projection (100 Adam
  steps of 0.05, 4 restarts) and a fresh key;
- unrolled PGD: PGD with the exact gradient through a short unrolled projection (50 Adam steps of 0.1,
  2 restarts).

Every adversarial image is then classified through the defense's own projection, with the defender's key (not
the attacker's). "worst case" counts a digit as correct only if it survives every attack run at that eps.

    python benchmarks/defense_mnist.py                 # full: 200 digits, eps 0.1 / 0.2 / 0.3
    python benchmarks/defense_mnist.py --quick         # smoke run

Writes benchmarks/results/defense_mnist.{md,json} and defense_mnist_examples.png.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import RESULTS, machine_info, machine_line, write_json, write_text  # noqa: E402

import genprior_jax as gp  # noqa: E402
from genprior_jax import adversarial as adv  # noqa: E402
from genprior_jax.plotting import save_grid  # noqa: E402

ATTACKS = ("FGSM", "PGD", "BPDA", "Unrolled")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    ap.add_argument("--attacks", nargs="+", default=list(ATTACKS))
    ap.add_argument("--pgd-steps", type=int, default=40)
    ap.add_argument("--step-size", type=float, default=0.01)
    ap.add_argument("--prior", default="vae-mnist")
    ap.add_argument("--proj-steps", type=int, default=500)
    ap.add_argument("--proj-restarts", type=int, default=10)
    ap.add_argument("--proj-lr", type=float, default=0.01)
    ap.add_argument("--bpda-steps", type=int, default=100, help="Adam steps of the projection inside BPDA")
    ap.add_argument("--bpda-restarts", type=int, default=4)
    ap.add_argument("--bpda-lr", type=float, default=0.05)
    ap.add_argument("--unrolled-steps", type=int, default=50, help="Adam steps differentiated through")
    ap.add_argument("--unrolled-restarts", type=int, default=2)
    ap.add_argument("--unrolled-lr", type=float, default=0.1)
    ap.add_argument("--classifier", default=None, help="classifier checkpoint; default: train one (seeded)")
    ap.add_argument("--save-classifier", default=None, help="write the trained classifier to this directory")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-show", type=int, default=12)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    ap.add_argument("--out-prefix", default="defense_mnist")
    args = ap.parse_args()
    args.argv = sys.argv[1:]
    if args.quick:
        args.n_test, args.eps, args.pgd_steps, args.proj_steps, args.proj_restarts = 16, [0.3], 5, 50, 2
        args.bpda_steps, args.bpda_restarts, args.unrolled_steps, args.epochs = 20, 1, 10, 5
        args.step_size, args.out_prefix = 0.06, "defense_mnist_quick"
    unknown = set(args.attacks) - set(ATTACKS)
    if unknown:
        raise SystemExit(f"unknown attacks {sorted(unknown)}; expected some of {list(ATTACKS)}")
    attacks = [a for a in ATTACKS if a in args.attacks]

    t_start = time.perf_counter()
    key = jax.random.key(args.seed)
    k_train, k_attack, k_defense = jax.random.split(key, 3)
    test_all = gp.load_mnist("test")
    if args.classifier:
        clf, train_info = adv.load_classifier(args.classifier), {"checkpoint": args.classifier}
    else:
        train = gp.load_mnist("train")
        clf, train_info = adv.train_classifier(k_train, train.images, train.labels, epochs=args.epochs)
        train_info = {k: v for k, v in train_info.items() if k != "history"}
        if args.save_classifier:
            adv.save_classifier(args.save_classifier, clf, {**train_info, "command": " ".join(sys.argv)})
    train_info["test_accuracy_500"] = adv.accuracy(clf.logits, test_all.images, test_all.labels)
    print(f"classifier: {clf}, {train_info}", flush=True)

    prior = gp.load_prior(args.prior)
    x = jnp.asarray(test_all.images[: args.n_test])
    y = jnp.asarray(test_all.labels[: args.n_test])
    y_np = np.asarray(y)
    defense = adv.Projection(args.proj_steps, args.proj_restarts, args.proj_lr)
    bpda_proj = adv.Projection(args.bpda_steps, args.bpda_restarts, args.bpda_lr)
    unrolled_proj = adv.Projection(args.unrolled_steps, args.unrolled_restarts, args.unrolled_lr)
    pgd_kw = dict(step_size=args.step_size, num_steps=args.pgd_steps, random_start=True)
    run_attack: dict[str, Callable[[jax.Array, float], jax.Array]] = {
        "FGSM": lambda k, eps: adv.fgsm(clf.logits, x, y, eps),
        "PGD": lambda k, eps: adv.pgd(clf.logits, k, x, y, eps=eps, **pgd_kw),
        "BPDA": lambda k, eps: adv.bpda_pgd(clf.logits, prior, k, x, y, eps=eps, projection=bpda_proj, **pgd_kw),
        "Unrolled": lambda k, eps: adv.unrolled_pgd(clf.logits, prior, k, x, y, eps=eps, projection=unrolled_proj,
                                                    **pgd_kw),
    }

    rows: list[dict[str, Any]] = []
    correct: dict[tuple[str, float], np.ndarray] = {}
    shown: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    def evaluate(name: str, eps: float, x_adv: jax.Array, attack_seconds: float) -> None:
        t0 = time.perf_counter()
        pred_def, res = adv.defended_predict(clf.logits, prior, k_defense, x_adv, defense)
        pred_def = np.asarray(jax.block_until_ready(pred_def))
        proj_seconds = time.perf_counter() - t0
        pred = np.asarray(clf.predict(x_adv))
        correct[(name, eps)] = pred_def == y_np
        rows.append({
            "attack": name, "eps": eps, "undefended_accuracy": float(np.mean(pred == y_np)),
            "defended_accuracy": float(np.mean(pred_def == y_np)),
            "linf": float(jnp.max(jnp.abs(x_adv - x))),
            "fit_mse": float(jnp.nanmean(gp.mse(x_adv, res.x))),  # ||P(x') - x'||^2 / n, per pixel
            "to_clean_mse": float(jnp.nanmean(gp.mse(x, res.x))),  # ||P(x') - x||^2 / n
            "nonfinite": int(np.sum(np.asarray(res.status) == gp.Status.NONFINITE)),
            "attack_seconds": attack_seconds, "projection_seconds": proj_seconds,
        })
        print(rows[-1], flush=True)
        if eps == max(args.eps) or name == "clean":
            n = args.n_show
            shown[name] = (np.asarray(x_adv[:n]), pred[:n], np.asarray(res.x[:n]), pred_def[:n])

    evaluate("clean", 0.0, x, 0.0)
    for eps in args.eps:
        for name in attacks:
            t0 = time.perf_counter()
            x_adv = jax.block_until_ready(run_attack[name](jax.random.fold_in(k_attack, int(round(eps * 1000))), eps))
            evaluate(name, eps, x_adv, time.perf_counter() - t0)
    worst = {eps: float(np.mean(np.all([correct[(a, eps)] for a in attacks], axis=0))) for eps in args.eps}
    total = time.perf_counter() - t_start

    info = machine_info()
    settings = {"defense": defense._asdict(), "bpda_projection": bpda_proj._asdict(),
                "unrolled_projection": unrolled_proj._asdict(), "pgd": pgd_kw, "prior": args.prior,
                "classifier": {**clf.config, **train_info}}
    write_json(f"{args.out_prefix}.json", {"machine": info, "args": vars(args), "settings": settings,
                                           "results": rows, "worst_case_defended_accuracy": worst,
                                           "total_seconds": total})
    grid: dict[str, np.ndarray] = {}
    captions: dict[str, list[str]] = {}
    for name in ["clean", *attacks]:
        if name in shown:
            x_adv, pred, x_proj, pred_def = shown[name]
            label = name if name == "clean" else f"{name} {max(args.eps)}"
            grid[label], captions[label] = x_adv, [f"pred {p}" for p in pred]
            grid[f"P({label})"], captions[f"P({label})"] = x_proj, [f"def. {p}" for p in pred_def]
    png = f"{args.out_prefix}_examples.png"
    save_grid(grid, os.path.join(RESULTS, png), captions=captions,
              title=f"labels {' '.join(str(v) for v in y_np[:args.n_show])}: attacked images and their projections "
                    f"P(x) onto the range of {args.prior} (pred: undefended, def.: defended)")

    lines = [
        "# Range-projection defense (Defense-GAN) on MNIST: FGSM, PGD and adaptive attacks", "",
        "Command: " + f"`python benchmarks/defense_mnist.py {' '.join(args.argv)}`".replace(" `", "`") + "  ",
        machine_line(info) + "  ",
        f"Classifier: MLP 784-{'-'.join(str(h) for h in clf.config['hidden'])}-10 "
        + (f"trained on the 4,000 train digits ({train_info['epochs']} epochs, {train_info['seconds']:.1f} s)"
           if "epochs" in train_info else f"from {args.classifier}")
        + f", accuracy {train_info['test_accuracy_500']:.3f} on the 500 test digits.  ",
        f"Defense: classify G(z_hat), z_hat = argmin ||G(z) - x||^2 over {args.prior} latents, Adam lr {args.proj_lr}, "
        f"{args.proj_steps} steps, {args.proj_restarts} restarts (best kept). Attacks: L-inf, untargeted, on the first "
        f"{args.n_test} test digits; PGD {args.pgd_steps} steps of {args.step_size}, random start; BPDA projects each "
        f"iterate with {args.bpda_steps} Adam steps of {args.bpda_lr} x {args.bpda_restarts} restarts and takes "
        f"dP/dx = I; Unrolled differentiates through {args.unrolled_steps} Adam steps of {args.unrolled_lr} x "
        f"{args.unrolled_restarts} restarts. FGSM and PGD attack the undefended classifier (oblivious setting). "
        f"Total wall time {total:.0f} s.", "",
        "| attack | eps | undefended acc. | defended acc. | mean ‖P(x')−x'‖²/n | mean ‖P(x')−x‖²/n | attack (s) | "
        "projection (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['attack']} | {r['eps']:g} | {r['undefended_accuracy']:.3f} | "
                     f"{r['defended_accuracy']:.3f} | "
                     f"{r['fit_mse']:.4f} | {r['to_clean_mse']:.4f} | {r['attack_seconds']:.1f} | "
                     f"{r['projection_seconds']:.1f} |")
    lines += ["", f"Worst case over {', '.join(attacks)} (a digit counts if the defended classifier is right under "
                  "every attack):", "", "| eps | " + " | ".join(f"{e:g}" for e in args.eps) + " |",
              "|---|" + "---|" * len(args.eps),
              "| defended acc. | " + " | ".join(f"{worst[e]:.3f}" for e in args.eps) + " |", "",
              f"Non-finite projections: {sum(r['nonfinite'] for r in rows)}. ‖P(x')−x'‖²/n is how far the attacked "
              "image lies from the generator's range, ‖P(x')−x‖²/n how far its projection lands from the clean digit "
              "(per pixel).", "", f"![examples]({png})", ""]
    path = write_text(f"{args.out_prefix}.md", "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
