"""``genprior-jax reconstruct``: every method and every registered operator, chunking, outputs, bad input.

Each method is smoke-tested on one operator and each operator with one method in the default suite; the full
method x operator product runs under the ``slow`` marker (CI runs it).
"""

import csv
import json

import jax
import numpy as np
import pytest
from PIL import Image

from genprior_jax.cli import main
from genprior_jax.data import load_images, load_mnist
from genprior_jax.operators import EXAMPLES, LinearOperator, make_operator
from genprior_jax.priors import load_prior
from genprior_jax.reconstruction import LINEAR_ONLY, METHODS, reconstruct_images

OPS = sorted(EXAMPLES)
METHOD_NAMES = sorted(METHODS)
LINEAR = {o for o in OPS if isinstance(make_operator(EXAMPLES[o], jax.random.key(0), (28, 28, 1)), LinearOperator)}
FAST = ({(m, "gaussian") for m in METHOD_NAMES} | {("lasso-dct", o) for o in LINEAR}
        | {("csgm", o) for o in set(OPS) - LINEAR})


def _run_cli(tmp_path, method, op_name):
    out = tmp_path / f"{method}-{op_name}"
    code = main(["reconstruct", "--method", method, "--operator", EXAMPLES[op_name], "--images", "mnist-test:3",
                 "--chunk", "2", "--steps", "4", "--restarts", "1", "--noise", "0.05", "--out", str(out)])
    return code, out


def _check_outputs(out, n):
    with open(out / "metrics.json") as fh:
        record = json.load(fh)
    assert record["n"] == n and len(record["psnr"]) == n and len(record["status"]) == n
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["index"]) for r in rows] == list(range(n))
    assert (out / "reconstruction.png").stat().st_size > 1000
    assert "| method |" in (out / "summary.md").read_text()
    return record


@pytest.mark.parametrize("method,op_name", sorted(FAST))
def test_cli_method_operator_smoke(tmp_path, method, op_name):
    code, out = _run_cli(tmp_path, method, op_name)
    record = _check_outputs(out, 3)
    assert code == 0 and record["n_ok"] == 3
    assert np.isfinite(record["summary"]["psnr"])


@pytest.fixture
def fresh_jax_caches():
    """The full product compiles ~150 distinct programs in one process; dropping each test's compiled code keeps
    the process's memory flat (it grew by several GB otherwise, and XLA:CPU crashed in a CI run)."""
    yield
    jax.clear_caches()


@pytest.mark.slow
@pytest.mark.parametrize("method,op_name", sorted({(m, o) for m in METHOD_NAMES for o in OPS} - FAST))
def test_cli_every_method_operator_combination(tmp_path, fresh_jax_caches, method, op_name):
    """Every pair the fast smoke test does not cover."""
    if method in LINEAR_ONLY and op_name not in LINEAR:
        with pytest.raises(ValueError, match="expected a linear operator"):
            _run_cli(tmp_path, method, op_name)
        return
    code, out = _run_cli(tmp_path, method, op_name)
    record = _check_outputs(out, 3)
    assert code == 0 and record["n_ok"] == 3


def test_chunked_equals_single_chunk(key):
    x = load_mnist("test", n=5).images
    op = make_operator("gaussian:m=60", key, (28, 28, 1))
    one = reconstruct_images("lasso-dct", x, op, key, noise=0.01, chunk_size=5, steps=50, progress=False)
    chunked = reconstruct_images("lasso-dct", x, op, key, noise=0.01, chunk_size=2, steps=50, progress=False)
    np.testing.assert_allclose(chunked["x"], one["x"], atol=1e-5)
    assert chunked["x"].shape == x.shape and (chunked["status"] == 0).all()


def test_csgm_reconstruction_beats_backprojection(key):
    x = load_mnist("test", n=4).images
    op = make_operator("gaussian:m=100", key, (28, 28, 1))
    res = reconstruct_images("csgm", x, op, key, prior=load_prior("vae-mnist"), noise=0.01, steps=200, restarts=2,
                             progress=False)
    seen_mse = np.mean((np.clip(res["seen"], 0, 1) - x) ** 2)
    assert np.mean(res["metrics"]["mse"]) < 0.5 * seen_mse


def test_bad_input(key):
    x = load_mnist("test", n=2).images
    op = make_operator("gaussian:m=50", key, (28, 28, 1))
    with pytest.raises(ValueError, match="unknown method"):
        reconstruct_images("nope", x, op, key)
    with pytest.raises(ValueError, match="needs a trained prior"):
        reconstruct_images("csgm", x, op, key)
    with pytest.raises(ValueError, match="expected images of shape"):
        reconstruct_images("lasso-dct", x[..., 0], op, key)
    with pytest.raises(ValueError, match="NaN"):
        reconstruct_images("lasso-dct", np.full_like(x, np.nan), op, key)
    with pytest.raises(ValueError, match="chunk_size"):
        reconstruct_images("lasso-dct", x, op, key, chunk_size=0)


def test_load_images_from_directory(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.uniform(size=(40, 30, 3)) * 255).astype(np.uint8)).save(tmp_path / f"im{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    imgs = load_images(str(tmp_path), (28, 28, 1))
    assert imgs.shape == (3, 28, 28, 1) and imgs.dtype == np.float32 and 0 <= imgs.min() <= imgs.max() <= 1
    assert load_images("mnist-validation:7").shape == (7, 28, 28, 1)
    with pytest.raises(ValueError, match="no such directory"):
        load_images(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="MNIST digits are"):
        load_images("mnist-test:2", (64, 64, 3))


def test_cli_directory_of_images(tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    for i, img in enumerate(load_mnist("test", n=2).images):
        Image.fromarray((img[..., 0] * 255).astype(np.uint8)).save(src / f"{i}.png")
    out = tmp_path / "out"
    assert main(["reconstruct", "--method", "lasso-dct", "--operator", "box:size=7", "--images", str(src),
                 "--steps", "20", "--out", str(out)]) == 0
    _check_outputs(out, 2)


def test_cli_reports_unknown_operator(tmp_path):
    with pytest.raises(ValueError, match="unknown operator"):
        main(["reconstruct", "--method", "lasso-dct", "--operator", "warp:k=3", "--out", str(tmp_path)])

