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


def test_demo_bad_prior(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--prior", "nope"]) == 2
    assert "genprior-jax demo: error: load_prior: unknown prior 'nope'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown prior 'nope'"):  # --debug: the exception itself
        main(["demo", "--out", str(tmp_path), "--prior", "nope", "--debug"])


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


def test_posterior_bad_model_error(tmp_path, capsys):
    assert main(["posterior", "--out", str(tmp_path), "--model-error", "lots"]) == 2
    assert "expected a number >= 0 or 'auto', got 'lots'" in capsys.readouterr().err


def test_posterior_bad_operator(tmp_path, capsys):
    assert main(["posterior", "--out", str(tmp_path), "--operator", "warp:k=3"]) == 2
    assert "unknown operator 'warp'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["reconstruct", "--operator", "gaussian:m=2.5", "--method", "tv"],
    ["reconstruct", "--operator", "warp:k=3", "--method", "tv"],
    ["reconstruct", "--method", "tv", "--restarts", "3"],
    ["reconstruct", "--method", "tv", "--images", "/no/such/dir"],
    ["reconstruct", "--method", "csgm", "--prior", "/no/such/checkpoint"],
    ["reconstruct", "--method", "tv", "--size", "12"],
    ["demo", "--prior", "nope"],
    ["demo", "--m", "0"],
    ["posterior", "--model-error", "-1"],
    ["posterior", "--method", "vi", "--operator", "gaussian:k=3"],
])
def test_user_errors_print_one_line_not_a_traceback(tmp_path, capsys, argv):
    code = main([*argv, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"genprior-jax {argv[0]}: error: ")


def test_bad_out_is_found_before_any_work(tmp_path, capsys):
    (tmp_path / "file").write_text("not a directory")
    assert main(["reconstruct", "--method", "tv", "--out", str(tmp_path / "file")]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as exc:
        main(["reconstruct", "--method", "nope"])  # argparse: not one of the choices
    assert exc.value.code == 2


@pytest.mark.parametrize("argv,message", [
    (["train", "vae", "--epochs", "0"], "--epochs: expected a positive number, got 0"),
    (["train", "flow", "--batch-size", "0"], "--batch-size: expected a positive number, got 0"),
    (["train", "vae", "--lr=-1e-3"], "--lr: expected a positive number, got -0.001"),
    (["train", "vae", "--resume"], "train vae: --resume is not supported"),
    (["train", "flow", "--digits", "1,x"], "--digits: expected comma-separated classes 0-9"),
    (["train", "flow", "--digits", "12"], "--digits: expected distinct classes 0-9"),
    (["train", "flow", "--digits", "0", "--batch-size", "5000"], r"give \d+ training, .* expected at least batch_size"),
    (["train", "vae", "--steps", "10"], "--steps applies to dcgan only"),
])
def test_train_refuses_bad_numbers_before_training(tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path / "ckpt")]) == 2
    import re

    assert re.search(message, capsys.readouterr().err)


def test_train_never_clobbers_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "config.json").write_text("{}")
    assert main(["train", "flow", "--out", str(out)]) == 2
    assert "holds a checkpoint; pass --resume to continue it or --overwrite" in capsys.readouterr().err
    assert (out / "config.json").read_text() == "{}"  # untouched
    assert main(["train", "flow", "--out", str(out), "--resume", "--overwrite"]) == 2



_CACHE_PROBE = """
import json, sys
import jax.monitoring
counts = {}
jax.monitoring.register_event_listener(lambda name, **kw: counts.__setitem__(name, counts.get(name, 0) + 1))
if sys.argv[1] == "api":
    import genprior_jax as gp
    where = gp.enable_compilation_cache(sys.argv[2])
    assert where == sys.argv[2], where
    y = gp.load_mnist("test", n=2).images.reshape(2, 28, 28, 1)
    op = gp.operators.Identity((28, 28, 1))
    gp.reconstruct(None, jax.random.key(0), y, op, method="tv", num_steps=3, tol=None).x.block_until_ready()
    code = 0
else:
    from genprior_jax.cli import main
    code = main(sys.argv[3:])
print(json.dumps({"code": code, "hits": counts.get("/jax/compilation_cache/cache_hits", 0),
                  "misses": counts.get("/jax/compilation_cache/cache_misses", 0)}))
"""


