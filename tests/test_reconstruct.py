"""``genprior-jax reconstruct`` and ``gp.reconstruct``: one front door for every method and operator, chunking,
outputs, bad input.

Every method runs through the CLI and through ``gp.reconstruct`` with the same defaults (the same estimates);
each operator is solved with one method; the full method x operator product is traced (``jax.eval_shape``: every
pair builds and type-checks without compiling), and the linear-only methods refuse the non-linear operators.
"""

import csv
import json

import jax
import numpy as np
import pytest
from PIL import Image

import genprior_jax as gp
from genprior_jax.cli import main
from genprior_jax.data import load_images, load_mnist
from genprior_jax.operators import EXAMPLES, GaussianNoise, LinearOperator, make_operator, measure
from genprior_jax.priors import load_prior
from genprior_jax.reconstruction import reconstruct_images
from genprior_jax.solvers import METHODS, defaults
from genprior_jax.solvers.methods import cli_overrides

OPS = sorted(EXAMPLES)
METHOD_NAMES = sorted(METHODS)
LINEAR = {o for o in OPS if isinstance(make_operator(EXAMPLES[o], jax.random.key(0), (28, 28, 1)), LinearOperator)}
OP_SMOKE = ({("lasso-dct", o) for o in LINEAR} | {("csgm", o) for o in set(OPS) - LINEAR}) - {("lasso-dct", "gaussian")}


def _prior_for(method):
    """The CLI's default prior for ``method`` (its registry entry's ``default_prior``)."""
    if not METHODS[method].needs_prior:
        return None
    return load_prior(METHODS[method].default_prior)


def _flags(method, steps=4):
    restarts = ["--restarts", "1"] if "num_restarts" in defaults(method) else []
    return ["--steps", str(steps), *restarts]


def _run_cli(tmp_path, method, op_name, n=3, chunk=2, progress=True):
    out = tmp_path / f"{method}-{op_name}"
    code = main(["reconstruct", "--method", method, "--operator", EXAMPLES[op_name], "--images", f"mnist-test:{n}",
                 "--chunk", str(chunk), *_flags(method), "--noise", "0.05", "--out", str(out),
                 *([] if progress else ["--no-progress"])])
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


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_every_method_same_through_cli_and_api(tmp_path, method):
    """The CLI's result equals ``gp.reconstruct`` called with the method's defaults and the same overrides (without
    the progress bar's host callbacks the CLI compiles the API's program, so the API call reuses it)."""
    code, out = _run_cli(tmp_path, method, "gaussian", n=2, chunk=2, progress=False)
    record = _check_outputs(out, 2)
    assert code == 0 and record["n_ok"] == 2 and np.isfinite(record["summary"]["psnr"])
    # the CLI's keys, operator and measurements, then the API with only the flags' overrides
    k_op, k_run = jax.random.split(jax.random.key(0))
    op = make_operator(EXAMPLES["gaussian"], k_op, (28, 28, 1))
    x = load_mnist("test", n=2).images
    k_noise, k_solve = jax.random.split(k_run)
    y = measure(k_noise, op, x, GaussianNoise(0.05))  # the batch: one key per image
    prior = _prior_for(method)
    kw = {"num_steps": 4, **({"num_restarts": 1} if "num_restarts" in defaults(method) else {})}
    assert cli_overrides(method, steps=4, restarts=kw.get("num_restarts"), noise=0.05) == {
        **kw, **({"noise": GaussianNoise(0.05)} if "noise" in defaults(method) else {})}
    if "noise" in defaults(method):
        kw["noise"] = GaussianNoise(0.05)
    rec = gp.reconstruct(prior, k_solve, y, op, method=method, **kw)
    np.testing.assert_allclose(np.asarray(gp.psnr(x, np.clip(rec.x, 0, 1))), record["psnr"], rtol=1e-4)


