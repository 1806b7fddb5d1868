"""Training data from a spec (``load_dataset`` / ``--data``): folders, arrays, TFDS (mocked), the embedded digits."""

import numpy as np
import pytest
from PIL import Image

from genprior_jax.datasets import load_dataset, parse_size


def _png(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)


@pytest.fixture
def folder(tmp_path):
    """6 grey 8-bit PNGs, 2 grey 16-bit PNGs (in a sub-folder) and 2 grey PGMs, all 12x10, and a stray text file."""
    rng = np.random.default_rng(0)
    pixels = {}
    for i in range(6):
        a = rng.integers(0, 256, (12, 10), dtype=np.uint8)
        _png(tmp_path / f"a{i}.png", a)
        pixels[f"a{i}.png"] = a / 255.0
    for i in range(2):
        a = rng.integers(0, 65536, (12, 10), dtype=np.uint16)
        _png(tmp_path / "deep" / f"b{i}.png", a)
        pixels[f"deep/b{i}.png"] = a / 65535.0
    for i in range(2):
        a = rng.integers(0, 256, (12, 10), dtype=np.uint8)
        Image.fromarray(a).save(tmp_path / f"c{i}.pgm")
        pixels[f"c{i}.pgm"] = a / 255.0
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path, pixels


def _same_images(a, b):
    """``a`` and ``b`` hold the same images in some order (to float32 round-off)."""
    a, b = (np.asarray(v, np.float64).reshape(len(v), -1) for v in (a, b))
    order = lambda v: v[np.lexsort(np.round(v, 4).T[::-1])]  # noqa: E731
    return a.shape == b.shape and np.allclose(order(a), order(b), atol=1e-6)


def test_folder_recursive_8_and_16_bit_and_a_seeded_split(folder):
    root, pixels = folder
    d = load_dataset(str(root), validation=0.2, seed=3)
    assert d.train.shape == (8, 12, 10, 1) and d.validation.shape == (2, 12, 10, 1)
    assert d.train.dtype == np.float32
    assert d.info["num_images"] == 10 and d.info["split_seed"] == 3 and d.info["image_shape"] == (12, 10, 1)
    everything = np.concatenate([d.train, d.validation])
    expected = np.stack([v[..., None] for v in pixels.values()])
    assert _same_images(everything, expected)  # every file, exactly scaled (8 bit / 255, 16 bit / 65535)
    for name in d.info["validation_files"]:
        assert any(np.allclose(v[..., 0], pixels[name], atol=1e-6) for v in d.validation)
    again = load_dataset(str(root), validation=0.2, seed=3)
    assert np.array_equal(again.validation, d.validation)  # deterministic by seed
    other = load_dataset(str(root), validation=0.2, seed=4)
    assert other.info["validation_files"] != d.info["validation_files"]


