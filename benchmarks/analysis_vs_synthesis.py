"""Oberlin & Verm (2021) on MNIST: analysis vs synthesis formulation with a Glow prior, five tasks.

    synthesis: x = G(argmin_z 1/2 ||A G(z) - y||^2 + lam ||z||^2),  z0 = 0       (Asim et al. z-space MAP)
    analysis:  x = argmin_x 1/2 ||A x - y||^2 + lam ||E(x)||^2,       x0 = G(0)    (Oberlin & Verm)

Tasks, scaled from CelebA 64x64 to MNIST 28x28: 7x7 uniform deblurring (zero boundary), x2 and x4
super-resolution (block means), random inpainting with 60 % of the pixels missing, and a centred 5x5 box
(the paper's 10x10 box covers 2.4 % of a 64x64 image; 5x5 covers 3.2 % of 28x28, the closest square).
Noise std 0.01 per measurement entry. Both formulations are solved to convergence with the same optimizer
(L-BFGS by default, stopped when the objective's relative change over 10 iterations falls below --tol, at most
--steps iterations; `--optimizer adam` for the earlier fixed-step runs). For a bijective G the two problems
have the same minimizers (x = G(z), the same lam: both data terms are 1/2 ||.||^2), so both estimates are scored
by the *same* objective J(x) = 1/2 ||A x - y||^2 + lam ||E(x)||^2: the formulation with the lower J solved the
shared problem better.
Each formulation's lam is tuned per task on validation digits (one grid for both, best mean PSNR), then
applied to held-out test digits. Estimates are clipped to [0, 1] before scoring PSNR / SSIM, for both
(J is computed on the unclipped estimates).

    python benchmarks/analysis_vs_synthesis.py              # 50 test digits, 8 validation digits
    python benchmarks/analysis_vs_synthesis.py --quick      # smoke run

Writes benchmarks/results/analysis_vs_synthesis.{md,json} and analysis_vs_synthesis_<task>.png.
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
from tqdm.auto import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import RESULTS, machine_info, machine_line, write_json, write_text  # noqa: E402

import genprior_jax as gp  # noqa: E402
from genprior_jax.operators import Blur, BoxMask, Downsample, RandomMask, measure  # noqa: E402
from genprior_jax.plotting import save_grid  # noqa: E402
from genprior_jax.solvers import Problem, backproject  # noqa: E402

SHAPE = (28, 28, 1)
LAM_GRID = (1e-3, 1e-2, 1e-1)
PAPER = {  # Oberlin & Verm, CelebA 64x64 Glow: PSNR synthesis / analysis
    "deblur-7x7": (23.38, 32.16), "sr-x2": (22.26, 31.19), "sr-x4": (18.94, 24.12),
    "inpaint-random-60": (21.84, 27.89), "inpaint-box-5x5": (30.40, 27.50),
}


def make_ops(key: jax.Array, n: int) -> dict[str, tuple[object, bool]]:
    """Task name -> (operator, batched?)."""
    masks = jax.vmap(lambda k: RandomMask(k, SHAPE, 0.6))(jax.random.split(key, n))
    return {
        "deblur-7x7": (Blur.uniform(SHAPE, 7), False),
        "sr-x2": (Downsample(SHAPE, 2), False),
        "sr-x4": (Downsample(SHAPE, 4), False),
        "inpaint-random-60": (masks, True),
        "inpaint-box-5x5": (BoxMask(SHAPE, 5), False),
    }


def observe(key, op, batched, x, sigma):
    keys = jax.random.split(key, len(x))
    return jax.vmap(measure, (0, 0 if batched else None, 0, None))(keys, op, jnp.asarray(x), sigma)


def solve(kind, prior, key, y, op, batched, lam, args):
    """Solve in chunks of --chunk problems (a vmapped L-BFGS line search waits for its slowest problem)."""
    xs, infos = [], []
    for i, lo in enumerate(range(0, len(y), args.chunk)):
        sl = slice(lo, lo + args.chunk)
        op_i = jax.tree_util.tree_map(lambda a: a[sl], op) if batched else op
        x_i, info_i = _solve(kind, prior, jax.random.fold_in(key, i), y[sl], op_i, batched, lam, args)
        xs.append(jax.block_until_ready(x_i))
        infos.append(info_i)
    info = tuple(np.concatenate([np.asarray(f[k]) for f in infos]) for k in range(4))
    return jnp.concatenate(xs), info


def shared_objective(prior, x, y, op, batched, lam):
    """J(x) = 1/2 ||A x - y||^2 + lam ||E(x)||^2 per problem (the analysis objective; synthesis's at x = G(z))."""
    def one(xi, yi, oi):
        return 0.5 * jnp.sum((oi.mv(xi) - yi) ** 2) + lam * jnp.sum(prior.encode(prior.params, xi) ** 2)

    return jax.vmap(one, (0, 0, 0 if batched else None))(x, y, op)


def _solve(kind, prior, key, y, op, batched, lam, args):
    lr = args.lr_syn if kind == "synthesis" else args.lr_ana
    common = dict(num_steps=args.steps, optimizer=args.optimizer, op_batched=batched, learning_rate=lr,
                  tol=args.tol if args.tol > 0 else None)
    if kind == "synthesis":
        # 1/2 ||A G(z) - y||^2 + lam ||z||^2 (runs before the 1/2 data term passed lam_csgm = 2 lam: the same problem,
        # but its tolerance then read 2 J, absolute below 1: an effective tol / 2; both now stop on J itself)
        res = gp.csgm(prior, key, y, op, lam=lam, init_std=0.0, num_restarts=1, **common)
    else:
        res = gp.analysis(prior, key, y, op, lam=lam, **common)
    j = shared_objective(prior, res.x, y, op, batched, lam)
    return res.x, (res.status, res.converged, res.steps, j)


def refine_analysis(prior, x0, y, op, batched, lam, steps, tol):
    """The analysis problem solved from a given start ``x0`` (the synthesis estimate): ``steps`` L-BFGS iterations
    (optax.lbfgs, zoom line search) on J(x) per problem. Returns (x, J, converged, iterations to converge): converged
    when J's relative change over 10 iterations fell below ``tol`` (the runner's test), judged from J's trace."""
    opt = optax.lbfgs()

    def one(x_init, yi, oi):
        def f(x):
            return 0.5 * jnp.sum((oi.mv(x) - yi) ** 2) + lam * jnp.sum(prior.encode(prior.params, x) ** 2)

        vg = optax.value_and_grad_from_state(f)

        def body(carry, _):
            x, state = carry
            value, grad = vg(x, state=state)
            upd, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=f)
            x = optax.apply_updates(x, upd)
            return (x, state), f(x)

        (x, _), trace = jax.lax.scan(body, (x_init, opt.init(x_init)), None, length=steps)
        trace = jnp.concatenate([f(x_init)[None], trace])
        rel = jnp.abs(trace[10:] - trace[:-10]) / jnp.maximum(jnp.abs(trace[:-10]), 1e-12)
        below = rel < tol
        return x, trace[-1], jnp.any(below), jnp.where(jnp.any(below), jnp.argmax(below) + 10, steps)

    return jax.jit(jax.vmap(one, (0, 0, 0 if batched else None)))(x0, y, op)


