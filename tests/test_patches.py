"""Patch extraction and its adjoint, the patch-prior regularizer R(x) and its solver (patchnr)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genprior_jax as gp
from genprior_jax.operators import Blur, Identity, measure
from genprior_jax.priors import flow_prior, init_flow
from genprior_jax.solvers.patch_prior import PatchHyper, patch_nll, patch_prior_solver
from genprior_jax.solvers.runner import Problem
from genprior_jax.transforms.patches import extract_patches, num_patches, put_patches

PATCH_CONFIG = {"kind": "glow", "image_shape": (4, 4, 1), "levels": 1, "steps": 2, "hidden": 8, "scale_floor": 0.1}


def direct_patches(x, k, s, off):
    """The patches by explicit loops over the grid (module docstring of transforms.patches)."""
    n_h, n_w = (x.shape[0] - k - (s - 1)) // s + 1, (x.shape[1] - k - (s - 1)) // s + 1
    return np.stack([x[off[0] + s * a : off[0] + s * a + k, off[1] + s * b : off[1] + s * b + k]
                     for a in range(n_h) for b in range(n_w)])


def direct_adjoint(p, shape, s, off):
    out = np.zeros(shape)
    k = p.shape[1]
    n_w = (shape[1] - k - (s - 1)) // s + 1
    for n, patch in enumerate(p):
        a, b = divmod(n, n_w)
        out[off[0] + s * a : off[0] + s * a + k, off[1] + s * b : off[1] + s * b + k] += patch
    return out


@pytest.mark.parametrize("k,s,off", [(3, 1, (0, 0)), (4, 2, (1, 0)), (3, 3, (2, 1)), (5, 2, (0, 1))])
def test_patches_and_adjoint_against_loops(key, k, s, off):
    shape = (13, 11, 2)
    x = np.asarray(jax.random.normal(key, shape))
    p = np.asarray(extract_patches(jnp.asarray(x), k, s, jnp.asarray(off)))
    np.testing.assert_array_equal(p, direct_patches(x, k, s, off))
    q = np.asarray(jax.random.normal(jax.random.fold_in(key, 1), p.shape))
    back = np.asarray(put_patches(jnp.asarray(q), shape, s, jnp.asarray(off)))
    np.testing.assert_allclose(back, direct_adjoint(q, shape, s, off), rtol=1e-5, atol=1e-5)
    # dot-product test <P x, q> = <x, P^T q>
    np.testing.assert_allclose(np.vdot(p, q), np.vdot(x, back), rtol=1e-5)


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda: num_patches((6, 20, 1), 6, 2), r"expected H, W >= 7", id="num-patches-image-too-small"),
    pytest.param(lambda: extract_patches(jnp.zeros((2, 8, 8, 1)), 3), "expected one image", id="extract-batch"),
    pytest.param(lambda: put_patches(jnp.zeros((35, 3, 3, 1)), (8, 8, 1)), r"expected patches of shape \(36, 3, 3, 1\)",
                 id="put-patch-count"),
])
def test_patch_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_regularizer_gradient_against_direct(key):
    """With a Gaussian patch density, R(x) = T mean_n 1/2 ||P_n x - mu||^2 + c (T = H W / k^2 tiles), so
    grad R = T P^T (P x - mu) / N: the gradient through overlapping patches equals the explicit scatter-add."""
    shape, k, s = (10, 9, 1), 3, 2
    mu = jax.random.uniform(key, (k, k, 1))

    def log_prob(_params, patch):
        return -0.5 * jnp.sum((patch - mu) ** 2)

    x = jax.random.uniform(jax.random.fold_in(key, 1), shape)
    g = jax.grad(lambda v: patch_nll(log_prob, None, v, k, s, (1, 1)))(x)
    p = direct_patches(np.asarray(x), k, s, (1, 1))
    expect = direct_adjoint(p - np.asarray(mu), shape, s, (1, 1)) / len(p) * (10 * 9 / 9)
    np.testing.assert_allclose(np.asarray(g), expect, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def patch_prior():
    key = jax.random.key(0)
    params = init_flow(key, PATCH_CONFIG, jax.random.uniform(key, (64, 4, 4, 1)))
    return flow_prior(params, PATCH_CONFIG, "tiny-patch-flow")


def test_streamed_patch_nll_equals_all_at_once_and_bounds_memory(patch_prior, key):
    """The patch NLL streamed over chunks of patches (a scan with a rematerialized body) equals the all-at-once sum,
    value and gradient, for a chunk that does not divide the patch count; compiled, the gradient's scratch memory is
    a small fraction of the all-at-once one (it holds one chunk's activations)."""
    x = jax.random.uniform(key, (15, 13, 3))
    f = lambda v, chunk: patch_nll(patch_prior.log_prob, patch_prior.params, v, 4, 1, (0, 0), 1, chunk)  # noqa: E731
    n = 3 * 12 * 10
    assert n % 7
    v_all, g_all = jax.jit(jax.value_and_grad(lambda v: f(v, None)))(x)
    v_str, g_str = jax.jit(jax.value_and_grad(lambda v: f(v, 7)))(x)
    np.testing.assert_allclose(float(v_str), float(v_all), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g_str), np.asarray(g_all), rtol=1e-4, atol=1e-6)
    # memory with the shipped patch flow's width (64 hidden channels: activations, not the patches, dominate)
    wide = {**PATCH_CONFIG, "hidden": 64}
    params = init_flow(key, wide, jax.random.uniform(key, (8, 4, 4, 1)))
    log_prob = flow_prior(params, wide).log_prob
    big = jnp.zeros((96, 96, 1))
    temp = {c: jax.jit(jax.grad(lambda v, c=c: patch_nll(log_prob, params, v, 4, 1, (0, 0), 1, c)))
            .lower(big).compile().memory_analysis().temp_size_in_bytes for c in (None, 512)}
    assert temp[512] < 0.15 * temp[None], temp  # measured: 2.9 MB vs 38 MB


