"""Defects a new user hit (issue 28, item 9), one test each: the image reader, flag validation before any work,
``--out`` messages, ``--tol``, the training refusals and the grid's title. Most exit before any solve."""

import numpy as np
import pytest
from PIL import Image

from genprior_jax import data
from genprior_jax.cli import main


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


# 1. one image reader: load_images reads 16-bit (and every other) file as the CLI does -----------------------------

def _write(path, kind: str, rng) -> np.ndarray:
    """Write an image of ``kind`` to ``path``; return its true values in [0, 1], ``(H, W, C)``."""
    if kind in ("png16", "tif16", "pgm16"):
        raw = rng.integers(0, 65536, size=(9, 7), dtype=np.uint16)  # mean ~0.5 of the 16-bit range
        Image.fromarray(raw).save(path)
        return (raw / 65535.0)[..., None]
    if kind == "rgba":
        raw = rng.integers(0, 256, size=(9, 7, 4), dtype=np.uint8)
        Image.fromarray(raw, "RGBA").save(path)
        return raw[..., :3] / 255.0  # alpha dropped
    raw = rng.integers(0, 256, size=(9, 7, 3), dtype=np.uint8)  # ppm8: 8-bit RGB
    Image.fromarray(raw).save(path)
    return raw / 255.0


@pytest.mark.parametrize("kind,suffix", [("png16", "png"), ("tif16", "tif"), ("pgm16", "pgm"), ("rgba", "png"),
                                         ("ppm8", "ppm")])
def test_load_images_reads_every_format_as_the_cli_does(tmp_path, kind, suffix):
    path = tmp_path / f"img.{suffix}"
    truth = _write(path, kind, np.random.default_rng(0))
    c = truth.shape[-1]
    native = data.read_image(str(path))  # the CLI's reader
    np.testing.assert_allclose(native, truth, atol=1e-6)
    for spec in (str(path), str(tmp_path)):  # one file, or the directory holding it
        loaded = data.load_images(spec, (9, 7, c))
        assert loaded.shape == (1, 9, 7, c) and loaded.dtype == np.float32
        np.testing.assert_allclose(loaded[0], truth, atol=1e-5)  # same size: the resize keeps the values
    if kind == "png16":  # the reported defect: a source of mean ~0.5 came back all white (mean 1.000)
        assert abs(float(data.load_images(str(path), (9, 7, 1)).mean()) - float(truth.mean())) < 1e-5
        assert data.load_images(str(path), (9, 7, 3)).shape == (1, 9, 7, 3)  # grey repeated to RGB


def test_images_spec_messages(tmp_path):
    with pytest.raises(ValueError, match=r"an image file or a directory of images, .*no such file or directory"):
        data.load_image_files(str(tmp_path / "missing.png"))
    with pytest.raises(ValueError, match="no image files"):
        data.load_image_files(str(tmp_path))


def test_images_folder_is_read_recursively_like_training_data(tmp_path):
    from PIL import Image

    for sub, value in (("", 10), ("a", 20), ("a/b", 30)):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((5, 4), value, np.uint8)).save(tmp_path / sub / "img.png")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    files = data.load_image_files(str(tmp_path))
    assert [name for name, _ in files] == ["img.png", "a_img.png", "a_b_img.png"]
    assert [round(float(img.mean()) * 255) for _, img in files] == [10, 20, 30]


@pytest.mark.parametrize("count", [pytest.param("-2", id="negative"), pytest.param("0", id="zero"),
                                   pytest.param("x", id="not-a-number"), pytest.param("", id="empty")])
def test_images_spec_count_messages(count):
    with pytest.raises(ValueError, match=f"N a positive count of images, e.g. mnist-test:16; got N = '{count}'"):
        data.load_images(f"mnist-test:{count}")


# 2. --prior refused by a method that uses none; 7. mnist-test:-2 --------------------------------------------------

