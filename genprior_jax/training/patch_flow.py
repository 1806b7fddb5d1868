"""Training of a patch flow on the natural images that ship with scikit-image (``genprior-jax train patch-flow``).

Data: grey versions (ITU-R 601 luma, ``skimage.color.rgb2gray``) of the photos in :data:`TRAIN_IMAGES`, in
``[0, 1]``, at three scales (1, 3/4, 1/2; anti-aliased resize) and under the 8 flips / quarter-turns; ``k x k``
patches at random positions, uniformly dequantized at 8 bits like the digits (``(round(255 p) + u) / 256``) plus
Gaussian noise of std ``noise`` (0.01). Without the noise the density peaks on flat 8-bit patches (constant
black or white regions are common in photos of text, the sky or microscopy backgrounds): as a regularizer
``-log p`` then drives reconstructions towards flat, saturated patches and costs PSNR even from the TV solution;
photos with large saturated backgrounds (text, page, hubble_deep_field, cell, retina) are left out for the same
reason. :data:`TEST_IMAGES` are never seen in training: the held-out patch NLL is
measured on them, and the real-image benchmarks evaluate on them. The split is fixed here::

    TRAIN_IMAGES = brick, grass, gravel, moon, coins, rocket, clock, immunohistochemistry, microaneurysms,
                   stereo_motorcycle (left view)
    TEST_IMAGES  = camera, astronaut, coffee, chelsea

Maximum likelihood with Adam (warm-up, cosine decay to 1 %), batches of random patches drawn afresh every step
from a pool re-sampled each epoch; the parameters of the epoch with the best validation NLL (a fixed set of
un-augmented training-photo patches) are kept and written atomically as a flow checkpoint (kind ``"flow"``, so
``gp.load_prior`` reads it) with the split, the command and the held-out (test-photo) NLL.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ..checkpoint import save_checkpoint
from ..data import skimage_image
from ..priors.flow import CONFIGS, batch_log_prob, check_config, init_flow
from .flow import dequantize, finite_loss

TRAIN_IMAGES = ("brick", "grass", "gravel", "moon", "coins", "rocket", "clock", "immunohistochemistry",
                "microaneurysms", "stereo_motorcycle")
TEST_IMAGES = ("camera", "astronaut", "coffee", "chelsea")
SCALES = (1.0, 0.75, 0.5)


def natural_image(name: str) -> np.ndarray:
    """The scikit-image photo ``name`` as a grey ``(H, W)`` float32 array in ``[0, 1]``."""
    return skimage_image(name, gray=True)[..., 0]


def _pyramid(names: tuple[str, ...]) -> list[np.ndarray]:
    from skimage.transform import rescale

    out = []
    for name in names:
        img = natural_image(name)
        for s in SCALES:
            out.append(img if s == 1.0 else np.clip(rescale(img, s, anti_aliasing=True), 0, 1).astype(np.float32))
    return out


def sample_patches(rng: np.random.Generator, images: list[np.ndarray], n: int, size: int,
                   augment: bool = True) -> np.ndarray:
    """``n`` random ``size x size`` patches ``(n, size, size, 1)`` from ``images``, with random flips and
    quarter-turns when ``augment``."""
    which = rng.integers(0, len(images), n)
    out = np.empty((n, size, size), np.float32)
    for i, w in enumerate(which):
        img = images[w]
        r, c = rng.integers(0, img.shape[0] - size + 1), rng.integers(0, img.shape[1] - size + 1)
        p = img[r : r + size, c : c + size]
        if augment:
            p = np.rot90(p, int(rng.integers(0, 4)))
            if rng.random() < 0.5:
                p = p[:, ::-1]
        out[i] = p
    return out[..., None]


NOISE = 0.01


def _dequantize(key: jax.Array, x: jax.Array, noise: float = NOISE) -> jax.Array:
    """The digits' 8-bit dequantization (:func:`~genprior_jax.training.flow.dequantize`) plus Gaussian noise."""
    k_u, k_n = jax.random.split(key)
    return dequantize(k_u, x) + noise * jax.random.normal(k_n, x.shape)


