"""One training loop for every prior kind: data-parallel, resumable, with progress, evaluation and sample grids.

A prior kind is a :class:`TrainTask` - pure functions on a training *state* pytree (parameters, optimizer states,
EMA, step counters): ``init(key, batch) -> state``, ``step(state, key, batch) -> (state, metrics)`` (``metrics``
holds the scalar ``"loss"``), ``evaluate(state, key, images) -> (B,)`` per-image validation losses,
``export(state) -> params`` (what the checkpoint ships) and ``sample(params, key, n) -> (n, H, W, C)``.
:func:`train` runs it:

- **Data parallel.** With ``mesh="auto"`` the global batch is split over every device of every process along a
  ``("data",)`` :class:`~jax.sharding.Mesh` (``NamedSharding``), the state is replicated, and XLA's SPMD partitioner
  inserts the gradient all-reduce: the step is the one-device step on the global batch, to float round-off. Several
  processes (hosts) call :func:`jax.distributed.initialize` first, load the same data and run the same command; each
  feeds its own devices' rows of the batch (``jax.make_array_from_callback``); process 0 writes the files.
- **Data order.** Epoch ``e`` visits the training images in ``numpy.random.default_rng([seed, e])``'s
  permutation (the last partial batch dropped); with ``flip`` each image is mirrored left-right with probability
  1/2 (same generator). Step ``t``'s key is ``fold_in(key, t)``: a resumed run continues the same sequence.
- **Evaluation** every ``eval_every`` steps and at the end: the mean validation loss over all validation images, a
  sample grid (``<out>/samples.png``) and the checkpoint (``<out>``, atomic): the best-validation parameters, or the
  latest for kinds whose loss does not rank models (GANs). The whole state is written beside it (``<out>.state``)
  for ``resume=True``.
- **Failure.** A non-finite training loss (checked every ``log_every`` steps) or validation loss stops the run with
  ``FloatingPointError`` naming the step; the last good checkpoint and state stay on disk.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from ..checkpoint import flax_restore, load_state, save_checkpoint, state_dir
from ..datasets import ImageDataset

__all__ = ["TrainTask", "train"]


class TrainTask(NamedTuple):
    """A prior kind's training functions (see the module docstring); ``kind`` and ``config`` go into the
    checkpoint (``load_prior`` builds the prior from them), ``loss_unit`` labels the loss (e.g. ``bits/dim``),
    ``select_best``: keep the best-validation checkpoint (else the latest)."""

    kind: str
    config: dict[str, Any]
    init: Callable[[jax.Array, jax.Array], Any]
    step: Callable[[Any, jax.Array, jax.Array], tuple[Any, dict[str, jax.Array]]]
    evaluate: Callable[[Any, jax.Array, jax.Array], jax.Array]
    export: Callable[[Any], Any]
    sample: Callable[[Any, jax.Array, int], jax.Array]
    loss_unit: str = "loss"
    select_best: bool = True
    hyper: dict[str, Any] = {}


def _mesh(mesh: Mesh | str | None) -> Mesh | None:
    if mesh is None or isinstance(mesh, Mesh):
        return mesh
    if mesh == "auto":
        return Mesh(np.array(jax.devices()), ("data",))
    raise ValueError(f"train: expected mesh None, 'auto' or a jax.sharding.Mesh, got {mesh!r}")


def _host(tree: Any) -> Any:
    """A pytree of (possibly replicated, multi-process) arrays as numpy arrays on this host."""
    def one(a: Any) -> Any:
        if isinstance(a, jax.Array):
            if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
                a = jax.random.key_data(a)
            return np.asarray(a.addressable_data(0)) if not a.is_fully_addressable else np.asarray(a)
        return a
    return jax.tree_util.tree_map(one, tree)


class _Batches:
    """Global batch ``t`` of the training images: epoch permutations by ``default_rng([seed, epoch])``."""

    def __init__(self, images: np.ndarray, batch_size: int, seed: int, flip: bool) -> None:
        self.images, self.batch_size, self.seed, self.flip = images, batch_size, seed, flip
        self.per_epoch = len(images) // batch_size
        self._epoch, self._order = -1, np.arange(0)

    def __call__(self, t: int) -> np.ndarray:
        epoch, i = divmod(t, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._order = epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.images))
        batch = self.images[self._order[i * self.batch_size:(i + 1) * self.batch_size]]
        if self.flip:
            mirror = np.random.default_rng([self.seed, epoch, i, 1]).random(len(batch)) < 0.5
            batch = np.where(mirror[:, None, None, None], batch[:, :, ::-1], batch)
        return np.ascontiguousarray(batch)


def train(task: TrainTask, data: ImageDataset, key: jax.Array, *, batch_size: int, num_steps: int,
          eval_every: int | None = None, out: str | None = None, resume: bool = False, flip: bool = False,
          mesh: Mesh | str | None = "auto", log_every: int = 10, progress: bool = True, command: str = "",
          seed: int = 0, eval_batch_size: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Train ``task`` on ``data``; returns ``(params, metrics)`` (the checkpointed parameters: best validation, or
    latest for GANs) and writes the checkpoint to ``out``.

    Args:
        task: the prior kind's functions (:func:`~genprior_jax.training.tasks.make_task`).
        data: train / validation images (:func:`~genprior_jax.datasets.load_dataset`).
        key: PRNG key of the initialization and every step's randomness.
        batch_size: global batch (split over the mesh's devices; a multiple of their number).
        num_steps: optimizer steps in all (a resumed run goes on to this number).
        eval_every: steps between evaluations / checkpoints (default: about 10 per run, at least one per 1,000).
        out: checkpoint directory (``None``: nothing written).
        resume: continue from ``<out>.state``.
        flip: random left-right flips of the training images.
        mesh: ``"auto"`` (all devices), ``None`` (one device, no sharding) or a 1-axis :class:`~jax.sharding.Mesh`.
        seed: seed of the data order and flips.
    """
    shape = tuple(int(s) for s in task.config["image_shape"])
    if tuple(data.train.shape[1:]) != shape:
        raise ValueError(f"train: the {task.kind} config wants images {shape}; the data are "
                         f"{tuple(data.train.shape[1:])}")
    if batch_size < 1 or num_steps < 1 or log_every < 1 or (eval_every is not None and eval_every < 1):
        raise ValueError(f"train: expected batch_size, num_steps, log_every, eval_every >= 1; got {batch_size}, "
                         f"{num_steps}, {log_every}, {eval_every}")
    if len(data.train) < batch_size:
        raise ValueError(f"train: batch_size {batch_size} exceeds the {len(data.train)} training images of "
                         f"{data.info.get('spec')!r}; lower --batch-size or add images")
    mesh = _mesh(mesh)
    n_dev = 1 if mesh is None else int(mesh.devices.size)
    if batch_size % n_dev:
        raise ValueError(f"train: batch_size {batch_size} must be a multiple of the {n_dev} devices of the mesh")
    eval_every = eval_every or max(1, min(1000, math.ceil(num_steps / 10)))
    eval_bs = eval_batch_size or batch_size
    eval_bs += -eval_bs % n_dev
    writer = jax.process_index() == 0
    batches = _Batches(data.train, batch_size, seed, flip)

    rows = None if mesh is None else NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
    jit_kw: dict[str, Any] = {} if mesh is None else {"out_shardings": NamedSharding(mesh, PartitionSpec())}

    def put_batch(x: np.ndarray) -> Any:
        """The global batch on the mesh: each process places the rows of its own devices."""
        if rows is None:
            return jnp.asarray(x)
        return jax.make_array_from_callback(x.shape, rows, lambda idx: x[idx])

    init_fn = jax.jit(task.init, **jit_kw)
    base_key, k_init, k_eval = jax.random.split(key, 3)

    def step_fn(state: Any, t: jax.Array, x: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
        return task.step(state, jax.random.fold_in(base_key, t), x)

    def eval_fn(state: Any, x: jax.Array, w: jax.Array) -> tuple[jax.Array, jax.Array]:
        per = task.evaluate(state, k_eval, x)
        return jnp.sum(per * w), jnp.sum(w * ~jnp.isfinite(per))

    step_c = jax.jit(step_fn, donate_argnums=0, **jit_kw)
    eval_c = jax.jit(eval_fn, **jit_kw)
    state = init_fn(k_init, jnp.asarray(batches(0)) if mesh is None else batches(0))

    start, history = 0, []
    best: tuple[float, Any, int] = (math.inf, None, 0)
    state_path = state_dir(out)
    if resume:
        saved, record = load_state(out, "train")
        restored = flax_restore({"state": _host(state), "best": _host(task.export(state))}, saved)
        state = jax.jit(lambda s: s, **jit_kw)(restored["state"]) if mesh is not None else \
            jax.tree_util.tree_map(jnp.asarray, restored["state"])
        meta = record["metadata"]
        start, history = int(meta["step"]), list(meta["history"])
        best = (float(meta["best_loss"]), restored["best"], int(meta["best_step"]))
        if start >= num_steps:
            raise ValueError(f"train: the state at {state_path!r} is at step {start}; ask for num_steps > {start}")

    def evaluate() -> float:
        total, bad = 0.0, 0.0
        for i in range(0, len(data.validation), eval_bs):
            x = data.validation[i:i + eval_bs]
            w = np.ones(eval_bs, np.float32)
            if len(x) < eval_bs:  # pad the last batch to the compiled size, weight 0
                w[len(x):] = 0.0
                x = np.concatenate([x, np.repeat(x[-1:], eval_bs - len(x), 0)])
            s, b = eval_c(state, put_batch(x), put_batch(w))
            total, bad = total + float(s), bad + float(b)
        return math.inf if bad else total / len(data.validation)

    def save(t: int, val: float, params: Any) -> None:
        meta = {"step": t, "history": history, "data": data.info, "command": command,
                "metrics": {"val_loss": val, "loss_unit": task.loss_unit, "step": t}, "hyper": task.hyper,
                "best_loss": best[0], "best_step": best[2]}
        if out is not None and writer:
            host_params = _host(params)
            save_checkpoint(out, host_params, task.kind, task.config, meta)
            try:
                from ..plotting import save_grid

                imgs = np.asarray(jax.jit(task.sample, static_argnums=2)(host_params, jax.random.key(seed), 16))
                save_grid({f"step {t}": imgs[:8], "": imgs[8:]}, os.path.join(out, "samples.png"),
                          title=f"{task.kind} {shape}, validation {val:.4g} {task.loss_unit}")
            except Exception as err:  # noqa: BLE001 - a grid is a convenience; the checkpoint is written
                tqdm.write(f"train: could not draw the sample grid: {type(err).__name__}: {err}")

    bar = tqdm(total=num_steps, initial=start, desc=f"train {task.kind} {'x'.join(map(str, shape))}", unit="step",
               disable=not (progress and writer), dynamic_ncols=True,
               mininterval=0.1 if sys.stderr.isatty() else 30.0)  # a redirected log gets a line every 30 s
    t0, loss_value = time.perf_counter(), math.nan
    for t in range(start, num_steps):
        state, metrics = step_c(state, np.int32(t), put_batch(batches(t)))
        if (t + 1) % log_every == 0 or t + 1 == num_steps or (t + 1) % eval_every == 0:
            loss_value = float(_host(metrics["loss"]))
            if not math.isfinite(loss_value):
                bar.close()
                raise FloatingPointError(f"train {task.kind}: the training loss became {loss_value} at step {t + 1}; "
                                         f"the last good checkpoint (step {best[2] if history else 'none'}) is at "
                                         f"{out!r}")
            bar.set_postfix(loss=f"{loss_value:.4g}", best=f"{best[0]:.4g}@{best[2]}" if history else "-")
        bar.update(1)
        if (t + 1) % eval_every == 0 or t + 1 == num_steps:
            val = evaluate()
            if not math.isfinite(val):
                bar.close()
                raise FloatingPointError(f"train {task.kind}: the validation loss became {val} at step {t + 1}; the "
                                         f"last good checkpoint is at {out!r}")
            history.append({"step": t + 1, "train_loss": loss_value, "val_loss": val,
                            "seconds": round(time.perf_counter() - t0, 3)})
            params = task.export(state)
            if not task.select_best or val < best[0]:
                best = (val, _host(params), t + 1)
                save(t + 1, val, params)
            if state_path is not None and writer:
                save_checkpoint(state_path, {"state": _host(state), "best": best[1]}, "train-state", task.config,
                                {"step": t + 1, "history": history, "best_loss": best[0], "best_step": best[2]})
            if progress and writer:
                tqdm.write(f"step {t + 1}: train {loss_value:.4g}, validation {val:.4g} {task.loss_unit}")
    bar.close()
    seconds = time.perf_counter() - t0
    metrics_out = {"kind": task.kind, "steps": num_steps, "best_step": best[2], "val_loss": best[0],
                   "loss_unit": task.loss_unit, "final_train_loss": loss_value, "train_seconds": round(seconds, 1),
                   "images_per_second": round((num_steps - start) * batch_size / max(seconds, 1e-9), 1),
                   "devices": n_dev, "processes": jax.process_count(), "batch_size": batch_size, "seed": seed,
                   "data": data.info, "history": history, **task.hyper}
    return best[1], metrics_out
