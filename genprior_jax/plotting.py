"""PNG figures: image grids (one row per method) and error-vs-measurements plots."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fit_suptitle(fig, title: str, fontsize: float, margin: float = 0.02) -> None:
    """``fig.suptitle(title)`` wrapped onto as many lines as it needs to fit the figure's width (less ``margin`` of
    it on each side), the figure made taller by the added lines so that the images keep their size."""
    text = fig.suptitle(title, fontsize=fontsize)
    renderer = fig.canvas.get_renderer()
    room = fig.bbox.width * (1 - 2 * margin)
    width = text.get_window_extent(renderer).width
    lines = [title]
    chars = len(title)
    while width > room and chars > 1:
        chars = max(1, min(chars - 1, int(chars * room / width)))
        lines = textwrap.wrap(title, chars, break_long_words=True)
        text.set_text("\n".join(lines))
        width = text.get_window_extent(renderer).width
    if len(lines) > 1:
        w, h = fig.get_size_inches()
        fig.set_size_inches(w, h + (len(lines) - 1) * 1.25 * fontsize / 72)


def save_grid(rows: Mapping[str, np.ndarray], path: str, captions: Mapping[str, Sequence[str]] | None = None,
              title: str | None = None, cell: float = 0.9) -> str:
    """Save a grid: one row per entry of ``rows`` (``(N, H, W, C)`` images in ``[0, 1]``), labelled by its key;
    ``captions[row][i]`` is printed under image ``i`` (e.g. its PSNR); a ``title`` wider than the grid wraps."""
    plt = _pyplot()
    names = list(rows)
    n = max(len(np.asarray(v)) for v in rows.values())
    fig, axes = plt.subplots(len(names), n, figsize=(cell * n + 1.2, cell * len(names) * 1.15 + 0.4), squeeze=False)
    for r, name in enumerate(names):
        imgs = np.clip(np.nan_to_num(np.asarray(rows[name], np.float32)), 0.0, 1.0)
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if c >= len(imgs):
                continue
            img = imgs[c]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1,
                      interpolation="nearest")
            if captions and name in captions:
                ax.set_xlabel(captions[name][c], fontsize=6, labelpad=1)
        axes[r, 0].set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    if title:
        _fit_suptitle(fig, title, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def save_curves(xs: Sequence[float], curves: Mapping[str, Sequence[float]], path: str, xlabel: str, ylabel: str,
                title: str | None = None, errors: Mapping[str, Sequence[float]] | None = None,
                logy: bool = True) -> str:
    """Line plot of several curves over ``xs`` (error bars from ``errors``), log-scaled y by default. A curve's
    NaN entries (not measured at that x) are left out and its measured points joined."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in curves.items():
        ys_arr = np.asarray(ys, dtype=float)
        keep = np.isfinite(ys_arr)
        err = None if errors is None or errors.get(name) is None else np.asarray(errors[name], dtype=float)[keep]
        ax.errorbar(np.asarray(xs)[keep], ys_arr[keep], yerr=err, marker="o", ms=4, capsize=3, label=name)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def show_image(path: str) -> str:
    """Show a saved PNG inline when running in a notebook (IPython kernel); elsewhere print where it is."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        get_ipython = None  # type: ignore[assignment]
    shell = get_ipython() if get_ipython is not None else None
    if shell is not None and getattr(shell, "kernel", None) is not None:
        display(Image(filename=path))
    else:
        print(f"wrote {path}")
    return path
