"""The README: short, its two commands present, every Python snippet self-contained and running; the
documentation site builds with mkdocs --strict."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_is_short_and_has_the_two_commands():
    assert len(README.splitlines()) <= 250
    for marker in ("<!-- demo-command -->", "<!-- test-command -->"):
        block = README.split(marker, 1)[1].split("```", 2)[1]
        assert "pip install" in block and "python3 -m venv" in block


@pytest.mark.parametrize("code", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_readme_snippet_runs_on_its_own(code, tmp_path):
    """Each snippet in a fresh interpreter: nothing defined by another snippet is needed."""
    assert len(SNIPPETS) >= 2
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env={**os.environ, "JAX_COMPILATION_CACHE_DIR": str(ROOT / ".jax_cache" / "tests")})
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_docs_site_builds_strict(tmp_path):
    mkdocs = pathlib.Path(sys.executable).with_name("mkdocs")
    proc = subprocess.run([str(mkdocs), "build", "--strict", "-d", str(tmp_path / "site")], capture_output=True,
                          text=True, cwd=ROOT, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "solvers" / "index.html").read_text()
    assert "reconstruct" in api and "RunOptions" in api  # the reference is generated from the docstrings
