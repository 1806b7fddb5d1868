"""Deep-Image-Prior compressed sensing on MNIST: speed of the step loop, and recovery error.

    python benchmarks/dip_check.py --speed          # ms/step: runner (lax.scan, unroll 1 / 10) vs a jitted Python loop,
                                                    # DCGAN convolutions by im2col and by lax.conv
    python benchmarks/dip_check.py --mse            # per-pixel MSE on 16 test digits, m = 25, 50, 100, 200
    python benchmarks/dip_check.py --mse --learned-reg 0.005  # plus DIP with the learned weight prior (lam_weights)

Speed: ``--images`` (8) problems x 1 restart, 28 x 28, ``GaussianCS`` m = 100, RMSprop; compile excluded; each
variant timed ``--repeats`` times over ``--speed-steps`` steps, interleaved (the machine is shared: the minimum is
the figure to compare, the median shows the noise; the load average is recorded).

MSE: ``--digits`` (16) MNIST test digits, ``y = A x + eta`` with ``A`` of ``N(0, 1/m)`` entries and
``eta ~ N(0, 0.1^2 / m)``, the reference settings (RMSprop lr 1e-3, momentum 0.9, 1000 steps, 1 restart,
``lam = 0.005``: gp.dip's default), against the all-zero image and the clipped adjoint ``clip(A^T y, 0, 1)``. The
learned prior is fit per m on ``--train-digits`` (16) MNIST training digits measured with the same ``A``.

Weights are on the data term ``1/2 ||A x - y||^2``. Runs before it wrote them against ``||A x - y||^2`` as
``lam_tv = 0.01`` (``--lam-tv``) and ``lam_lr`` 0.001 / 0.01 / 0.1: the same objectives are ``--lam 0.005`` and
``--learned-reg 0.0005 0.005 0.05`` now.

Writes benchmarks/results/dip_check.{md,json} (the sections run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import RESULTS, machine_info, machine_line, write_json, write_text  # noqa: E402

import genprior_jax as gp  # noqa: E402
from genprior_jax.operators import GaussianCS, measure  # noqa: E402
from genprior_jax.priors import untrained_generator  # noqa: E402
from genprior_jax.solvers import DIPHyper, dip, dip_solver, learn_weight_prior  # noqa: E402
from genprior_jax.solvers.runner import Problem  # noqa: E402

SHAPE = (28, 28, 1)


def _measure(key: jax.Array, op: GaussianCS, x: jax.Array, m: int) -> jax.Array:
    return measure(key, op, x, 0.1 / m**0.5)


def speed(args: argparse.Namespace) -> dict:
    x = gp.load_mnist("test", n=args.images).images
    k_op, k_noise, k_solve = jax.random.split(jax.random.key(0), 3)
    op = GaussianCS(k_op, SHAPE, 100)
    y = _measure(k_noise, op, x, 100)
    n = args.speed_steps
    out: dict = {}
    gens = [(f"dcgan (conv={c})", untrained_generator("dcgan", SHAPE, conv=c)) for c in args.conv
            if "dcgan" in args.generators]
    gens += [("deep-decoder", untrained_generator("deep-decoder", SHAPE))] if "deep-decoder" in args.generators else []
    for name, gen in gens:
        solver = dip_solver(gen, "rmsprop")
        hyper = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float32), DIPHyper())
        keys = jax.random.split(k_solve, args.images)

        init_b = jax.jit(lambda k, y, op: jax.vmap(lambda kk, yy: solver.init(kk, Problem(yy, op), hyper, None))(k, y))
        step_b = jax.jit(lambda s, y, op: jax.vmap(lambda ss, yy: solver.step(ss, Problem(yy, op), hyper, None))(s, y))

        def python_loop() -> None:
            s = init_b(keys, y, op)
            for _ in range(n):
                s, _ = step_b(s, y, op)
            jax.block_until_ready(s)

        def runner(unroll: int):
            return lambda: jax.block_until_ready(dip(k_solve, y, op, generator=gen, num_steps=n, unroll=unroll).x)

        variants = {"runner (scan, unroll 1)": runner(1), "runner (scan, unroll 10)": runner(10),
                    "jitted Python loop": python_loop}
        compile_s = {}
        for label, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            compile_s[label] = time.perf_counter() - t0
        times: dict[str, list[float]] = {label: [] for label in variants}
        for _ in range(args.repeats):
            for label, fn in variants.items():
                t0 = time.perf_counter()
                fn()
                times[label].append((time.perf_counter() - t0) / n * 1e3)
        res = {label: {"min_ms": float(np.min(v)), "median_ms": float(np.median(v)), "all_ms": v,
                       "first_call_s": compile_s[label]} for label, v in times.items()}
        # the full default solve: 1000 steps for these images (compiled above for n steps: compile again)
        t0 = time.perf_counter()
        jax.block_until_ready(dip(k_solve, y, op, generator=gen).x)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        jax.block_until_ready(dip(jax.random.key(1), y, op, generator=gen).x)
        full = time.perf_counter() - t0
        out[name] = {"num_weights": gen.num_weights(), "variants": res, "full_1000_steps_s": full,
                     "full_1000_steps_first_call_s": first, "loadavg": os.getloadavg()}
        print(name, json.dumps(out[name], indent=1), flush=True)
    return out


def _generators(args: argparse.Namespace) -> list[tuple[str, object]]:
    gens = []
    for name in args.generators:
        if name == "dcgan":
            gens += [(f"dcgan-ngf{g}", untrained_generator("dcgan", SHAPE, ngf=g)) for g in args.ngf]
        else:
            gens += [(f"deep-decoder-k{k}", untrained_generator(name, SHAPE, width=k)) for k in args.width]
    return gens


def mse_check(args: argparse.Namespace) -> dict:
    x = gp.load_mnist("test", n=args.digits).images
    x_train = gp.load_mnist("train", n=args.train_digits).images if args.learned_reg else None
    rows = []
    for m in args.ms:
        k_op, k_noise, k_solve, k_train = jax.random.split(jax.random.fold_in(jax.random.key(0), m), 4)
        op = GaussianCS(k_op, SHAPE, m)
        y = _measure(k_noise, op, x, m)
        zero = gp.mse(x, jnp.zeros_like(x))
        adj = gp.mse(x, jnp.clip(jax.vmap(op.T)(y), 0.0, 1.0))
        row = {"m": m, "zero": float(zero.mean()), "adjoint": float(adj.mean())}
        for name, gen in _generators(args):
            t0 = time.perf_counter()
            res = dip(k_solve, y, op, generator=gen, lam=args.lam)
            err = np.asarray(gp.mse(x, res.x))
            row[f"dip-{name}"] = float(err.mean())
            row[f"dip-{name}_sem"] = float(err.std(ddof=1) / np.sqrt(err.size))
            row[f"dip-{name}_s"] = time.perf_counter() - t0
            row[f"dip-{name}_ok"] = int(np.sum(np.asarray(res.status) == 0))
            if args.learned_reg:
                t0 = time.perf_counter()
                prior = learn_weight_prior(k_train, x_train, op, sigma=0.1 / m**0.5, generator=gen,
                                           lam=args.lam, shrinkage=args.shrinkage)
                fit_s = time.perf_counter() - t0
            for lam in args.learned_reg or ():
                t0 = time.perf_counter()
                res = dip(k_solve, y, op, generator=gen, lam=args.lam, lam_weights=lam, weight_prior=prior)
                err = np.asarray(gp.mse(x, res.x))
                key = f"dip-{name}+LR{lam:g}"
                row[key] = float(err.mean())
                row[key + "_sem"] = float(err.std(ddof=1) / np.sqrt(err.size))
                row[key + "_s"] = time.perf_counter() - t0
                row[key + "_fit_s"] = fit_s
        row["loadavg"] = os.getloadavg()
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"rows": rows}


def title(args: argparse.Namespace) -> str:
    """The results file's title, with what tells this run from the others: speed and / or MSE, which generators
    at which widths, the learned weight prior."""
    what = " and ".join(w for w, on in (("speed", args.speed), ("MSE vs m", args.mse)) if on)
    gens = ", ".join(f"DCGAN-like (ngf {'/'.join(map(str, args.ngf))})" if g == "dcgan" else
                     f"Deep Decoder (width {'/'.join(map(str, args.width))})" for g in args.generators)
    reg = (", learned weight prior lam_weights " + " / ".join(f"{v:g}" for v in args.learned_reg)
           if getattr(args, "learned_reg", None) else "")
    return f"DIP compressed sensing on MNIST (benchmarks/dip_check.py): {what}, {gens}{reg}"


def to_markdown(info: dict, result: dict, args: argparse.Namespace) -> str:
    lines = [f"# {title(args)}", "", machine_line(info), ""]
    if "speed" in result:
        lines += [f"## Speed: {args.images} images x 1 restart, 28 x 28, m = 100, RMSprop (ms per step; compile "
                  f"excluded; min / median of {args.repeats} runs of {args.speed_steps} steps)", "",
                  "| generator | weights | " + " | ".join(next(iter(result["speed"].values()))["variants"]) +
                  " | 1000 steps (s) | load avg |", "|---|---|---|---|---|---|---|"]
        for name, r in result["speed"].items():
            cells = [f"{v['min_ms']:.1f} / {v['median_ms']:.1f}" for v in r["variants"].values()]
            lines.append(f"| {name} | {r['num_weights']:,} | " + " | ".join(cells) +
                         f" | {r['full_1000_steps_s']:.1f} | {r['loadavg'][0]:.1f} |")
        lines.append("")
    if "mse" in result:
        rows = result["mse"]["rows"]
        methods = [k for k in rows[0] if k not in ("m", "loadavg") and not k.endswith(("_sem", "_s", "_ok"))]
        lines += [f"## Per-pixel MSE on {args.digits} MNIST test digits (mean +- s.e.m.), noise 0.1/sqrt(m), "
                  f"1000 RMSprop steps, 1 restart, lam = {args.lam:g} (data term 1/2 ||A x - y||^2)" +
                  (f", learned prior shrinkage {args.shrinkage:g}" if args.learned_reg else ""), "",
                  "| m | " + " | ".join(methods) + " | DIP wall time (s) |", "|---" * (len(methods) + 2) + "|"]
        for r in rows:
            cells = [f"{r[k]:.4f}" + (f" +- {r[k + '_sem']:.4f}" if k + "_sem" in r else "") for k in methods]
            times = ", ".join(f"{k}: {r[k + '_s']:.0f}" for k in methods if k + "_s" in r)
            lines.append(f"| {r['m']} | " + " | ".join(cells) + f" | {times} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speed", action="store_true")
    p.add_argument("--mse", action="store_true")
    p.add_argument("--generators", nargs="+", default=["dcgan"], choices=["dcgan", "deep-decoder"])
    p.add_argument("--ngf", type=int, nargs="+", default=[16], help="DCGAN widths for --mse")
    p.add_argument("--width", type=int, nargs="+", default=[16], help="deep-decoder widths for --mse")
    p.add_argument("--conv", nargs="+", default=["im2col", "lax"], help="DCGAN conv implementations for --speed")
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--speed-steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--digits", type=int, default=16)
    p.add_argument("--train-digits", type=int, default=16)
    p.add_argument("--ms", type=int, nargs="+", default=[25, 50, 100, 200])
    p.add_argument("--learned-reg", type=float, nargs="*", default=None,
                   help="lam_weights values for DIP + learned reg (the earlier lam_lr halved: module docstring)")
    p.add_argument("--lam", type=float, default=0.005, help="DIP's TV weight (the earlier --lam-tv halved)")
    p.add_argument("--shrinkage", type=float, default=0.0, help="fit_weight_prior's shrinkage to the diagonal")
    p.add_argument("--out", default="dip_check")
    args = p.parse_args()
    if not (args.speed or args.mse):
        p.error("choose --speed and/or --mse")
    info = machine_info()
    result: dict = {"args": vars(args), "machine": info}
    if args.speed:
        result["speed"] = speed(args)
    if args.mse:
        result["mse"] = mse_check(args)
    write_json(f"{args.out}.json", result)
    path = write_text(f"{args.out}.md", to_markdown(info, result, args))
    print(open(path).read())
    print("results in", RESULTS)


if __name__ == "__main__":
    main()
