"""Metrics agree with scikit-image on real images and behave as metrics."""

import numpy as np
import pytest
from skimage import data as skdata
from skimage.filters import gaussian
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize

from genprior_jax import metrics
from genprior_jax.data import load_mnist


def _real_pairs():
    rng = np.random.default_rng(0)
    cam = resize(skdata.camera(), (128, 128), anti_aliasing=True).astype(np.float32)[..., None]
    astro = resize(skdata.astronaut(), (96, 96), anti_aliasing=True).astype(np.float32)
    digits = load_mnist("test", n=4).images
    pairs = [
        (cam, np.clip(cam + 0.05 * rng.standard_normal(cam.shape), 0, 1).astype(np.float32)),
        (cam, gaussian(cam, sigma=1.5, channel_axis=-1).astype(np.float32)),
        (astro, np.clip(astro + 0.1 * rng.standard_normal(astro.shape), 0, 1).astype(np.float32)),
    ]
    pairs += [(d, np.clip(d + 0.2 * rng.standard_normal(d.shape), 0, 1).astype(np.float32)) for d in digits]
    return pairs


@pytest.mark.parametrize("i", range(7))
def test_psnr_ssim_match_skimage(i):
    x, x_hat = _real_pairs()[i]
    ref_psnr = peak_signal_noise_ratio(x, x_hat, data_range=1.0)
    ref_ssim = structural_similarity(x, x_hat, data_range=1.0, channel_axis=-1)
    assert abs(float(metrics.psnr(x, x_hat)) - ref_psnr) < 1e-3
    assert abs(float(metrics.ssim(x, x_hat)) - ref_ssim) < 1e-3
    np.testing.assert_allclose(float(metrics.mse(x, x_hat)), np.mean((x - x_hat) ** 2), rtol=1e-5)


def test_batched_shapes_and_identities():
    x = load_mnist("test", n=6).images.reshape(2, 3, 28, 28, 1)
    rng = np.random.default_rng(1)
    x_hat = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1).astype(np.float32)
    for f in (metrics.mse, metrics.psnr, metrics.ssim):
        out = f(x, x_hat)
        assert out.shape == (2, 3)
        np.testing.assert_allclose(out[1, 2], f(x[1, 2], x_hat[1, 2]), rtol=1e-5)
    np.testing.assert_allclose(metrics.ssim(x, x), 1.0, atol=1e-5)
    assert np.all(np.asarray(metrics.mse(x, x)) == 0)
    np.testing.assert_allclose(metrics.psnr(x[0, 0], x[0, 0] * 0 + x[0, 0] + 0.1), 20.0, rtol=1e-5)


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda: metrics.mse(np.zeros((28, 28, 1)), np.zeros((28, 28, 3))), "same shape",
                 id="mse-different-shapes"),
    pytest.param(lambda: metrics.psnr(np.zeros((28, 28)), np.zeros((28, 28))), r"\(\.\.\., H, W, C\)",
                 id="psnr-no-channel"),
    pytest.param(lambda: metrics.ssim(np.zeros((5, 5, 1)), np.zeros((5, 5, 1))), "at least 7x7",
                 id="ssim-image-below-window"),
])
def test_metric_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
