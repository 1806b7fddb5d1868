"""One keyword vocabulary over the registry (docs/guide/glossary.md): every method's keywords use it, every method
with a regularizer takes ``lam``, every objective has the data term ``1/2 ||A x - y||^2`` (checked against closed-form
minimizers on tiny linear problems), and the renamed keywords still work for one release with a DeprecationWarning.
"""

from __future__ import annotations

import inspect
import pathlib
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genprior_jax as gp
from genprior_jax.operators import GaussianCS, Identity
from genprior_jax.priors import Prior, UntrainedGenerator
from genprior_jax.solvers import METHODS, defaults
from genprior_jax.solvers.dip import total_variation

# keyword names replaced by the vocabulary (lam, learning_rate, num_samples, lam_weights)
RETIRED = {"gamma", "lam_tv", "lam_lr", "init_lr", "num_draws", "num_keep", "prior_weight"}

SHAPE = (2, 2, 1)  # 4 pixels
N = 4


def _keywords(name: str) -> set[str]:
    m = METHODS[name]
    sig = inspect.signature(m.solve).parameters.values()
    return {p.name for p in sig if p.kind is p.KEYWORD_ONLY} | set(defaults(name)) | set(m.hyper._fields)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_keywords_use_the_vocabulary(name):
    assert not _keywords(name) & RETIRED, f"{name}: retired keyword(s) {sorted(_keywords(name) & RETIRED)}"


def test_reconstruct_keywords_use_the_vocabulary():
    sig = set(inspect.signature(gp.reconstruct).parameters)
    assert not sig & RETIRED, sorted(sig & RETIRED)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_regularized_method_takes_lam(name):
    """Every method of the registry has a main regularization weight, and it is called ``lam`` (the CLI's --lam)."""
    m = METHODS[name]
    assert m.lam == "lam", f"{name}: the --lam flag sets {m.lam!r}"
    assert "lam" in defaults(name), f"{name}: no lam keyword"


