"""Every notebook (.ipynb) runs top to bottom in a Jupyter kernel at a small size, shows its figure inline, and
is in sync with its jupytext-paired percent script, with no outputs stored."""

import glob
import os
import pathlib

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(glob.glob(str(ROOT / "notebooks" / "*.ipynb")))


def test_there_are_notebooks_and_each_has_its_script():
    assert len(NOTEBOOKS) >= 4
    for path in NOTEBOOKS:
        assert os.path.exists(path[: -len(".ipynb")] + ".py")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_is_paired_stripped_and_installs_first(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    script = jupytext.read(path[: -len(".ipynb")] + ".py")
    assert [c.source for c in nb.cells] == [c.source for c in script.cells], "run `jupytext --sync` on the pair"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    assert nb.metadata["kernelspec"]["name"] == "python3"
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert 'find_spec("genprior_jax")' in first_code.source and "pip" in first_code.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_in_a_kernel(path, tmp_path, monkeypatch):
    monkeypatch.setenv("QUICK", "1")
    png = tmp_path / "out.png"
    monkeypatch.setenv("QUICKSTART_PNG", str(png))
    # the kernel shares the test suite's persistent compilation cache (conftest.py)
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".jax_cache" / "tests"))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert png.stat().st_size > 1000
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "the figure is not shown inline"