def title(args: argparse.Namespace) -> str:
    """The results file's title, with what tells this run from the others: the solver and its stopping rule, the
    digits, the lam grid and the warm-started analysis solve."""
    tol = getattr(args, "tol", None)
    solver = args.optimizer.replace("lbfgs", "L-BFGS").replace("adam", "Adam")
    solver += (f" to tol {tol:g} (at most {args.steps} iterations)" if tol else f", {args.steps} iterations")
    warm = ", plus the analysis solve from the synthesis estimate" if getattr(args, "warm_steps", 0) else ""
    return (f"Analysis vs synthesis on MNIST ({args.prior}), Oberlin & Verm (2021) tasks: {solver}, "
            f"{args.n_test} digits, {len(args.lams)} lams{warm}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", default="glow-mnist")
    ap.add_argument("--n-test", type=int, default=50)
    ap.add_argument("--n-val", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3000, help="iteration cap")
    ap.add_argument("--tol", type=float, default=1e-5, help="relative-change stopping tolerance (0: fixed steps)")
    ap.add_argument("--optimizer", default="lbfgs")
    ap.add_argument("--lr-syn", type=float, default=0.05, help="Adam step on z (synthesis); unused by lbfgs")
    ap.add_argument("--lr-ana", type=float, default=0.01, help="Adam step on x (analysis); unused by lbfgs")
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--chunk", type=int, default=25, help="problems per vmapped solve")
    ap.add_argument("--out-prefix", default="analysis_vs_synthesis")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tasks", nargs="+", default=list(PAPER))
    ap.add_argument("--lams", type=float, nargs="+", default=list(LAM_GRID),
                    help="validation grid for lam (both formulations)")
    ap.add_argument("--lams-from", default=None,
                    help="a results JSON of this script: take each task's tuned lams from it (no validation sweep)")
    ap.add_argument("--warm-steps", type=int, default=0,
                    help="also solve the analysis problem from the synthesis estimate, this many L-BFGS iterations")
    ap.add_argument("--reuse-analysis", action="store_true",
                    help="with --lams-from: copy the x-space analysis solves' test results from that file (the same "
                         "digits, keys, operators and lams) instead of solving them again")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.reuse_analysis and not args.lams_from:
        ap.error("--reuse-analysis needs --lams-from")
    previous = None
    if args.lams_from:
        import json

        with open(args.lams_from) as fh:
            previous = json.load(fh)["results"]
    prefix = args.out_prefix
    if args.quick:
        args.n_test, args.n_val, args.steps, prefix = 4, 4, 20, "analysis_vs_synthesis_quick"

    prior = gp.load_prior(args.prior)
    x_test = gp.load_mnist("test", n=args.n_test).images
    x_val = gp.load_mnist("validation", n=args.n_val).images
    key = jax.random.key(args.seed)
    k_ops_t, k_ops_v, k_y_t, k_y_v, k_solve = jax.random.split(key, 5)
    ops_t, ops_v = make_ops(k_ops_t, args.n_test), make_ops(k_ops_v, args.n_val)
    results: dict[str, dict[str, dict[str, object]]] = {}
    t_start = time.perf_counter()
    for task in tqdm(args.tasks, desc="tasks"):
        op_t, batched = ops_t[task]
        op_v, _ = ops_v[task]
        y_t = observe(k_y_t, op_t, batched, x_test, args.noise)
        y_v = observe(k_y_v, op_v, batched, x_val, args.noise)
        results[task] = {}
        rows = {"truth": x_test[:10]}
        problems = jax.vmap(lambda yy, oo: backproject(Problem(yy, oo), "pinv"), (0, 0 if batched else None))
        rows["A^+ y"] = np.asarray(problems(y_t[:10],
                                            jax.tree_util.tree_map(lambda a: a[:10], op_t) if batched else op_t))
        for kind in ("synthesis", "analysis"):
            if kind == "analysis" and args.reuse_analysis:  # the same problems solved by the --lams-from run
                solved = len(previous[task][kind]["objective"])
                if solved != args.n_test:
                    raise SystemExit(f"--reuse-analysis: {args.lams_from} solved {solved} test digits, this run has "
                                     f"--n-test {args.n_test}")
                results[task][kind] = {**previous[task][kind], "reused_from": args.lams_from}
                continue
            val_psnr, val_j, val_conv = [], [], []
            if previous is not None:  # lams tuned by an earlier run (its sweep is copied, not recomputed)
                prev = previous[task][kind]
                best = prev["lam"]
                val_psnr = [prev["val_psnr_by_lam"][str(lam)] for lam in args.lams]
                val_j = [prev["val_J_by_lam"][str(lam)] for lam in args.lams]
                val_conv = [prev["val_converged_by_lam"][str(lam)] for lam in args.lams]
            for lam in args.lams if previous is None else ():
                xv, (_, conv_v, _, j_v) = solve(kind, prior, k_solve, y_v, op_v, batched, lam, args)
                val_psnr.append(float(jnp.nanmean(gp.psnr(x_val, jnp.clip(xv, 0.0, 1.0)))))
                val_j.append(float(np.nanmean(j_v)))
                val_conv.append(float(np.mean(conv_v)))
            if previous is None:
                best = args.lams[int(np.nanargmax(val_psnr))]
            t0 = time.perf_counter()
            xt, (status, converged, steps, j) = solve(kind, prior, k_solve, y_t, op_t, batched, best, args)
            if kind == "synthesis" and args.warm_steps > 0:  # analysis from the synthesis estimate
                lam_a = previous[task]["analysis"]["lam"] if previous is not None else best
                t1 = time.perf_counter()
                xw, jw, cw, iw = refine_analysis(prior, xt, y_t, op_t, batched, lam_a, args.warm_steps, args.tol)
                xw = jnp.clip(jax.block_until_ready(xw), 0.0, 1.0)
                pw = np.asarray(gp.psnr(x_test, xw))
                j_start = np.asarray(shared_objective(prior, xt, y_t, op_t, batched, lam_a))
                results[task]["analysis_warm"] = {
                    "lam": lam_a, "psnr_mean": float(np.nanmean(pw)), "psnr_std": float(np.nanstd(pw)),
                    "objective_mean": float(np.nanmean(np.asarray(jw))), "objective_start_mean": float(
                        np.nanmean(j_start)), "converged": float(np.mean(np.asarray(cw))),
                    "steps_mean": float(np.mean(np.asarray(iw))), "seconds": time.perf_counter() - t1}
                rows["analysis from synthesis"] = np.asarray(xw[:10])
            xt = jnp.clip(jax.block_until_ready(xt), 0.0, 1.0)
            secs = time.perf_counter() - t0
            psnr, ssim = np.asarray(gp.psnr(x_test, xt)), np.asarray(gp.ssim(x_test, xt))
            results[task][kind] = {"lam": best, "val_psnr_by_lam": dict(zip(map(str, args.lams), val_psnr)),
                                   "val_J_by_lam": dict(zip(map(str, args.lams), val_j)),
                                   "val_converged_by_lam": dict(zip(map(str, args.lams), val_conv)),
                                   "psnr_mean": float(np.nanmean(psnr)), "psnr_std": float(np.nanstd(psnr)),
                                   "ssim_mean": float(np.nanmean(ssim)), "ssim_std": float(np.nanstd(ssim)),
                                   "nonfinite": int((np.asarray(status) == gp.Status.NONFINITE).sum()), "seconds": secs,
                                   "objective_mean": float(np.nanmean(j)), "converged": float(np.mean(converged)),
                                   "steps_mean": float(np.mean(steps)), "objective": j.tolist()}
            rows[kind] = np.asarray(xt[:10])
        # the shared objective of both formulations on the same problems at the synthesis lam (one grid: compare J
        # where both solved the same problem)
        if results[task]["synthesis"]["lam"] == results[task]["analysis"]["lam"]:
            js, ja = (np.asarray(results[task][k]["objective"]) for k in ("synthesis", "analysis"))
            results[task]["analysis_lower_J"] = float(np.mean(ja < js))
        save_grid(rows, os.path.join(RESULTS, f"{prefix}_{task}.png"),
                  title=f"{task}: truth / A^+ y / synthesis (z-space) / analysis (x-space), {args.prior}")
    total = time.perf_counter() - t_start

    info = machine_info()
    write_json(f"{prefix}.json", {"machine": info, "args": vars(args), "lam_grid": args.lams, "results": results,
                                  "total_seconds": total})
    lines = [f"# {title(args)}", "",
             f"Command: `python benchmarks/analysis_vs_synthesis.py {' '.join(sys.argv[1:])}`  ",
             machine_line(info) + "  ",
             f"{args.n_test} held-out test digits; lam tuned per task and formulation on {args.n_val} "
             f"validation digits "
             f"over {args.lams}; {args.optimizer}, at most {args.steps} iterations, tol {args.tol} "
             f"(step {args.lr_syn} on z, {args.lr_ana} on x for adam), "
             f"z0 = 0 / x0 = G(0); noise std "
             f"{args.noise}. Total {total:.0f} s. J = 1/2 ||A x - y||^2 + lam ||E(x)||^2 of each estimate at its "
             "own lam (the same function for both formulations); converged = fraction of test problems stopped by "
             "the tolerance (not the cap); iterations = mean count."
             + (f" The x-space analysis columns are copied from `{os.path.basename(args.lams_from)}` (the same "
                "digits, keys, operators and lams; not solved again in this run)." if args.reuse_analysis else ""),
             "",
             "| task | synthesis PSNR | analysis PSNR | synthesis SSIM | analysis SSIM | lam (syn / ana) "
             "| J syn / ana | converged syn / ana | iterations syn / ana | winner | paper PSNR (CelebA, syn / ana) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for task, r in results.items():
        s, a = r["synthesis"], r["analysis"]
        win = "analysis" if a["psnr_mean"] > s["psnr_mean"] else "synthesis"
        paper = PAPER.get(task)
        lines.append(f"| {task} | {s['psnr_mean']:.2f} ± {s['psnr_std']:.2f} | "
                     f"{a['psnr_mean']:.2f} ± {a['psnr_std']:.2f} | "
                     f"{s['ssim_mean']:.3f} ± {s['ssim_std']:.3f} | {a['ssim_mean']:.3f} ± {a['ssim_std']:.3f} | "
                     f"{s['lam']:g} / {a['lam']:g} | {s['objective_mean']:.4f} / {a['objective_mean']:.4f} | "
                     f"{s['converged']:.2f} / {a['converged']:.2f} | {s['steps_mean']:.0f} / {a['steps_mean']:.0f} | "
                     f"{win} | "
                     + (f"{paper[0]:.2f} / {paper[1]:.2f}" if paper else "-") + " |")
    warm = {t: r["analysis_warm"] for t, r in results.items() if "analysis_warm" in r}
    if warm:
        lines += ["", f"The analysis problem solved from the synthesis estimate (x0 = G(z_syn); optax L-BFGS, "
                  f"{args.warm_steps} iterations, converged = J's relative change over 10 iterations below "
                  f"{args.tol}), at the analysis lam: where it converges, its J is the analysis objective at "
                  "convergence.", "",
                  "| task | lam | J at start (synthesis estimate) | J after | converged | iterations to converge "
                  "| PSNR | J of the analysis solve from x0 = G(0) |", "|---|---|---|---|---|---|---|---|"]
        for task, w in warm.items():
            lines.append(f"| {task} | {w['lam']:g} | {w['objective_start_mean']:.4f} | {w['objective_mean']:.4f} | "
                         f"{w['converged']:.2f} | {w['steps_mean']:.0f} | {w['psnr_mean']:.2f} ± {w['psnr_std']:.2f}"
                         f" | {results[task]['analysis']['objective_mean']:.4f} |")
    lines += ["", "Same problem, same lam: mean J on the validation digits at each lam of the grid "
              "(synthesis / analysis; converged fractions in brackets).", "",
              "| task | " + " | ".join(f"lam {lam:g}" for lam in args.lams) + " |",
              "|---|" + "---|" * len(args.lams)]
    for task, r in results.items():
        s, a = r["synthesis"], r["analysis"]
        cells = [f"{s['val_J_by_lam'][str(lam)]:.4f} / {a['val_J_by_lam'][str(lam)]:.4f} "
                 f"({s['val_converged_by_lam'][str(lam)]:.2f} / {a['val_converged_by_lam'][str(lam)]:.2f})"
                 for lam in args.lams]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    lines += ["", "Mean ± standard deviation over the test digits. Example grids: "
              + ", ".join(f"[{t}]({prefix}_{t}.png)" for t in results), ""]
    text = "\n".join(lines)
    write_text(f"{prefix}.md", text)
    print(text)


if __name__ == "__main__":
    main()
