"""Training of priors on the embedded MNIST digits (``genprior-jax train vae``).

VAE: Adam (lr 1e-3, batch 100, as in the csgm repo), one ``lax.scan`` over the minibatches of an epoch,
validation ELBO after every epoch, the best-validation parameters kept (early stopping with ``patience``
epochs), test ELBO reported at the end, checkpoint written atomically with its config and checksum.
"""

from __future__ import annotations

import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ..checkpoint import save_checkpoint
from ..data import SPLIT_SEED, load_mnist
from ..priors.vae import DEFAULT_CONFIG, elbo, init_vae


def _mean_elbo(params: Any, key: jax.Array, images: np.ndarray, config: dict[str, Any], samples: int = 4) -> float:
    keys = jax.random.split(key, samples)
    vals = jax.jit(jax.vmap(lambda k: elbo(params, k, images, config).mean()))(keys)
    return float(vals.mean())


def train_vae(seed: int = 0, epochs: int = 300, batch_size: int = 100, learning_rate: float = 1e-3,
              patience: int = 20, out: str | None = None, progress: bool = True, command: str = ""
              ) -> tuple[Any, dict[str, Any]]:
    """Train the Bora et al. MNIST VAE; returns ``(params, metrics)`` and writes a checkpoint to ``out``.

    The defaults (at most 300 epochs, patience 20) are those the shipped ``vae-mnist`` was trained with (best
    validation epoch 82 of 102); ``genprior-jax train vae`` reads them from here."""
    if epochs < 1 or batch_size < 1 or not learning_rate > 0:
        raise ValueError(f"train_vae: expected epochs >= 1, batch_size >= 1, learning_rate > 0; got "
                         f"{epochs}, {batch_size}, {learning_rate}")
    config = dict(DEFAULT_CONFIG)
    train = load_mnist("train").images
    val = load_mnist("validation").images
    test = load_mnist("test").images
    n_batches = len(train) // batch_size
    key = jax.random.key(seed)
    key, k_init = jax.random.split(key)
    params = init_vae(k_init, config)
    opt = optax.adam(learning_rate)
    opt_state = opt.init(params)

    def loss_fn(p: Any, k: jax.Array, x: jax.Array) -> jax.Array:
        return -jnp.mean(elbo(p, k, x, config))

    @jax.jit
    def epoch_fn(p: Any, s: Any, k: jax.Array) -> tuple[Any, Any, jax.Array]:
        k_perm, k_steps = jax.random.split(k)
        idx = jax.random.permutation(k_perm, len(train))[: n_batches * batch_size].reshape(n_batches, batch_size)
        data = jnp.asarray(train)

        def body(carry: Any, xs: Any) -> tuple[Any, jax.Array]:
            p, s = carry
            i, kk = xs
            loss, g = jax.value_and_grad(loss_fn)(p, kk, data[i])
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), loss

        (p, s), losses = jax.lax.scan(body, (p, s), (idx, jax.random.split(k_steps, n_batches)))
        return p, s, losses.mean()

    best = (-math.inf, params, 0)
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    bar = tqdm(range(1, epochs + 1), desc="train vae", unit="epoch", disable=not progress)
    for epoch in bar:
        key, k_epoch, k_val = jax.random.split(key, 3)
        params, opt_state, train_loss = epoch_fn(params, opt_state, k_epoch)
        val_elbo = _mean_elbo(params, k_val, val, config)
        if not math.isfinite(val_elbo):
            raise FloatingPointError(f"train_vae: validation ELBO became {val_elbo} at epoch {epoch}")
        history.append({"epoch": epoch, "train_elbo": -float(train_loss), "val_elbo": val_elbo})
        if val_elbo > best[0]:
            best = (val_elbo, params, epoch)
        bar.set_postfix(train=f"{-float(train_loss):.1f}", val=f"{val_elbo:.1f}", best=f"{best[0]:.1f}@{best[2]}")
        if epoch - best[2] >= patience:
            break
    seconds = time.perf_counter() - t0
    params = best[1]
    key, k_test = jax.random.split(key)
    metrics = {
        "best_epoch": best[2],
        "epochs_run": len(history),
        "val_elbo": best[0],
        "test_elbo": _mean_elbo(params, k_test, test, config),
        "train_seconds": round(seconds, 1),
        "seed": seed,
        "split_seed": SPLIT_SEED,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "jax_version": jax.__version__,
        "command": command,
    }
    if out is not None:
        save_checkpoint(out, params, "vae", config, {"metrics": metrics, "history": history})
    return params, metrics
