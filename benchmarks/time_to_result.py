"""Time to first result: first-call time (trace / lower / XLA compile / run), repeat-call time, peak memory and time
per step of ``gp.reconstruct`` for every method at its defaults, in fresh processes.

    python benchmarks/time_to_result.py                       # every method (28x28 digits; 256x256 photo cases)
    python benchmarks/time_to_result.py --methods asim tv --label after
    python benchmarks/time_to_result.py --steps 50 --label steps50   # every method capped at 50 steps
    python benchmarks/time_to_result.py --one asim            # one measurement in this process (JSON on stdout)

Per case, two fresh Python processes (nothing compiled before) share an empty persistent compilation cache
(``gp.enable_compilation_cache``):

1. the first process calls ``gp.reconstruct(prior, key, y, op, method=M)`` with the method's defaults twice:
   ``first`` is the first call's wall time, split by JAX's own events into ``trace`` (jaxpr tracing), ``lower``
   (jaxpr -> MLIR) and ``xla`` (backend compile), summed over every program it compiled; ``repeat`` is the second
   call (the compiled program reused: the run alone); ``steps`` the steps run per image (the largest), so
   ``ms/step = repeat / steps``; ``peak RSS`` the process's maximum resident memory;
2. the second process makes the first call again, with the programs now on disk: ``cached first`` and its
   ``cached xla`` (backend compile time left; loading a program is not a compile).

Cases: ``digits``: 8 held-out MNIST digits, Gaussian CS with m = 200, noise std 0.01, the shipped prior of the
method (Glow for asim / analysis, the VAE for csgm / map / vi / langevin, diffusion-mnist for dps / diffpir / ald /
pnp, none for the others; the patch flow for patchnr); ``photo``: scikit-image's camera man at 256x256 (grey),
Gaussian blur (std 2), noise std 0.01, for tv, lasso-wavelet, dip, deep-decoder (``dip`` with
``generator="deep-decoder", optimizer="adam"``), patchnr and pnp (diffusion-photo); ``rgb512``: the astronaut at
512x512 RGB, same blur and noise, for patchnr (its memory bound). ``--steps N`` passes ``num_steps=N`` (the step
count does not change what is compiled: the steps are a loop; ``repeat / steps`` still gives the time per step).
Writes benchmarks/results/time_to_result[_LABEL].{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info, machine_line, write_json, write_text  # noqa: E402

EVENTS = {"trace": "/jax/core/compile/jaxpr_trace_duration", "lower": "/jax/core/compile/jaxpr_to_mlir_module_duration",
          "xla": "/jax/core/compile/backend_compile_duration"}
PRIORS = {"asim": "glow-mnist", "analysis": "glow-mnist", "csgm": "vae-mnist", "map": "vae-mnist", "vi": "vae-mnist",
          "langevin": "vae-mnist", "patchnr": "patch-flow", "dps": "diffusion-mnist", "diffpir": "diffusion-mnist",
          "ald": "diffusion-mnist", "pnp": "diffusion-mnist"}
PHOTO_PRIORS = {"pnp": "diffusion-photo"}
# pseudo-methods: a registry method with other defaults
VARIANTS = {"deep-decoder": ("dip", {"generator": "deep-decoder", "optimizer": "adam"})}
PHOTO_METHODS = ("tv", "lasso-wavelet", "dip", "deep-decoder", "patchnr", "pnp")
RGB512_METHODS = ("patchnr",)
CASES = ("digits", "photo", "rgb512")


def cases(methods: list[str]) -> list[tuple[str, str]]:
    out = [(m, "digits") for m in methods if m not in VARIANTS]
    out += [(m, "photo") for m in methods if m in PHOTO_METHODS]
    return out + [(m, "rgb512") for m in methods if m in RGB512_METHODS]


def _problem(case: str) -> tuple[Any, Any, Any]:
    import jax
    import numpy as np

    import genprior_jax as gp
    from genprior_jax.operators import Blur, GaussianCS

    k_op, k_noise = jax.random.split(jax.random.key(0))
    if case == "digits":
        x = gp.load_mnist("test", n=8).images
        op = GaussianCS(k_op, (28, 28, 1), m=200)
    elif case == "photo":
        from skimage import data, transform

        camera = transform.resize(data.camera().astype(np.float64) / 255.0, (256, 256), anti_aliasing=True)
        x = np.asarray(camera, np.float32)[None, :, :, None]
        op = Blur.gaussian((256, 256, 1), 2.0)
    else:
        from genprior_jax.data import skimage_image

        x = skimage_image("astronaut", 512)[None]
        op = Blur.gaussian((512, 512, 3), 2.0)
    return x, op, gp.measure(k_noise, op, x, gp.GaussianNoise(0.01))


def measure_one(method: str, case: str, steps: int | None = None) -> dict[str, Any]:
    """One measurement in this process (module docstring); the cache directory comes from ``$TTR_CACHE``."""
    import jax
    import jax.monitoring

    import genprior_jax as gp

    if os.environ.get("TTR_CACHE"):
        gp.enable_compilation_cache(os.environ["TTR_CACHE"])
    totals = dict.fromkeys(EVENTS, 0.0)
    names = {v: k for k, v in EVENTS.items()}

    def listen(event: str, duration: float, **_: Any) -> None:
        if event in names:
            totals[names[event]] += duration

    jax.monitoring.register_event_duration_secs_listener(listen)
    x, op, y = _problem(case)
    name = (PHOTO_PRIORS if case != "digits" else {}).get(method, PRIORS.get(method))
    prior = gp.load_prior(name) if name else None
    solver, extra = VARIANTS.get(method, (method, {}))
    key = jax.random.key(1)
    jax.block_until_ready(y)
    totals.update(dict.fromkeys(EVENTS, 0.0))  # the call's own compiles only (not the data's preparation)
    times, rec = [], None
    for _ in range(2):
        t = time.perf_counter()
        rec = gp.reconstruct(prior, key, y, op, method=solver, **extra, **({"num_steps": steps} if steps else {}))
        jax.block_until_ready(rec.x)
        times.append(time.perf_counter() - t)
        if _ == 0:
            first_events = dict(totals)
    assert rec is not None
    run_steps = int(jax.numpy.max(rec.result.steps))
    return {"method": method, "case": case, "first": times[0], "repeat": times[1], **first_events,
            "steps": run_steps, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "psnr": float(gp.psnr(x, jax.numpy.clip(rec.x, 0, 1)).mean()),
            "converged": float(jax.numpy.mean(rec.result.converged))}


def _child(method: str, case: str, cache: str, steps: int | None) -> dict[str, Any]:
    env = {**os.environ, "TTR_CACHE": cache}
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", method, "--case", case,
                           *(["--steps", str(steps)] if steps else [])],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{method}/{case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    from genprior_jax.solvers import METHODS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", nargs="+", default=[*(m for m in METHODS if m != "lasso-pixel"), *VARIANTS])
    ap.add_argument("--label", default="", help="results file suffix (e.g. before / after)")
    ap.add_argument("--one", default=None, help="measure one method in this process (JSON on stdout)")
    ap.add_argument("--case", default="digits", choices=CASES, help="with --one: the case to measure")
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES, help="the cases to run")
    ap.add_argument("--steps", type=int, default=None, help="num_steps for every method (default: its own)")
    args = ap.parse_args()
    known = {*METHODS, *VARIANTS}
    unknown = sorted(set(args.methods) - known) + ([args.one] if args.one and args.one not in known else [])
    if args.steps is not None and args.steps < 1:
        ap.error(f"--steps: expected a positive integer, got {args.steps}")
    if unknown:
        ap.error(f"unknown methods {unknown}; expected some of {sorted(METHODS)}")
    if args.one:
        print(json.dumps(measure_one(args.one, args.case, args.steps)))
        return
    rows = []
    for method, case in (c for c in cases(args.methods) if c[1] in args.cases):
        with tempfile.TemporaryDirectory() as cache:
            row = _child(method, case, cache, args.steps)
            again = _child(method, case, cache, args.steps)
        row["cached_first"], row["cached_xla"] = again["first"], again["xla"]
        rows.append(row)
        print(f"{method:14s} {case:6s} first {row['first']:6.1f}s (trace {row['trace']:.1f} lower {row['lower']:.1f} "
              f"xla {row['xla']:.1f}) repeat {row['repeat']:6.1f}s cached first {row['cached_first']:6.1f}s "
              f"(xla {row['cached_xla']:.2f}) rss {row['peak_rss_mb']:.0f} MB", flush=True)
    info = machine_info()
    suffix = f"_{args.label}" if args.label else ""
    write_json(f"time_to_result{suffix}.json", {"machine": info, "rows": rows})
    what = f"num_steps={args.steps}" if args.steps else "each method's defaults"
    lines = [f"# Time to first result{f' ({args.label})' if args.label else ''}: `gp.reconstruct` with {what}, "
             "fresh processes", "",
             machine_line(info), "", "Command: `python benchmarks/time_to_result.py"
             + (f" --steps {args.steps}" if args.steps else "") + (f" --label {args.label}" if args.label else "")
             + (f" --cases {' '.join(args.cases)}" if set(args.cases) != set(CASES) else "")
             + "` (module docstring: what each column is).", "",
             "| method | case | first (s) | trace | lower | XLA | repeat (s) | steps | ms/step | cached first (s) | "
             "cached XLA (s) | peak RSS (MB) | PSNR | converged |", "|---" * 14 + "|"]
    for r in rows:
        per_step = f"{1e3 * r['repeat'] / r['steps']:.1f}" if r["steps"] else "-"
        conv = f"{r['converged']:.2f}"
        lines.append(f"| {r['method']} | {r['case']} | {r['first']:.1f} | {r['trace']:.1f} | {r['lower']:.1f} | "
                     f"{r['xla']:.1f} | {r['repeat']:.1f} | {r['steps']} | {per_step} | {r['cached_first']:.1f} "
                     f"| {r['cached_xla']:.2f} | {r['peak_rss_mb']:.0f} | {r['psnr']:.2f} | {conv} |")
    print(write_text(f"time_to_result{suffix}.md", "\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