@pytest.mark.parametrize("method", ["tv", "lasso-dct", "dip"])
def test_prior_refused_for_a_method_without_one(tmp_path, capsys, method):
    out = tmp_path / "out"
    assert main(["reconstruct", "--method", method, "--prior", "vae-mnist", "--out", str(out)]) == 2
    assert f"--prior: method {method!r} uses no trained prior" in _err(capsys)
    assert not out.exists()  # refused before any work


def test_negative_mnist_count_says_what_it_expects(tmp_path, capsys):
    assert main(["reconstruct", "--method", "tv", "--images", "mnist-test:-2", "--out", str(tmp_path / "o")]) == 2
    assert "N a positive count of images" in _err(capsys)


# 3, 4, 6. train --out checked first; the refusal names what the trainer takes; --out errors name the flag ----------

@pytest.fixture
def no_training(monkeypatch):
    """The trainers raise if reached (keeping their signatures, where the CLI reads its defaults): a refusal must
    come before any training."""
    import functools

    import genprior_jax.training as training

    def refusing(fn):
        @functools.wraps(fn)
        def refuse(*args, **kwargs):
            raise AssertionError(f"{fn.__name__} started")

        return refuse

    for name in ("train_vae", "train_flow", "train_dcgan", "train_patch_flow", "train_ambient_dcgan"):
        monkeypatch.setattr(training, name, refusing(getattr(training, name)))


@pytest.mark.parametrize("model", ["vae", "flow", "dcgan", "patch-flow"])
def test_train_out_under_a_file_is_refused_before_training(tmp_path, capsys, no_training, model):
    (tmp_path / "file").write_text("not a directory")
    assert main(["train", model, "--out", str(tmp_path / "file" / "sub")]) == 2
    err = _err(capsys)
    assert f"--out: cannot create directory '{tmp_path / 'file' / 'sub'}': '{tmp_path / 'file'}' is a file" in err
    assert "Errno" not in err


@pytest.mark.parametrize("model,resumable", [("vae", False), ("patch-flow", False), ("flow", True), ("dcgan", True)])
def test_existing_checkpoint_refusal_names_what_the_trainer_takes(tmp_path, capsys, no_training, model, resumable):
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "config.json").write_text("{}")
    assert main(["train", model, "--out", str(out)]) == 2
    err = _err(capsys)
    assert "holds a checkpoint" in err and "--overwrite" in err
    assert ("--resume to continue it" in err) == resumable
    if not resumable:  # what it suggests works: --resume is refused by these trainers
        assert main(["train", model, "--out", str(out), "--resume"]) == 2
        assert "--resume" in _err(capsys)


