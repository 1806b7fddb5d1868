"""``genprior-jax bench``: the suite table matches the scripts on disk, sizes, failures reported, bad names."""

import subprocess
import sys

import pytest

from genprior_jax.bench import SUITE, default_benchmarks_dir, plan, run_suite
from genprior_jax.cli import main


def test_every_benchmark_script_is_in_the_suite_and_exists():
    root = default_benchmarks_dir()
    scripts = {p.name for p in root.glob("*.py") if not p.name.startswith("_") and p.name != "update_docs.py"}
    assert {b.script for b in SUITE.values()} == scripts
    for b in SUITE.values():  # a quick size is the script's own --quick flag
        if b.quick is not None:
            assert "--quick" in (root / b.script).read_text()


def test_plan_sizes_and_unknown_names():
    quick = dict(plan("quick"))
    assert quick["csgm_mnist"] == ("--quick",) and quick["memory_chunks"] is None
    assert dict(plan("full", ["dip_check"])) == {"dip_check": ("--mse",)}
    with pytest.raises(ValueError, match="unknown benchmark"):
        plan("quick", ["csgm"])
    with pytest.raises(ValueError, match="expected size"):
        plan("huge")


def test_run_suite_runs_each_script_and_reports_failures(tmp_path, capfd):
    (tmp_path / "csgm_mnist.py").write_text("import sys\nprint('ran', sys.argv[1:])\n")
    (tmp_path / "nonlinear.py").write_text("import sys\nsys.exit(3)\n")
    report = run_suite("quick", ["csgm_mnist", "nonlinear", "memory_chunks"], tmp_path)
    assert report["csgm_mnist"]["status"] == "ok"
    assert report["nonlinear"]["status"] == "failed (exit 3)"
    assert report["memory_chunks"]["status"] == "no quick run"
    assert "ran ['--quick']" in capfd.readouterr().out
    code = main(["bench", "--only", "csgm_mnist", "nonlinear", "--benchmarks-dir", str(tmp_path)])
    assert code == 1 and "failed (exit 3)" in capfd.readouterr().out


def test_missing_scripts_and_list(tmp_path, capsys):
    with pytest.raises(ValueError, match="expected the benchmark scripts"):
        run_suite("quick", ["csgm_mnist"], tmp_path)
    assert main(["bench", "--list", "--size", "full"]) == 0
    out = capsys.readouterr().out
    assert "dip_check: dip_check.py --mse" in out and "csgm_mnist: csgm_mnist.py" in out


@pytest.mark.parametrize("script, argv, message", [
    ("ambient_rescore.py", ["--draws", "1"], "--draws must be >= 2 to give a spread; got 1"),
    ("ambient_rescore.py", ["--ckpt", "no-equals-sign"],
     "--ckpt: expected LABEL=PATH of a saved generator, got 'no-equals-sign'"),
    ("ambient_length.py", ["--merge", "other"], "--merge goes with --report-only"),
    ("ambient_length.py", ["--report-only", "--prefix", "no_such_prefix", "--modes", "ambient"],
     "--report-only: no saved scores of this --measurement / --n-samples / --loss / --draws in"),
])
def test_ambient_benchmark_scripts_reject_bad_arguments(script, argv, message):
    """The AmbientGAN scripts stop before any work with a message naming what was expected and what came."""
    r = subprocess.run([sys.executable, str(default_benchmarks_dir() / script), *argv], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode != 0 and message in r.stderr, r.stderr[-2000:]
