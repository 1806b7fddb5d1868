"""Training any prior on your images (``train_prior`` / ``genprior-jax train MODEL --data``): the shared loop's resume,
failure and data-parallel behaviour, and each kind end to end through the CLI at 32x32 RGB."""

import json
import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

from genprior_jax.checkpoint import load_checkpoint
from genprior_jax.cli import main
from genprior_jax.datasets import ImageDataset
from genprior_jax.training import TrainTask, make_task, train

HERE = os.path.dirname(os.path.abspath(__file__))


def _toy_task(nan_from: int = 10**9) -> TrainTask:
    """A 16-parameter model of 4x4 images whose loss turns NaN from step ``nan_from`` on."""
    opt = optax.adam(0.1)

    def init(key, x):
        p = {"w": jnp.zeros(16)}
        return {"params": p, "opt_state": opt.init(p), "t": jnp.zeros((), jnp.int32)}

    def loss(p, key, x, t):
        noise = 0.01 * jax.random.normal(key, (16,))
        value = jnp.mean((x.reshape(len(x), -1) - p["w"] - noise) ** 2)
        return value * jnp.where(t >= nan_from, jnp.nan, 1.0)

    def step(s, key, x):
        value, g = jax.value_and_grad(loss)(s["params"], key, x, s["t"])
        upd, o = opt.update(g, s["opt_state"], s["params"])
        return {"params": optax.apply_updates(s["params"], upd), "opt_state": o, "t": s["t"] + 1}, {"loss": value}

    return TrainTask("toy", {"image_shape": (4, 4, 1)}, init, step,
                     lambda s, k, x: jnp.mean((x.reshape(len(x), -1) - s["params"]["w"]) ** 2, axis=1),
                     lambda s: s["params"], lambda p, k, n: jnp.broadcast_to(p["w"].reshape(4, 4, 1), (n, 4, 4, 1)))


@pytest.fixture(scope="module")
def toy_data():
    x = np.random.default_rng(0).random((40, 4, 4, 1)).astype(np.float32)
    return ImageDataset(x[:32], x[32:], {"spec": "toy"})


def test_resume_continues_the_same_run(toy_data, tmp_path):
    straight, m = train(_toy_task(), toy_data, jax.random.key(1), batch_size=8, num_steps=10, eval_every=5,
                        progress=False, flip=True, out=str(tmp_path / "a"))
    train(_toy_task(), toy_data, jax.random.key(1), batch_size=8, num_steps=5, eval_every=5, progress=False,
          flip=True, out=str(tmp_path / "b"))
    resumed, m2 = train(_toy_task(), toy_data, jax.random.key(1), batch_size=8, num_steps=10, eval_every=5,
                        progress=False, flip=True, out=str(tmp_path / "b"), resume=True)
    np.testing.assert_allclose(resumed["w"], straight["w"], rtol=1e-6)
    assert m2["final_train_loss"] == pytest.approx(m["final_train_loss"], rel=1e-6)
    assert [h["step"] for h in m2["history"]] == [5, 10]
    params, record = load_checkpoint(str(tmp_path / "b"))
    np.testing.assert_allclose(params["w"], resumed["w"])
    assert record["metadata"]["data"] == {"spec": "toy"} and os.path.isfile(tmp_path / "b" / "samples.png")


def test_a_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(toy_data, tmp_path):
    out = str(tmp_path / "ck")
    with pytest.raises(FloatingPointError, match=r"became nan at step 8; the last good checkpoint \(step 5\)"):
        train(_toy_task(nan_from=7), toy_data, jax.random.key(1), batch_size=8, num_steps=20, eval_every=5,
              log_every=4, progress=False, out=out)
    params, record = load_checkpoint(out)
    assert record["metadata"]["step"] == 5 and np.all(np.isfinite(params["w"]))