def _probe(mode, cache, tmp_path, argv=()):
    env = {**os.environ, "GENPRIOR_JAX_CACHE": str(cache)}
    proc = subprocess.run([sys.executable, "-c", _CACHE_PROBE, mode, str(cache), *argv], capture_output=True,
                          text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_persistent_cache_reloads_programs_without_compiling(tmp_path, monkeypatch):
    """``gp.enable_compilation_cache(path)``: a new process with the same shapes loads every program (cache hits, no
    misses: nothing compiled). The command line turns it on ($GENPRIOR_JAX_CACHE): after one call the solve's
    compiled program is on disk; ``GENPRIOR_JAX_CACHE=0`` leaves it off."""
    import genprior_jax as gp

    api_cache = tmp_path / "api"
    assert _probe("api", api_cache, tmp_path)["misses"] > 0
    api_again = _probe("api", api_cache, tmp_path)
    assert api_again["hits"] >= 1 and api_again["misses"] == 0, api_again
    cache = tmp_path / "xla"
    argv = ["reconstruct", "--method", "csgm", "--images", "mnist-test:2", "--steps", "3", "--restarts", "1",
            "--no-progress", "--out", str(tmp_path / "out")]
    first = _probe("cli", cache, tmp_path, argv)
    assert first["code"] == 0 and first["misses"] > 0
    assert any(p.name.startswith("jit_solve_chunk-") for p in cache.iterdir())  # the runner's compiled chunk
    import jax

    monkeypatch.setenv("GENPRIOR_JAX_CACHE", "0")
    configured = jax.config.jax_compilation_cache_dir
    try:
        jax.config.update("jax_compilation_cache_dir", None)
        assert gp.enable_compilation_cache() is None and jax.config.jax_compilation_cache_dir is None
    finally:
        jax.config.update("jax_compilation_cache_dir", configured)


def test_enable_compilation_cache_refuses_a_path_that_is_a_file(tmp_path):
    import genprior_jax as gp

    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match=r"expected a directory that can be created, got '.*a_file/xla'"):
        gp.enable_compilation_cache(blocker / "xla")


class _TrainCalled(BaseException):  # not an Exception: the CLI's top-level handler lets it through
    def __init__(self, args, kwargs):
        super().__init__("called")
        self.args_, self.kwargs = args, kwargs


@pytest.mark.parametrize("model,fn,extra", [
    ("vae", "train_vae", []), ("flow", "train_flow", []), ("dcgan", "train_dcgan", []),
    ("patch-flow", "train_patch_flow", []), ("ambient-dcgan", "train_ambient_dcgan", ["--measurement", "gaussian:m=4"]),
])
def test_train_defaults_are_the_training_functions(tmp_path, monkeypatch, model, fn, extra):
    """``genprior-jax train MODEL`` without flags calls the training function with its own defaults (one source:
    the CLI reads them from the signature; ambient-dcgan's optimizer keywords from ``train_dcgan``'s)."""
    import functools
    import inspect

    import genprior_jax.training as training
    from genprior_jax.cli import training_defaults

    real = getattr(training, fn)

    @functools.wraps(real)  # keeps the signature the CLI reads its defaults from
    def spy(*args, **kwargs):
        raise _TrainCalled(args, kwargs)

    monkeypatch.setattr(training, fn, spy)
    with pytest.raises(_TrainCalled) as info:
        main(["train", model, "--out", str(tmp_path / "ckpt"), *extra])
    sig = inspect.signature(real).parameters
    expected = training_defaults(model)
    given = dict(info.value.kwargs)
    if info.value.args_ and "config_name" in sig:  # the config is passed positionally
        given["config_name"] = info.value.args_[0]
    checked = {k for k in given if k in expected and k not in ("out", "command", "resume", "seed")}
    assert checked >= {"batch_size", "learning_rate"}, checked
    assert {k: given[k] for k in checked} == {k: expected[k] for k in checked}
    for k in checked & set(sig):
        assert given[k] == sig[k].default