def train_patch_flow(config_name: str = "patch-flow-6", seed: int = 0, epochs: int = 12, steps_per_epoch: int = 500,
                     batch_size: int = 256, learning_rate: float = 1e-3, out: str | None = None, progress: bool = True,
                     command: str = "") -> tuple[Any, dict[str, Any]]:
    """Train the patch flow ``config_name`` (module docstring); returns ``(best_params, metrics)``.

    The defaults (12 epochs of 500 steps: the cosine schedule spans them all) are those the shipped ``patch-flow``
    was trained with; ``genprior-jax train patch-flow`` reads them from here."""
    if config_name not in CONFIGS:
        raise ValueError(f"train_patch_flow: unknown config {config_name!r}; expected one of {sorted(CONFIGS)}")
    config = check_config(CONFIGS[config_name])
    size, size2, channels = config["image_shape"]
    if size != size2 or channels != 1:
        raise ValueError(f"train_patch_flow: expected a config on square grey patches, got {config['image_shape']}")
    if epochs < 1 or steps_per_epoch < 1 or batch_size < 1 or not learning_rate > 0:
        raise ValueError(f"train_patch_flow: expected epochs, steps_per_epoch, batch_size >= 1 and learning_rate > 0;"
                         f" got {epochs}, {steps_per_epoch}, {batch_size}, {learning_rate}")
    rng = np.random.default_rng(seed)
    train_imgs = _pyramid(TRAIN_IMAGES)
    test_imgs = [natural_image(n) for n in TEST_IMAGES]
    # validation: fixed patches of the training photos (in-distribution check for early stopping), test: held out
    val = sample_patches(np.random.default_rng(seed + 1), train_imgs, 4096, size, augment=False)
    test = sample_patches(np.random.default_rng(seed + 2), test_imgs, 8192, size, augment=False)
    dim = size * size * channels

    total = epochs * steps_per_epoch
    schedule = optax.warmup_cosine_decay_schedule(0.0, learning_rate, min(500, total // 10 + 1), total,
                                                  end_value=0.01 * learning_rate)
    opt = optax.chain(optax.clip_by_global_norm(50.0), optax.adam(schedule))
    key = jax.random.key(seed)
    key, k_init, k_eval = jax.random.split(key, 3)
    first = jnp.asarray(sample_patches(rng, train_imgs, 2048, size))
    params = init_flow(k_init, config, _dequantize(k_init, first))
    opt_state = opt.init(params)

    def nll_nats(p: Any, k: jax.Array, x: jax.Array) -> jax.Array:
        return -batch_log_prob(p, config, _dequantize(k, x))

    @jax.jit
    def step(p: Any, s: Any, k: jax.Array, x: jax.Array) -> tuple[Any, Any, jax.Array]:
        loss, g = jax.value_and_grad(lambda q: jnp.mean(nll_nats(q, k, x)))(p)
        upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s, loss

    evaluate = jax.jit(lambda p, x: jnp.mean(nll_nats(p, k_eval, x)))
    history: list[dict[str, float]] = []
    best: tuple[float, Any, int] = (math.inf, params, 0)
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        pool = sample_patches(rng, train_imgs, steps_per_epoch * batch_size, size)
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"train {config_name} epoch {epoch}/{epochs}", unit="step",
                   disable=not progress, leave=False)
        for i in bar:
            key, k_step = jax.random.split(key)
            params, opt_state, loss = step(params, opt_state, k_step,
                                           jnp.asarray(pool[i * batch_size : (i + 1) * batch_size]))
            if i % 50 == 0:
                bar.set_postfix(nll=f"{finite_loss(loss, 'train_patch_flow', epoch, i, out):.2f}")
            losses.append(loss)
        val_nll = float(evaluate(params, jnp.asarray(val)))
        history.append({"epoch": epoch, "train_nll": float(jnp.mean(jnp.stack(losses))), "val_nll": val_nll,
                        "seconds": round(time.perf_counter() - t0, 1)})
        if progress:
            tqdm.write(f"epoch {epoch}: train {history[-1]['train_nll']:.3f} nats/patch, validation {val_nll:.3f}")
        if val_nll < best[0]:
            best = (val_nll, params, epoch)
    params = best[1]
    test_nll = float(evaluate(params, jnp.asarray(test)))
    metrics = {
        "config_name": config_name, "best_epoch": best[2], "epochs_run": epochs, "val_nll": best[0],
        "test_nll": test_nll, "test_bpd": (test_nll / dim + math.log(256)) / math.log(2),
        "train_images": list(TRAIN_IMAGES), "test_images": list(TEST_IMAGES), "scales": list(SCALES), "noise": NOISE,
        "steps_per_epoch": steps_per_epoch, "batch_size": batch_size, "learning_rate": learning_rate,
        "seed": seed, "train_seconds": round(time.perf_counter() - t0, 1), "jax_version": jax.__version__,
        "command": command,
    }
    if out is not None:
        save_checkpoint(out, params, "flow", config, {"metrics": metrics, "history": history})
        _save_samples(params, config, test, os.path.join(out, "samples.png"), seed, metrics)
    return params, metrics


def _save_samples(params: Any, config: dict[str, Any], test: np.ndarray, path: str, seed: int,
                  metrics: dict[str, Any]) -> None:
    from ..plotting import save_grid
    from ..priors.flow import flow_prior

    prior = flow_prior(params, config)
    dim = int(np.prod(config["image_shape"]))
    z = 0.8 * jax.random.normal(jax.random.key(seed), (32, dim))
    samples = np.clip(np.asarray(jax.vmap(prior.generate, (None, 0))(params, z)), 0, 1)
    save_grid({"held-out patches": test[:32], "samples T=0.8": samples}, path,
              title=f"{metrics['config_name']}: held-out NLL {metrics['test_nll']:.2f} nats/patch "
                    f"({metrics['test_bpd']:.3f} bits/dim)")
