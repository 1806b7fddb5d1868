"""Scale-out in the shared runner: sharding over a device mesh and memory-bounded chunks (``batch_size``).

The sharded solves run in a subprocess with 8 fake CPU devices (``--xla_force_host_platform_device_count``): this
process has already initialised JAX with one. The subprocess (:func:`subprocess_main`, this module imported there)
prints its measurements as JSON; the assertions are made here.
"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

from genprior_jax.operators import GaussianCS
from genprior_jax.solvers import CSGMHyper, Status, csgm_solver, trace_count
from genprior_jax.solvers.runner import estimate_memory, run

SHAPE = (4, 4, 1)
LATENT = 3


def linear_generate(params, z):
    return (params["W"] @ z + params["b"]).reshape(SHAPE)


SOLVER = csgm_solver(linear_generate, (LATENT,))


def make_problems(n, batched_op, seed=0):
    """A linear generator G(z) = W z + b, ``n`` measurements (one operator each, or one shared) and one NaN
    measurement, whose status must survive sharding, padding and chunking."""
    k = jax.random.split(jax.random.key(seed), 5)
    params = {"W": jax.random.normal(k[0], (16, LATENT)) / 4.0, "b": 0.5 + 0.1 * jax.random.normal(k[1], (16,))}
    if batched_op:
        op = jax.vmap(lambda kk: GaussianCS(kk, SHAPE, 6))(jax.random.split(k[2], n))
        mv = jax.vmap(lambda o, x: o.mv(x))
    else:
        op = GaussianCS(k[2], SHAPE, 6)
        mv = jax.vmap(op.mv)
    x = jax.vmap(linear_generate, (None, 0))(params, jax.random.normal(k[3], (n, LATENT)))
    y = mv(op, x) if batched_op else mv(x)
    y = (y + 0.05 * jax.random.normal(k[4], (n, 6))).at[n // 2].set(jnp.nan)
    return params, op, y


def solve(params, op, y, batched_op, **kw):
    return run(SOLVER, jax.random.key(1), y, op, CSGMHyper(0.1, 0.05, 1.0), params, num_steps=30, num_restarts=10,
               op_batched=batched_op, **kw)


def _max_diff(a, b):
    """Largest difference over x, state, objective and restart objectives, NaNs ignored (compared separately)."""
    pick = lambda r: jax.tree_util.tree_leaves((r.x, r.state, r.objective, r.restart_objectives))  # noqa: E731
    return max(float(np.nanmax(np.abs(np.asarray(u, np.float64) - np.asarray(v, np.float64))))
               for u, v in zip(pick(a), pick(b)))


def _same_nans(a, b):
    return all(np.array_equal(np.isnan(np.asarray(u)), np.isnan(np.asarray(v)))
               for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def subprocess_main():
    """Run with 8 devices: print what the tests below check."""
    out = {"devices": jax.local_device_count()}
    for name, n, batched in (("even", 64, True), ("padded", 60, False), ("padded_batched", 61, True)):
        params, op, y = make_problems(n, batched)
        ref = solve(params, op, y, batched)
        before = trace_count()
        res = solve(params, op, y, batched, mesh="auto")
        again = solve(params, op, y, batched, mesh="auto")
        out[name] = {"diff": _max_diff(res, ref), "status_equal": bool(np.array_equal(res.status, ref.status)),
                     "same_nans": _same_nans(res, ref), "statuses": np.asarray(res.status).tolist(),
                     "traces": trace_count() - before, "repeat_diff": _max_diff(again, res),
                     "shape": list(res.x.shape), "x_shard_rows": sorted(s.data.shape[0] for s in res.x.addressable_shards),
                     "x_shard_devices": len({s.device for s in res.x.addressable_shards}),
                     "objs_shard_rows": sorted(s.data.shape[0] for s in res.restart_objectives.addressable_shards)}
    params, op, y = make_problems(20, True)
    ref = solve(params, op, y, True)
    before = trace_count()
    res = solve(params, op, y, True, mesh="auto", batch_size=8)  # 3 chunks of 8 (the last padded), each sharded
    out["chunked_sharded"] = {"diff": _max_diff(res, ref), "status_equal": bool(np.array_equal(res.status, ref.status)),
                              "same_nans": _same_nans(res, ref), "traces": trace_count() - before,
                              "shape": list(res.x.shape)}
    print("RESULT" + json.dumps(out))


@pytest.fixture(scope="module")
def sharded():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    here = os.path.dirname(os.path.abspath(__file__))
    code = f"import sys; sys.path.insert(0, {here!r}); import test_sharding; test_sharding.subprocess_main()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                          cwd=os.path.dirname(here))
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def test_sharded_equals_unsharded_and_splits_the_batch(sharded):
    assert sharded["devices"] == 8
    r = sharded["even"]  # 64 measurements x 10 restarts, one operator per measurement
    assert r["diff"] < 1e-5 and r["status_equal"] and r["same_nans"]
    assert r["statuses"].count(Status.NONFINITE) == 1 and r["statuses"][32] == Status.NONFINITE
    assert r["shape"] == [64, 4, 4, 1]
    assert r["x_shard_rows"] == [8] * 8 and r["x_shard_devices"] == 8  # each device holds 1/8 of the batch
    assert r["objs_shard_rows"] == [8] * 8
    assert r["traces"] == 1 and r["repeat_diff"] == 0.0  # the second sharded call reuses the compilation


@pytest.mark.parametrize("case,n", [("padded", 60), ("padded_batched", 61)])
def test_padding_never_changes_results(sharded, case, n):
    r = sharded[case]  # padded to 64 by repeating the last measurement, the copies dropped
    assert r["diff"] < 1e-5 and r["status_equal"] and r["same_nans"]
    assert r["shape"] == [n, 4, 4, 1]
    assert r["statuses"].count(Status.NONFINITE) == 1 and r["statuses"][n // 2] == Status.NONFINITE
    assert r["x_shard_rows"] == [n] * 8  # B not a multiple of 8: one full copy per device


def test_chunked_and_sharded(sharded):
    r = sharded["chunked_sharded"]
    assert r["diff"] < 1e-5 and r["status_equal"] and r["same_nans"] and r["shape"] == [20, 4, 4, 1]
    assert r["traces"] == 1


@pytest.mark.parametrize("batched", [False, True])
def test_chunked_equals_unchunked_and_compiles_once(batched):
    params, op, y = make_problems(20, batched)
    ref = solve(params, op, y, batched, history=True)
    before = trace_count()
    res = solve(params, op, y, batched, history=True, batch_size=7, progress=True)  # 7 + 7 + 6(+1)
    assert trace_count() == before + 1
    assert res.x.shape == ref.x.shape and res.history.shape == ref.history.shape == (20, 10, 30)
    np.testing.assert_array_equal(res.status, ref.status)
    assert np.asarray(res.status)[10] == Status.NONFINITE and np.all(np.isnan(np.asarray(res.x[10])))
    assert _max_diff(res, ref) < 1e-5
    assert _same_nans(res, ref)
    solve(params, op, y, batched, history=True, batch_size=7)  # same chunk shape: no new trace
    assert trace_count() == before + 1


def test_batch_size_larger_than_batch_and_unbatched_y():
    params, op, y = make_problems(5, False)
    ref = solve(params, op, y, False)
    res = solve(params, op, y, False, batch_size=100)
    assert _max_diff(res, ref) == 0.0
    one = solve(params, op, y[0], False, batch_size=3, mesh="auto")
    assert one.x.shape == SHAPE and one.restart_objectives.shape == (10,)


def test_auto_mesh_on_one_device_equals_unsharded():
    params, op, y = make_problems(6, True)
    ref = solve(params, op, y, True)
    res = solve(params, op, y, True, mesh="auto")
    assert _max_diff(res, ref) < 1e-5
    mesh = Mesh(np.array(jax.local_devices()), ("data",))
    assert _max_diff(solve(params, op, y, True, mesh=mesh), ref) < 1e-5


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, "4", True, [4]])
def test_bad_batch_size_raises(batch_size):
    params, op, y = make_problems(4, False)
    with pytest.raises(ValueError, match="batch_size"):
        solve(params, op, y, False, batch_size=batch_size)


@pytest.mark.parametrize("mesh", ["all", 8, jax.local_devices(), {"batch": 1}])
def test_bad_mesh_raises(mesh):
    params, op, y = make_problems(4, False)
    with pytest.raises(ValueError, match="mesh"):
        solve(params, op, y, False, mesh=mesh)


def test_estimate_memory_scales_with_the_chunk():
    params, op, y = make_problems(64, False)
    kw = dict(num_steps=30, num_restarts=10)
    small = estimate_memory(SOLVER, y, op, CSGMHyper(), params, batch_size=8, **kw)
    large = estimate_memory(SOLVER, y, op, CSGMHyper(), params, batch_size=64, **kw)
    assert small.source == large.source == "memory_analysis" and small.devices == 1
    assert (small.chunk, large.chunk) == (8, 64)
    fixed = sum(np.asarray(a).nbytes for a in jax.tree_util.tree_leaves((params, op))) + 3 * 4  # + 3 f32 hypers
    assert small.fixed == large.fixed == fixed
    # at least the arguments and outputs of a chunk: y, keys, and x, objectives, latents and Adam moments
    out = 64 * (16 + 1 + 1 + 10 + 3 * LATENT) * 4
    assert large.per_chunk >= fixed + 64 * 6 * 4 + out
    assert large.per_chunk > 4 * small.per_chunk - 4 * fixed  # grows with the chunk, not a constant
    with pytest.raises(ValueError, match="batch_size"):
        estimate_memory(SOLVER, y, op, CSGMHyper(), params, batch_size=0, **kw)


def test_estimate_memory_falls_back_to_shapes(monkeypatch):
    params, op, y = make_problems(16, False)
    monkeypatch.setattr(jax.stages.Compiled, "memory_analysis", lambda self: None)
    with pytest.warns(RuntimeWarning, match="no compiled memory analysis"):
        est = estimate_memory(SOLVER, y, op, CSGMHyper(), params, num_steps=5, num_restarts=2)
    assert est.source == "shapes" and est.chunk == 16 and est.per_chunk > est.fixed > 0