def test_rgb_resize_crop_and_gray(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(4):
        _png(tmp_path / f"rgb{i}.png", rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
    d = load_dataset(str(tmp_path), size="16x16")
    assert d.train.shape[1:] == (16, 16, 3) and len(d.train) + len(d.validation) == 4
    assert 0.0 <= d.train.min() and d.train.max() <= 1.0
    g = load_dataset(str(tmp_path), size=(8, 12), gray=True)
    assert g.train.shape[1:] == (8, 12, 1)
    # centre crop: a flat image with a bright left third crops to a flat dark square at 1:1
    flat = np.zeros((30, 90, 3), np.uint8)
    flat[:, :30] = 255
    _png(tmp_path / "crop" / "x.png", flat)
    _png(tmp_path / "crop" / "y.png", flat)
    c = load_dataset(str(tmp_path / "crop"), size=(10, 10))
    assert np.abs(np.concatenate([c.train, c.validation])).max() < 1e-3


def test_bad_folders_give_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        load_dataset(str(tmp_path / "empty"))
    bad = tmp_path / "bad"
    _png(bad / "ok.png", np.zeros((8, 8), np.uint8))
    (bad / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"cannot read '.*broken\.png'"):
        load_dataset(str(bad))
    mixed = tmp_path / "mixed"
    _png(mixed / "g.png", np.zeros((8, 8), np.uint8))
    _png(mixed / "c.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"mixed channel counts \(1 in 'g.png', 3 in 'c.png'\).*--gray"):
        load_dataset(str(mixed))
    assert load_dataset(str(mixed), gray=True).train.shape[1:] == (8, 8, 1)
    sizes = tmp_path / "sizes"
    _png(sizes / "a.png", np.zeros((8, 8), np.uint8))
    _png(sizes / "b.png", np.zeros((9, 8), np.uint8))
    with pytest.raises(ValueError, match=r"images of different sizes.*'b.png'.*--size"):
        load_dataset(str(sizes))
    one = tmp_path / "one"
    _png(one / "a.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="at least 2 images"):
        load_dataset(str(one))
    with pytest.raises(ValueError, match="expected 'mnist', a folder"):
        load_dataset(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="expected HxW"):
        parse_size("64by64")


def test_npy_and_npz_arrays(tmp_path):
    rng = np.random.default_rng(2)
    u8 = rng.integers(0, 256, (20, 6, 6), dtype=np.uint8)
    np.save(tmp_path / "d.npy", u8)
    d = load_dataset(str(tmp_path / "d.npy"), validation=0.25)
    assert d.train.shape == (15, 6, 6, 1) and d.validation.shape == (5, 6, 6, 1)
    assert _same_images(np.concatenate([d.train, d.validation]), u8[..., None] / 255.0)
    f = rng.random((10, 6, 6, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", images=f, labels=np.arange(10))
    z = load_dataset(str(tmp_path / "d.npz"))
    assert z.train.shape == (9, 6, 6, 3) and _same_images(np.concatenate([z.train, z.validation]), f)
    np.savez(tmp_path / "two.npz", a=f, b=f)
    with pytest.raises(ValueError, match="expected an array named 'images' or 'x'"):
        load_dataset(str(tmp_path / "two.npz"))
    np.save(tmp_path / "big.npy", f * 3)
    with pytest.raises(ValueError, match=r"expected finite float images in \[0, 1\]"):
        load_dataset(str(tmp_path / "big.npy"))
    np.save(tmp_path / "flat.npy", f[:, 0, 0])
    with pytest.raises(ValueError, match=r"expected an array \(N, H, W\)"):
        load_dataset(str(tmp_path / "flat.npy"))


def test_tfds_spec_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        d = load_dataset("tfds:mnist:train", validation=0.25)
    assert d.train.shape == (9, 28, 28, 1) and d.validation.shape == (3, 28, 28, 1)
    assert 0.0 <= d.train.min() and d.train.max() <= 1.0 and d.info["spec"] == "tfds:mnist:train"


def test_embedded_mnist_spec_keeps_its_fixed_split():
    d = load_dataset("mnist")
    assert d.train.shape == (4000, 28, 28, 1) and d.validation.shape == (500, 28, 28, 1)
    assert d.info["split"] == "embedded"


def test_a_second_spec_as_the_validation_set(tmp_path):
    rng = np.random.default_rng(3)
    for split, n in (("train", 5), ("val", 3)):
        for i in range(n):
            _png(tmp_path / split / f"{i}.png", rng.integers(0, 256, (20, 30), dtype=np.uint8))
    d = load_dataset(str(tmp_path / "train"), size=(16, 16), validation=str(tmp_path / "val"))
    assert d.train.shape == (5, 16, 16, 1) and d.validation.shape == (3, 16, 16, 1)
    assert d.info["split"] == "given" and d.info["validation_spec"] == str(tmp_path / "val")
    _png(tmp_path / "small" / "a.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match=r"validation images .*small' are \(10, 10, 1\), the training images .* "
                                         r"\(20, 30, 1\)"):
        load_dataset(str(tmp_path / "train"), validation=str(tmp_path / "small"))