@pytest.mark.parametrize("method,op_name", sorted(OP_SMOKE))
def test_cli_operator_smoke(tmp_path, method, op_name):
    code, out = _run_cli(tmp_path, method, op_name)
    record = _check_outputs(out, 3)
    assert code == 0 and record["n_ok"] == 3
    assert np.isfinite(record["summary"]["psnr"])


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_every_method_operator_combination_traces(method):
    """Every (method, operator) pair builds, traces and returns the image shape (``jax.eval_shape``: nothing is
    compiled); the linear-only methods refuse the non-linear operators by name. The diffusion methods trace a
    one-level U-Net (the shipped one costs ~20 s of tracing per method over the operators)."""
    prior = _prior_for(method)
    if prior is not None and prior.denoise is not None:
        from genprior_jax.priors import diffusion as dm

        config = dm.check_config({"channels": (8,), "emb": 8, "sample_steps": 2})
        prior = dm.diffusion_prior(dm.init_diffusion(jax.random.key(0), config), config)
    x = load_mnist("test", n=2).images
    for op_name in OPS:
        op = make_operator(EXAMPLES[op_name], jax.random.key(0), (28, 28, 1))
        y = measure(jax.random.key(1), op, x, GaussianNoise(0.05))
        kw = {"num_steps": 3, **({"num_restarts": 1} if "num_restarts" in defaults(method) else {})}
        if METHODS[method].linear_only and op_name not in LINEAR:
            with pytest.raises(ValueError, match="expected a linear operator"):
                gp.reconstruct(prior, jax.random.key(2), y, op, method=method, **kw)
            continue
        out = jax.eval_shape(lambda yy: gp.reconstruct(prior, jax.random.key(2), yy, op, method=method, **kw).x, y)
        assert out.shape == x.shape, (method, op_name)


def test_chunked_equals_single_chunk(key):
    x = load_mnist("test", n=5).images
    op = make_operator("gaussian:m=60", key, (28, 28, 1))
    one = reconstruct_images("lasso-dct", x, op, key, noise=0.01, chunk_size=5, steps=50, progress=False)
    chunked = reconstruct_images("lasso-dct", x, op, key, noise=0.01, chunk_size=2, steps=50, progress=False)
    np.testing.assert_allclose(chunked["x"], one["x"], atol=1e-5)
    # 50 FISTA steps stop at the cap before the default tolerance: status 2 (capped), never 1 (non-finite)
    assert chunked["x"].shape == x.shape and (chunked["status"] == 2).all()
    np.testing.assert_array_equal(chunked["status"], one["status"])


def test_csgm_reconstruction_beats_backprojection(key):
    x = load_mnist("test", n=4).images
    op = make_operator("gaussian:m=100", key, (28, 28, 1))
    res = reconstruct_images("csgm", x, op, key, prior=load_prior("vae-mnist"), noise=0.01, steps=200, restarts=2,
                             progress=False)
    seen_mse = np.mean((np.clip(res["seen"], 0, 1) - x) ** 2)
    assert np.mean(res["metrics"]["mse"]) < 0.5 * seen_mse


@pytest.fixture(scope="module")
def images_and_op():
    return load_mnist("test", n=2).images, make_operator("gaussian:m=50", jax.random.key(0), (28, 28, 1))


@pytest.mark.parametrize("method, transform, kwargs, match", [
    pytest.param("nope", None, {}, "unknown method", id="unknown-method"),
    pytest.param("csgm", None, {}, "needs a trained prior", id="csgm-without-prior"),
    pytest.param("lasso-dct", lambda x: x[..., 0], {}, "expected images of shape", id="images-without-channel"),
    pytest.param("lasso-dct", lambda x: np.full_like(x, np.nan), {}, "NaN", id="nan-images"),
    pytest.param("lasso-dct", None, dict(chunk_size=0), "chunk_size", id="chunk-size-zero"),
    pytest.param("lasso-dct", lambda x: (x * 255).astype(np.uint8), {},
                 "expected floating-point images in \\[0, 1\\], got dtype uint8", id="uint8-images"),
    pytest.param("lasso-dct", lambda x: x * 255, {},
                 "expected images in \\[0, 1\\], got values in \\[0, 255\\]", id="images-in-0-255"),
    pytest.param("lasso-dct", None, dict(noise=-0.1), "reconstruct: expected noise >= 0 and finite",
                 id="negative-noise"),
    pytest.param("lasso-dct", None, dict(noise=float("nan")), "reconstruct: expected noise >= 0 and finite",
                 id="nan-noise"),
    pytest.param("tv", None, dict(restarts=2), "has no restarts", id="tv-restarts"),
])
def test_bad_input(images_and_op, key, method, transform, kwargs, match):
    x, op = images_and_op
    with pytest.raises(ValueError, match=match):
        reconstruct_images(method, x if transform is None else transform(x), op, key, **kwargs)


