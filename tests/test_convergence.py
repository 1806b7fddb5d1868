"""Tolerance-based stopping in the runner: converged problems stop changing, caps and NaNs are told apart."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genprior_jax.operators import Identity
from genprior_jax.solvers import RunOptions, Solver, Status, run
from genprior_jax.solvers.runner import trace_count

SHAPE = (2, 2, 1)


class Hyper(NamedTuple):
    lr: float = 0.1


def _quadratic_solver() -> Solver:
    """Gradient descent on f(v) = 0.5 * a * ||v - y||^2 with the curvature a = 1 + y[0, 0, 0]: problems with
    different y converge at different speeds, elementwise (bit-identical batched or alone)."""

    def f(v, problem):
        a = 1.0 + problem.y[0, 0, 0]
        return 0.5 * a * jnp.sum((v - problem.y) ** 2)

    def init(key, problem, hyper, params):
        return jnp.zeros(SHAPE)

    def step(v, problem, hyper, params):
        loss, g = jax.value_and_grad(f)(v, problem)
        return v - hyper.lr * g, loss

    def objective(v, problem, hyper, params):
        return f(v, problem)

    def estimate(v, problem, hyper, params):
        return v

    return Solver(init, step, objective, estimate)


SOLVER = _quadratic_solver()
OP = Identity(SHAPE)


def _ys(values):
    return jnp.stack([jnp.full(SHAPE, v, jnp.float32) for v in values])


def test_converged_problem_equals_its_solo_solve():
    ys = _ys([0.05, 0.9, 3.0])  # slow, medium, fast contraction (1 - lr * a per step)
    res = run(SOLVER, jax.random.key(0), ys, OP, Hyper(), num_steps=2000, options=RunOptions(tol=1e-4, check_every=5))
    steps = np.asarray(res.steps)
    assert np.all(np.asarray(res.status) == Status.OK) and np.all(np.asarray(res.converged))
    assert len(set(steps.tolist())) == 3 and np.all(steps % 5 == 0) and steps.max() < 2000
    for i in range(3):
        solo = run(SOLVER, jax.random.key(0), ys[i], OP, Hyper(), num_steps=2000, tol=1e-4, check_every=5)
        assert int(solo.steps) == steps[i]
        np.testing.assert_array_equal(np.asarray(solo.x), np.asarray(res.x[i]))  # untouched by its batch mates
    # the tolerance is met (change below tol * max(|f|, 1) over the last check), so the fit is close
    np.testing.assert_allclose(np.asarray(res.x), np.asarray(ys), atol=5e-3)


def test_cap_is_reported_not_hidden():
    ys = _ys([0.05, 3.0])
    res = run(SOLVER, jax.random.key(0), ys, OP, Hyper(), num_steps=23, tol=1e-12, check_every=10)
    np.testing.assert_array_equal(np.asarray(res.status), [Status.MAX_STEPS, Status.MAX_STEPS])
    assert not np.any(np.asarray(res.converged)) and np.all(np.asarray(res.steps) == 30)  # rounded up to blocks
    plain = run(SOLVER, jax.random.key(0), ys, OP, Hyper(), num_steps=23)  # no tolerance: the fixed count
    np.testing.assert_array_equal(np.asarray(plain.status), [Status.OK, Status.OK])
    assert np.all(np.asarray(plain.steps) == 23) and not np.any(np.asarray(plain.converged))


def test_nonfinite_apart_from_capped_and_converged():
    ys = _ys([0.5, 0.5, 3.0]).at[1, 0, 1, 0].set(jnp.nan)
    res = run(SOLVER, jax.random.key(0), ys, OP, Hyper(), num_steps=500, tol=1e-5, history=True)
    np.testing.assert_array_equal(np.asarray(res.status), [Status.OK, Status.NONFINITE, Status.OK])
    assert int(res.steps[1]) == 10  # stopped at the first check instead of running to the cap
    hist = np.asarray(res.history)  # (B, R, 500): NaN after a problem stopped
    assert hist.shape == (3, 1, 500)
    assert np.all(np.isfinite(hist[0, 0, : int(res.steps[0])])) and np.all(np.isnan(hist[0, 0, int(res.steps[0]):]))


def test_tolerance_is_traced():
    ys = _ys([0.5, 2.0])
    run(SOLVER, jax.random.key(0), ys, OP, Hyper(), num_steps=200, tol=1e-3)
    before = trace_count()
    a = run(SOLVER, jax.random.key(0), ys, OP, Hyper(), num_steps=200, tol=1e-2)
    b = run(SOLVER, jax.random.key(0), ys, OP, Hyper(), num_steps=200, tol=1e-6)
    assert trace_count() == before
    assert np.all(np.asarray(a.steps) < np.asarray(b.steps))


@pytest.mark.parametrize("options, match", [
    pytest.param(dict(tol=-1.0), "tol: expected None or a finite number >= 0", id="negative-tol"),
    pytest.param(dict(tol=float("nan")), "tol: expected None or a finite number >= 0", id="nan-tol"),
    pytest.param(dict(tol=1e-3, check_every=0), "check_every: expected a positive int", id="check-every-0"),
    pytest.param(dict(tolerance=1e-3), "run options are", id="unknown-option"),
])
def test_bad_run_options(options, match):
    with pytest.raises(ValueError, match=match):
        run(SOLVER, jax.random.key(0), _ys([0.5, 2.0]), OP, Hyper(), num_steps=10, **options)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_nonfinite_iterate_is_rejected(optimizer):
    """The objective is NaN beyond v = 1.5 and its minimum (v = 2) lies there: L-BFGS stops at a finite iterate
    below the wall instead of carrying NaN on (or spinning), and the tolerance sees it settle; Adam, which has no
    line search, is stopped and reported non-finite at the first check instead of running to the cap."""
    from genprior_jax.solvers.optim import make_optimizer, minimizing_solver

    class State(NamedTuple):
        v: jax.Array
        opt_state: object

    def loss(v, problem, hyper, params):
        wall = jnp.where(jnp.any(v > 1.5), jnp.nan, 0.0)
        return jnp.sum((v - 2.0) ** 2) + wall + 0.0 * jnp.sum(problem.y)  # NaN measurements: NaN objective

    solver = minimizing_solver(loss, lambda key, problem, hyper, params: jnp.zeros(SHAPE), lambda v, params: v,
                               optimizer, lambda hyper: make_optimizer(optimizer, hyper.lr), State)
    res = run(solver, jax.random.key(0), _ys([0.0]), OP, Hyper(lr=1.0), num_steps=400, tol=1e-6, check_every=5)
    if optimizer == "adam":  # no line search: Adam steps onto the wall (v = 1 -> 2); reported at the next check
        assert int(res.status[0]) == Status.NONFINITE and int(res.steps[0]) == 5
        return
    x = np.asarray(res.x)
    assert np.all(np.isfinite(x)) and np.all(x <= 1.5) and np.all(x >= 0.9)
    assert int(res.status[0]) == Status.OK and bool(res.converged[0]) and int(res.steps[0]) < 400
    nan_start = run(solver, jax.random.key(0), _ys([jnp.nan]), OP, Hyper(lr=1.0), num_steps=20, tol=1e-6)
    assert int(nan_start.status[0]) == Status.NONFINITE  # a NaN objective at the start is still reported


def test_step_progress_bar_counts_steps_once_per_check(monkeypatch):
    """progress=True: the compiled loop calls the host about 100 times per chunk (the step counter is unbatched,
    so not once per problem or restart), and the bar ends at chunks x steps."""
    from genprior_jax.solvers import progress

    calls = []
    real = progress._host_tick
    monkeypatch.setattr(progress, "_host_tick", lambda done: (calls.append(int(done)), real(done)))
    bars = []
    real_bar = progress.StepBar

    class Recording(real_bar):
        def __init__(self, total, desc="run"):
            super().__init__(total, desc)
            bars.append(self.bar)

    monkeypatch.setattr("genprior_jax.solvers.runner.StepBar", Recording)
    ys = _ys([0.1, 0.2, 0.3, 0.4, 0.5])
    solver = _quadratic_solver()  # a fresh solver: traced now, with the recording callback
    run(solver, jax.random.key(0), ys, OP, Hyper(), num_steps=300, num_restarts=3, batch_size=2, progress=True)
    assert len(bars) == 1 and bars[0].total == 3 * 300 and bars[0].n == 3 * 300  # 3 chunks of 2 problems
    assert 3 * 100 <= len(calls) <= 3 * 101 and max(calls) == 300
    calls.clear()
    run(solver, jax.random.key(0), ys, OP, Hyper(), num_steps=300, tol=1e-4, progress=True)  # one tick per block
    assert 0 < len(calls) <= 30 and all(c % 10 == 0 for c in calls)


def test_tv_and_lasso_stop_on_a_certified_gap_by_default():
    """TV and Lasso stop on their relative duality gap by default (criterion "duality_gap"): with a generous cap
    they stop early, converged, the default equals the explicit tolerance, and the last gap they report is below
    it; tol=None runs the fixed count (criterion "none"); the other solvers keep "objective_change"."""
    import genprior_jax as gp
    from genprior_jax.operators import RandomMask
    from genprior_jax.solvers import lasso, tv
    from genprior_jax.solvers.lasso import LASSO_TOL
    from genprior_jax.solvers.tv import TV_TOL

    x = gp.load_mnist("test", n=2).images
    op = RandomMask(jax.random.key(0), (28, 28, 1), 0.5)
    y = jax.vmap(op.mv)(jnp.asarray(x))
    for solve, tol in ((lambda **kw: tv(jax.random.key(1), y, op, lam=0.02, num_steps=5000, **kw), TV_TOL),
                       (lambda **kw: lasso(jax.random.key(1), y, op, lam=0.025, num_steps=5000, **kw), LASSO_TOL)):
        res = solve(history=True)
        assert res.criterion == "duality_gap"
        assert np.all(np.asarray(res.converged)) and np.all(np.asarray(res.steps) < 5000)
        last_gap = np.asarray(res.history.gap)[np.arange(2), 0, np.asarray(res.steps) - 1]
        assert np.all(last_gap <= tol) and np.all(last_gap >= 0)
        np.testing.assert_allclose(np.asarray(res.history.loss)[np.arange(2), 0, np.asarray(res.steps) - 1],
                                   np.asarray(res.objective), rtol=1e-6)  # the gap certifies the returned iterate
        np.testing.assert_array_equal(np.asarray(solve(tol=tol, history=True).x), np.asarray(res.x))
    fixed = tv(jax.random.key(1), y, op, lam=0.02, num_steps=50, tol=None)
    assert np.all(np.asarray(fixed.steps) == 50) and not np.any(np.asarray(fixed.converged))
    assert fixed.criterion == "none"
    assert run(SOLVER, jax.random.key(0), _ys([0.5]), OP, Hyper(), num_steps=50, tol=1e-3).criterion == \
        "objective_change"


def _tv_reference(y, op, lam, steps=20000):
    """A long fixed run of our PDHG (the minimum's reference for box-constrained TV: skimage's
    denoise_tv_chambolle has no box) and its certified lower bound D = P / (1 + relative gap)."""
    from genprior_jax.solvers.runner import Problem
    from genprior_jax.solvers.tv import TVHyper, tv, tv_solver

    ref = tv(jax.random.key(3), y, op, lam=lam, num_steps=steps, tol=None)
    info = tv_solver(True).step(ref.state, Problem(y, op), TVHyper(jnp.float32(lam), jnp.float32(0.0)), None)[1]
    return float(ref.objective), float(info.loss) / (1.0 + float(info.gap))


def test_tv_default_ends_within_1e4_of_the_minimum():
    """Default TV (tol 1e-4 on the certified relative gap) on 16x16 Gaussian CS: the objective is within 1e-4
    (relative) of a 20,000-step reference and of that reference's certified lower bound."""
    import genprior_jax as gp
    from genprior_jax.operators import GaussianCS
    from genprior_jax.solvers import tv

    x = jnp.asarray(gp.load_mnist("test", n=1).images[0, ::2, ::2][:14, :14])
    op = GaussianCS(jax.random.key(0), x.shape, 80)
    y = op.mv(x) + 0.002 * jax.random.normal(jax.random.key(1), (80,))
    lam = 0.01
    res = tv(jax.random.key(3), y, op, lam=lam)
    assert res.criterion == "duality_gap" and bool(res.converged) and int(res.status) == Status.OK
    f = float(res.objective)
    f_ref, lower = _tv_reference(y, op, lam)
    assert f_ref <= f and lower <= f_ref
    assert (f - lower) / lower <= 1e-4, ((f - f_ref) / f_ref, (f - lower) / lower)
    # the 1/2 data-term scale: Result.objective is 1/2 ||A x - y||^2 + lam TV(x)
    from genprior_jax.transforms import tv_norm

    np.testing.assert_allclose(f, 0.5 * float(jnp.sum((op.mv(res.x) - y) ** 2)) + lam * float(tv_norm(res.x)),
                               rtol=1e-5)


