"""The command-line interface: help, demo and training at small sizes."""

import json
import os
import subprocess
import sys

import pytest

from genprior_jax.cli import main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("demo", "train", "posterior", "priors"):
        assert cmd in out


def test_console_script_help():
    proc = subprocess.run([sys.executable, "-m", "genprior_jax", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "demo" in proc.stdout


def test_demo_small(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n", "4", "--steps", "30", "--restarts", "2"]) == 0
    assert (out / "demo.png").stat().st_size > 1000
    with open(out / "metrics.json") as fh:
        metrics = json.load(fh)
    assert len(metrics["vae"]["psnr"]) == 4 and metrics["config"]["m"] == 100
    assert metrics["vae"]["status_ok"] == 4 and metrics["lasso_dct"]["status_ok"] == 4
    printed = capsys.readouterr().out
    assert "Lasso-DCT" in printed and "VAE" in printed and "MSE/pixel" in printed


def test_demo_bad_prior(tmp_path):
    with pytest.raises(ValueError, match="unknown prior 'nope'"):
        main(["demo", "--out", str(tmp_path), "--prior", "nope"])


def test_train_vae_one_epoch(tmp_path, capsys):
    out = tmp_path / "vae"
    assert main(["train", "vae", "--out", str(out), "--epochs", "1"]) == 0
    with open(out / "config.json") as fh:
        record = json.load(fh)
    assert record["kind"] == "vae" and record["metadata"]["metrics"]["epochs_run"] == 1
    assert record["metadata"]["metrics"]["command"].startswith("genprior-jax ")
    assert "test ELBO" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == ["vae"]


@pytest.mark.parametrize("method,model_error", [("vi", "0"), ("langevin", "0"), ("vi", "auto"), ("langevin", "0.1")])
def test_posterior_command(tmp_path, method, model_error):
    out = tmp_path / "post"
    assert main(["posterior", "--out", str(out), "--n", "2", "--steps", "60", "--method", method,
                 "--operator", "mask:missing=0.5", "--model-error", model_error]) == 0
    assert (out / "posterior.png").stat().st_size > 1000
    with open(out / "metrics.json") as fh:
        m = json.load(fh)
    assert m["status_ok"] == 2 and m["config"]["method"] == method
    assert 0.0 <= m["coverage_90"] <= 1.0
    if model_error == "auto":
        assert m["model_error_used"] > 0.0
    else:
        assert m["model_error_used"] == float(model_error)


def test_posterior_bad_model_error(tmp_path):
    with pytest.raises(SystemExit, match="expected a number >= 0 or 'auto', got 'lots'"):
        main(["posterior", "--out", str(tmp_path), "--model-error", "lots"])


def test_posterior_bad_operator(tmp_path):
    with pytest.raises(ValueError, match="unknown operator 'warp'"):
        main(["posterior", "--out", str(tmp_path), "--operator", "warp:k=3"])