def test_structural_mistakes_are_named(toy_data):
    with pytest.raises(ValueError, match="batch_size 64 exceeds the 32 training images of 'toy'"):
        train(_toy_task(), toy_data, jax.random.key(0), batch_size=64, num_steps=2, progress=False)
    wrong = ImageDataset(toy_data.train[:, :2], toy_data.validation[:, :2], {"spec": "toy"})
    with pytest.raises(ValueError, match=r"wants images \(4, 4, 1\); the data are \(2, 4, 1\)"):
        train(_toy_task(), wrong, jax.random.key(0), batch_size=8, num_steps=2, progress=False)
    with pytest.raises(ValueError, match="unknown vae config keys \\['depth'\\]"):
        make_task("vae", (32, 32, 3), {"depth": 3})


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_reproduce_the_one_device_loss(toy_data, tmp_path):
    """``jax.distributed`` on localhost, 2 processes x 2 CPU devices (gloo collectives), the same global batch."""
    _, one = train(_toy_task(), toy_data, jax.random.key(3), batch_size=8, num_steps=6, eval_every=6, mesh=None,
                   progress=False, log_every=1)
    code = (f"import sys; sys.path.insert(0, {HERE!r}); import test_training_data as t; "
            "t.process_main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i), str(port), str(tmp_path / "ck")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_, e) in zip(procs, outs):
        assert p.returncode == 0, e[-3000:]
    results = [json.loads(next(line for line in o.splitlines() if line.startswith("RESULT"))[6:]) for o, _ in outs]
    for r in results:
        assert r["processes"] == 2 and r["devices"] == 4
        assert r["loss"] == pytest.approx(one["final_train_loss"], rel=1e-5)
        assert r["val"] == pytest.approx(one["val_loss"], rel=1e-5)
    assert load_checkpoint(str(tmp_path / "ck"))[1]["metadata"]["step"] == 6  # written once, by process 0


def process_main(pid: int, port: int, out: str) -> None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=pid)
    x = np.random.default_rng(0).random((40, 4, 4, 1)).astype(np.float32)
    _, m = train(_toy_task(), ImageDataset(x[:32], x[32:], {"spec": "toy"}), jax.random.key(3), batch_size=8,
                 num_steps=6, eval_every=6, progress=False, log_every=1, out=out)
    print("RESULT" + json.dumps({"processes": m["processes"], "devices": m["devices"],
                                 "loss": m["final_train_loss"], "val": m["val_loss"]}), flush=True)


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("rgb")
    (root / "sub").mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):  # smooth colour blobs at 40x36: the training resize crops them to 32x32
        yy, xx = np.mgrid[:40, :36] / 40.0
        img = np.stack([np.sin(3 * xx + rng.random() * 6) * np.cos(2 * yy + rng.random() * 6)] * 3, -1)
        img = 0.5 + 0.4 * img * rng.random(3)
        Image.fromarray((img * 255).astype(np.uint8)).save(root / ("sub" if i % 2 else "") / f"{i}.png")
    return root


@pytest.mark.parametrize("model,config,method", [
    ("vae", ["latent=8", "channels=(8,16)"], "csgm"),
    ("flow", ["steps=1", "hidden=8", "levels=2"], "csgm"),
    ("dcgan", ["channels=(16,8)", "latent=8"], "csgm"),
])
def test_cli_trains_each_kind_on_a_folder_and_reconstructs(model, config, method, rgb_folder, tmp_path, capsys):
    out = str(tmp_path / model)
    sets = [a for c in config for a in ("--config-set", c)]
    assert main(["train", model, "--data", str(rgb_folder), "--size", "32x32", "--steps", "4", "--batch-size", "6",
                 "--eval-every", "2", "--flip", "--out", out, *sets]) == 0
    assert "4 steps on 18 images (32, 32, 3)" in capsys.readouterr().out
    _, record = load_checkpoint(out)
    assert record["kind"] == model and record["metadata"]["data"]["num_train"] == 18
    assert record["metadata"]["data"]["size"] == [32, 32] and os.path.isfile(os.path.join(out, "samples.png"))
    rec = str(tmp_path / "rec")
    assert main(["reconstruct", "--method", method, "--prior", out, "--images", str(rgb_folder), "--size", "32x32",
                 "--operator", "gaussian:m=300", "--steps", "3", "--restarts", "1", "--out", rec,
                 "--no-progress"]) == 0
    with open(os.path.join(rec, "metrics.json")) as fh:
        metrics = json.load(fh)
    assert metrics["n"] == 20 and metrics["n_ok"] == 20  # --images reads the sub-folder too, like --data
    assert main(["reconstruct", "--method", method, "--prior", out, "--images", str(rgb_folder), "--size", "16x16",
                 "--out", str(tmp_path / "rec16"), "--steps", "2"]) == 2
    assert "generates images of shape (32, 32, 3)" in capsys.readouterr().err