def test_lasso_default_matches_scikit_learn():
    """Default Lasso (pixel basis, Gaussian A) against scikit-learn's coordinate descent run to 1e-12: sklearn
    minimizes 1/(2m) ||X w - y||^2 + alpha ||w||_1, i.e. ours (1/2 ||A x - y||^2 + lam ||x||_1) with
    lam = m alpha. Objective within 1e-4 (relative), certified by a duality gap."""
    from sklearn.linear_model import Lasso  # the reference (a test dependency)

    from genprior_jax.operators import GaussianCS
    from genprior_jax.solvers import lasso

    shape, m, lam = (8, 8, 1), 40, 0.01
    op = GaussianCS(jax.random.key(0), shape, m)
    x = np.zeros(64, np.float32)
    x[[3, 17, 30, 41, 58]] = [0.9, 0.5, 0.7, 0.3, 0.8]
    y = op.mv(jnp.asarray(x.reshape(shape))) + 0.002 * jax.random.normal(jax.random.key(1), (m,))
    a, yy = np.asarray(op.matrix, np.float64), np.asarray(y, np.float64)
    w = Lasso(alpha=lam / m, fit_intercept=False, tol=1e-12, max_iter=100_000).fit(a, yy).coef_

    def objective(c):
        return 0.5 * np.sum((a @ c - yy) ** 2) + lam * np.abs(c).sum()

    res = lasso(jax.random.key(3), y, op, lam=lam, basis="pixel")
    assert res.criterion == "duality_gap" and bool(res.converged) and int(res.status) == Status.OK
    c = np.asarray(res.state.c, np.float64).reshape(-1)
    assert (objective(c) - objective(w)) / objective(w) <= 1e-4
    np.testing.assert_allclose(float(res.objective), objective(c), rtol=1e-5)  # the 1/2 scale in Result.objective


