"""Every notebook script runs top to bottom at a small size."""

import glob
import os
import runpy

import pytest

NOTEBOOKS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "notebooks", "*.py")))


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("QUICK", "1")
    png = tmp_path / "out.png"
    monkeypatch.setenv("QUICKSTART_PNG", str(png))
    runpy.run_path(path, run_name="__main__")
    assert png.stat().st_size > 1000
