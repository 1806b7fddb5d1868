"""Copy the benchmark tables from benchmarks/results/*.md into README.md (between the bench markers).

    python benchmarks/update_readme.py
"""

from __future__ import annotations

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
ORDER = [
    "asim_convergence",
    "csgm_mnist",
    "csgm_mnist_flow20",
    "baselines_check",
    "dip_check_mse",
    "dip_check_lr",
    "speed_csgm",
    "speed_csgm_epyc_earlier",
    "speed_csgm_xeon",
    "analysis_vs_synthesis_widegrid",
    "analysis_vs_synthesis_lbfgs",
    "analysis_vs_synthesis",
    "ood_mnist",
    "posterior_mnist",
    "denoise_mnist",
    "nonlinear",
    "defense_mnist",
    "memory_chunks",
]
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def section(name: str) -> str | None:
    path = os.path.join(RESULTS, f"{name}.md")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        text = fh.read()
    # demote the heading, point relative links into benchmarks/results/
    text = re.sub(r"^# (.*)$", lambda m: f"### {m.group(1)} ({name}.md)", text, count=1, flags=re.M)
    text = re.sub(r"^# ", "### ", text, flags=re.M)
    text = re.sub(r"\]\((?!http)([^)]+)\)", lambda m: f"](benchmarks/results/{m.group(1)})", text)
    return text.strip()


def main() -> None:
    parts = [s for s in (section(n) for n in ORDER) if s]
    readme = os.path.join(ROOT, "README.md")
    with open(readme) as fh:
        text = fh.read()
    if START not in text or END not in text:
        raise SystemExit(f"README.md lacks the markers {START} / {END}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    body = "\n\n".join(parts) if parts else "(no results yet)"
    with open(readme, "w") as fh:
        fh.write(head + START + "\n" + body + "\n" + END + tail)
    print(f"README.md: {len(parts)} benchmark sections")


if __name__ == "__main__":
    main()
