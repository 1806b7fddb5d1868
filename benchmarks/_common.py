"""Shared helpers for the benchmark scripts: machine/version record and result files."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from typing import Any

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def machine_info() -> dict[str, Any]:
    import jax
    import numpy as np

    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "numpy": np.__version__,
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        here = os.path.dirname(__file__)
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                            cwd=here).stdout.strip()
        # code changed since that commit (the library or a benchmark script; results files do not count)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "../genprior_jax",
                                "*.py"], capture_output=True, text=True, cwd=here).stdout.strip()
        if dirty:
            info["git_commit"] += "+uncommitted changes"
    except OSError:
        pass
    for mod in ("flax", "optax", "torch"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return info


def saved_step(path: str) -> int:
    """Training step recorded in the checkpoint directory ``path`` (its ``config.json`` metadata; 0 if none)."""
    cfg = os.path.join(path, "config.json")
    if not os.path.isfile(cfg):
        return 0
    with open(cfg) as fh:
        return int(json.load(fh)["metadata"].get("step", 0))


def write_json(name: str, payload: dict[str, Any]) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name)
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=2)
        fh.write("\n")
    return path


def write_text(name: str, text: str) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name)
    with open(path, "w") as fh:
        fh.write(text)
    return path


def machine_line(info: dict[str, Any]) -> str:
    return (f"Machine: {info.get('cpu', info['machine'])}, {info['cpu_count']} cores; Python {info['python']}, "
            f"jax {info['jax']} ({info['jax_backend']}), flax {info.get('flax')}, optax {info.get('optax')}"
            + (f", torch {info['torch']}" if "torch" in info else "")
            + f"; {info['date']}, commit {info.get('git_commit')}")
