"""Training of flow priors on the embedded MNIST digits (``genprior-jax train flow``).

Maximum likelihood on uniformly dequantized 8-bit digits, ``x = (255 x_8bit + u) / 256``, ``u ~ U(0, 1)``;
Adam with linear warm-up, then a cosine decay to 1 % of the learning rate (``decay="cosine"``, the default) or a
constant rate (``decay="constant"``), and global-norm clipping; a Python loop over one jitted step (conv
weight-gradients inside ``lax.scan`` are several times slower on XLA:CPU, see REFERENCE.md). After every epoch:
validation bits/dim, the best-validation parameters written atomically as the checkpoint, and the full training state
written beside it (``<out>.state``) so ``--resume`` continues where a run stopped. A non-finite loss stops the
run with an error naming the epoch and step; the last good checkpoint stays on disk.
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

from ..checkpoint import flax_restore, load_state, save_checkpoint, state_dir
from ..data import SPLIT_SEED, load_mnist
from ..priors.flow import CONFIGS, batch_log_prob, bits_per_dim, check_config, flow_prior, init_flow


def dequantize(key: jax.Array, x: jax.Array) -> jax.Array:
    """Uniform dequantization of ``[0, 1]`` images with 256 levels."""
    return (jnp.round(x * 255.0) + jax.random.uniform(key, x.shape)) / 256.0


def finite_loss(loss: jax.Array, who: str, epoch: int, step: int, out: str | None) -> float:
    """``float(loss)``; a non-finite loss stops training with an error naming the epoch, the step and where the last
    good checkpoint is."""
    value = float(loss)
    if not math.isfinite(value):
        raise FloatingPointError(f"{who}: loss became {value} at epoch {epoch}, step {step}; "
                                 f"the last good checkpoint is at {out!r}")
    return value


def evaluate_bpd(params: Any, config: dict[str, Any], images: np.ndarray, key: jax.Array, batch: int = 250) -> float:
    """Mean bits/dim over ``images`` with one fixed dequantization draw."""
    dim = int(np.prod(config["image_shape"]))
    f = jax.jit(lambda p, k, x: bits_per_dim(batch_log_prob(p, config, dequantize(k, x)), dim))
    vals = [f(params, jax.random.fold_in(key, i), jnp.asarray(images[i : i + batch]))
            for i in range(0, len(images), batch)]
    return float(jnp.concatenate(vals).mean())


def train_flow(config_name: str = "glow-mnist", seed: int = 0, epochs: int = 30, batch_size: int = 64,
               learning_rate: float = 1e-3, warmup_steps: int = 200, digits: tuple[int, ...] | None = None,
               out: str | None = None, resume: bool = False, progress: bool = True, command: str = "",
               config_overrides: dict[str, Any] | None = None, decay: str = "cosine") -> tuple[Any, dict[str, Any]]:
    """Train a flow from :data:`~genprior_jax.priors.FLOW_CONFIGS`; returns ``(best_params, metrics)``."""
    if config_name not in CONFIGS:
        raise ValueError(f"train_flow: unknown config {config_name!r}; expected one of {sorted(CONFIGS)}")
    if epochs < 1 or batch_size < 1 or not learning_rate > 0:
        raise ValueError(f"train_flow: expected epochs >= 1, batch_size >= 1, learning_rate > 0; got "
                         f"{epochs}, {batch_size}, {learning_rate}")
    if decay not in ("cosine", "constant"):
        raise ValueError(f"train_flow: expected decay 'cosine' or 'constant', got {decay!r}")
    config = check_config({**CONFIGS[config_name], **(config_overrides or {})})
    if tuple(config["image_shape"]) != (28, 28, 1):
        raise ValueError(f"train_flow: the embedded data are 28x28x1 MNIST digits; config {config_name!r} wants "
                         f"{config['image_shape']}, and training on other images is not supported yet. Train a "
                         "28x28x1 config (glow-mnist, realnvp-mnist); for photos of any size train the patch prior "
                         "(genprior-jax train patch-flow) and reconstruct with --method patchnr --prior <its --out>")
    train = load_mnist("train", digits=digits).images
    val = load_mnist("validation", digits=digits).images
    test = load_mnist("test", digits=digits).images
    if len(train) < batch_size or len(val) == 0 or len(test) == 0:
        raise ValueError(f"train_flow: digits {list(digits) if digits else 'all'} give {len(train)} training, "
                         f"{len(val)} validation and {len(test)} test images; expected at least batch_size = "
                         f"{batch_size} training images and one of each other")
    dim = int(np.prod(config["image_shape"]))
    steps_per_epoch = len(train) // batch_size
    if decay == "cosine":
        schedule = optax.warmup_cosine_decay_schedule(0.0, learning_rate, max(warmup_steps, 1),
                                                      max(epochs * steps_per_epoch, warmup_steps + 1),
                                                      end_value=0.01 * learning_rate)
    else:
        schedule = optax.linear_schedule(0.0, learning_rate, max(warmup_steps, 1))
    opt = optax.chain(optax.clip_by_global_norm(50.0), optax.adam(schedule))

    key = jax.random.key(seed)
    key, k_init, k_eval = jax.random.split(key, 3)
    params = init_flow(k_init, config, dequantize(k_init, jnp.asarray(train[:512])))
    opt_state = opt.init(params)
    start_epoch, history = 1, []
    best: tuple[float, Any, int] = (math.inf, params, 0)
    state_path = state_dir(out)
    if resume:
        saved, record = load_state(out, "train_flow")
        params = jax.tree_util.tree_map(jnp.asarray, flax_restore(params, saved["params"]))
        opt_state = flax_restore(opt_state, saved["opt_state"])
        best_params = flax_restore(params, saved["best_params"])
        meta = record["metadata"]
        start_epoch, history = meta["epoch"] + 1, meta["history"]
        best = (meta["best_bpd"], best_params, meta["best_epoch"])
        key = jax.random.fold_in(key, start_epoch)

    @jax.jit
    def step(p: Any, s: Any, k: jax.Array, x: jax.Array) -> tuple[Any, Any, jax.Array]:
        def loss_fn(p: Any) -> jax.Array:
            return jnp.mean(bits_per_dim(batch_log_prob(p, config, dequantize(k, x)), dim))

        loss, g = jax.value_and_grad(loss_fn)(p)
        upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s, loss

    t0 = time.perf_counter()
    for epoch in range(start_epoch, epochs + 1):
        key, k_perm, k_epoch = jax.random.split(key, 3)
        order = np.asarray(jax.random.permutation(k_perm, len(train)))
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"train {config_name} epoch {epoch}/{epochs}", unit="step",
                   disable=not progress, leave=False)
        for i in bar:
            batch = jnp.asarray(train[order[i * batch_size : (i + 1) * batch_size]])
            params, opt_state, loss = step(params, opt_state, jax.random.fold_in(k_epoch, i), batch)
            if i % 10 == 0 or i == steps_per_epoch - 1:
                bar.set_postfix(bpd=f"{finite_loss(loss, 'train_flow', epoch, i, out):.3f}")
            losses.append(loss)
        train_bpd = float(jnp.mean(jnp.stack(losses)))
        val_bpd = evaluate_bpd(params, config, val, k_eval)
        history.append({"epoch": epoch, "train_bpd": train_bpd, "val_bpd": val_bpd,
                        "seconds": round(time.perf_counter() - t0, 1)})
        if progress:
            tqdm.write(f"epoch {epoch}: train {train_bpd:.3f} bits/dim, validation {val_bpd:.3f}")
        if val_bpd < best[0]:
            best = (val_bpd, params, epoch)
            if out is not None:
                save_checkpoint(out, params, "flow", config, {"metrics": {"val_bpd": val_bpd, "epoch": epoch},
                                                               "history": history, "command": command})
        if state_path is not None:
            save_checkpoint(state_path, {"params": params, "opt_state": opt_state, "best_params": best[1]},
                            "train-state", config, {"epoch": epoch, "history": history, "best_bpd": best[0],
                                                    "best_epoch": best[2]})
    seconds = time.perf_counter() - t0
    params = best[1]
    metrics = {
        "config_name": config_name, "best_epoch": best[2], "epochs_run": len(history), "val_bpd": best[0],
        "test_bpd": evaluate_bpd(params, config, test, k_eval), "train_seconds": round(seconds, 1),
        "seed": seed, "split_seed": SPLIT_SEED, "digits": list(digits) if digits else "all",
        "batch_size": batch_size, "learning_rate": learning_rate, "decay": decay, "jax_version": jax.__version__,
        "command": command,
    }
    if out is not None:
        save_checkpoint(out, params, "flow", config, {"metrics": metrics, "history": history})
        from ..plotting import save_grid

        prior = flow_prior(params, config)
        z = 0.7 * jax.random.normal(jax.random.key(seed), (16, dim))
        samples = jax.vmap(prior.generate, (None, 0))(params, z)
        save_grid({"T=0.7": np.asarray(samples)}, os.path.join(out, "samples.png"),
                  title=f"{config_name} samples (test {metrics['test_bpd']:.3f} bits/dim)")
    return params, metrics