@pytest.mark.parametrize("chunk", [0, -3, 2.5, True])
def test_patch_nll_refuses_a_bad_chunk(patch_prior, chunk):
    with pytest.raises(ValueError, match=f"expected chunk to be a positive integer or None, got {chunk!r}"):
        patch_nll(patch_prior.log_prob, patch_prior.params, jnp.zeros((8, 8, 1)), 4, 1, (0, 0), 1, chunk)


@pytest.mark.parametrize("stride", [0, -1, 2.5, True, "4"])
def test_patchnr_refuses_a_bad_stride(patch_prior, key, stride):
    with pytest.raises(ValueError, match=f"patchnr: expected stride to be a positive integer, got {stride!r}"):
        gp.patchnr(patch_prior, key, jnp.zeros((8, 8, 1)), Identity((8, 8, 1)), stride=stride)


def test_patchnr_caps_the_stride_on_a_small_image(patch_prior, key):
    """The default stride (4) with 4x4 patches on a 5x6 image: capped at min(H, W) - k + 1 = 2, so every random
    grid offset holds a patch (stride 4 itself is refused by the patch grid there)."""
    with pytest.raises(ValueError, match="patch grid of stride 4"):
        num_patches((5, 6, 1), 4, 4)
    y = jnp.full((5, 6, 1), 0.5)
    res = gp.patchnr(patch_prior, key, y, Identity((5, 6, 1)), num_steps=2, tv_steps=1)
    assert res.x.shape == (5, 6, 1) and bool(jnp.all(jnp.isfinite(res.x)))


