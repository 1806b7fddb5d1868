"""Copy the benchmark tables from benchmarks/results/*.md into the documentation site (docs/benchmarks.md,
between the bench markers). Each result's title (its first line) must be unique: it is the section's heading.

    python benchmarks/update_docs.py
"""

from __future__ import annotations

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
ORDER = [
    "diffusion_mnist",
    "diffusion_posterior",
    "diffusion_peers",
    "diffusion_photos",
    "ambient_mnist",
    "ambient_mnist_seeds",
    "ambient_length",
    "ambient_length_fresh",
    "ambient_length_budget",
    "ambient_length_wgan",
    "ambient_length_theta",
    "ambient_length_long",
    "ambient_length_fresh_long",
    "ambient_length_k2",
    "ambient_rescore",
    "ambient_floor",
    "asim_convergence",
    "analysis_vs_synthesis_glow133",
    "analysis_vs_synthesis_converged",
    "analysis_vs_synthesis_warm",
    "ood_mnist_noisefree",
    "ood_mnist_noisefree_m300_500",
    "real_images",
    "real_images_b",
    "real_images_cs",
    "real_images_ct",
    "patch_prior_128",
    "patch_prior_128_ct30",
    "patch_prior_128_more",
    "patch_prior_128_baselines",
    "patch_prior_128_ct30_baselines",
    "patch_convergence",
    "peers",
    "peers_lasso_dip",
    "tv_batch",
    "dip_compile",
    "time_to_result_defaults",
    "time_to_result_rgb512",
    "patchnr_defaults",
    "time_to_result_steps50",
    "time_to_result_before",
    "train_throughput",
    "faces",
    "csgm_mnist",
    "csgm_mnist_flow_converged",
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
    "denoise_mnist_flow_retrained",
    "denoise_mnist_flow_converged",
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
    # demote the heading; relative links (pictures beside the results) become their repository paths as text, so
    # the site's strict build has no link that leaves it
    first, _, rest = text.partition("\n")
    text = re.sub(r"^# (.*)$", lambda m: f"### {m.group(1)} ({name}.md)", first) + "\n"
    text += re.sub(r"^#+ ", "#### ", rest, flags=re.M)
    text = re.sub(r"\[([^]]+)\]\((?!http)([^)]+)\)", lambda m: f"{m.group(1)} (`benchmarks/results/{m.group(2)}`)",
                  text)
    return text.strip()


def title(name: str) -> str:
    with open(os.path.join(RESULTS, f"{name}.md")) as fh:
        return fh.readline().lstrip("# ").strip()


def replace_between(path: str, body: str) -> None:
    with open(path) as fh:
        text = fh.read()
    if START not in text or END not in text:
        raise SystemExit(f"{path} lacks the markers {START} / {END}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    with open(path, "w") as fh:
        fh.write(head + START + "\n" + body + "\n" + END + tail)


def duplicate_titles(names: list[str]) -> dict[str, list[str]]:
    """``{title: [result names]}`` for every title that more than one of ``names`` carries."""
    by_title: dict[str, list[str]] = {}
    for n in names:
        by_title.setdefault(title(n), []).append(n)
    return {t: ns for t, ns in by_title.items() if len(ns) > 1}


def main() -> None:
    names = [n for n in ORDER if os.path.exists(os.path.join(RESULTS, f"{n}.md"))]
    duplicates = duplicate_titles(names)
    if duplicates:
        raise SystemExit(f"benchmark titles must be unique; shared: {duplicates}")
    parts = [s for s in (section(n) for n in names) if s]
    replace_between(os.path.join(ROOT, "docs", "benchmarks.md"), "\n\n".join(parts) if parts else "(no results yet)")
    print(f"docs/benchmarks.md: {len(parts)} benchmark sections")


if __name__ == "__main__":
    main()
