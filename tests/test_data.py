"""Embedded MNIST splits and the TFDS loader (with tfds.testing.mock_data)."""

import numpy as np
import pytest

from genprior_jax.data import DatasetUnavailableError, load_mnist, load_tfds


def test_embedded_splits():
    sizes = {}
    seen = []
    for split in ("train", "validation", "test"):
        d = load_mnist(split)
        assert d.images.dtype == np.float32 and d.images.shape[1:] == (28, 28, 1)
        assert d.images.min() >= 0.0 and d.images.max() <= 1.0 and d.images.max() > 0.99
        assert d.labels.dtype == np.int32 and set(np.unique(d.labels)) == set(range(10))
        sizes[split] = len(d.images)
        seen.append(d.images.reshape(len(d.images), -1))
    assert sizes == {"train": 4000, "validation": 500, "test": 500}
    allx = np.concatenate(seen)
    assert len(np.unique(allx, axis=0)) >= 4990  # splits are disjoint (up to duplicate digits in MNIST itself)
    np.testing.assert_array_equal(load_mnist("test", n=3).images, load_mnist("test").images[:3])  # fixed split


def test_embedded_filters_and_errors():
    d = load_mnist("test", digits=(3, 7))
    assert set(np.unique(d.labels)) == {3, 7}
    with pytest.raises(ValueError, match="expected split in"):
        load_mnist("dev")
    with pytest.raises(ValueError, match="1 <= n <= 500"):
        load_mnist("test", n=501)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_tfds_loader_with_mock_data(name):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=9):
        d = load_tfds(name, split="test", n=5)
    assert d.images.shape == (5, 28, 28, 1) and d.images.dtype == np.float32
    assert 0.0 <= d.images.min() and d.images.max() <= 1.0
    assert d.labels.shape == (5,)


def test_tfds_unavailable_gives_clear_error(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="(?s)could not load TFDS dataset 'mnist'.*load_mnist"):
        load_tfds("mnist", split="test", data_dir=str(tmp_path), download=False)


def test_skimage_image_shapes_and_scaling():
    from genprior_jax.data import skimage_image

    rgb = skimage_image("astronaut", 64)
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.float32 and 0.0 <= rgb.min() and rgb.max() <= 1.0
    coins = skimage_image("coins")  # 303x384 uint8, native size
    assert coins.shape == (303, 384, 1)
    from skimage import data

    np.testing.assert_allclose(coins[..., 0], data.coins() / 255.0, atol=1e-6)
    assert skimage_image("astronaut", 32, gray=True).shape == (32, 32, 1)
    with pytest.raises(ValueError, match="no image 'nope'"):
        skimage_image("nope")