def test_regularizer_finite_far_from_data(patch_prior, key):
    """R and its gradient stay finite on images unlike any training patch (large, negative, noisy values)."""
    for scale in (1.0, 10.0, 100.0):
        x = scale * jax.random.normal(jax.random.fold_in(key, int(scale)), (12, 12, 1))
        val, g = jax.value_and_grad(lambda v: patch_nll(patch_prior.log_prob, patch_prior.params, v, 4, 2))(x)
        assert bool(jnp.isfinite(val)) and bool(jnp.all(jnp.isfinite(g)))


def test_patchnr_any_size_and_rgb(patch_prior, key):
    """patchnr through the front door: a 14x18 grey and a 12x13 RGB image (grey patch prior per channel); the
    objective decreases from the start, and a prior on 3-channel patches refuses a grey image."""
    for shape in ((14, 18, 1), (12, 13, 3)):
        x = jax.random.uniform(key, shape)
        op = Blur.gaussian(shape, 3, 1.0) if shape[-1] == 1 else Identity(shape)
        y = measure(jax.random.fold_in(key, 1), op, x, 0.05)
        res0 = gp.reconstruct(patch_prior, key, y, op, method="patchnr", num_steps=1, lam=0.01)
        res = gp.reconstruct(patch_prior, key, y, op, method="patchnr", num_steps=30, lam=0.01)
        assert res.x.shape == shape and int(res.status) == 0
        assert float(res.result.objective) < float(res0.result.objective)
    with pytest.raises(ValueError, match=r"patch prior with 3 channel"):
        rgb_cfg = {**PATCH_CONFIG, "image_shape": (4, 4, 3)}
        rgb = flow_prior(init_flow(key, rgb_cfg, jax.random.uniform(key, (8, 4, 4, 3))), rgb_cfg)
        gp.patchnr(rgb, key, jnp.zeros((12, 12, 1)), Identity((12, 12, 1)))



def test_patchnr_schedule(patch_prior, key):
    """The default cosine schedule ends with a vanishing step: the last of 20 Adam steps moves the image far less
    than the last constant step; an unknown schedule is refused by name."""
    shape = (12, 12, 1)
    x = jax.random.uniform(key, shape)
    op = Identity(shape)
    problem = Problem(measure(jax.random.fold_in(key, 1), op, x, 0.05), op)
    hyper = PatchHyper(lam=0.01)

    def last_move(schedule: str) -> float:
        solver = patch_prior_solver(patch_prior, 2, "adjoint", 1, schedule, 20)
        state = solver.init(key, problem, hyper, patch_prior.params)
        prev = state.x
        for _ in range(20):
            prev = state.x
            state, _ = solver.step(state, problem, hyper, patch_prior.params)
        return float(jnp.max(jnp.abs(state.x - prev)))

    cosine, constant = last_move("cosine"), last_move("constant")
    assert 0 < cosine < 0.05 * constant, (cosine, constant)
    with pytest.raises(ValueError, match=r"unknown schedule 'linear'"):
        gp.patchnr(patch_prior, key, problem.y, op, schedule="linear")


def test_patchnr_lbfgs_converges(patch_prior, key):
    """optimizer='lbfgs' minimizes the fixed-grid objective to a tolerance (converged, below Adam's end point on
    the same objective); an unknown optimizer is refused by name."""
    shape = (12, 12, 1)
    x = jax.random.uniform(key, shape)
    op = Blur.gaussian(shape, 3, 1.0)
    y = measure(jax.random.fold_in(key, 1), op, x, 0.05)
    res = gp.patchnr(patch_prior, key, y, op, lam=0.01, stride=2, num_steps=300, optimizer="lbfgs", tol=1e-6)
    adam = gp.patchnr(patch_prior, key, y, op, lam=0.01, stride=2, num_steps=100)
    assert bool(res.converged) and int(res.status) == 0 and int(res.steps) < 300
    assert float(res.objective) <= float(adam.objective) + 1e-6
    with pytest.raises(ValueError, match=r"unknown optimizer 'sgd'"):
        gp.patchnr(patch_prior, key, y, op, optimizer="sgd")
