"""Compile time of a Deep-Image-Prior solve (``gp.dip``) on one image.

    python benchmarks/dip_compile.py                      # every case, --repeats fresh processes each
    python benchmarks/dip_compile.py --cases dcgan-28-im2col dd-256x256x3 --repeats 2
    python benchmarks/dip_compile.py --one dcgan-28-lax   # one measurement in this process (JSON on stdout)

Each measurement runs in a fresh Python process (nothing compiled before, no persistent compilation cache) and
calls ``dip(key, y, op, generator=..., num_steps=--steps)`` twice with the same arguments:

- ``first - second`` (s): the wall time the first call spends beyond the second's, i.e. tracing + lowering +
  XLA compilation (the second call reuses the compiled program);
- ``trace`` / ``lower`` / ``xla`` (s): JAX's own compile events summed over the first call
  (``/jax/core/compile/jaxpr_trace_duration``, ``jaxpr_to_mlir_module_duration``, ``backend_compile_duration``);
- ``cpu`` (s): the same difference in CPU time of the process (all its threads): less sensitive than the wall
  time to other jobs on a shared machine;
- ``run`` (s): the second call (``--steps`` steps; the step count does not change the compile time, the steps
  are a ``lax.scan``).

Cases: ``dcgan-28-*`` the DCGAN generator on a 28 x 28 x 1 digit-sized image, ``GaussianCS`` with m = 100 (the
reference compressed-sensing setting), convolutions by im2col or ``lax.conv``; ``dd-*`` the Deep Decoder with
the default architecture for the size (``default_deep_decoder``), inpainting with ``RandomMask`` (half of the
pixels missing). The machine is shared (the load average is recorded): compare minima.

Writes benchmarks/results/dip_compile.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info, machine_line, write_json, write_text  # noqa: E402

CASES: dict[str, dict[str, Any]] = {
    "dcgan-28-im2col": dict(shape=(28, 28, 1), op="cs", generator="dcgan", conv="im2col"),
    "dcgan-28-lax": dict(shape=(28, 28, 1), op="cs", generator="dcgan", conv="lax"),
    "dd-28x28x1": dict(shape=(28, 28, 1), op="mask", generator="deep-decoder"),
    "dd-64x64x3": dict(shape=(64, 64, 3), op="mask", generator="deep-decoder"),
    "dd-256x256x3": dict(shape=(256, 256, 3), op="mask", generator="deep-decoder"),
    "dd-256x256x3-k16-u2": dict(shape=(256, 256, 3), op="mask", generator="deep-decoder", width=16, num_upsample=2),
}
EVENTS = {"trace": "/jax/core/compile/jaxpr_trace_duration", "lower": "/jax/core/compile/jaxpr_to_mlir_module_duration",
          "xla": "/jax/core/compile/backend_compile_duration"}


def measure_one(name: str, steps: int) -> dict[str, Any]:
    """One measurement of case ``name`` in this process (module docstring)."""
    import jax
    import jax.monitoring

    import genprior_jax as gp
    from genprior_jax.operators import GaussianCS, RandomMask
    from genprior_jax.priors import untrained_generator

    case = CASES[name]
    shape = tuple(case["shape"])
    totals = dict.fromkeys(EVENTS, 0.0)
    recording = {"on": False}

    def listener(event: str, duration: float, **_: Any) -> None:
        for k, ev in EVENTS.items():
            if recording["on"] and event == ev:
                totals[k] += duration

    jax.monitoring.register_event_duration_secs_listener(listener)
    k_op, k_x, k_solve = jax.random.split(jax.random.key(0), 3)
    op = GaussianCS(k_op, shape, 100) if case["op"] == "cs" else RandomMask(k_op, shape, 0.5)
    x = jax.random.uniform(k_x, shape)
    y = jax.block_until_ready(op.mv(x))
    kw = {k: case[k] for k in ("conv", "width", "num_upsample") if k in case}
    gen = untrained_generator(case["generator"], shape, **kw)  # type: ignore[arg-type]
    walls, cpus = [], []
    for i in range(2):
        recording["on"] = i == 0
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(gp.dip(k_solve, y, op, generator=gen, num_steps=steps).x)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    recording["on"] = False
    return dict(case=name, shape=list(shape), generator=gen.name, config=dict(gen.config),
                latent_shape=list(gen.latent_shape), weights=gen.num_weights(), first_s=walls[0], second_s=walls[1],
                compile_s=walls[0] - walls[1], compile_cpu_s=cpus[0] - cpus[1],
                **{f"{k}_s": v for k, v in totals.items()}, load_avg=os.getloadavg()[0])


def _table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| case | shape | generator (config) | weights | wall: first - second (s) | cpu: first - second (s) | "
             "trace / lower / xla (s) | run (s) | all runs, wall / cpu (s) | load avg |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cfg = ", ".join(f"{k}={v}" for k, v in r["config"].items())
        runs = ", ".join(f"{w:.1f} / {c:.1f}" for w, c in zip(r["compile_s_all"], r["compile_cpu_s_all"]))
        lines.append(f"| {r['case']} | {'x'.join(map(str, r['shape']))} | {r['generator']} ({cfg}) | "
                     f"{r['weights']:,} | {r['compile_s']:.2f} | {r['compile_cpu_s']:.2f} | {r['trace_s']:.2f} / "
                     f"{r['lower_s']:.2f} / {r['xla_s']:.2f} | {r['second_s']:.2f} | {runs} | {r['load_avg']:.1f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per case (the minimum is reported)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--one", choices=list(CASES), help="measure one case in this process; print JSON")
    ap.add_argument("--tag", default="", help="suffix of the results files (e.g. 'before')")
    ap.add_argument("--before", help="a JSON file this script wrote earlier (e.g. on the parent commit, with "
                                     "--tag before): its table and a before/after column are added")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.steps)))
        return
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": "", "JAX_ENABLE_COMPILATION_CACHE": "false"}
    rows: list[dict[str, Any]] = []
    for name in args.cases:
        runs = []
        for _ in range(args.repeats):
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", name, "--steps", str(args.steps)],
                                 capture_output=True, text=True, env=env, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{name}: compile {runs[-1]['compile_s']:.2f} s wall, {runs[-1]['compile_cpu_s']:.2f} s cpu "
                  f"(xla {runs[-1]['xla_s']:.2f} s), run {runs[-1]['second_s']:.2f} s", flush=True)
        best = min(runs, key=lambda r: r["compile_cpu_s"])
        rows.append({**best, "compile_s": min(r["compile_s"] for r in runs),
                     "compile_s_all": [r["compile_s"] for r in runs],
                     "compile_cpu_s_all": [r["compile_cpu_s"] for r in runs]})
    info = machine_info()
    suffix = f"_{args.tag}" if args.tag else ""
    cmd = "python benchmarks/dip_compile.py " + " ".join(sys.argv[1:])
    write_json(f"dip_compile{suffix}.json", dict(machine=info, command=cmd.strip(), steps=args.steps, rows=rows))
    lines = [f"# DIP compile time (benchmarks/dip_compile.py{', ' + args.tag if args.tag else ''})", "",
             machine_line(info), "", f"Command: `{cmd.strip()}`", "",
             f"One image, `gp.dip(..., num_steps={args.steps})` called twice in a fresh process; the compile time is "
             f"the first call's time minus the second's, in wall and in CPU time (the machine is shared: CPU time is "
             f"the steadier figure); minimum over {args.repeats} processes (wall and CPU minima taken separately; "
             "trace / lower / xla and run are from the run with the least CPU time).", "", *_table(rows)]
    if args.before:
        with open(args.before) as fh:
            before = json.load(fh)
        old = {r["case"]: r for r in before["rows"]}
        lines += ["", f"## Before: `{before.get('command', '')}`", "", machine_line(before["machine"]), "",
                  *_table(before["rows"]), "", "## Before -> after (minimum compile time, s)", "",
                  "| case | wall before -> after | cpu before -> after |", "|---|---|---|"]
        for r in rows:
            if r["case"] in old:
                o = old[r["case"]]
                lines.append(f"| {r['case']} | {o['compile_s']:.1f} -> {r['compile_s']:.1f} | "
                             f"{o['compile_cpu_s']:.1f} -> {r['compile_cpu_s']:.1f} |")
    print(write_text(f"dip_compile{suffix}.md", "\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