def _glossary_rows() -> dict[str, list[str]]:
    """The per-method table of docs/guide/glossary.md: method name -> its cells."""
    text = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "guide" / "glossary.md").read_text()
    table = text.split("## Per method", 1)[1].split("\n\n", 2)[2].split("\n\n", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        names = re.findall(r"`([a-z-]+)`", cells[0])
        for name in names:
            rows[("lasso" + name) if name.startswith("-") else name] = cells
    return rows


def test_glossary_lists_every_method_with_its_default_lam():
    rows = _glossary_rows()
    assert set(rows) == set(METHODS), sorted(set(rows) ^ set(METHODS))
    for name, cells in rows.items():
        assert float(cells[2]) == float(defaults(name)["lam"]), (name, cells[2], defaults(name)["lam"])


# -- the data term 1/2 ||A x - y||^2, on problems with a closed-form minimum ------------------------------------------

W = np.asarray(jax.random.normal(jax.random.key(1), (N, N)), np.float64) / 2 + np.eye(N)  # invertible
B = np.full(N, 0.3)


def _generate(params, z):
    return (params["W"] @ z + params["b"]).reshape(SHAPE)


def _encode(params, x):
    return params["V"] @ (x.reshape(-1) - params["b"])


LINEAR = Prior("linear", (N,), SHAPE, _generate, {"W": jnp.asarray(W, jnp.float32), "b": jnp.asarray(B, jnp.float32),
                                                  "V": jnp.asarray(np.linalg.inv(W), jnp.float32)}, encode=_encode)


def _problem():
    op = GaussianCS(jax.random.key(2), SHAPE, 3)
    y = jnp.asarray([0.4, -0.7, 1.1], jnp.float32)
    return op, y, np.asarray(op.matrix, np.float64), np.asarray(y, np.float64)


LAM = 0.3


def _gd(hessian: np.ndarray) -> dict[str, Any]:
    """Gradient descent with step 1 / L on a quadratic of this Hessian (condition number < 25 here): 500 steps reach
    the minimizer to float32 precision, and compile far faster than L-BFGS (one program for every test below)."""
    return dict(optimizer="sgd", learning_rate=float(1 / np.linalg.eigvalsh(hessian)[-1]), num_steps=500,
                num_restarts=1, tol=None)


@pytest.mark.parametrize("name", ["csgm", "asim", "map"])
def test_latent_objectives_have_the_half_data_term(name):
    """G(z) = W z + b: csgm / asim minimise 1/2 ||A G(z) - y||^2 + lam ||z||^2, MAP (noise std 1) minimises
    1/2 ||A G(z) - y||^2 + lam ||z||^2 / 2 (its R is the N(0, I) log-density); the minimizer and Result.objective
    match the closed forms (with the data term ||.||^2 the minimizer would be the one at lam / 2)."""
    op, y, A, yv = _problem()
    M, r = A @ W, yv - A @ B
    reg = 2 * LAM if name != "map" else LAM  # the Hessian of lam R(z)
    z = np.linalg.solve(M.T @ M + reg * np.eye(N), M.T @ r)
    objective = 0.5 * np.sum((M @ z - r) ** 2) + reg / 2 * np.sum(z**2)
    kw = {"noise": 1.0, "init_std": 0.0} if name == "map" else {"init_std": 0.0}
    res = gp.reconstruct(LINEAR, jax.random.key(0), y, op, method=name, lam=LAM, **kw,
                         **_gd(M.T @ M + reg * np.eye(N))).result
    np.testing.assert_allclose(np.asarray(res.state.z, np.float64), z, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(float(res.objective), objective, rtol=1e-4)


def test_analysis_objective_has_the_half_data_term():
    """E(x) = W^-1 (x - b): x* = argmin 1/2 ||A x - y||^2 + lam ||E(x)||^2 in closed form, and Result.objective."""
    op, y, A, yv = _problem()
    V = np.linalg.inv(W)
    P = V.T @ V
    x = np.linalg.solve(A.T @ A + 2 * LAM * P, A.T @ yv + 2 * LAM * P @ B)
    objective = 0.5 * np.sum((A @ x - yv) ** 2) + LAM * np.sum((V @ (x - B)) ** 2)
    res = gp.analysis(LINEAR, jax.random.key(0), y, op, lam=LAM, **_gd(A.T @ A + 2 * LAM * P))
    np.testing.assert_allclose(np.asarray(res.x, np.float64).ravel(), x, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(float(res.objective), objective, rtol=1e-4)


@pytest.mark.parametrize("name", ["lasso-pixel", "lasso-dct"])
def test_lasso_objective_has_the_half_data_term(name):
    """A = I, orthonormal basis Psi: argmin 1/2 ||x - y||^2 + lam ||Psi x||_1 = Psi^T soft(Psi y, lam)."""
    from genprior_jax.transforms import make_basis

    shape = (4, 4, 1)
    y = jax.random.uniform(jax.random.key(3), shape)
    lam = 0.2
    analysis = make_basis(name.split("-")[1], shape).T
    c = np.asarray(analysis(y), np.float64)
    soft = np.sign(c) * np.maximum(np.abs(c) - lam, 0.0)
    x = np.asarray(make_basis(name.split("-")[1], shape)(jnp.asarray(soft, jnp.float32)), np.float64)
    res = gp.reconstruct(None, jax.random.key(0), y, Identity(shape), method=name, lam=lam, num_steps=300,
                         tol=None).result
    np.testing.assert_allclose(np.asarray(res.x), x, atol=1e-4)
    objective = 0.5 * np.sum((x - np.asarray(y)) ** 2) + lam * np.sum(np.abs(soft))
    np.testing.assert_allclose(float(res.objective), objective, rtol=1e-4)


def test_tv_objective_has_the_half_data_term():
    """A = I on two columns a < b (each row the same): argmin 1/2 ||x - y||^2 + lam TV(x) moves each column by lam
    towards the other (x = a + lam, b - lam while b - a > 2 lam)."""
    a, b, lam = 0.2, 0.8, 0.05
    y = jnp.asarray([[a, b], [a, b]], jnp.float32)[..., None]
    res = gp.reconstruct(None, jax.random.key(0), y, Identity(SHAPE), method="tv", lam=lam, num_steps=2000,
                         tol=None).result
    x = np.asarray([[a + lam, b - lam]] * 2)[..., None]
    np.testing.assert_allclose(np.asarray(res.x), x, atol=1e-3)
    objective = 0.5 * np.sum((x - np.asarray(y)) ** 2) + lam * 2 * (b - a - 2 * lam)
    np.testing.assert_allclose(float(res.objective), objective, rtol=1e-3)


def _patch_generate(params, z):
    return z.reshape(2, 2, 1)


def _patch_log_prob(params, p):
    return -0.5 * jnp.sum(p**2)  # a standard normal "flow" on 2x2 patches (constant dropped)


GAUSS_PATCHES = Prior("gauss-patches", (4,), (2, 2, 1), _patch_generate, {}, log_prob=_patch_log_prob)


def test_patchnr_objective_has_the_half_data_term():
    """A = I, a N(0, I) patch density on 2x2 patches, stride 1 on a 4x4 image (9 patches, 4 tiles):
    R(x) = 4/9 sum_n ||P_n x||^2 / 2, so argmin 1/2 ||x - y||^2 + lam R(x) = y / (1 + lam 4/9 c) with c the number of
    patches covering each pixel; Result.objective is 1/2 ||x - y||^2 + lam R(x) at the returned x."""
    shape = (4, 4, 1)
    y = jax.random.uniform(jax.random.key(4), shape)
    lam = 0.5
    cover = np.zeros(shape)
    for i in range(3):
        for j in range(3):
            cover[i:i + 2, j:j + 2] += 1
    x = np.asarray(y, np.float64) / (1 + lam * 4 / 9 * cover)
    res = gp.patchnr(GAUSS_PATCHES, jax.random.key(0), y, Identity(shape), lam=lam, stride=1, init="adjoint",
                     learning_rate=0.05, num_steps=300, tol=None)  # Adam, its step decayed to 0: settles to ~1e-7
    np.testing.assert_allclose(np.asarray(res.x), x, atol=1e-4)
    xs = np.asarray(res.state.x, np.float64)
    r = 4 / 9 * sum(0.5 * np.sum(xs[i:i + 2, j:j + 2] ** 2) for i in range(3) for j in range(3))
    np.testing.assert_allclose(float(res.objective), 0.5 * np.sum((xs - np.asarray(y)) ** 2) + lam * r, rtol=1e-5)


def _toy_init(key):
    k1, k2 = jax.random.split(key)
    return {"w1": jax.random.normal(k1, (2, 8)), "w2": jax.random.normal(k2, (8, 4)) / 2}


def _toy_generate(weights, z):
    return jax.nn.sigmoid(jnp.tanh(z @ weights["w1"]) @ weights["w2"]).reshape(SHAPE)


TOY = UntrainedGenerator("toy-2x2", (2,), SHAPE, _toy_init, _toy_generate)


DIP_RUN: dict[str, Any] = dict(generator=TOY, num_steps=1, history=True)  # one step: history[0] is at x0


def test_dip_objective_has_the_half_data_term():
    """DIP minimises 1/2 ||A G_w(z) - y||^2 + lam TV(G_w(z)) (each step records it at its iterate) and reports the
    measurement loss 1/2 ||A x - y||^2 of the returned iterate as Result.objective (it selects by fit to y)."""
    op, y, A, yv = _problem()
    lam = 0.1
    res = gp.dip(jax.random.key(0), y, op, lam=lam, **DIP_RUN)
    x = np.asarray(res.x, np.float64).ravel()
    np.testing.assert_allclose(float(res.objective), 0.5 * np.sum((A @ x - yv) ** 2), rtol=1e-5)
    x0 = res.state.best_x  # the first iterate: the best one tracked by the single step
    expected = 0.5 * np.sum((A @ np.asarray(x0, np.float64).ravel() - yv) ** 2) + lam * float(total_variation(x0))
    np.testing.assert_allclose(float(np.ravel(res.history)[0]), expected, rtol=1e-5)


# -- the renamed keywords: a DeprecationWarning naming the new one, the old objective --------------------------------

def test_asim_gamma_is_lam_times_two():
    op, y, A, _ = _problem()
    M = A @ W
    gd = _gd(M.T @ M + 2 * LAM * np.eye(N))
    new = gp.asim(LINEAR, jax.random.key(0), y, op, lam=LAM, **gd)
    with pytest.warns(DeprecationWarning, match=r"asim: 'gamma' is deprecated.*use 'lam' = 0.5 \* gamma"):
        old = gp.reconstruct(LINEAR, jax.random.key(0), y, op, method="asim", gamma=2 * LAM, **gd).result
    np.testing.assert_array_equal(np.asarray(old.x), np.asarray(new.x))
    assert not np.allclose(np.asarray(old.x), np.asarray(gp.asim(LINEAR, jax.random.key(0), y, op, lam=2 * LAM,
                                                                  **gd).x), atol=1e-4)
    with pytest.raises(ValueError, match="got both 'gamma' and 'lam'"):
        gp.asim(LINEAR, jax.random.key(0), y, op, lam=LAM, gamma=2 * LAM, **gd)


def test_dip_old_weight_names():
    op, y, _, _ = _problem()
    new = gp.dip(jax.random.key(0), y, op, lam=0.05, **DIP_RUN)
    with pytest.warns(DeprecationWarning, match=r"dip: 'lam_tv' is deprecated.*use 'lam' = 0.5 \* lam_tv"):
        old = gp.dip(jax.random.key(0), y, op, lam_tv=0.1, **DIP_RUN)
    # the weights after the step (the returned x may be the start, which no weight changes)
    for o, n in zip(jax.tree_util.tree_leaves(old.state.weights), jax.tree_util.tree_leaves(new.state.weights)):
        np.testing.assert_array_equal(np.asarray(o), np.asarray(n))
    other = gp.dip(jax.random.key(0), y, op, lam=0.1, **DIP_RUN)  # the test can tell the two weights apart
    assert not np.array_equal(np.asarray(other.state.weights["w2"]), np.asarray(new.state.weights["w2"]))
    with (pytest.warns(DeprecationWarning, match=r"'lam_lr' is deprecated.*use 'lam_weights'"),
          pytest.raises(ValueError, match=r"lam_weights = 0.5 needs a weight_prior")):
        gp.dip(jax.random.key(0), y, op, generator=TOY, lam_lr=1.0, num_steps=5)
    with pytest.raises(ValueError, match="got both 'lam_tv' and 'lam'"):
        gp.dip(jax.random.key(0), y, op, generator=TOY, lam=0.05, lam_tv=0.1, num_steps=5)
