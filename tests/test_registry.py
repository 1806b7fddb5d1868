"""The registry dispatches (issue 28): every method's traced hyper-parameters reuse its compiled solve; what differs
per method (posterior summary, run-option and derived defaults, model-error support) comes from its entry;
``defaults`` reports the defaults the solve uses; ``tol=None`` runs the fixed step count everywhere."""

import importlib
import pkgutil
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import LINEAR_SHAPE

import genprior_jax as gp
import genprior_jax.solvers as solvers_pkg
from genprior_jax.operators import GaussianCS, GaussianNoise, measure
from genprior_jax.priors import Prior
from genprior_jax.priors.untrained import UntrainedGenerator
from genprior_jax.solvers import runner
from genprior_jax.solvers.csgm import ASIM_TOL
from genprior_jax.solvers.lasso import LASSO_TOL
from genprior_jax.solvers.methods import METHODS, defaults, reconstruct, solve
from genprior_jax.solvers.options import DEFAULT, RunOptions, batch_size_of, resolve_options, tol_of
from genprior_jax.solvers.summaries import Summary, langevin_chain_summary, vi_summary
from genprior_jax.solvers.tv import TV_TOL
from genprior_jax.solvers.types import Result


def _patch_log_prob(params, patch):
    return -0.5 * jnp.sum((patch - params["mu"]) ** 2)


def _patch_generate(params, z):
    return z.reshape(2, 2, 1)


def _toy_init(key):
    return {"w": jax.random.normal(key, (2, 16)) / 2.0}


def _toy_generate(weights, z):
    return jax.nn.sigmoid(z @ weights["w"]).reshape(LINEAR_SHAPE)


# a Gaussian density on 2x2 patches (patchnr) and a one-layer DIP generator: the tiniest of each kind
PATCH_PRIOR = Prior("gauss-patch", (4,), (2, 2, 1), _patch_generate, {"mu": jnp.float32(0.5)},
                    log_prob=_patch_log_prob)
def _gauss_denoise(params, x, sigma):
    return params["mu"] + params["var"] / (params["var"] + sigma**2) * (x - params["mu"])


def _gauss_generate(params, z):
    return params["mu"] + jnp.sqrt(params["var"]) * z


# a Gaussian image prior with its exact denoiser: the diffusion methods' tiniest prior
DIFFUSION_PRIOR = Prior("gauss-diffusion", LINEAR_SHAPE, LINEAR_SHAPE, _gauss_generate,
                        {"mu": jnp.full(LINEAR_SHAPE, 0.5), "var": jnp.full(LINEAR_SHAPE, 0.04)},
                        denoise=_gauss_denoise)
DIFFUSION = ("dps", "diffpir", "ald", "pnp")
TOY = UntrainedGenerator("toy-4x4", (2,), LINEAR_SHAPE, _toy_init, _toy_generate)
# hyper-parameters whose literal 0 switches a part of the model off (a static choice, documented): changing them
# from 0 is allowed to compile another program; their non-zero values are traced like the rest
OFF_AT_ZERO = {"model_error", "lam_weights"}


@pytest.fixture(scope="module")
def problem():
    op = GaussianCS(jax.random.key(1), LINEAR_SHAPE, 8)
    y = measure(jax.random.key(2), op, jnp.full((2, *LINEAR_SHAPE), 0.5), GaussianNoise(0.05))
    return op, y


def _tiny(name) -> dict[str, Any]:
    """Keywords that make method ``name`` tiny: few steps, one restart, the tiny generator / patch prior."""
    d = defaults(name)
    kw = {"num_steps": 4, **({"num_restarts": 1} if "num_restarts" in d else {})}
    kw.update({"dip": {"generator": TOY}, "patchnr": {"tv_steps": 2}, "lasso-wavelet": {"levels": 1},
               "pnp": {"anneal_steps": 2}}.get(name, {}))
    return kw


def _prior(name, linear_prior):
    if name in DIFFUSION:
        return DIFFUSION_PRIOR
    return PATCH_PRIOR if name == "patchnr" else linear_prior


