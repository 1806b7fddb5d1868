"""Checkpoints: atomic save, checksum, and loading priors by name."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genprior_jax.checkpoint as ckpt
from genprior_jax.priors import available_priors, init_vae, load_prior, vae_prior


def test_round_trip(tmp_path, key):
    params = init_vae(key)
    path = ckpt.save_checkpoint(str(tmp_path / "vae"), params, "vae", {"hidden": (500, 500), "latent": 20,
                                                                        "image_shape": (28, 28, 1)})
    restored, record = ckpt.load_checkpoint(path)
    assert record["kind"] == "vae"
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(restored)):
        np.testing.assert_array_equal(a, b)
    prior = load_prior(path)
    z = jnp.zeros((20,))
    np.testing.assert_allclose(prior.generate(prior.params, z), vae_prior(params).generate(params, z), rtol=1e-6)
    assert sorted(os.listdir(tmp_path)) == ["vae"]  # no temporary directories left behind


def test_failed_save_keeps_previous(tmp_path, key, monkeypatch):
    path = str(tmp_path / "vae")
    ckpt.save_checkpoint(path, {"w": np.ones(3)}, "vae", {})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.json, "dump", boom)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(path, {"w": np.zeros(3)}, "vae", {})
    monkeypatch.undo()
    restored, _ = ckpt.load_checkpoint(path)
    np.testing.assert_array_equal(restored["w"], np.ones(3))
    assert sorted(os.listdir(tmp_path)) == ["vae"]


def _overwrite_params_tail(path):
    with open(os.path.join(path, ckpt.PARAMS_FILE), "r+b") as fh:
        fh.seek(-3, os.SEEK_END)
        fh.write(b"\x00\x01\x02")


def _write_invalid_config(path):
    with open(os.path.join(path, "config.json"), "w") as fh:
        fh.write("{not json")


@pytest.mark.parametrize("kind, damage, load, error, match", [
    pytest.param("vae", _overwrite_params_tail, ckpt.load_checkpoint, ValueError, "corrupted: expected SHA-256",
                 id="corrupted-params"),
    pytest.param("vae", lambda path: os.remove(os.path.join(path, ckpt.PARAMS_FILE)), ckpt.load_checkpoint,
                 FileNotFoundError, "params.msgpack", id="missing-params"),
    pytest.param("vae", shutil.rmtree, load_prior, FileNotFoundError, "no checkpoint directory", id="no-directory"),
    pytest.param("gan?", None, load_prior, ValueError, "kind 'gan\\?'", id="unknown-kind"),
    pytest.param("vae", _write_invalid_config, ckpt.load_checkpoint, ValueError, "not valid JSON",
                 id="config-not-json"),
])
def test_corrupted_and_missing(tmp_path, kind, damage, load, error, match):
    path = str(tmp_path / "c")
    ckpt.save_checkpoint(path, {"w": np.arange(5.0)}, kind, {})
    if damage is not None:
        damage(path)
    with pytest.raises(error, match=match):
        load(path)


def test_unknown_prior_name():
    with pytest.raises(ValueError, match=r"unknown prior 'vae-cifar'; expected one of \[.*'vae-mnist'"):
        load_prior("vae-cifar")


def test_shipped_vae_checkpoint(key):
    assert "vae-mnist" in available_priors()
    prior = load_prior("vae-mnist")
    assert prior.latent_shape == (20,) and prior.image_shape == (28, 28, 1)
    x = prior.sample(key, 8)
    assert x.shape == (8, 28, 28, 1) and float(x.min()) >= 0 and float(x.max()) <= 1
    with open(os.path.join(os.path.dirname(ckpt.__file__), "checkpoints", "vae-mnist", "config.json")) as fh:
        record = json.load(fh)
    m = record["metadata"]["metrics"]
    assert m["seed"] == 0 and m["command"].startswith("genprior-jax train vae")
    assert m["test_elbo"] > -130  # a trained model, not a random init (about -540 nats)
    # the encoder mean of a digit decodes back close to it
    from genprior_jax.data import load_mnist

    d = load_mnist("test", n=16).images
    z = jax.vmap(prior.encode, (None, 0))(prior.params, d)
    rec = jax.vmap(prior.generate, (None, 0))(prior.params, z)
    assert float(jnp.mean((rec - d) ** 2)) < 0.03


def test_config_is_under_the_checksum(tmp_path):
    path = ckpt.save_checkpoint(str(tmp_path / "m"), {"w": np.ones(3)}, "vae", {"latent": 20})
    cfg = os.path.join(path, "config.json")
    record = json.load(open(cfg))
    record["config"]["latent"] = 21  # an edit that would load and fail at first use
    json.dump(record, open(cfg, "w"))
    with pytest.raises(ValueError, match="config.json was modified after it was written"):
        ckpt.load_checkpoint(path)
    for name in available_priors():  # the shipped checkpoints carry the digest, and it holds
        _, rec = ckpt.load_checkpoint(os.path.join(os.path.dirname(ckpt.__file__), "checkpoints", name))
        assert "record_sha256" in rec


def test_killed_saves_leave_nothing_behind_and_an_interrupted_swap_recovers(tmp_path):
    path = str(tmp_path / "m")
    ckpt.save_checkpoint(path, {"w": np.ones(3)}, "vae", {})
    (tmp_path / "m.tmp-abc123").mkdir()  # what a save killed before its rename leaves
    (tmp_path / "m.tmp-abc123" / "params.msgpack").write_bytes(b"partial")
    ckpt.save_checkpoint(path, {"w": np.full(3, 2.0)}, "vae", {})
    assert sorted(os.listdir(tmp_path)) == ["m"]
    os.replace(path, path + ".old")  # killed between the two renames: only the previous checkpoint, as .old
    restored, _ = ckpt.load_checkpoint(path)
    np.testing.assert_array_equal(restored["w"], np.full(3, 2.0))
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_checkpoint_directories_have_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = ckpt.save_checkpoint(str(tmp_path / "m"), {"w": np.ones(3)}, "vae", {})
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o755  # not mkdtemp's private 0700