def test_load_images_from_directory(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.uniform(size=(40, 30, 3)) * 255).astype(np.uint8)).save(tmp_path / f"im{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    imgs = load_images(str(tmp_path), (28, 28, 1))
    assert imgs.shape == (3, 28, 28, 1) and imgs.dtype == np.float32 and 0 <= imgs.min() <= imgs.max() <= 1
    assert load_images("mnist-validation:7").shape == (7, 28, 28, 1)
    (tmp_path / "notes.txt").unlink()
    good = (tmp_path / "im0.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=r"images: cannot read '.*truncated\.png'"):
        load_images(str(tmp_path), (28, 28, 1))
    (tmp_path / "truncated.png").unlink()
    with pytest.raises(ValueError, match="no such file or directory"):
        load_images(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="MNIST digits are"):
        load_images("mnist-test:2", (64, 64, 3))


def test_cli_directory_of_images(tmp_path):
    """A directory of PNGs; ``--tol none`` runs every one of ``--steps`` (Lasso's default certificate stops this
    problem after 30); a method without a prior records none in metrics.json (issue 28)."""
    src = tmp_path / "imgs"
    src.mkdir()
    for i, img in enumerate(load_mnist("test", n=2).images):
        Image.fromarray((img[..., 0] * 255).astype(np.uint8)).save(src / f"{i}.png")
    out = tmp_path / "out"
    assert main(["reconstruct", "--method", "lasso-dct", "--operator", "box:size=7", "--images", str(src),
                 "--steps", "200", "--tol", "none", "--out", str(out)]) == 0
    record = _check_outputs(out, 2)
    assert record["steps"] == [200, 200] and record["config"]["tol"] == "none" and record["config"]["prior"] is None


def test_cli_reports_unknown_operator(tmp_path, capsys):
    assert main(["reconstruct", "--method", "lasso-dct", "--operator", "warp:k=3", "--out", str(tmp_path)]) == 2
    assert "unknown operator 'warp'" in capsys.readouterr().err



def test_cli_native_size_mixed_photos(tmp_path, capsys):
    """A directory of mixed-size grey and RGB photos (one 16-bit, one RGBA) is reconstructed at native size, one
    compile per shape; every reconstruction is saved as PNG and as an array that reloads exactly; metrics are
    keyed by file name; a prior with a fixed shape refuses other shapes instead of resizing."""
    from skimage import data as skdata

    src = tmp_path / "photos"
    src.mkdir()
    camera = skdata.camera()[::8, ::8]  # 64 x 64 grey
    Image.fromarray(camera).save(src / "camera.png")
    Image.fromarray(skdata.astronaut()[::8, ::8]).save(src / "astronaut.png")  # 64 x 64 RGB
    rgba = np.dstack([skdata.chelsea()[:48:4, :64:4], np.full((12, 16), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(src / "chelsea_rgba.png")  # 12 x 16 RGB + alpha
    deep = camera.astype(np.uint16) * 257
    Image.fromarray(deep).save(src / "deep16.png")  # 64 x 64, 16-bit grey (camera's shape: its compiled program)
    out = tmp_path / "out"
    assert main(["reconstruct", "--method", "tv", "--operator", "mask:missing=0.5", "--images", str(src),
                 "--steps", "30", "--noise", "0.01", "--out", str(out)]) == 0
    with open(out / "metrics.csv") as fh:
        rows = {r["file"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"astronaut.png", "camera.png", "chelsea_rgba.png", "deep16.png"}
    assert rows["astronaut.png"]["shape"] == "64x64x3" and rows["camera.png"]["shape"] == "64x64x1"
    assert rows["chelsea_rgba.png"]["shape"] == "12x16x3" and rows["deep16.png"]["shape"] == "64x64x1"
    for name in rows:
        stem = name[:-4]
        arr = np.load(out / "arrays" / f"{stem}.npy")
        png = np.asarray(Image.open(out / "images" / f"{stem}.png"))
        assert arr.dtype == np.float32 and arr.shape[:2] == png.shape[:2]
        assert float(rows[name]["psnr"]) > 15
    record = json.loads((out / "metrics.json").read_text())
    assert record["files"][0] == "astronaut.png" and record["n"] == 4
    # the 16-bit image is read to 16-bit precision, not clipped to white
    from genprior_jax.data import read_image

    np.testing.assert_allclose(read_image(str(src / "deep16.png"))[..., 0], deep / 65535.0, atol=1e-7)
    assert read_image(str(src / "chelsea_rgba.png")).shape == (12, 16, 3)
    assert read_image(str(src / "astronaut.png"), gray=True).shape == (64, 64, 1)
    # a trained prior has one shape: refused, not resized; --size / --gray resize on request
    assert main(["reconstruct", "--method", "csgm", "--images", str(src), "--out", str(tmp_path / "o2")]) == 2
    assert "generates images of shape (28, 28, 1)" in capsys.readouterr().err
    assert main(["reconstruct", "--method", "lasso-dct", "--images", str(src), "--size", "28x28", "--gray",
                 "--steps", "5", "--out", str(tmp_path / "o3")]) == 0
    assert (tmp_path / "o3" / "reconstruction.png").exists()  # one shape: one grid