def _changed(value):
    """``value`` (a number or a pytree of numbers, e.g. a noise model) with every leaf moved: x 0.9, 0 -> 0.01."""
    return jax.tree_util.tree_map(lambda a: a * 0.9 if np.any(np.asarray(a) != 0) else a + 0.01, value)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_traced_hyper_parameters_do_not_recompile(name, linear_prior, problem):
    """Solve once, then once per traced hyper-parameter (a field of the method's Hyper) with its value changed:
    the runner is traced for the first solve only."""
    op, y = problem
    m, d = METHODS[name], defaults(name)
    traced = [k for k in m.hyper._fields if k in d and k not in OFF_AT_ZERO]
    assert traced, f"{name}: no traced hyper-parameter found among {m.hyper._fields}"
    prior, kw = _prior(name, linear_prior), _tiny(name)
    before = runner.trace_count()
    jax.block_until_ready(solve(name, prior, jax.random.key(3), y, op, **kw).x)
    assert runner.trace_count() == before + 1  # the counter sees the compilation (so the test can fail)
    retraced = []
    for k in traced:
        count = runner.trace_count()
        res = solve(name, prior, jax.random.key(3), y, op, **kw, **{k: _changed(d[k])})
        jax.block_until_ready(res.x)
        if runner.trace_count() != count:
            retraced.append(k)
    assert not retraced, f"{name}: changing {retraced} recompiled the solve"


class _Captured(Exception):
    def __init__(self, options, num_steps):
        super().__init__("captured")
        self.options, self.num_steps = options, num_steps


def _spy_run(solver, key, y, op, hyper, params=None, *, num_steps, num_restarts=1, options=None, **overrides):
    raise _Captured(resolve_options(options, overrides), num_steps)


@pytest.fixture
def captured_run(monkeypatch):
    """Every solver module's ``run`` replaced by a spy that raises :class:`_Captured` with the run options and the
    step count the wrapper asked the runner for (nothing compiles)."""
    real = runner.run
    for info in pkgutil.iter_modules(solvers_pkg.__path__):
        module = importlib.import_module(f"{solvers_pkg.__name__}.{info.name}")
        if getattr(module, "run", None) is real:
            monkeypatch.setattr(module, "run", _spy_run)

    def call(fn, *args, **kwargs):
        with pytest.raises(_Captured) as info:
            fn(*args, **kwargs)
        return info.value

    return call


@pytest.mark.parametrize("name", sorted(METHODS))
def test_defaults_report_the_run_options_the_solve_uses(name, linear_prior, problem, captured_run):
    """``defaults(name)`` holds the method's run-option defaults (``tol``, ``batch_size``), and the runner is asked
    for exactly those when the caller leaves them unset (and for none it does not report)."""
    op, y = problem
    d = defaults(name)
    got = captured_run(solve, name, _prior(name, linear_prior), jax.random.key(0), y, op, **_tiny(name)).options
    assert tol_of(got) == d.get("tol")
    assert batch_size_of(got) == d.get("batch_size")
    assert set(d) & set(RunOptions._fields) == set(METHODS[name].run_defaults)


def test_run_option_defaults_where_they_apply():
    assert defaults("asim")["tol"] == ASIM_TOL > 0
    assert defaults("lasso-dct")["tol"] == LASSO_TOL > 0
    assert defaults("tv")["tol"] == TV_TOL > 0 and defaults("tv")["batch_size"] == "auto"
    assert "tol" not in defaults("csgm") and "tol" not in defaults("langevin")


@pytest.mark.parametrize("name", ["asim", "lasso-pixel", "tv"])
def test_explicit_tol_none_runs_the_fixed_count(name, linear_prior, problem, captured_run):
    """``tol=None`` means no tolerance, however it is given: to the wrapper, to ``gp.reconstruct`` or in
    ``RunOptions``; unset, the method's default applies; a number is passed through."""
    op, y = problem
    prior = _prior(name, linear_prior)
    m = METHODS[name]
    wrapper = (lambda *a, **k: m.solve(prior, *a, **k)) if m.needs_prior else m.solve
    kw = {**_tiny(name), **m.fixed}
    key = jax.random.key(0)
    for call in (lambda **o: wrapper(key, y, op, **kw, **o),
                 lambda **o: reconstruct(prior, key, y, op, method=name, **_tiny(name), **o)):
        assert tol_of(captured_run(call).options) == defaults(name)["tol"]
        assert tol_of(captured_run(call, tol=None).options) is None
        assert tol_of(captured_run(call, options=RunOptions(tol=None)).options) is None
        assert tol_of(captured_run(call, tol=1e-3).options) == 1e-3
        assert tol_of(captured_run(call, options=RunOptions(tol=1e-3)).options) == 1e-3


def test_reconstruct_tol_none_runs_every_step(problem):
    """End to end (the item-9 defect): ``gp.reconstruct(..., tol=None)`` runs all ``num_steps`` steps, as
    ``gp.lasso(..., tol=None)`` does."""
    op, y = problem
    rec = gp.reconstruct(None, jax.random.key(0), y, op, method="lasso-pixel", num_steps=7, tol=None)
    res = gp.lasso(jax.random.key(0), y, op, basis="pixel", num_steps=7, tol=None)
    assert rec.result.steps.tolist() == res.steps.tolist() == [7, 7]
    assert not np.any(np.asarray(rec.result.converged))
    np.testing.assert_array_equal(np.asarray(rec.x), np.asarray(res.x))


