"""Wall time of one CSGM batch: 64 MNIST digits x 10 restarts x 1000 Adam steps at m = 100, VAE prior.

Side by side in one run, compile time reported separately:

  (a) genprior_jax's runner: jit(vmap(problems) . vmap(restarts) . lax.scan(steps))
  (b) a Python loop calling one jitted (vmapped) Adam step 1000 times
  (c) PyTorch on the CPU, the same model, batch and restarts in one tensor
  (d) PyTorch one problem at a time (batch 1, restarts in sequence), as GlowIP / deepinv / csgm-style code
      runs; timed on --seq-digits digits and scaled to 64 (the per-problem cost is constant)

plus the runner's achieved GFLOP/s (matmul FLOPs of the forward pass and the backward pass to z, counted
analytically) against the machine's dense float32 matmul rate measured here with jnp.dot.

    pip install torch==2.13.0      # benchmark-only dependency (CPU build)
    python benchmarks/speed_csgm.py

Writes benchmarks/results/speed_csgm.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info, machine_line, write_json, write_text  # noqa: E402

import genprior_jax as gp  # noqa: E402
from genprior_jax.operators import GaussianCS, measure, noise_std_for_norm  # noqa: E402


def timed(fn, *args):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0


def matmul_gflops(n: int = 2048, reps: int = 10) -> float:
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    f = jax.jit(lambda a, b: a @ b)
    jax.block_until_ready(f(a, b))
    best = np.inf
    for _ in range(reps):
        _, t = timed(f, a, b)
        best = min(best, t)
    return 2 * n**3 / best / 1e9


def flops_per_step(hidden: tuple[int, ...], latent: int, n_pixels: int, m: int) -> int:
    """Matmul FLOPs of one loss + gradient-to-z evaluation for one problem: forward 2*sum(in*out) over the
    decoder layers and A, backward to the input the same again (no weight gradients)."""
    dims = [latent, *hidden, n_pixels]
    fwd = sum(2 * a * b for a, b in zip(dims[:-1], dims[1:])) + 2 * n_pixels * m
    return 2 * fwd


def python_loop(prior, y, op, steps, restarts, lam, lr, key):
    """(b): the same objective and Adam, one jitted step (vmapped over problems and restarts) per Python call."""
    opt = optax.adam(lr)
    b = y.shape[0]

    def loss(z, yy):
        r = op.mv(prior.generate(prior.params, z)) - yy
        return jnp.sum(r**2) + lam * jnp.sum(z**2)

    def total(z):  # problems are independent: the gradient of the sum is the per-problem gradient
        return jnp.sum(jax.vmap(lambda zb, yb: jax.vmap(lambda zz: loss(zz, yb))(zb))(z, y))

    @jax.jit
    def step(z, s):
        g = jax.grad(total)(z)
        u, s = opt.update(g, s, z)
        return optax.apply_updates(z, u), s

    @jax.jit
    def finish(z):
        objs = jax.vmap(lambda zb, yb: jax.vmap(lambda zz: loss(zz, yb))(zb))(z, y)
        best = jnp.argmin(jnp.where(jnp.isfinite(objs), objs, jnp.inf), axis=1)
        zb = jnp.take_along_axis(z, best[:, None, None], axis=1)[:, 0]
        return jax.vmap(prior.generate, (None, 0))(prior.params, zb)

    z = jax.random.normal(key, (b, restarts, prior.latent_shape[0]))
    s = opt.init(z)
    t0 = time.perf_counter()
    z1, s1 = jax.block_until_ready(step(z, s))
    jax.block_until_ready(finish(z1))
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        z, s = step(z, s)
    x = jax.block_until_ready(finish(z))
    return x, time.perf_counter() - t0, compile_s


def torch_decoder(prior):
    import torch

    p = prior.params["decoder"]
    names = sorted((k for k in p if k.startswith("Dense_")), key=lambda k: int(k.split("_")[1])) + ["out"]
    layers = []
    for i, name in enumerate(names):
        w = np.asarray(p[name]["kernel"])
        lin = torch.nn.Linear(*w.shape)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w.T.copy()))
            lin.bias.copy_(torch.from_numpy(np.asarray(p[name]["bias"]).copy()))
        layers.append(lin)
        if i < len(names) - 1:
            layers.append(torch.nn.Softplus())
    layers.append(torch.nn.Sigmoid())
    dec = torch.nn.Sequential(*layers)
    for q in dec.parameters():
        q.requires_grad_(False)
    return dec


def torch_solve(dec, a, y, z0, steps, lam, lr):
    """Adam on z of shape (B, R, k) for all problems at once; returns the best restart's image per problem."""
    import torch

    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        r = dec(z) @ a.T - y[:, None, :]
        per = (r**2).sum(-1) + lam * (z**2).sum(-1)
        per.sum().backward()
        opt.step()
    with torch.no_grad():
        x = dec(z)
        per = ((x @ a.T - y[:, None, :]) ** 2).sum(-1) + lam * (z**2).sum(-1)
        per = torch.where(torch.isfinite(per), per, torch.full_like(per, float("inf")))
        best = per.argmin(1)
        rows = torch.arange(x.shape[0])
        return x[rows, best], per[rows, best]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--m", type=int, default=100)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--restarts", type=int, default=10)
    ap.add_argument("--seq-digits", type=int, default=4, help="digits timed for (d), scaled to --n")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.n, args.steps, args.restarts, args.seq_digits = 8, 50, 2, 1
    lam, lr = 0.1, 0.01
    prior = gp.load_prior("vae-mnist")
    x = jnp.asarray(gp.load_mnist("test", n=args.n).images)
    k_op, k_noise, k_solve = jax.random.split(jax.random.key(0), 3)
    op = GaussianCS(k_op, (28, 28, 1), args.m)
    y = measure(k_noise, op, x, noise_std_for_norm(0.1, args.m))  # the batch: one key per image
    res: dict[str, dict[str, float]] = {}

    # (a) the runner: first call compiles and runs, the second only runs. Its data term is 1/2 ||A G(z) - y||^2, so
    # lam / 2 is the loops' (b)-(d) objective ||A G(z) - y||^2 + lam ||z||^2, halved (Adam steps the same)
    run = lambda: gp.csgm(prior, k_solve, y, op, lam=lam / 2, learning_rate=lr, num_steps=args.steps,  # noqa: E731
                          num_restarts=args.restarts).x
    _, first = timed(run)
    xa, t_a = timed(run)
    res["a_runner"] = {"seconds": t_a, "compile_seconds": first - t_a, "mse": float(gp.mse(x, xa).mean())}
    print("(a) runner", res["a_runner"], flush=True)

    # (b) Python loop of a jitted step
    xb, t_b, c_b = python_loop(prior, y, op, args.steps, args.restarts, lam, lr, k_solve)
    res["b_python_loop"] = {"seconds": t_b, "compile_seconds": c_b, "mse": float(gp.mse(x, xb).mean())}
    print("(b) python loop", res["b_python_loop"], flush=True)

    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        dec = torch_decoder(prior)
        a_t = torch.from_numpy(np.asarray(op.matrix))
        y_t = torch.from_numpy(np.asarray(y))
        x_np = np.asarray(x)
        z0 = torch.randn(args.n, args.restarts, prior.latent_shape[0])
        t0 = time.perf_counter()
        xc, _ = torch_solve(dec, a_t, y_t, z0, args.steps, lam, lr)
        t_c = time.perf_counter() - t0
        res["c_torch_batched"] = {"seconds": t_c, "compile_seconds": 0.0,
                                  "mse": float(np.mean((xc.numpy().reshape(x_np.shape) - x_np) ** 2))}
        print("(c) torch batched", res["c_torch_batched"], flush=True)
        k = args.seq_digits
        t0 = time.perf_counter()
        errs = []
        for i in range(k):
            best_x, best_obj = None, np.inf
            for r in range(args.restarts):
                xi, obj_t = torch_solve(dec, a_t, y_t[i : i + 1], z0[i : i + 1, r : r + 1], args.steps, lam, lr)
                obj = float(obj_t[0])
                if obj < best_obj:
                    best_x, best_obj = xi, obj
            errs.append(float(np.mean((best_x.numpy().reshape(x_np.shape[1:]) - x_np[i]) ** 2)))
        t_d = time.perf_counter() - t0
        res["d_torch_sequential"] = {"seconds": t_d * args.n / k, "measured_seconds": t_d, "digits_timed": k,
                                     "compile_seconds": 0.0, "mse": float(np.mean(errs))}
        print("(d) torch sequential", res["d_torch_sequential"], flush=True)

    gflop = flops_per_step(tuple(prior.config["hidden"]), prior.latent_shape[0], 784, args.m) * args.n \
        * args.restarts * args.steps / 1e9
    peak = matmul_gflops()
    achieved = gflop / t_a
    info = machine_info()
    payload = {"machine": info, "args": vars(args), "results": res, "gflop_total": gflop,
               "runner_gflops": achieved, "matmul_gflops": peak, "fraction_of_matmul": achieved / peak}
    write_json("speed_csgm.json" if not args.quick else "speed_csgm_quick.json", payload)
    names = {"a_runner": "(a) genprior_jax runner (jit + scan + vmap)", "b_python_loop": "(b) Python loop, jitted step",
             "c_torch_batched": "(c) PyTorch, batched", "d_torch_sequential": "(d) PyTorch, one problem at a time"}
    lines = [f"# CSGM speed: {args.n} digits x {args.restarts} restarts x {args.steps} Adam steps, m = {args.m}", "",
             f"Command: `python benchmarks/speed_csgm.py{' --quick' if args.quick else ''}`  ",
             machine_line(info) + "  ",
             f"VAE prior 20-500-500-784, lam {lam}, lr {lr}; torch threads {args.threads}.", "",
             "| method | wall time (s) | compile (s) | vs (a) | mean MSE |", "|---|---|---|---|---|"]
    for key, v in res.items():
        note = (f" (timed on {v['digits_timed']} digits: {v['measured_seconds']:.1f} s, "
                f"scaled x{args.n / v['digits_timed']:.0f})") \
            if "digits_timed" in v else ""
        lines.append(f"| {names[key]} | {v['seconds']:.2f}{note} | {v['compile_seconds']:.2f} | "
                     f"{v['seconds'] / res['a_runner']['seconds']:.2f}x | {v['mse']:.4f} |")
    lines += ["", f"Runner throughput: {gflop:.0f} GFLOP of matmuls in {t_a:.2f} s = {achieved:.1f} GFLOP/s; "
              f"dense float32 matmul (jnp.dot 2048x2048) measured at {peak:.1f} GFLOP/s: "
              f"{100 * achieved / peak:.0f} % of it.", ""]
    text = "\n".join(lines)
    write_text("speed_csgm.md" if not args.quick else "speed_csgm_quick.md", text)
    print(text)


if __name__ == "__main__":
    main()
