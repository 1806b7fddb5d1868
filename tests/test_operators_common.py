"""Operators: every registered operator passes the jit, vmap, grad and bad-input tests; linear ones also the
adjoint tests. Tests specific to the newer operators (Fourier, Radon, structured CS, non-linear) are in
test_operators_mri_ct_nonlinear.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genprior_jax.likelihoods import misfit
from genprior_jax.operators import (
    EXAMPLES,
    OPERATORS,
    Blur,
    BoxMask,
    Downsample,
    FunctionMeasurement,
    GaussianCS,
    Identity,
    LinearOperator,
    Operator,
    RandomMask,
    check_adjoint,
    make_operator,
    measure,
    noise_std_for_norm,
    parse_spec,
)

SHAPE = (28, 28, 1)
SHAPES = [(28, 28, 1), (12, 16, 3)]


def assert_same(actual, desired):
    """Equal up to float32 rounding. The absolute tolerance scales with the largest entry: a matvec sums hundreds
    of products, so an output that cancels to ~0 carries rounding of the size of the large ones (XLA's CPU matmul
    kernels differ by CPU and by batch shape). A wrong result is off by O(its scale) and still fails."""
    desired = np.asarray(desired)
    scale = max(1.0, float(np.abs(desired).max(initial=0.0)))
    np.testing.assert_allclose(actual, desired, rtol=1e-5, atol=1e-6 * scale)


def _softsquare(x):
    """A non-linear measurement map for FunctionMeasurement: a smooth pooled non-linearity,
    (H, W, C) -> (H/2 W/2 C,)."""
    h, w, c = x.shape
    pooled = x.reshape(h // 2, 2, w // 2, 2, c).mean(axis=(1, 3))
    return jnp.tanh(2.0 * pooled).reshape(-1) + pooled.reshape(-1) ** 2


# operators that no spec string can build (they wrap a user function), covered by the same tests
UNREGISTERED = {
    "function": lambda key, shape: FunctionMeasurement(_softsquare, shape, (shape[0] * shape[1] * shape[2] // 4,)),
}


def build(name: str, key: jax.Array, shape=SHAPE) -> Operator:
    if name in UNREGISTERED:
        return UNREGISTERED[name](key, shape)
    spec = EXAMPLES[name]
    if shape != SHAPE and spec.startswith("gaussian"):
        spec = "gaussian:m=50"
    if shape != SHAPE and spec.startswith("box"):
        spec = "box:size=5"
    if shape != SHAPE and spec.startswith("keep-patch"):
        spec = "keep-patch:size=5"
    return make_operator(spec, key, shape)


ALL_NAMES = sorted(EXAMPLES) + sorted(UNREGISTERED)
NAMES = [n for n in ALL_NAMES if isinstance(build(n, jax.random.key(0)), LinearOperator)]  # linear: every test
NONLINEAR = [n for n in ALL_NAMES if n not in NAMES]


def test_split_is_not_empty():
    assert NAMES and NONLINEAR and set(NONLINEAR) >= {"phase", "onebit", "function"}


def test_registry_covers_every_operator():
    assert {parse_spec(s)[0] for s in EXAMPLES.values()} == set(OPERATORS)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_adjoint(name, shape, key):
    op = build(name, key, shape)
    for k in jax.random.split(key, 3):
        assert check_adjoint(op, k) < 1e-5
        assert check_adjoint(op.T, k) < 1e-5
    assert op.T.T is op
    assert op.T.in_shape == op.out_shape and op.T.out_shape == op.in_shape


def test_check_adjoint_detects_a_wrong_adjoint(key):
    class Wrong(GaussianCS):
        def _adjoint(self, y):
            return 1.01 * super()._adjoint(y)

    for k in jax.random.split(key, 10):  # 1 % off: far above the 1e-5 pass mark for every draw
        assert check_adjoint(Wrong(k, SHAPE, 30), k) > 1e-4


@pytest.mark.parametrize("name", ALL_NAMES)
def test_jit_equals_eager(name, key):
    op = build(name, key)
    x = jax.random.uniform(key, SHAPE)
    y = op(x)
    assert y.shape == op.out_shape and y.dtype == jnp.float32
    assert_same(jax.jit(lambda o, v: o(v))(op, x), y)
    y_obs = measure(key, op, jax.random.uniform(jax.random.key(1), SHAPE), 0.01)
    np.testing.assert_allclose(jax.jit(lambda o, a, b: misfit(o, o(a), b))(op, x, y_obs), misfit(op, y, y_obs),
                               rtol=1e-5)
    if isinstance(op, LinearOperator):
        assert_same(jax.jit(lambda o, v: o.T(v))(op, y), op.T(y))


@pytest.mark.parametrize("name", ALL_NAMES)
def test_vmap_over_images_equals_loop(name, key):
    op = build(name, key)
    xs = jax.random.uniform(key, (5, *SHAPE))
    batched = jax.vmap(op)(xs)
    looped = jnp.stack([op(x) for x in xs])
    assert_same(batched, looped)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_vmap_over_operators_equals_loop(name, key):
    keys = jax.random.split(key, 4)
    ops = jax.vmap(lambda k: build(name, k))(keys)
    xs = jax.random.uniform(key, (4, *SHAPE))
    batched = jax.vmap(lambda o, x: o(x))(ops, xs)
    looped = jnp.stack([build(name, k)(x) for k, x in zip(keys, xs)])
    assert_same(batched, looped)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_flows(name, key):
    op = build(name, key)
    x = jax.random.uniform(key, SHAPE)
    g = jax.grad(lambda v: 0.5 * jnp.sum(op(v) ** 2))(x)
    np.testing.assert_allclose(g, op.T(op(x)), rtol=1e-4, atol=1e-5)  # grad of ||Ax||^2/2 is A^T A x


@pytest.mark.parametrize("name", NONLINEAR)
def test_gradient_of_loss_matches_finite_differences(name, key):
    op = build(name, key)
    kx, kt, kd, kn = jax.random.split(key, 4)
    y = measure(kn, op, jax.random.uniform(kt, SHAPE), 0.05)
    x = jax.random.uniform(kx, SHAPE)
    loss = lambda v: misfit(op, op(v), y)  # noqa: E731
    g = jax.grad(loss)(x)
    assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.linalg.norm(g)) > 0
    d = jax.random.normal(kd, SHAPE)
    d = d / jnp.linalg.norm(d)
    eps = 1e-2  # central difference, O(eps^2) truncation; float32 round-off ~1e-7 * |loss| / eps
    fd = (loss(x + eps * d) - loss(x - eps * d)) / (2 * eps)
    np.testing.assert_allclose(float(jnp.vdot(g, d)), float(fd), rtol=2e-2, atol=1e-3 * float(jnp.linalg.norm(g)))


@pytest.mark.parametrize("name", ALL_NAMES)
def test_bad_input_raises(name, key):
    op = build(name, key)
    with pytest.raises(ValueError, match=r"expected an array of shape \(28, 28, 1\), got shape \(28, 28\)"):
        op(jnp.zeros((28, 28)))
    with pytest.raises(ValueError, match="expected a floating-point array, got dtype int32"):
        op(jnp.zeros(SHAPE, jnp.int32))
    with pytest.raises(ValueError):  # also under jit: shapes are static, so the check runs at trace time
        jax.jit(lambda v: op(v))(jnp.zeros((27, 28, 1)))
    with pytest.raises(ValueError, match="same shape"):
        misfit(op, op(jnp.zeros(SHAPE)), jnp.zeros((3,)))
    if isinstance(op, LinearOperator):
        with pytest.raises(ValueError, match=r"\.T input: expected an array of shape"):
            op.T(jnp.zeros((3,)))
    else:
        assert not hasattr(op, "T") and not hasattr(op, "rmv")  # no adjoint for a non-linear map


def test_composition(key):
    blur = Blur.uniform(SHAPE, 3)
    down = Downsample(SHAPE, 2)
    comp = down @ blur
    x = jax.random.uniform(key, SHAPE)
    np.testing.assert_allclose(comp(x), down(blur(x)), rtol=1e-6)
    assert comp.out_shape == (14, 14, 1)
    assert check_adjoint(comp, key) < 1e-5
    with pytest.raises(ValueError, match="cannot compose"):
        blur @ down


@pytest.mark.parametrize("build_op, match", [
    pytest.param(lambda key: GaussianCS(key, SHAPE, 0), "positive integer number of measurements", id="gaussian-m-0"),
    pytest.param(lambda key: GaussianCS(3, SHAPE, 10), "PRNG key", id="gaussian-int-key"),
    pytest.param(lambda key: Identity((28, 28)), "image shape", id="identity-2d-shape"),
    pytest.param(lambda key: RandomMask(key, SHAPE, 1.5), r"fraction_missing in \[0, 1\]", id="mask-fraction-1.5"),
    pytest.param(lambda key: BoxMask(SHAPE, 29), "box size", id="box-larger-than-image"),
    pytest.param(lambda key: BoxMask(SHAPE, 7, (25, 0)), "position", id="box-outside-image"),
    pytest.param(lambda key: Downsample(SHAPE, 3), "not divisible", id="downsample-not-divisible"),
    pytest.param(lambda key: Blur.uniform((4, 4, 1), 5), "larger than the image", id="blur-kernel-too-large"),
    pytest.param(lambda key: Blur.uniform(SHAPE, 3, boundary="reflect"), "boundary", id="blur-unknown-boundary"),
    pytest.param(lambda key: make_operator("wavelet:level=3", key, SHAPE), "unknown operator 'wavelet'",
                 id="spec-unknown-operator"),
    pytest.param(lambda key: make_operator("gaussian:q=3", key, SHAPE),
                 "unknown key 'q' for 'gaussian'; valid keys", id="spec-unknown-key"),
])
def test_constructor_errors(key, build_op, match):
    with pytest.raises(ValueError, match=match):
        build_op(key)


def test_gaussian_cs_scaling(key):
    op = GaussianCS(key, SHAPE, 400)
    assert op.out_shape == (400,)
    col_norms = jnp.linalg.norm(op.matrix, axis=0)
    assert abs(float(col_norms.mean()) - 1.0) < 0.02  # N(0, 1/m): unit expected column norm
    assert abs(float(op.matrix.std()) - 1 / 20) < 1e-3


def test_measure_noise_level(key):
    op = GaussianCS(key, SHAPE, 500)
    x = jnp.zeros(SHAPE)
    sigma = noise_std_for_norm(0.1, 500)
    ys = jax.vmap(measure, in_axes=(0, None, None, None))(jax.random.split(key, 200), op, x, sigma)
    norms = jnp.linalg.norm(ys, axis=1)
    assert abs(float(norms.mean()) - 0.1) < 0.005


def test_blur_preserves_constants_and_circular_is_periodic(key):
    x = jnp.full(SHAPE, 0.7)
    zero = Blur.gaussian(SHAPE, 1.0)(x)
    np.testing.assert_allclose(zero[5:-5, 5:-5], 0.7, rtol=1e-5)  # kernel sums to 1
    assert float(zero[0, 0, 0]) < 0.7  # zero boundary darkens the corner
    np.testing.assert_allclose(Blur.uniform(SHAPE, 5, "circular")(x), 0.7, rtol=1e-5)
    # circular blur commutes with a cyclic shift
    img = jax.random.uniform(key, SHAPE)
    op = Blur.gaussian(SHAPE, 1.5, boundary="circular")
    np.testing.assert_allclose(op(jnp.roll(img, 3, axis=1)), jnp.roll(op(img), 3, axis=1), atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(frac=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_random_mask_fraction(frac, seed):
    op = RandomMask(jax.random.key(seed), SHAPE, frac)
    n_missing = int(jnp.sum(op.mask == 0))
    assert n_missing == round(frac * 28 * 28)
    x = jnp.ones(SHAPE)
    assert float(jnp.sum(op(x))) == 28 * 28 - n_missing
    assert check_adjoint(op, jax.random.key(seed)) < 1e-5


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 28), w=st.integers(1, 28), data=st.data())
def test_box_mask_sizes(h, w, data):
    r = data.draw(st.integers(0, 28 - h))
    c = data.draw(st.integers(0, 28 - w))
    op = BoxMask(SHAPE, (h, w), (r, c))
    y = op(jnp.ones(SHAPE))
    assert int(jnp.sum(y == 0)) == h * w
    assert float(jnp.sum(y[r : r + h, c : c + w])) == 0.0


@settings(max_examples=15, deadline=None)
@given(k=st.integers(1, 9), circular=st.booleans(), seed=st.integers(0, 2**16))
def test_blur_kernel_sizes(k, circular, seed):
    op = Blur.uniform((16, 20, 2), k, "circular" if circular else "zero")
    assert op.out_shape == (16, 20, 2)
    assert check_adjoint(op, jax.random.key(seed)) < 1e-5
    x = jax.random.uniform(jax.random.key(seed), (16, 20, 2))
    if circular:  # a circulant convolution with a kernel summing to one preserves the image mean
        np.testing.assert_allclose(op(x).mean(), x.mean(), rtol=1e-4)


@settings(max_examples=15, deadline=None)
@given(f=st.sampled_from([1, 2, 3, 4, 6, 12]), seed=st.integers(0, 2**16))
def test_downsample_factors(f, seed):
    shape = (12, 24, 3)
    op = Downsample(shape, f)
    assert op.out_shape == (12 // f, 24 // f, 3)
    x = jax.random.uniform(jax.random.key(seed), shape)
    np.testing.assert_allclose(op(x).mean(), x.mean(), rtol=1e-5)  # block means preserve the mean
    assert check_adjoint(op, jax.random.key(seed)) < 1e-5
    np.testing.assert_allclose(op(op.T(op(x))) * f * f, op(x), rtol=1e-5)  # A A^T = I / f^2


@pytest.mark.parametrize("boundary", ["zero", "circular"])
def test_separable_blur_equals_the_convolution(boundary):
    """Rank-one kernels (uniform, Gaussian, any outer product, odd or even sizes) take the two-pass route; it
    equals lax.conv's result and its written-out adjoint equals linear_transpose's; other kernels keep lax.conv."""
    from genprior_jax.operators.blur import gaussian_kernel

    rng = np.random.default_rng(0)
    kernels = [gaussian_kernel(13, 2.0), np.ones((4, 6), np.float32) / 24,
               np.outer(rng.random(3), rng.random(4)).astype(np.float32)]
    x = jnp.asarray(rng.random((20, 17, 3)), jnp.float32)
    for k in kernels:
        op = Blur(k, (20, 17, 3), boundary)
        ref = Blur(k, (20, 17, 3), boundary)
        ref.rows = ref.cols = None  # force the lax.conv path
        assert op.rows is not None
        np.testing.assert_allclose(op.mv(x), ref.mv(x), atol=1e-5)
        np.testing.assert_allclose(op.rmv(x), ref.rmv(x), atol=1e-5)
    assert Blur(rng.random((5, 5)).astype(np.float32), (20, 17, 3), boundary).rows is None