def test_run_options_default_marker():
    assert RunOptions().tol is DEFAULT and RunOptions().batch_size is DEFAULT
    assert tol_of(RunOptions()) is None and batch_size_of(RunOptions()) is None  # the runner's own defaults
    assert repr(DEFAULT) == "DEFAULT" and RunOptions(tol=None).tol is None


def test_derived_defaults_are_those_the_solve_uses(linear_prior, problem, captured_run):
    """Langevin's burn-in and thinning follow from ``num_steps``; ``defaults`` reports them at the default
    ``num_steps`` and the wrapper runs ``num_steps - burn_in`` sampling steps after the burn-in."""
    op, y = problem
    d = defaults("langevin")
    assert d["burn_in"] == d["num_steps"] // 2 and d["thin"] == max((d["num_steps"] - d["burn_in"]) // 50, 1)
    got = captured_run(gp.langevin, linear_prior, jax.random.key(0), y, op)
    assert got.num_steps == d["num_steps"] - d["burn_in"]


def _fake_result(x):
    b = x.shape[0]
    return Result(x, None, jnp.zeros(b), jnp.zeros(b, jnp.int32), jnp.zeros((b, 1)), None,
                  jnp.full(b, 4, jnp.int32), jnp.zeros(b, bool))


def test_posterior_summaries_come_through_the_entry(monkeypatch, linear_prior, problem):
    """``reconstruct`` applies whatever summary the entry carries, with the method's keywords and defaults."""
    op, y = problem
    assert METHODS["vi"].summarize is vi_summary and METHODS["langevin"].summarize is langevin_chain_summary
    assert all(METHODS[k].summarize is None for k in ("map", "csgm", "tv", "lasso-dct", "dip", "patchnr"))
    assert [k for k, m in METHODS.items() if m.posterior] == ["vi", "langevin", "dps", "diffpir", "ald"]
    x = jnp.full((2, *LINEAR_SHAPE), 0.25)
    seen = {}

    def fake_solve(prior, key, y, op, *, lam=0.125, **kw):  # its keyword defaults are what defaults() reads
        seen["solve"] = kw
        return _fake_result(x)

    def fake_summary(prior, result, key, y, op, *, posterior, num_samples, method_kwargs, model_error, op_batched):
        seen["summary"] = dict(posterior=posterior, num_samples=num_samples, lam=method_kwargs["lam"])
        return Summary(result.x + 1, result.x * 0 + 0.5, jnp.stack([result.x] * num_samples, 1), None)

    monkeypatch.setitem(METHODS, "csgm", METHODS["csgm"]._replace(solve=fake_solve, summarize=fake_summary))
    rec = reconstruct(linear_prior, jax.random.key(0), y, op, method="csgm", posterior=True, num_samples=3)
    assert seen["summary"] == dict(posterior=True, num_samples=3, lam=0.125)
    np.testing.assert_allclose(np.asarray(rec.x), 1.25)
    assert rec.std is not None and rec.samples is not None and rec.samples.shape == (2, 3, *LINEAR_SHAPE)
    # without a summary the entry gives a point estimate, and posterior=True is refused
    monkeypatch.setitem(METHODS, "csgm", METHODS["csgm"]._replace(solve=fake_solve, summarize=None))
    rec = reconstruct(linear_prior, jax.random.key(0), y, op, method="csgm")
    np.testing.assert_allclose(np.asarray(rec.x), 0.25)
    assert rec.std is None and rec.samples is None
    with pytest.raises(ValueError, match="posterior=True needs one of"):
        reconstruct(linear_prior, jax.random.key(0), y, op, method="csgm", posterior=True)


def test_model_error_support_comes_from_the_entry(monkeypatch, linear_prior, problem):
    op, y = problem
    assert [k for k, m in METHODS.items() if m.model_error] == ["map", "vi", "langevin"]
    seen = {}

    def fake_solve(prior, key, y, op, **kw):
        seen.update(kw)
        return _fake_result(jnp.zeros((2, *LINEAR_SHAPE)))

    monkeypatch.setitem(METHODS, "csgm", METHODS["csgm"]._replace(solve=fake_solve))
    with pytest.raises(ValueError, match="model_error applies to the methods"):
        reconstruct(linear_prior, jax.random.key(0), y, op, method="csgm", model_error=0.1)
    monkeypatch.setitem(METHODS, "csgm", METHODS["csgm"]._replace(solve=fake_solve, model_error=True))
    rec = reconstruct(linear_prior, jax.random.key(0), y, op, method="csgm", model_error=0.1)
    assert seen["model_error"] == 0.1 and rec.model_error == 0.1
