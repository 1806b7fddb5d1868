"""``genprior-jax bench``: run the benchmark suite (the scripts in the repository's ``benchmarks/``) at a size.

The benchmarks are scripts, not package modules: they live beside the package in a source checkout (an editable
install finds them; pass ``benchmarks_dir`` otherwise). ``quick`` runs each script's ``--quick`` smoke size, whose
results go to ``benchmarks/results/*_quick*`` (git-ignored, so committed results are never overwritten);
``full`` runs the settings whose results are committed. Every script runs in its own process; one that fails
does not stop the others, and the report names it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

from tqdm.auto import tqdm


class Benchmark(NamedTuple):
    script: str
    quick: tuple[str, ...] | None  # arguments of the smoke size; None: the script has no smoke size
    full: tuple[str, ...] = ()  # arguments of the committed results


SUITE: dict[str, Benchmark] = {
    "csgm_mnist": Benchmark("csgm_mnist.py", ("--quick",)),
    "speed_csgm": Benchmark("speed_csgm.py", ("--quick",)),
    "analysis_vs_synthesis": Benchmark("analysis_vs_synthesis.py", ("--quick",)),
    "ood_mnist": Benchmark("ood_mnist.py", ("--quick",)),
    "posterior_mnist": Benchmark("posterior_mnist.py", ("--quick",)),
    "denoise_mnist": Benchmark("denoise_mnist.py", ("--quick",)),
    "nonlinear": Benchmark("nonlinear.py", ("--quick",)),
    "defense_mnist": Benchmark("defense_mnist.py", ("--quick",)),
    "baselines_check": Benchmark("baselines_check.py", None),
    "dip_check": Benchmark("dip_check.py", None, ("--mse",)),
    "asim_convergence": Benchmark("asim_convergence.py", ("--quick",)),
    "memory_chunks": Benchmark("memory_chunks.py", None),
    "tv_batch": Benchmark("tv_batch.py", ("--quick",)),
    "dip_compile": Benchmark("dip_compile.py", None),
    "time_to_result": Benchmark("time_to_result.py", None),
    "train_throughput": Benchmark("train_throughput.py", None),
    "faces": Benchmark("faces.py", ("--quick",), ("--train",)),
    "fetch_faces": Benchmark("fetch_faces.py", None),  # the ORL faces (data for training on faces), from a wheel
    "diffusion_mnist": Benchmark("diffusion_mnist.py", ("--quick",)),
    "diffusion_posterior": Benchmark("diffusion_posterior.py", ("--quick",)),
    "diffusion_peers": Benchmark("diffusion_peers.py", None),  # needs deepinv's environment (see its docstring)
    "photo_training_set": Benchmark("photo_training_set.py", None),  # diffusion-photo's training images (data)
    "real_images": Benchmark("real_images.py", ("--quick",)),
    "ambient_mnist": Benchmark("ambient_mnist.py", ("--quick",)),
    "ambient_length": Benchmark("ambient_length.py", ("--quick",)),
    "ambient_floor": Benchmark("ambient_floor.py", ("--quick",)),
    "ambient_rescore": Benchmark("ambient_rescore.py", None),  # needs ambient_length.py's checkpoints
    "patch_convergence": Benchmark("patch_convergence.py", None),
    "patchnr_defaults": Benchmark("patchnr_defaults.py", None, (
        "--configs", "old=stride=2,num_steps=500", "s4n250=stride=4,num_steps=250", "s4n200=stride=4,num_steps=200")),
    "peers": Benchmark("peers.py", None),  # needs the peers' own environments (see its docstring)
}
SIZES = ("quick", "full")


def default_benchmarks_dir() -> Path:
    """``benchmarks/`` beside the package directory (a source checkout or an editable install)."""
    return Path(__file__).resolve().parent.parent / "benchmarks"


def plan(size: str, only: list[str] | None = None) -> list[tuple[str, tuple[str, ...] | None]]:
    """``[(name, args or None)]`` for ``size`` (:data:`SIZES`), restricted to ``only``; ``None`` marks a benchmark
    with no run at that size."""
    if size not in SIZES:
        raise ValueError(f"bench: expected size in {SIZES}, got {size!r}")
    unknown = sorted(set(only or ()) - set(SUITE))
    if unknown:
        raise ValueError(f"bench: unknown benchmark(s) {unknown}; expected names from {sorted(SUITE)}")
    names = [n for n in SUITE if not only or n in only]
    return [(n, SUITE[n].quick if size == "quick" else SUITE[n].full) for n in names]


def run_suite(size: str = "quick", only: list[str] | None = None, benchmarks_dir: str | Path | None = None,
              extra_args: list[str] | None = None) -> dict[str, dict[str, object]]:
    """Run the benchmarks of :func:`plan` one process each, streaming their output. Returns
    ``{name: {"status": "ok" | "failed (exit N)" | "no <size> run", "seconds": float}}``."""
    todo = plan(size, only)
    root = Path(benchmarks_dir) if benchmarks_dir is not None else default_benchmarks_dir()
    missing = [SUITE[n].script for n, a in todo if a is not None and not (root / SUITE[n].script).is_file()]
    if missing:
        raise ValueError(f"bench: expected the benchmark scripts {missing} in {root} (a source checkout of "
                         f"genprior_jax; pass --benchmarks-dir), found none there")
    report: dict[str, dict[str, object]] = {}
    for name, args in tqdm(todo, desc=f"bench ({size})", unit="benchmark"):
        if args is None:
            report[name] = {"status": f"no {size} run", "seconds": 0.0}
            continue
        cmd = [sys.executable, str(root / SUITE[name].script), *args, *(extra_args or [])]
        tqdm.write(f"$ {' '.join(cmd)}")
        t0 = time.perf_counter()
        code = subprocess.call(cmd, cwd=root.parent, env=dict(os.environ))
        report[name] = {"status": "ok" if code == 0 else f"failed (exit {code})",
                        "seconds": round(time.perf_counter() - t0, 1)}
    return report


def format_report(report: dict[str, dict[str, object]]) -> str:
    lines = ["| benchmark | status | seconds |", "|---|---|---|"]
    lines += [f"| {name} | {r['status']} | {r['seconds']} |" for name, r in report.items()]
    return "\n".join(lines)
