"""Side by side with the peer libraries on the same images, operators and noise: scico (TV by PDHG) and deepinv
(Deep Image Prior, wavelet Lasso by FISTA). Peers are optional extras, never dependencies of genprior_jax.

Install (what worked here; Python 3.11, CPU only). deepinv shares a process with us (torch and jax side by side);
scico 0.0.7 pins jax <= 0.8.1 and flax <= 0.12.0 while we need jax 0.10.2, so it has its own venv and runs in a
subprocess (``benchmarks/_peers_scico.py``) on the identical arrays, written to ``.npz``::

    python3.11 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu  # CPU torch
    #   (here: the local wheel /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl)
    /work/peers-venv/bin/pip install --no-deps deepinv==0.5.0        # plain `pip install deepinv` pulls CUDA torch
    echo "torch==2.13.0+cpu" > /tmp/peers_constraints.txt             # keep the CPU torch
    /work/peers-venv/bin/pip install -c /tmp/peers_constraints.txt jax==0.10.2 jaxlib==0.10.2 flax==0.12.8 \\
        optax==0.2.8 numpy==2.4.6 scipy==1.17.1 scikit-image==0.26.0 matplotlib==3.11.2 tqdm \\
        tensorflow-datasets==4.9.10 array_record==0.8.6 mlxtend==0.25.0 PyWavelets==1.9.0 \\
        torchvision==0.28.0 torchmetrics einops requests h5py natsort ptwt   # deepinv's deps (+ ptwt: wavelets)
    python3.11 -m venv /work/scico-venv && /work/scico-venv/bin/pip install scico==0.0.7

    PYTHONPATH=. /work/peers-venv/bin/python benchmarks/peers.py [--quick] [--only tv dip lasso]

Comparisons (256x256 grey ``camera`` from scikit-image by default, noise std 0.01, one process, runs interleaved):

- **TV vs scico PDHG**, on 60 % random inpainting, Gaussian deblurring (std 2, zero boundary) and x2
  super-resolution: ours (``gp.tv``) runs to ``--tol``; its final objective ``F`` is the target. scico runs the
  same Chambolle-Pock iteration (``PDHG`` with ``C = [A; D]``, ``g = 1/2||. - y||^2 (+) lam ||.||_{2,1}``,
  ``f`` = indicator of [0, 1], our step sizes ``tau``, ``sigma``) until its objective is ``<= F`` (objective per
  iteration, untimed), then a fresh run of exactly that many iterations is timed. Both after a warm-up
  (compilation excluded), the fastest of ``--repeats`` timed runs each. The helper asserts its operator equals
  ours on a test image.
- **DIP vs deepinv**: 60 % random inpainting. Ours: the library's DIP solver with the Deep Decoder
  (``generator="deep-decoder"``, Adam ``--dip-lr``, no TV term); deepinv: its ``ConvDecoder`` generator
  (``--dinv-channels`` channels; the default 256 is too slow on this CPU) trained as ``DeepImagePrior.forward``
  does (fixed ``z``, Adam, ``MCLoss``) in a loop we drive so that PSNR can be read every ``--dip-chunk``
  iterations (deepinv's class redraws ``z`` and the optimizer on every call). Reported: the time each needs to
  first reach the equal PSNR ``min(best ours, best deepinv)``, PSNR-evaluation time excluded.
- **Wavelet Lasso vs deepinv**: Gaussian deblurring; ours ``gp.lasso(basis="wavelet")`` (db4, 3 levels,
  periodization; ``||Ax - y||^2 + lam ||W x||_1``) vs deepinv ``optim_builder("FISTA", WaveletPrior(db4, 3,
  mode "zero"), L2())`` (ptwt, its backend, has no "periodization") with ``lambda = lam / 2`` (deepinv's data
  term has the 1/2) and step ``1 / ||A||^2``, the same number of iterations. deepinv's wavelet prior does not
  penalize the approximation coefficients (nor, by default, does ours: ``penalize_coarse=False``) and its
  zero-padded transform is not orthonormal, so the objectives differ: both results are scored with our objective,
  and PSNR.

Writes benchmarks/results/peers[_quick].{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info, machine_line, write_json, write_text  # noqa: E402
from real_images import load_image  # noqa: E402

import genprior_jax as gp  # noqa: E402
from genprior_jax.operators import Blur, Downsample, RandomMask, measure  # noqa: E402
from genprior_jax.operators.numerics import operator_norm_sq  # noqa: E402
from genprior_jax.priors.untrained import untrained_generator  # noqa: E402
from genprior_jax.solvers import Problem  # noqa: E402
from genprior_jax.solvers.dip import DIPHyper, dip_solver  # noqa: E402
from genprior_jax.transforms import make_basis  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def _ensure_torchvision() -> str:
    """deepinv imports torchvision at import time, but nothing used here calls it. PyPI's Linux torchvision wheels
    are CUDA builds (their ``_C.so`` needs ``libtorch_cuda.so``) and fail with the CPU torch; the CPU wheel lives
    on the PyTorch index. Where no working torchvision is installed, a stub package stands in: any attribute is a
    placeholder that raises if called. Returns what was used."""
    try:
        import torchvision

        return f"torchvision {torchvision.__version__}"
    except (ImportError, RuntimeError):
        pass
    import importlib.abc
    import importlib.machinery
    import types

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]

    class _Missing:
        def __init__(self, name: str):
            self._name = name

        def __call__(self, *a: Any, **k: Any) -> Any:
            raise RuntimeError(f"{self._name}: torchvision is stubbed in benchmarks/peers.py")

        def __getattr__(self, attr: str) -> Any:
            return _Missing(f"{self._name}.{attr}")

        def __mro_entries__(self, bases: tuple) -> tuple:
            return (object,)

    class _Stub(types.ModuleType):
        def __getattr__(self, attr: str) -> Any:
            if attr.startswith("__"):
                raise AttributeError(attr)
            return _Missing(f"{self.__name__}.{attr}")

    class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
            if fullname == "torchvision" or fullname.startswith("torchvision."):
                return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
            return None

        def create_module(self, spec: Any) -> Any:
            mod = _Stub(spec.name)
            mod.__path__ = []
            mod.__version__ = "stub"
            return mod

        def exec_module(self, module: Any) -> None:
            pass

    sys.meta_path.insert(0, _Finder())
    return "torchvision stub (no working CPU torchvision installed)"
SCICO_PY = os.environ.get("SCICO_PYTHON", "/work/scico-venv/bin/python")


def make_op(kind: str, shape: tuple[int, int, int], key: jax.Array) -> tuple[Any, dict[str, Any]]:
    """Our operator and the data that the peers need to build the same one."""
    if kind == "inpaint":
        op = RandomMask(key, shape, 0.6)
        return op, {"kind": "mask", "mask": np.asarray(op.mv(jnp.ones(shape)))}
    if kind == "deblur":
        op = Blur.gaussian(shape, 2.0)
        return op, {"kind": "blur", "kernel": np.asarray(op.kernel, np.float32)}
    if kind == "sr":
        return Downsample(shape, 2), {"kind": "sr", "factor": 2}
    raise ValueError(kind)


# -- TV: ours vs scico -------------------------------------------------------------------------------------------

def tv_vs_scico(x: np.ndarray, kind: str, lam: float, args: argparse.Namespace, key: jax.Array) -> dict[str, Any]:
    k_op, k_noise, k_solve = jax.random.split(key, 3)
    op, data = make_op(kind, x.shape, k_op)
    y = measure(k_noise, op, jnp.asarray(x), args.noise)
    opts = gp.RunOptions(tol=args.tol, check_every=10)
    jax.block_until_ready(gp.tv(k_solve, y, op, lam=lam, num_steps=args.tv_steps, options=opts).x)  # compile
    ours_s = np.inf
    for _ in range(args.repeats):  # the machine is shared: the fastest of --repeats runs
        t0 = time.perf_counter()
        res = gp.tv(k_solve, y, op, lam=lam, num_steps=args.tv_steps, options=opts)
        xo = np.asarray(jax.block_until_ready(res.x))
        ours_s = min(ours_s, time.perf_counter() - t0)
    ours = {"seconds": ours_s, "iterations": int(res.steps), "objective": float(res.objective),
            "converged": bool(res.converged), "psnr": float(gp.psnr(x, xo))}
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.json")
        x_check = np.asarray(jax.random.uniform(jax.random.key(1), x.shape), np.float32)
        np.savez(src, y=np.asarray(y), lam=lam, tau=float(res.state.tau), sigma=float(res.state.sigma),
                 target=ours["objective"], maxiter=args.scico_maxiter, repeats=args.repeats, x_check=x_check,
                 ax_check=np.asarray(op.mv(jnp.asarray(x_check))), **data)
        proc = subprocess.run([SCICO_PY, os.path.join(HERE, "_peers_scico.py"), src, dst], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"scico helper failed:\n{proc.stderr[-3000:]}")
        with open(dst) as fh:
            sc = json.load(fh)
        xs = np.load(dst.replace(".json", "_x.npy"))
    sc["psnr"] = float(gp.psnr(x, xs))
    return {"task": kind, "lam": lam, "ours": ours, "scico": sc, "ratio_scico_over_ours": sc["seconds"] / ours_s}


# -- DIP: ours vs deepinv ----------------------------------------------------------------------------------------

def dip_vs_deepinv(x: np.ndarray, args: argparse.Namespace, key: jax.Array) -> dict[str, Any]:
    _ensure_torchvision()
    import deepinv as dinv
    import torch

    k_op, k_noise, k_solve = jax.random.split(key, 3)
    op, data = make_op("inpaint", x.shape, k_op)
    y = measure(k_noise, op, jnp.asarray(x), args.noise)
    n_chunks = args.dip_steps // args.dip_chunk

    # ours: the library's DIP solver (Deep Decoder, Adam), chunks of dip_chunk steps in one jitted loop
    gen = untrained_generator("deep-decoder", x.shape)
    solver = dip_solver(gen, "adam", False, 1, None)
    problem, hyper = Problem(y, op), DIPHyper(args.dip_lr, 0.0, 0.0)
    chunk = jax.jit(lambda s: jax.lax.fori_loop(0, args.dip_chunk, lambda i, t: solver.step(t, problem, hyper,
                                                                                              None)[0], s))
    state = solver.init(k_solve, problem, hyper, None)
    jax.block_until_ready(chunk(state))  # compile
    ours_trace, elapsed = [], 0.0
    for _ in range(n_chunks):
        t0 = time.perf_counter()
        state = jax.block_until_ready(chunk(state))
        elapsed += time.perf_counter() - t0
        ours_trace.append((elapsed, float(gp.psnr(x, gen.generate(state.weights, state.z)))))

    # deepinv: ConvDecoder + DeepImagePrior's loop (fixed z, Adam, MCLoss), the same mask and y
    torch.manual_seed(0)
    mask = torch.from_numpy(np.transpose(data["mask"], (2, 0, 1))[None].copy())
    physics = dinv.physics.Inpainting(img_size=tuple(mask.shape[1:]), mask=mask)
    y_t = torch.from_numpy(np.transpose(np.asarray(y), (2, 0, 1))[None].copy())
    c, h, w = x.shape[2], x.shape[0], x.shape[1]
    net = dinv.models.ConvDecoder(img_size=(c, h, w), in_size=(4, 4), channels=args.dinv_channels)
    z = torch.randn((args.dinv_channels, 4, 4)).unsqueeze(0)
    opt = torch.optim.Adam(net.parameters(), lr=args.dip_lr)
    loss = dinv.loss.MCLoss()
    ref = torch.from_numpy(np.transpose(x, (2, 0, 1))[None].copy())
    dinv_trace, elapsed = [], 0.0
    for _ in range(n_chunks):
        t0 = time.perf_counter()
        for _ in range(args.dip_chunk):
            out = net(z)
            err = loss(y=y_t, x_net=out, physics=physics)
            opt.zero_grad()
            err.backward()
            opt.step()
        elapsed += time.perf_counter() - t0
        with torch.no_grad():
            xd = net(z).clamp(0, 1)
        dinv_trace.append((elapsed, float(10 * torch.log10(1 / torch.mean((xd - ref) ** 2)))))

    target = min(max(p for _, p in ours_trace), max(p for _, p in dinv_trace))

    def first(trace: list[tuple[float, float]]) -> float:
        return next(t for t, p in trace if p >= target)

    t_ours, t_dinv = first(ours_trace), first(dinv_trace)
    return {"task": "inpaint", "iterations": n_chunks * args.dip_chunk, "target_psnr": target,
            "ours": {"seconds_to_target": t_ours, "trace": ours_trace, "generator": dict(gen.config),
                     "weights": gen.num_weights()},
            "deepinv": {"seconds_to_target": t_dinv, "trace": dinv_trace, "channels": args.dinv_channels,
                        "weights": sum(p.numel() for p in net.parameters())},
            "ratio_deepinv_over_ours": t_dinv / t_ours}


# -- wavelet Lasso: ours vs deepinv ------------------------------------------------------------------------------

def lasso_vs_deepinv(x: np.ndarray, lam: float, args: argparse.Namespace, key: jax.Array) -> dict[str, Any]:
    _ensure_torchvision()
    import deepinv as dinv
    import torch

    k_op, k_noise, k_solve = jax.random.split(key, 3)
    op, data = make_op("deblur", x.shape, k_op)
    y = measure(k_noise, op, jnp.asarray(x), args.noise)
    n = args.lasso_steps
    jax.block_until_ready(gp.lasso(k_solve, y, op, lam=lam, basis="wavelet", num_steps=n).x)  # compile
    ours_s = np.inf
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        res = gp.lasso(k_solve, y, op, lam=lam, basis="wavelet", num_steps=n)
        xo = np.asarray(jax.block_until_ready(res.x))
        ours_s = min(ours_s, time.perf_counter() - t0)
    basis = make_basis("wavelet", x.shape, wavelet="db4", levels=3)

    def our_objective(img: np.ndarray) -> float:
        r = op.mv(jnp.asarray(img)) - y
        return float(jnp.sum(r**2) + lam * jnp.sum(jnp.abs(basis.rmv(jnp.asarray(img)))))

    kern = torch.from_numpy(np.asarray(data["kernel"], np.float32))[None, None]
    physics = dinv.physics.Blur(filter=kern, padding="constant")
    x_probe = np.asarray(jax.random.uniform(jax.random.key(1), x.shape), np.float32)
    ours_probe = np.asarray(op.mv(jnp.asarray(x_probe)))
    dinv_probe = physics.A(torch.from_numpy(np.transpose(x_probe, (2, 0, 1))[None].copy()))[0].numpy()
    op_diff = float(np.max(np.abs(np.transpose(dinv_probe, (1, 2, 0)) - ours_probe)))
    y_t = torch.from_numpy(np.transpose(np.asarray(y), (2, 0, 1))[None].copy())
    lip = float(operator_norm_sq(op, jax.random.key(2))) * 1.05
    prior = dinv.optim.WaveletPrior(level=3, wv="db4", mode="zero", p=1)  # ptwt has no "periodization"
    model = dinv.optim.optim_builder(iteration="FISTA", prior=prior, data_fidelity=dinv.optim.L2(),
                                     params_algo={"stepsize": 1.0 / lip, "lambda": lam / 2, "a": 3}, max_iter=n,
                                     early_stop=False, verbose=False)
    with torch.no_grad():
        model(y_t, physics)  # warm-up
        dinv_s = np.inf
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            xd = model(y_t, physics)
            dinv_s = min(dinv_s, time.perf_counter() - t0)
    xd = np.clip(np.transpose(xd[0].numpy(), (1, 2, 0)), 0.0, 1.0)
    return {"task": "deblur", "lam": lam, "iterations": n, "operator_max_abs_diff": op_diff,
            "ours": {"seconds": ours_s, "psnr": float(gp.psnr(x, xo)), "objective": our_objective(xo)},
            "deepinv": {"seconds": dinv_s, "psnr": float(gp.psnr(x, xd)), "objective_ours": our_objective(xd)},
            "ratio_deepinv_over_ours": dinv_s / ours_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", nargs="+", default=["camera"])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--only", nargs="+", default=["tv", "dip", "lasso"], choices=["tv", "dip", "lasso"])
    ap.add_argument("--tv-tasks", nargs="+", default=["inpaint", "deblur", "sr"])
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--tv-lam", type=float, default=0.01)
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--tv-steps", type=int, default=3000)
    ap.add_argument("--scico-maxiter", type=int, default=6000)
    ap.add_argument("--dip-steps", type=int, default=1000)
    ap.add_argument("--dip-chunk", type=int, default=50)
    ap.add_argument("--dip-lr", type=float, default=0.01)
    ap.add_argument("--dinv-channels", type=int, default=64)
    # 1/2 ||A S c - y||^2 scale (issue 28): the earlier runs' 0.003 against ||A S c - y||^2, halved (same solution)
    ap.add_argument("--lasso-lam", type=float, default=0.0015)
    ap.add_argument("--lasso-steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per solver (TV, Lasso); the fastest counts")
    ap.add_argument("--quick", action="store_true", help="smoke run: few steps")
    args = ap.parse_args()
    prefix = "peers"
    if args.quick:
        args.tv_steps, args.scico_maxiter, args.dip_steps, args.dip_chunk = 200, 400, 20, 10
        args.dinv_channels, args.lasso_steps, args.tv_tasks, prefix = 16, 20, ["deblur"], "peers_quick"
        args.repeats = 1
    torch_threads = None
    try:
        import torch

        torch_threads = torch.get_num_threads()
    except ImportError:
        pass
    out: dict[str, Any] = {"tv": [], "dip": [], "lasso": []}
    key = jax.random.key(0)
    for name in args.images:
        x = load_image(name, args.size)
        kimg = jax.random.fold_in(key, sum(map(ord, name)))
        for which in args.only:  # interleaved: every comparison on this image before the next image
            if which == "tv":
                for kind in args.tv_tasks:
                    r = tv_vs_scico(x, kind, args.tv_lam, args, kimg)
                    r["image"] = name
                    out["tv"].append(r)
                    print(f"TV {name} {kind}: ours {r['ours']['seconds']:.2f} s ({r['ours']['iterations']} it, "
                          f"F {r['ours']['objective']:.6g}, {r['ours']['psnr']:.2f} dB); scico "
                          f"{r['scico']['seconds']:.2f} s ({r['scico']['iterations']} it, F "
                          f"{r['scico']['objective']:.6g}, {r['scico']['psnr']:.2f} dB); scico/ours "
                          f"{r['ratio_scico_over_ours']:.2f}x", flush=True)
            elif which == "dip":
                r = dip_vs_deepinv(x, args, kimg)
                r["image"] = name
                out["dip"].append(r)
                print(f"DIP {name}: equal PSNR {r['target_psnr']:.2f} dB reached by ours in "
                      f"{r['ours']['seconds_to_target']:.1f} s, deepinv in {r['deepinv']['seconds_to_target']:.1f} s "
                      f"(deepinv/ours {r['ratio_deepinv_over_ours']:.2f}x)", flush=True)
            else:
                r = lasso_vs_deepinv(x, args.lasso_lam, args, kimg)
                r["image"] = name
                out["lasso"].append(r)
                print(f"Lasso-wavelet {name}: ours {r['ours']['seconds']:.2f} s {r['ours']['psnr']:.2f} dB; "
                      f"deepinv {r['deepinv']['seconds']:.2f} s {r['deepinv']['psnr']:.2f} dB; deepinv/ours "
                      f"{r['ratio_deepinv_over_ours']:.2f}x", flush=True)

    info = machine_info()
    info["torch_threads"] = torch_threads
    if "dip" in args.only or "lasso" in args.only:
        info["torchvision"] = _ensure_torchvision()
    for mod in ("deepinv",):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            pass
    scico_versions = [r["scico"]["scico"] for r in out["tv"]]
    info["scico"] = scico_versions[0] if scico_versions else None
    command = "PYTHONPATH=. /work/peers-venv/bin/python benchmarks/peers.py " + " ".join(sys.argv[1:])
    write_json(f"{prefix}.json", {"machine": info, "command": command, "args": vars(args), "results": out})
    lines = ["# genprior_jax side by side with scico and deepinv", "", f"Command: `{command}`  ",
             machine_line(info) + f"; deepinv {info.get('deepinv')}, scico {info.get('scico')} (own venv, jax "
             "0.8.1, subprocess)  ",
             f"Images {args.images} at {args.size}x{args.size}, noise std {args.noise}. Times exclude compilation "
             f"(warm-up run first); TV and Lasso times are the fastest of {args.repeats} runs (shared machine). See "
             "the module docstring for the protocol.", ""]
    if out["tv"]:
        lines += [f"## TV (lam {args.tv_lam}): ours (PDHG, tol {args.tol}) vs scico PDHG to the same objective", "",
                  "| image | task | ours s | ours it | scico s | scico it | scico / ours | objective ours / scico | "
                  "PSNR ours / scico |", "|---|---|---|---|---|---|---|---|---|"]
        for r in out["tv"]:
            o, s = r["ours"], r["scico"]
            lines.append(f"| {r['image']} | {r['task']} | {o['seconds']:.2f} | {o['iterations']} | {s['seconds']:.2f} "
                         f"| {s['iterations']}{'' if s['reached_target'] else ' (cap)'} | "
                         f"{r['ratio_scico_over_ours']:.2f}x | {o['objective']:.6g} / {s['objective']:.6g} | "
                         f"{o['psnr']:.2f} / {s['psnr']:.2f} |")
        lines.append("")
    if out["dip"]:
        lines += ["## DIP (60 % inpainting): time to an equal PSNR", "",
                  "| image | equal PSNR | ours s (Deep Decoder, weights) | deepinv s (ConvDecoder, weights) | "
                  "deepinv / ours |", "|---|---|---|---|---|"]
        for r in out["dip"]:
            lines.append(f"| {r['image']} | {r['target_psnr']:.2f} | {r['ours']['seconds_to_target']:.1f} "
                         f"({r['ours']['weights']}) | {r['deepinv']['seconds_to_target']:.1f} "
                         f"({r['deepinv']['weights']}) | {r['ratio_deepinv_over_ours']:.2f}x |")
        lines.append("")
    if out["lasso"]:
        lines += [f"## Wavelet Lasso (deblurring, lam {args.lasso_lam}, {args.lasso_steps} FISTA iterations)", "",
                  "| image | ours s | deepinv s | deepinv / ours | PSNR ours / deepinv | our objective: ours / "
                  "deepinv's x |", "|---|---|---|---|---|---|"]
        for r in out["lasso"]:
            o, d = r["ours"], r["deepinv"]
            lines.append(f"| {r['image']} | {o['seconds']:.2f} | {d['seconds']:.2f} | "
                         f"{r['ratio_deepinv_over_ours']:.2f}x | {o['psnr']:.2f} / {d['psnr']:.2f} | "
                         f"{o['objective']:.6g} / {d['objective_ours']:.6g} |")
        lines.append("")
    text = "\n".join(lines)
    write_text(f"{prefix}.md", text)
    print(text)


if __name__ == "__main__":
    main()