def test_lasso_identity_objective_is_half_scale_soft_thresholding():
    """A = I, pixel basis: argmin 1/2 ||x - y||^2 + lam ||x||_1 = soft(y, lam), and Result.objective is that
    objective's minimum (closed form)."""
    from genprior_jax.solvers import lasso

    y = jax.random.uniform(jax.random.key(0), (6, 6, 1), minval=-0.5, maxval=1.0)
    lam = 0.2
    res = lasso(jax.random.key(1), y, Identity(y.shape), lam=lam, basis="pixel")
    soft = np.sign(y) * np.maximum(np.abs(y) - lam, 0.0)
    np.testing.assert_allclose(np.asarray(res.state.x), soft, atol=1e-5)
    f_min = 0.5 * np.sum((soft - np.asarray(y)) ** 2) + lam * np.abs(soft).sum()
    np.testing.assert_allclose(float(res.objective), f_min, rtol=1e-5)
    assert res.criterion == "duality_gap" and bool(res.converged)


def test_gap_stop_is_elementwise_in_a_batch():
    """A vmapped batch stops each problem at its own certificate: a zero measurement (gap 0 at the first check)
    stops after one check, a harder one later; each equals its solo solve; a NaN one is reported alone."""
    import genprior_jax as gp
    from genprior_jax.operators import RandomMask
    from genprior_jax.solvers import tv

    x = jnp.asarray(gp.load_mnist("test", n=1).images[0])
    op = RandomMask(jax.random.key(0), x.shape, 0.5)
    y = jnp.stack([jnp.zeros(op.out_shape), op.mv(x), op.mv(x).at[3, 3, 0].set(jnp.nan)])
    res = tv(jax.random.key(1), y, op, lam=0.02, check_every=10)
    steps = np.asarray(res.steps)
    np.testing.assert_array_equal(np.asarray(res.status), [Status.OK, Status.OK, Status.NONFINITE])
    assert steps[0] == 10 and 10 < steps[1] < 3000 and steps[2] == 10
    assert np.asarray(res.converged).tolist() == [True, True, False]
    keys = jax.random.split(jax.random.key(1), 3)
    for i in (0, 1):
        solo = tv(keys[i], y[i], op, lam=0.02, check_every=10)
        assert int(solo.steps) == steps[i]
        np.testing.assert_array_equal(np.asarray(solo.x), np.asarray(res.x[i]))
