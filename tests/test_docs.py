"""The README: short (<= 200 lines, prose <= 120 columns), its two commands present, its Python example
self-contained and running; benchmark titles unique; the documentation site builds with mkdocs --strict, its home
page generated from the README and the notebooks rendered."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


MAX_LINES, MAX_WIDTH = 200, 120


def prose_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of every line of a Markdown text outside fenced code blocks and tables."""
    out, in_code = [], False
    for i, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code and not line.lstrip().startswith("|"):
            out.append((i, line))
    return out


def test_prose_lines_skips_code_and_tables_only():
    text = "a\n```\n" + "x" * 300 + "\n```\n| " + "y" * 300 + " |\n" + "z" * 130 + "\n"
    assert prose_lines(text) == [(1, "a"), (6, "z" * 130)]


def test_readme_is_short_and_has_the_two_commands():
    assert len(README.splitlines()) <= MAX_LINES, f"README.md: {len(README.splitlines())} lines, at most {MAX_LINES}"
    wide = [(i, len(line)) for i, line in prose_lines(README) if len(line) > MAX_WIDTH]
    assert not wide, f"README.md lines wider than {MAX_WIDTH} columns outside code blocks and tables: {wide}"
    for marker in ("<!-- demo-command -->", "<!-- test-command -->"):
        block = README.split(marker, 1)[1].split("```", 2)[1]
        assert "pip install" in block and "python3 -m venv" in block
    # .ci/run reads the test command as the second line after its marker
    lines = README.splitlines()
    at = lines.index("<!-- test-command -->")
    assert lines[at + 1] == "```" and lines[at + 2].startswith("python3 -m venv .venv && ")


def test_benchmark_titles_are_unique():
    titles: dict[str, list[str]] = {}
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.md")):
        first = path.read_text().split("\n", 1)[0]
        assert first.startswith("# "), f"{path.name}: the first line is not a '# ' title: {first!r}"
        titles.setdefault(first, []).append(path.name)
    shared = {t: names for t, names in titles.items() if len(names) > 1}
    assert not shared, f"benchmark results sharing a title: {shared}"


def test_home_page_links_are_rewritten_for_the_site():
    sys.path.insert(0, str(ROOT))
    try:
        from mkdocs_hooks import readme_as_home_page
    finally:
        sys.path.remove(str(ROOT))
    text = "[a](docs/guide/usage.md) [b](CONTRIBUTING.md) [c](notebooks/q.ipynb)\n[r]: docs/benchmarks.md#x\n"
    assert readme_as_home_page(text) == "[a](guide/usage.md) [b](contributing.md) [c](notebooks/q.ipynb)\n" \
                                        "[r]: benchmarks.md#x\n"
    assert not (ROOT / "docs" / "index.md").exists(), "docs/index.md: the home page is generated from README.md"


@pytest.mark.parametrize("code", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_readme_snippet_runs_on_its_own(code, tmp_path):
    """Each snippet in a fresh interpreter: nothing defined by another snippet is needed."""
    assert len(SNIPPETS) >= 1
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
    home = (tmp_path / "site" / "index.html").read_text()
    assert "The seed papers" in home and 'href="benchmarks/#' in home  # README.md, its links rewritten
    training = (tmp_path / "site" / "api" / "training" / "index.html").read_text()
    for trainer in ("vae.train_vae", "flow.train_flow", "dcgan.train_dcgan", "patch_flow.train_patch_flow",
                    "ambient.train_ambient_dcgan"):  # the five trainers of `genprior-jax train`
        assert f'id="genprior_jax.training.{trainer}"' in training, trainer
    usage = (tmp_path / "site" / "guide" / "usage" / "index.html").read_text()
    for section in ("photos-of-any-size-patchnr", "reconstruct-a-folder-of-photos",
                    "your-images-your-size-training-a-prior", "training-the-shipped-priors"):
        assert f'id="{section}"' in usage, section
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):  # every notebook is a page, its code shown
        page = (tmp_path / "site" / "notebooks" / nb.stem / "index.html").read_text()
        assert page.count("jp-CodeCell") >= 3, nb.name
