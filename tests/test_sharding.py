"""Scale-out in the shared runner: sharding over a device mesh and memory-bounded chunks (``batch_size``).

The sharded solves run in a subprocess with 8 fake CPU devices (``--xla_force_host_platform_device_count``): this
process has already initialised JAX with one. The subprocess (:func:`subprocess_main`, this module imported there)
prints its measurements as JSON; the assertions are made here.
"""

import functools
import json
import os
import subprocess
import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

from genprior_jax.operators import GaussianCS
from genprior_jax.priors import Prior
from genprior_jax.solvers import CSGMHyper, Solver, Status, csgm_solver
from genprior_jax.solvers.runner import estimate_memory, run, trace_count

SHAPE = (4, 4, 1)
LATENT = 3


def linear_generate(params, z):
    return (params["W"] @ z + params["b"]).reshape(SHAPE)


# the solver factories take a prior; it is cached on the prior's static part (generate, shapes), not on these params
SOLVER = csgm_solver(Prior("linear", (LATENT,), SHAPE, linear_generate,
                           {"W": jnp.zeros((16, LATENT)), "b": jnp.zeros(16)}))


def make_problems(n, batched_op, nan_rows=None, seed=0):
    """A linear generator G(z) = W z + b and ``n`` measurements (one operator each, or one shared), the rows
    ``nan_rows`` (default: the middle one) NaN: their status must survive sharding, padding and chunking."""
    return _make_problems(n, batched_op, tuple([n // 2] if nan_rows is None else nan_rows), seed)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))  # one compilation instead of a dozen eager ops
def _make_problems(n, batched_op, nan_rows, seed):
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
    y = (y + 0.05 * jax.random.normal(k[4], (n, 6))).at[np.array(nan_rows, dtype=int)].set(jnp.nan)
    return params, op, y


def solve(params, op, y, batched_op, **kw):
    return run(SOLVER, jax.random.key(1), y, op, CSGMHyper(0.1, 0.05, 1.0), params, num_steps=30, num_restarts=10,
               op_batched=batched_op, **kw)


class NoisyHyper(NamedTuple):
    lr: float = 0.05
    noise: float = 0.01


class NoisyState(NamedTuple):
    z: jax.Array
    key: jax.Array  # a PRNG key in the state: chunks and shards must carry key arrays too


def _residual(z, problem, params):
    return jnp.sum((problem.op.mv(linear_generate(params, z)) - problem.y) ** 2)


def _noisy_step(state, problem, hyper, params):
    key, sub = jax.random.split(state.key)
    value, grad = jax.value_and_grad(_residual)(state.z, problem, params)
    z = state.z - hyper.lr * grad + hyper.noise * jax.random.normal(sub, state.z.shape)
    return NoisyState(z, key), value


NOISY = Solver(lambda key, problem, hyper, params: NoisyState(jax.random.normal(key, (LATENT,)), key), _noisy_step,
               lambda state, problem, hyper, params: _residual(state.z, problem, params),
               lambda state, problem, hyper, params: linear_generate(params, state.z))


def _arrays(tree):
    """The leaves of ``tree`` as float64 numpy arrays (PRNG keys as their key data)."""
    to_np = lambda a: jax.random.key_data(a) if jnp.issubdtype(a.dtype, jax.dtypes.prng_key) else a  # noqa: E731
    return [np.asarray(to_np(a), np.float64) for a in jax.tree_util.tree_leaves(tree)]


def _max_diff(a, b):
    """Largest difference over x, state, objective and restart objectives, NaNs ignored (compared separately)."""
    pick = lambda r: _arrays((r.x, r.state, r.objective, r.restart_objectives))  # noqa: E731
    return max(float(np.nanmax(np.abs(u - v))) for u, v in zip(pick(a), pick(b)))


def _same_nans(a, b):
    return all(np.array_equal(np.isnan(u), np.isnan(v)) for u, v in zip(_arrays(a), _arrays(b)))


def _compare(res, ref, before):
    return {"diff": _max_diff(res, ref), "status_equal": bool(np.array_equal(res.status, ref.status)),
            "same_nans": _same_nans(res, ref), "statuses": np.asarray(res.status).tolist(),
            "traces": trace_count() - before, "shape": list(res.x.shape),
            "x_shard_rows": sorted(s.data.shape[0] for s in res.x.addressable_shards),
            "x_shard_devices": len({s.device for s in res.x.addressable_shards}),
            "objs_shard_rows": sorted(s.data.shape[0] for s in res.restart_objectives.addressable_shards)}


def subprocess_main():
    """Run with 8 devices: print what the tests below check."""
    out = {"devices": jax.local_device_count()}
    params, op, y = make_problems(64, True)  # one operator per measurement
    ref = solve(params, op, y, True)
    before = trace_count()
    res = solve(params, op, y, True, mesh="auto")
    out["even"] = _compare(res, ref, before)
    out["even"]["repeat_diff"] = _max_diff(solve(params, op, y, True, mesh="auto"), res)
    out["even"]["traces_after_repeat"] = trace_count() - before
    mesh_2d = Mesh(np.array(jax.local_devices()).reshape(4, 2), ("a", "b"))
    before = trace_count()
    out["mesh_2d"] = _compare(solve(params, op, y, True, mesh=mesh_2d), ref, before)

    params, op, y = make_problems(60, False, nan_rows=[30, 59])  # one shared operator; padding repeats a NaN row
    ref = solve(params, op, y, False)
    before = trace_count()
    out["padded"] = _compare(solve(params, op, y, False, mesh="auto"), ref, before)
    # 4 chunks of 16 (rows 0, 16, 32 and 44 on), each split over the 8 devices
    before = trace_count()
    out["chunked"] = _compare(solve(params, op, y, False, mesh="auto", batch_size=16), ref, before)
    one = estimate_memory(SOLVER, y, op, CSGMHyper(), params, num_steps=30, num_restarts=10)
    eight = estimate_memory(SOLVER, y, op, CSGMHyper(), params, num_steps=30, num_restarts=10, mesh="auto")
    out["estimate"] = {"one": one._asdict(), "eight": eight._asdict()}
    out["train"] = _train_vae(mesh="auto")
    try:
        _train_vae(mesh="auto", batch_size=12)
    except ValueError as err:
        out["train"]["odd_batch"] = str(err)
    print("RESULT" + json.dumps(out))


def _train_vae(mesh, batch_size=16):
    """3 steps of a small conv VAE (data-parallel over ``mesh``): its loss, validation loss and device count."""
    from genprior_jax.datasets import ImageDataset
    from genprior_jax.training import make_task, train

    x = np.random.default_rng(0).random((40, 16, 16, 1)).astype(np.float32)
    task = make_task("vae", (16, 16, 1), {"channels": (8,), "latent": 4}, num_steps=3)
    _, m = train(task, ImageDataset(x[:32], x[32:], {"spec": "test"}), jax.random.key(0), batch_size=batch_size,
                 num_steps=3, eval_every=3, progress=False, log_every=1, mesh=mesh)
    return {"devices": m["devices"], "loss": m["final_train_loss"], "val": m["val_loss"]}


def test_training_on_8_devices_reproduces_the_one_device_loss(sharded):
    """The batch split over 8 devices, parameters replicated: the loss after 3 steps is the one-device loss."""
    one = _train_vae(mesh=None)
    r = sharded["train"]
    assert r["devices"] == 8 and one["devices"] == 1
    assert r["loss"] == pytest.approx(one["loss"], rel=1e-5) and r["val"] == pytest.approx(one["val"], rel=1e-5)
    assert "batch_size 12 must be a multiple of the 8 devices" in r["odd_batch"]


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


def _check_equal(r, n, nan_rows):
    assert r["diff"] < 1e-5 and r["status_equal"] and r["same_nans"]
    assert r["shape"] == [n, 4, 4, 1]
    assert [i for i, st in enumerate(r["statuses"]) if st != Status.OK] == nan_rows
    assert all(st == Status.NONFINITE for st in np.array(r["statuses"])[nan_rows])


def test_sharded_equals_unsharded_and_splits_the_batch(sharded):
    assert sharded["devices"] == 8
    r = sharded["even"]  # 64 measurements x 10 restarts, one operator per measurement
    _check_equal(r, 64, [32])
    assert r["x_shard_rows"] == [8] * 8 and r["x_shard_devices"] == 8  # each device holds 1/8 of the batch
    assert r["objs_shard_rows"] == [8] * 8
    assert r["traces"] == 1 and r["traces_after_repeat"] == 1 and r["repeat_diff"] == 0.0  # compiled once


def test_two_axis_mesh(sharded):
    r = sharded["mesh_2d"]  # a 4 x 2 mesh: the batch is split over both axes together
    _check_equal(r, 64, [32])
    assert r["x_shard_rows"] == [8] * 8 and r["x_shard_devices"] == 8


def test_padding_never_changes_results(sharded):
    r = sharded["padded"]  # 60 padded to 64 by repeating the last (NaN) measurement, the copies dropped
    _check_equal(r, 60, [30, 59])
    assert r["x_shard_rows"] == [60] * 8 and r["x_shard_devices"] == 8  # 8 does not divide 60: a copy per device
    assert r["traces"] == 1


def test_chunked_and_sharded(sharded):
    r = sharded["chunked"]
    _check_equal(r, 60, [30, 59])
    assert r["traces"] == 1


def test_estimate_memory_per_device(sharded):
    one, eight = sharded["estimate"]["one"], sharded["estimate"]["eight"]  # 60 problems, shared operator
    assert (one["devices"], one["chunk"], eight["devices"], eight["chunk"]) == (1, 60, 8, 64)
    assert one["per_element"] > 0 and eight["per_element"] > 0 and one["fixed"] >= 0 and eight["fixed"] >= 0
    assert eight["per_chunk"] < one["per_chunk"] / 2  # a device holds 8 of the 64 problems


@pytest.fixture(scope="module")
def reference():
    params, op, y = make_problems(20, True)
    return params, op, y, solve(params, op, y, True, history=True)


def test_chunked_equals_unchunked_and_compiles_once(reference):
    params, op, y, ref = reference
    before = trace_count()
    res = solve(params, op, y, True, history=True, batch_size=7, progress=True)  # rows 0-6, 7-13, 13-19
    assert trace_count() == before + 1
    assert res.x.shape == ref.x.shape and res.history.shape == ref.history.shape == (20, 10, 30)
    np.testing.assert_array_equal(res.status, ref.status)
    assert np.asarray(res.status)[10] == Status.NONFINITE and np.all(np.isnan(np.asarray(res.x[10])))
    assert _max_diff(res, ref) < 1e-5 and _same_nans(res, ref)
    np.testing.assert_allclose(res.history, ref.history, rtol=1e-5, atol=1e-5)
    solve(params, op, y, True, history=True, batch_size=7, progress=True)  # same chunk shape: no new trace
    assert trace_count() == before + 1
    solve(params, op, y, True, history=True, batch_size=7)  # without the step callbacks: their own program
    assert trace_count() == before + 2


def test_chunks_carry_key_arrays_in_the_state(reference):
    params, op, y, _ = reference
    go = lambda **kw: run(NOISY, jax.random.key(2), y, op, NoisyHyper(), params, num_steps=10, num_restarts=3,  # noqa: E731
                          op_batched=True, **kw)
    ref, res = go(), go(batch_size=6)  # rows 0-5, 6-11, 12-17, 14-19
    assert jnp.issubdtype(res.state.key.dtype, jax.dtypes.prng_key) and res.state.key.shape == (20,)
    np.testing.assert_array_equal(jax.random.key_data(res.state.key), jax.random.key_data(ref.state.key))
    assert _max_diff(res, ref) < 1e-5 and _same_nans(res, ref)
    np.testing.assert_array_equal(res.status, ref.status)


def test_batch_size_larger_than_batch_is_one_plain_call(reference):
    params, op, y, ref = reference
    before = trace_count()
    res = solve(params, op, y, True, history=True, batch_size=100)
    assert trace_count() == before  # the plain call's compilation
    assert _max_diff(res, ref) == 0.0


def test_auto_batch_size(reference):
    """batch_size="auto": small problems in one call (the same result), 256x256x3 images one per call."""
    from genprior_jax.operators import Identity
    from genprior_jax.solvers.runner import auto_batch_size

    params, op, y, ref = reference
    res = solve(params, op, y, True, history=True, batch_size="auto")
    assert _max_diff(res, ref) == 0.0
    assert auto_batch_size(Identity((28, 28, 1))) > 100
    assert auto_batch_size(Identity((256, 256, 3))) == 1
    assert auto_batch_size(Identity((64, 64, 1)), num_restarts=10) < auto_batch_size(Identity((64, 64, 1)))


def test_auto_mesh_on_one_device_equals_unsharded(reference):
    params, op, y, ref = reference
    res = solve(params, op, y, True, history=True, mesh="auto")
    assert _max_diff(res, ref) < 1e-5 and _same_nans(res, ref)


def test_unbatched_measurement_with_mesh_and_chunks():
    params, op, y = make_problems(2, False, nan_rows=[])
    one = solve(params, op, y[1], False, batch_size=3, mesh="auto")
    assert one.x.shape == SHAPE and one.restart_objectives.shape == (10,) and int(one.status) == Status.OK


@pytest.mark.parametrize("vmap_size", [1, 7, "auto"])
def test_vmap_size_equals_all_at_once(reference, vmap_size, monkeypatch):
    """``vmap_size``: the (problem, restart) pairs in groups one after another (``lax.map``) give the one-vmap
    result, NaN problems included; with a tolerance each pair stops on its own; the progress bar counts every
    group's steps."""
    from genprior_jax.solvers import progress

    params, op, y, ref = reference
    res = solve(params, op, y, True, history=True, vmap_size=vmap_size)
    assert _max_diff(res, ref) < 1e-5 and _same_nans(res, ref)
    np.testing.assert_array_equal(res.status, ref.status)
    np.testing.assert_allclose(res.history, ref.history, rtol=1e-5, atol=1e-5)
    totals = []
    real = progress.StepBar.__exit__

    def record(self, *exc):
        totals.append((self.bar.n, self.bar.total))
        real(self, *exc)

    monkeypatch.setattr(progress.StepBar, "__exit__", record)
    tol_ref = solve(params, op, y, True, tol=1e-3)
    tol_res = solve(params, op, y, True, tol=1e-3, vmap_size=vmap_size, progress=True)
    assert _max_diff(tol_res, tol_ref) < 1e-5
    np.testing.assert_array_equal(tol_res.steps, tol_ref.steps)
    groups = {1: 200, 7: 29, "auto": 200}[vmap_size]  # 20 problems x 10 restarts in groups of vmap_size
    assert totals == [(30 * groups, 30 * groups)]


@pytest.mark.parametrize("vmap_size", [0, -2, 2.5, "all", True])
@pytest.mark.parametrize("mesh", [None, "auto"])
def test_bad_vmap_size_raises(vmap_size, mesh):
    params, op, y = make_problems(4, False)
    with pytest.raises(ValueError, match=f"vmap_size: expected None, a positive int or 'auto', got {vmap_size!r}"):
        solve(params, op, y, False, vmap_size=vmap_size, mesh=mesh)


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


def test_estimate_memory_scales_with_the_chunk(reference):
    params, op, y, _ = reference
    kw = dict(num_steps=30, num_restarts=10, op_batched=True)
    small = estimate_memory(SOLVER, y, op, CSGMHyper(), params, batch_size=4, **kw)
    large = estimate_memory(SOLVER, y, op, CSGMHyper(), params, **kw)
    assert small.source == large.source == "memory_analysis" and small.devices == 1
    assert (small.chunk, large.chunk) == (4, 20)
    for est in (small, large):  # never negative; the chunk's own bytes are the intercept plus the slope's share
        assert est.per_element > 0 and est.fixed >= 0
        assert est.per_chunk == pytest.approx(est.fixed + est.per_element * est.chunk, rel=1e-6, abs=1)
    # at least a chunk's arguments (keys, y, operators) and outputs (x, objectives, latents, Adam moments)
    args = 20 * (2 * 4 + 6 * 4 + 6 * 16 * 4)
    outs = 20 * (16 + 1 + 1 + 10 + 3 * LATENT) * 4
    assert large.per_chunk >= args + outs
    # the small chunk's estimate predicts the large chunk's compiled size (the README's batch-size formula)
    assert small.fixed + small.per_element * 20 == pytest.approx(large.per_chunk, rel=0.25)
    assert 0.5 < large.per_element / small.per_element < 2.0  # grows with the chunk, roughly linearly
    with pytest.raises(ValueError, match="batch_size"):
        estimate_memory(SOLVER, y, op, CSGMHyper(), params, batch_size=0, **kw)


def test_estimate_memory_falls_back_to_shapes(monkeypatch, reference):
    params, op, y, _ = reference
    monkeypatch.setattr(jax.stages.Compiled, "memory_analysis", lambda self: None)
    with pytest.warns(RuntimeWarning, match="no compiled memory analysis"):
        est = estimate_memory(SOLVER, y, op, CSGMHyper(), params, num_steps=30, num_restarts=10, op_batched=True)
    assert est.source == "shapes" and est.chunk == 20 and est.per_chunk > est.fixed > 0


def test_estimate_memory_never_negative_when_the_solve_reads_part_of_the_params():
    """The VAE prior's params include the encoder, which CSGM never reads and XLA drops: the estimate at small
    chunks came out negative (issue 15). The two-point estimate is positive at every size and predicts the
    compiled size of a larger chunk."""
    import genprior_jax as gp
    from genprior_jax.operators import GaussianCS

    prior = gp.load_prior("vae-mnist")
    solver = csgm_solver(prior)
    op = GaussianCS(jax.random.key(0), (28, 28, 1), 100)
    y = jnp.zeros((32, 100))
    ests = {bs: estimate_memory(solver, y, op, CSGMHyper(), prior.params, num_steps=2, num_restarts=10,
                                batch_size=bs) for bs in (1, 4, 8, 32)}
    assert all(e.per_element > 0 and e.fixed > 0 for e in ests.values())
    assert ests[4].fixed + ests[4].per_element * 32 == pytest.approx(ests[32].per_chunk, rel=0.1)