def test_out_errors_name_the_flag_not_an_errno(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("x")
    assert main(["reconstruct", "--method", "tv", "--out", str(tmp_path / "file" / "sub")]) == 2
    err = _err(capsys)
    assert "--out: cannot create directory" in err and "Errno" not in err

    def denied(path, exist_ok=False):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr("genprior_jax.cli.os.makedirs", denied)
    assert main(["demo", "--out", str(tmp_path / "new")]) == 2
    err = _err(capsys)
    assert f"--out: cannot create directory '{tmp_path / 'new'}': Permission denied" in err and "Errno" not in err


# 8. posterior samples checked before the solve; 9. --tol ------------------------------------------------------------

@pytest.fixture
def no_posterior(monkeypatch):
    import genprior_jax.demo as demo

    def refuse(*args, **kwargs):
        raise AssertionError("the posterior solve started")

    monkeypatch.setattr(demo, "run_posterior_demo", refuse)


@pytest.mark.parametrize("argv,message", [
    (["--draws", "0"], "--samples (--draws): expected a positive number of posterior samples, got 0"),
    (["--samples", "-3"], "--samples (--draws): expected a positive number of posterior samples, got -3"),
    (["--tol", "-1"], "--tol: expected a number >= 0 or 'none', got '-1'"),
    (["--tol", "fast"], "--tol: expected a number >= 0 or 'none', got 'fast'"),
    (["--method", "langevin", "--tol", "1e-3"], "--tol: langevin is a sampler"),
])
def test_posterior_flags_are_checked_before_the_solve(tmp_path, capsys, no_posterior, argv, message):
    out = tmp_path / "out"
    assert main(["posterior", *argv, "--out", str(out)]) == 2
    assert message in _err(capsys)
    assert not out.exists()


def test_posterior_passes_tol(tmp_path, monkeypatch):
    import genprior_jax.demo as demo

    seen = []
    monkeypatch.setattr(demo, "run_posterior_demo", lambda **kw: seen.append(kw))
    for flag, expected in (([], {}), (["--tol", "none"], {"tol": None}), (["--tol", "1e-4"], {"tol": 1e-4})):
        assert main(["posterior", *flag, "--out", str(tmp_path / "out")]) == 0
        assert {k: v for k, v in seen[-1].items() if k == "tol"} == expected


def test_reconstruct_takes_one_file_and_passes_tol(tmp_path, monkeypatch):
    """``--images`` one file; ``--tol`` reaches the solve as the run option ``tol`` (``none``: ``tol=None``;
    that it then runs every step: tests/test_reconstruct.py::test_cli_directory_of_images)."""
    import genprior_jax.reconstruction as reconstruction

    Image.fromarray(np.full((8, 6), 128, np.uint8)).save(tmp_path / "one.png")
    seen = []

    def stop(method, images, *args, **kwargs):
        seen.append((images, kwargs))
        raise RuntimeError("stop before the solve")

    monkeypatch.setattr(reconstruction, "reconstruct_images", stop)
    for flag, expected in (([], {}), (["--tol", "none"], {"tol": None}), (["--tol", "0.5"], {"tol": 0.5})):
        assert main(["reconstruct", "--method", "tv", "--images", str(tmp_path / "one.png"), *flag,
                     "--out", str(tmp_path / "out")]) == 1
        images, kwargs = seen[-1]
        assert images.shape == (1, 8, 6, 1) and np.allclose(images, 128 / 255)
        assert {k: v for k, v in kwargs.items() if k == "tol"} == expected


# 10. the training refusal for a non-MNIST config says what works now ------------------------------------------------

@pytest.mark.parametrize("trainer,config", [("train_flow", "glow-celeba64"), ("train_dcgan", "dcgan-celeba64")])
def test_non_mnist_config_refusal_says_what_to_do(trainer, config):
    import genprior_jax.training as training

    with pytest.raises(ValueError, match=r"not supported yet\. Train a 28x28x1 config .*genprior-jax train "
                                         r"patch-flow.*--method patchnr") as exc:
        getattr(training, trainer)(config, out=None)
    assert "GPU/TPU" not in str(exc.value)


# 11. the grid's title fits the figure ------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2])
def test_grid_title_fits_the_figure(tmp_path, monkeypatch, n):
    import matplotlib.pyplot as plt

    from genprior_jax.plotting import save_grid

    figures = []
    close = plt.close
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to measure it
    rows = {name: np.zeros((n, 12, 16, 3), np.float32) for name in ("truth", "A^+ y", "tv", "|error|")}
    title = "tv on mask:missing=0.5, noise 0.01, 12x16x3 (PSNR dB under each image)"
    save_grid(rows, str(tmp_path / "grid.png"), title=title, captions={"tv": ["12.3"] * n})
    fig = figures[-1]
    renderer = fig.canvas.get_renderer()
    box = fig._suptitle.get_window_extent(renderer)
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height, (box, fig.bbox)
    assert box.y0 >= max(ax.get_window_extent(renderer).y1 for ax in fig.axes)  # above the images
    assert fig._suptitle.get_text().replace("\n", " ") == title  # wrapped, not cut
    close(fig)