def test_cli_trains_a_diffusion_prior_on_crops_and_reconstructs_at_another_size(rgb_folder, tmp_path, capsys):
    """``train diffusion``: random 16x16 crops of 32x32 colour images (a one-level U-Net: XLA:CPU compiles every
    convolution slowly); the fully convolutional denoiser then serves 16x16 images (PnP)."""
    out = str(tmp_path / "diffusion")
    assert main(["train", "diffusion", "--data", str(rgb_folder), "--size", "32x32", "--steps", "2", "--batch-size",
                 "6", "--eval-every", "2", "--out", out, "--config-set", "channels=(8,)", "--config-set",
                 "crop=(16,16)", "--config-set", "sample_steps=2", "--config-set", "emb=8"]) == 0
    assert "2 steps on 18 images (32, 32, 3)" in capsys.readouterr().out
    _, record = load_checkpoint(out)
    assert record["kind"] == "diffusion" and tuple(record["config"]["crop"]) == (16, 16)
    rec = str(tmp_path / "rec")
    assert main(["reconstruct", "--method", "pnp", "--prior", out, "--images", str(rgb_folder), "--size", "16x16",
                 "--operator", "mask:missing=0.5", "--steps", "2", "--tol", "none", "--out", rec,
                 "--no-progress"]) == 0
    with open(os.path.join(rec, "metrics.json")) as fh:
        assert json.load(fh)["n_ok"] == 20  # --images reads the sub-folder too, like --data


def test_bad_training_input_is_named(toy_data, tmp_path, capsys):
    from genprior_jax.datasets import load_dataset
    from genprior_jax.priors.dcgan import config_for as dcgan_config_for
    from genprior_jax.training import parse_overrides

    with pytest.raises(ValueError, match=r"expected 0 < validation < 1 or a spec of validation images, got 1.5"):
        load_dataset("mnist", validation=1.5)
    with pytest.raises(ValueError, match=r"--config-set: expected key=value, got 'hidden'"):
        parse_overrides(["hidden"])
    assert parse_overrides(["channels=(8, 16)", "kind=realnvp"]) == {"channels": (8, 16), "kind": "realnvp"}
    with pytest.raises(ValueError, match=r"unknown model 'gan'; expected one of \('vae', 'flow', 'dcgan', 'diffus"):
        make_task("gan", (32, 32, 3))
    with pytest.raises(ValueError, match=r"expected square images .* got \(32, 48\)"):
        dcgan_config_for((32, 48, 1))
    with pytest.raises(ValueError, match=r"expected mesh None, 'auto' or a jax.sharding.Mesh, got 'all'"):
        train(_toy_task(), toy_data, jax.random.key(0), batch_size=8, num_steps=2, progress=False, mesh="all")
    assert main(["train", "vae", "--data", "x", "--epochs", "3", "--out", str(tmp_path / "a")]) == 2
    assert "--epochs do not apply (use --steps" in capsys.readouterr().err
    assert main(["train", "vae", "--size", "32x32", "--out", str(tmp_path / "b")]) == 2
    assert "--size need --data SPEC" in capsys.readouterr().err
