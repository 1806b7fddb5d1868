"""Training throughput: the shared loop (:func:`genprior_jax.training.train`) against a hand-written flax + optax loop.

    python benchmarks/train_throughput.py --size 64 --batch-size 32 --steps 20

For each model (VAE, Glow, DCGAN, sized from 64x64 grey images by ``make_task``) on the same random batch stream:

- *hand-written*: ``jax.jit`` of the same model's loss gradient and optax update, a Python loop over ``jnp`` batches
  (what a user writes), timed from step 2 on (the first step compiles);
- *shared loop*: ``train(...)`` with its data order, batch placement on the mesh (one device here), loss checks
  every 10 steps, checkpointing off, ``2N`` steps with an evaluation after ``N`` and ``2N``; timed from its own
  history as the second ``N`` steps (after compilation; they include one evaluation of 8 images).

Writes ``benchmarks/results/train_throughput.{json,md}`` (images / s and the ratio shared / hand-written).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import numpy as np

from genprior_jax.datasets import ImageDataset
from genprior_jax.training import make_task, train

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def hand_written(task, data: np.ndarray, batch: int, steps: int) -> float:
    """Images / s of a plain loop: jit(step) over consecutive batches (the task's own loss and optax update)."""
    step = jax.jit(task.step, donate_argnums=0)
    state = jax.jit(task.init)(jax.random.key(0), data[:batch])
    key = jax.random.key(1)
    n = len(data) // batch
    state, m = step(state, jax.random.fold_in(key, 0), jax.numpy.asarray(data[:batch]))
    jax.block_until_ready(m["loss"])
    t0 = time.perf_counter()
    for t in range(1, steps + 1):
        i = t % n
        state, m = step(state, jax.random.fold_in(key, t), jax.numpy.asarray(data[i * batch:(i + 1) * batch]))
    jax.block_until_ready(m["loss"])
    return steps * batch / (time.perf_counter() - t0)


def shared_loop(model: str, shape: tuple[int, int, int], data: ImageDataset, batch: int, steps: int) -> float:
    task = make_task(model, shape, num_steps=2 * steps)
    _, m = train(task, data, jax.random.key(0), batch_size=batch, num_steps=2 * steps, eval_every=steps,
                 progress=False)
    first, second = m["history"]
    return steps * batch / (second["seconds"] - first["seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=40, help="timed steps N (the shared loop runs 2N, timing the last N)")
    ap.add_argument("--models", nargs="+", default=["vae", "flow", "dcgan"])
    args = ap.parse_args()
    shape = (args.size, args.size, 1)
    rng = np.random.default_rng(0)
    images = rng.random((4 * args.batch_size + 8, *shape)).astype(np.float32)
    data = ImageDataset(images[:-8], images[-8:], {"spec": "random"})
    rows = []
    for model in args.models:
        hand = hand_written(make_task(model, shape, num_steps=args.steps), data.train, args.batch_size, args.steps)
        ours = shared_loop(model, shape, data, args.batch_size, args.steps)
        rows.append({"model": model, "hand_written_ips": round(hand, 1), "shared_loop_ips": round(ours, 1),
                     "ratio": round(ours / hand, 3)})
        print(rows[-1], flush=True)
    out = {"command": f"python benchmarks/train_throughput.py --size {args.size} --batch-size {args.batch_size} "
                      f"--steps {args.steps}", "machine": platform.processor() or platform.machine(),
           "cpus": os.cpu_count(), "jax": jax.__version__, "devices": jax.device_count(), "image_shape": shape,
           "batch_size": args.batch_size, "rows": rows}
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "train_throughput.json"), "w") as fh:
        json.dump(out, fh, indent=1)
    lines = [f"# Training throughput ({shape[0]}x{shape[1]} grey, batch {args.batch_size}, {jax.device_count()} CPU "
             f"device, jax {jax.__version__})", "", f"`{out['command']}`", "",
             "| model | hand-written flax + optax (images/s) | shared loop `train` (images/s) | ratio |",
             "|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['hand_written_ips']} | {r['shared_loop_ips']} | {r['ratio']} |" for r in rows]
    with open(os.path.join(RESULTS, "train_throughput.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
