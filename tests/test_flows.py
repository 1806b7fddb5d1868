"""Flows: invertibility, log-determinants against jax.jacobian + slogdet, ActNorm init, normalisation."""

import math
import os
import zlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genprior_jax.priors import (
    ActNorm,
    AffineCoupling,
    InvConv1x1,
    Reverse,
    SplitPrior,
    flow_functions,
    flow_prior,
    init_flow,
)
from genprior_jax.priors.flow import CONFIGS, check_config
from genprior_jax.transforms import squeeze, unsqueeze

SMALL = {"image_shape": (4, 4, 1), "levels": 2, "steps": 2, "hidden": 8}


def perturb(params, key, scale=0.1):
    """Random change of every trainable leaf (InvConv1x1's fixed permutation and signs are left alone)."""
    def f(path, leaf):
        if any(getattr(p, "key", None) in ("P", "sign") for p in path):
            return leaf
        # zlib.crc32, not hash(): str hashes are salted per process (PYTHONHASHSEED), which made the perturbation -
        # and a test's verdict - change from run to run
        k = jax.random.fold_in(key, zlib.crc32(jax.tree_util.keystr(path).encode()) % 2**31)
        return leaf + scale * jax.random.normal(k, leaf.shape)

    return jax.tree_util.tree_map_with_path(f, params)


LAYERS = {"actnorm": ActNorm, "invconv": InvConv1x1, "coupling": lambda: AffineCoupling(hidden=8),
          "coupling-floor": lambda: AffineCoupling(hidden=8, scale_floor=0.3), "reverse": Reverse}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_inverse_and_log_det(name, key):
    layer = LAYERS[name]()
    x = jax.random.normal(key, (1, 2, 2, 4))
    params = perturb(layer.init(key, x), jax.random.fold_in(key, 1))
    y, ld = layer.apply(params, x)
    x_back, ld_inv = layer.apply(params, y, reverse=True)
    np.testing.assert_allclose(x_back, x, atol=1e-4)
    np.testing.assert_allclose(ld_inv, -ld, rtol=1e-5, atol=1e-5)
    jac = jax.jacobian(lambda v: layer.apply(params, v.reshape(x.shape))[0].reshape(-1))(x.reshape(-1))
    sign, logabs = jnp.linalg.slogdet(jac)
    assert float(sign) != 0
    np.testing.assert_allclose(float(ld[0]), float(logabs), atol=1e-3)


def test_coupling_scale_floor_bounds_the_inverse(key):
    """With a floor the coupling's scale stays in (floor, 1) even for extreme conditioner outputs, so the
    generative direction divides by at most 1 / floor: finite where the unbounded Glow scale underflows to 0."""
    x = jax.random.normal(key, (1, 2, 2, 4))
    for floor in (0.0, 0.25):
        layer = AffineCoupling(hidden=8, scale_floor=floor)
        params = perturb(layer.init(key, x), jax.random.fold_in(key, 1), scale=30.0)   # huge conditioner outputs
        y = 1e3 * jax.random.normal(jax.random.fold_in(key, 2), x.shape)
        x_back, ld = layer.apply(params, y, reverse=True)
        per_entry = ld[0] / (x.size // 2)      # mean -log(scale) over the transformed half
        if floor:
            assert bool(jnp.all(jnp.isfinite(x_back)))
            assert float(ld[0]) <= (x.size // 2) * math.log(1 / floor) + 1e-3
        else:
            assert float(per_entry) > math.log(1 / 0.25)   # the unbounded scale goes far below the floor


@pytest.mark.parametrize("floor", [0.0, 0.2])
def test_split_prior_inverse_log_det_and_bound(floor, key):
    """Glow's learned split prior as a bijection z_b -> eps given z_a: inverse, log-det against the Jacobian of the
    map z_b -> eps, and with a floor sigma stays in (floor, 1 / floor) however large the conv's outputs."""
    layer = SplitPrior(floor)
    za, zb = jax.random.normal(key, (1, 2, 2, 3)), jax.random.normal(jax.random.fold_in(key, 1), (1, 2, 2, 2))
    params = perturb(layer.init(key, za, zb), jax.random.fold_in(key, 2))
    eps, ld = layer.apply(params, za, zb)
    zb_back, ld_inv = layer.apply(params, za, eps, reverse=True)
    np.testing.assert_allclose(zb_back, zb, atol=1e-5)
    np.testing.assert_allclose(ld_inv, -ld, rtol=1e-5)
    jac = jax.jacobian(lambda v: layer.apply(params, za, v.reshape(zb.shape))[0].reshape(-1))(zb.reshape(-1))
    np.testing.assert_allclose(float(ld[0]), float(jnp.linalg.slogdet(jac)[1]), atol=1e-4)
    assert float(jnp.max(jnp.abs(eps - zb))) > 1e-3            # not the identity after the perturbation
    huge = perturb(params, jax.random.fold_in(key, 3), scale=1e3)
    _, ld_huge = layer.apply(huge, za, zb, reverse=True)        # ld = sum log sigma over the 8 entries
    if floor:
        assert abs(float(ld_huge[0])) <= 8 * math.log(1 / floor) + 1e-3
    else:
        assert abs(float(ld_huge[0])) > 8 * math.log(1 / 0.2)


def test_logit_flow_is_a_bijection_of_the_real_line(key):
    """The logit pre-processing continues linearly outside the pixel range: E and G are finite and inverse to each
    other for images outside [0, 1] (where a plain logit is NaN) and for far latents, and the log-det matches the
    Jacobian there too."""
    config = {"kind": "glow", **SMALL, "split_prior": True, "logit_alpha": 0.05, "scale_floor": 0.1}
    params = init_flow(key, config, jax.random.uniform(key, (16, 4, 4, 1)))
    prior = flow_prior(perturb(params, jax.random.fold_in(key, 1), 0.05), config)
    f = flow_functions(config)
    x = jnp.linspace(-0.3, 1.3, 16).reshape(4, 4, 1)             # 6 of 16 pixels outside [0, 1]
    z, ld = f["inverse_and_log_det"](prior.params, x)
    assert bool(jnp.all(jnp.isfinite(z))) and math.isfinite(float(ld))
    np.testing.assert_allclose(prior.generate(prior.params, z), x, atol=1e-4)
    jac = jax.jacobian(lambda v: prior.encode(prior.params, v.reshape(4, 4, 1)))(x.reshape(-1))
    np.testing.assert_allclose(float(ld), float(jnp.linalg.slogdet(jac)[1]), rtol=1e-4)
    far = 100.0 * jax.random.normal(key, (8, 16))
    assert bool(jnp.all(jnp.isfinite(jax.vmap(prior.generate, (None, 0))(prior.params, far))))
    # and on an image inside the pixel range (the logit branch) the log-det matches the Jacobian as well
    x_in = jax.random.uniform(key, (4, 4, 1))
    jac_in = jax.jacobian(lambda v: prior.encode(prior.params, v.reshape(4, 4, 1)))(x_in.reshape(-1))
    np.testing.assert_allclose(float(f["inverse_and_log_det"](prior.params, x_in)[1]),
                               float(jnp.linalg.slogdet(jac_in)[1]), rtol=1e-4)


def test_scale_floor_config(key):
    config = {"kind": "glow", **SMALL}
    assert check_config(config)["scale_floor"] == 0.0          # checkpoints saved before the key existed
    assert CONFIGS["glow-mnist"]["scale_floor"] > 0
    # the split prior and the logit pre-processing default to off (checkpoints saved before the keys existed)
    assert check_config(config)["split_prior"] is False and check_config(config)["logit_alpha"] == 0.0
    assert CONFIGS["glow-mnist"]["split_prior"] and CONFIGS["glow-mnist"]["logit_alpha"] > 0


@pytest.mark.parametrize("update, match", [
    pytest.param({"scale_floor": 1.0}, r"scale_floor in \[0, 1\), got 1.0", id="scale-floor-1"),
    pytest.param({"logit_alpha": 0.5}, r"logit_alpha in \[0, 0.5\), got 0.5", id="logit-alpha-0.5"),
    pytest.param({"split_prior": "yes"}, "split_prior True or False, got 'yes'", id="split-prior-not-bool"),
])
def test_bad_config_value(update, match):
    with pytest.raises(ValueError, match=match):
        check_config({"kind": "glow", **SMALL, **update})


def test_actnorm_data_dependent_init(key):
    x = 3.0 + 2.5 * jax.random.normal(key, (64, 5, 5, 3))
    layer = ActNorm()
    y, _ = layer.apply(layer.init(key, x), x)
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1.0, atol=1e-4)


def test_squeeze_round_trip(key):
    x = jax.random.normal(key, (2, 6, 4, 3))
    s = squeeze(x)
    assert s.shape == (2, 3, 2, 12)
    np.testing.assert_array_equal(unsqueeze(s), x)
    with pytest.raises(ValueError, match="even height and width"):
        squeeze(jnp.zeros((1, 5, 4, 1)))


VARIANTS = {"glow": {"kind": "glow"}, "realnvp": {"kind": "realnvp"},
            "glow-split-logit": {"kind": "glow", "split_prior": True, "logit_alpha": 0.01, "scale_floor": 0.1}}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_whole_flow_inverse_and_log_det(variant, key):
    config = {**VARIANTS[variant], **SMALL}
    x = jax.random.uniform(key, (16, 4, 4, 1))
    params = perturb(init_flow(key, config, x), jax.random.fold_in(key, 2), 0.05)
    f = flow_functions(config)
    z, ld_enc = f["inverse_and_log_det"](params, x[0])
    x_back, ld_gen = f["forward_and_log_det"](params, z)
    np.testing.assert_allclose(x_back, x[0], atol=1e-4)
    np.testing.assert_allclose(ld_gen, -ld_enc, rtol=1e-4, atol=1e-4)
    jac = jax.jacobian(lambda v: f["generate"](params, v).reshape(-1))(z)
    _, logabs = jnp.linalg.slogdet(jac)
    np.testing.assert_allclose(float(ld_gen), float(logabs), atol=1e-3)
    lp = f["log_prob"](params, x[0])
    np.testing.assert_allclose(lp, -0.5 * jnp.sum(z**2) - 8 * jnp.log(2 * jnp.pi) + ld_enc, rtol=1e-5)


@pytest.mark.parametrize("kind", ["glow", "realnvp"])
def test_jit_and_vmap_equivalence(kind, key):
    config = {"kind": kind, **SMALL}
    x = jax.random.uniform(key, (6, 4, 4, 1))
    prior = flow_prior(init_flow(key, config, x), config)
    z = jax.random.normal(key, (6, 16))
    batched = jax.vmap(prior.generate, (None, 0))(prior.params, z)
    looped = jnp.stack([prior.generate(prior.params, zz) for zz in z])
    np.testing.assert_allclose(batched, looped, atol=1e-5)
    np.testing.assert_allclose(jax.jit(prior.encode)(prior.params, x[0]), prior.encode(prior.params, x[0]), atol=1e-5)
    np.testing.assert_allclose(jax.vmap(prior.log_prob, (None, 0))(prior.params, x),
                               [prior.log_prob(prior.params, xx) for xx in x], rtol=1e-5)


class Toy2D(nn.Module):
    """A 2-D flow built from the image layers on a (1, 1, 2) 'image'."""

    @nn.compact
    def __call__(self, x, reverse=False):
        layers = [ActNorm(), InvConv1x1(), AffineCoupling(hidden=16), InvConv1x1(), AffineCoupling(hidden=16)]
        ld = 0.0
        for layer in (reversed(layers) if reverse else layers):
            x, d = layer(x, reverse=reverse)
            ld = ld + d
        return x, ld


def test_log_prob_integrates_to_one_on_a_2d_toy_flow(key):
    flow = Toy2D()
    x0 = 0.5 + 0.8 * jax.random.normal(key, (256, 1, 1, 2))
    params = perturb(flow.init(key, x0), jax.random.fold_in(key, 3), 0.3)
    # the quadrature box must hold the flow's mass: check it on draws from the flow itself
    draws, _ = flow.apply(params, jax.random.normal(jax.random.fold_in(key, 4), (20000, 1, 1, 2)), reverse=True)
    assert float(jnp.mean(jnp.max(jnp.abs(draws), axis=(1, 2, 3)) > 10.0)) < 1e-3
    grid = jnp.linspace(-10, 10, 801)
    xx, yy = jnp.meshgrid(grid, grid)
    pts = jnp.stack([xx.ravel(), yy.ravel()], -1).reshape(-1, 1, 1, 2)
    z, ld = flow.apply(params, pts)
    log_p = -0.5 * jnp.sum(z.reshape(-1, 2) ** 2, -1) - jnp.log(2 * jnp.pi) + ld
    mass = float(jnp.sum(jnp.exp(log_p)) * (grid[1] - grid[0]) ** 2)
    assert abs(mass - 1.0) < 1e-2, mass
    # and the transformation is not the identity: the density is not the standard normal
    assert float(jnp.max(jnp.abs(z.reshape(-1, 2) - pts.reshape(-1, 2)))) > 0.1


@pytest.fixture(scope="module")
def small_glow():
    key, config = jax.random.key(0), {"kind": "glow", **SMALL}
    return flow_prior(init_flow(key, config, jax.random.uniform(key, (4, 4, 4, 1))), config)


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda prior, key: prior.encode(prior.params, jnp.zeros((4, 4, 3))),
                 r"expected an image of shape \(4, 4, 1\), got \(4, 4, 3\)", id="encode-image-shape"),
    pytest.param(lambda prior, key: prior.encode(prior.params, jnp.zeros((4, 4, 1)).at[0, 0, 0].set(jnp.nan)),
                 "expected a finite image, got 1 non-finite", id="encode-nan-image"),
    pytest.param(lambda prior, key: prior.generate(prior.params, jnp.zeros(15)), r"latent of shape \(16,\)",
                 id="generate-latent-size"),
    pytest.param(lambda prior, key: check_config({"kind": "glow", **SMALL, "levels": 3, "image_shape": (28, 28, 1)}),
                 "cannot be squeezed 3 times", id="config-too-many-levels"),
    pytest.param(lambda prior, key: check_config({"kind": "maf", **SMALL}), "expected kind in",
                 id="config-unknown-kind"),
    pytest.param(lambda prior, key: init_flow(key, {"kind": "glow", **SMALL}, jnp.zeros((2, 28, 28, 1))),
                 "expected a batch of images", id="init-image-shape"),
])
def test_bad_input(small_glow, key, call, match):
    with pytest.raises(ValueError, match=match):
        call(small_glow, key)


def test_mnist_configs_build(key):
    """Both MNIST configs build (parameter shapes traced, not compiled: a full-size init compiles for ~8 s); the
    shipped glow-mnist inverts a digit (the flows of the other tests share the code at smaller sizes)."""
    from genprior_jax import load_prior

    x = jax.random.uniform(key, (8, 28, 28, 1))
    for name in ("glow-mnist", "realnvp-mnist"):
        shapes = jax.eval_shape(lambda k, xx, c=CONFIGS[name]: init_flow(k, c, xx), key, x)
        assert sum(math.prod(p.shape) for p in jax.tree_util.tree_leaves(shapes)) > 100_000
        assert flow_prior(shapes, CONFIGS[name]).latent_shape == (784,)
    prior = load_prior("glow-mnist")
    z = prior.encode(prior.params, x[0])
    np.testing.assert_allclose(prior.generate(prior.params, z), x[0], atol=1e-4)


@pytest.mark.slow
def test_celeba64_glow_builds_and_inverts(key):
    """The CelebA-64 Glow of the papers (K = 32, L = 4, 512 hidden) builds (its parameter shapes, traced without
    computing), and the same architecture at K = 2 steps per level and 32 hidden channels inverts a 64x64x3 image:
    the step count only repeats the same flow step and the width only sizes its coupling network, while compiling
    and running 128 steps of 512 channels here cost ~2 minutes of the suite's budget."""
    config = CONFIGS["glow-celeba64"]
    x = jax.random.uniform(key, (2, 64, 64, 3))
    shapes = jax.eval_shape(lambda k, x: init_flow(k, config, x), key, x)
    n = sum(math.prod(p.shape) for p in jax.tree_util.tree_leaves(shapes))
    assert n > 10_000_000
    small = {**config, "steps": 2, "hidden": 32}
    params = init_flow(key, small, x)
    f = flow_functions(small)
    z, ld = jax.jit(f["inverse_and_log_det"])(params, x[0])
    assert z.shape == (64 * 64 * 3,) and math.isfinite(float(ld))
    x_back, _ = jax.jit(f["forward_and_log_det"])(params, z)
    np.testing.assert_allclose(x_back, x[0], atol=1e-3)


def test_shipped_glow_finite_around_natural_image_latents(key):
    """The shipped glow-mnist (coupling scale floored) keeps G finite on a ball around the latents of natural
    images: the unbounded Glow gave NaN at 0.01 noise on such latents and at ||z|| ~ 40."""
    from skimage import data, transform

    from genprior_jax import load_prior

    prior = load_prior("glow-mnist")
    assert prior.config["scale_floor"] > 0
    imgs = [transform.resize(getattr(data, n)().astype(np.float64) / 255.0, (28, 28), anti_aliasing=True)
            for n in ("camera", "moon", "coins")]
    x = jnp.asarray(np.clip(np.stack(imgs), 0, 1)[..., None], jnp.float32)
    gen = jax.jit(jax.vmap(prior.generate, (None, 0)))
    z = jax.vmap(prior.encode, (None, 0))(prior.params, x)
    np.testing.assert_allclose(gen(prior.params, z), x, atol=0.02)  # G(E(x)) = x off the data too
    for std in (0.01, 0.1, 1.0):
        noise = std * jax.random.normal(jax.random.fold_in(key, int(100 * std)), (8, *z.shape))
        out = jax.vmap(lambda n: gen(prior.params, z + n))(noise)
        assert bool(jnp.all(jnp.isfinite(out))), f"G not finite at noise std {std}"
    far = 40.0 * jax.random.normal(key, (8, z.shape[1])) / np.sqrt(z.shape[1])
    assert bool(jnp.all(jnp.isfinite(gen(prior.params, far))))


def test_shipped_glow_bits_per_dim(key):
    """The shipped glow-mnist reaches <= 1.5 bits/dim on the 500 held-out test digits (uniform dequantization, one
    fixed draw), and its checkpoint records the figure it was shipped with."""
    from genprior_jax import load_prior
    from genprior_jax.checkpoint import load_checkpoint
    from genprior_jax.data import load_mnist
    from genprior_jax.priors.registry import CHECKPOINT_DIR
    from genprior_jax.training.flow import evaluate_bpd

    prior = load_prior("glow-mnist")
    test = load_mnist("test").images
    bpd = evaluate_bpd(prior.params, prior.config, test, jax.random.key(0))
    assert bpd <= 1.5, bpd
    recorded = load_checkpoint(os.path.join(CHECKPOINT_DIR, "glow-mnist"))[1]["metadata"]["metrics"]["test_bpd"]
    assert abs(bpd - recorded) < 0.02, (bpd, recorded)


@pytest.mark.parametrize("kind,extra", [("glow", {"split_prior": True, "logit_alpha": 0.05, "scale_floor": 0.1}),
                                        ("realnvp", {})])
def test_scanned_flow_equals_the_unrolled_module(kind, extra, key):
    """The solvers' and training's flow (each level's steps stacked and scanned) is the module's flow, to round-off:
    same params, same latents, same log-determinants, both directions."""
    from genprior_jax.priors import MultiScaleFlow
    from genprior_jax.priors.flow import _config_key
    from genprior_jax.priors.flow_apply import flow_forward, flow_inverse

    config = check_config({**SMALL, "kind": kind, "steps": 3, **extra})
    x = jax.random.uniform(key, (3, 4, 4, 1))
    params = perturb(init_flow(key, config, x), jax.random.fold_in(key, 2))
    module = MultiScaleFlow(*_config_key(config))

    @jax.jit
    def both(params, x):
        z_ref, ld_ref = module.apply({"params": params}, x - 0.5, method=MultiScaleFlow.forward)
        x_ref, ldg_ref = module.apply({"params": params}, z_ref, method=MultiScaleFlow.inverse)
        return (z_ref, ld_ref, x_ref, ldg_ref), (*flow_forward(config, params, x - 0.5),
                                                  *flow_inverse(config, params, z_ref)), \
            flow_forward(config, params, x - 0.5, unroll=True), \
            (*flow_forward(config, params, x - 0.5, dense=True), *flow_inverse(config, params, z_ref, dense=True))

    (z_ref, ld_ref, x_ref, ldg_ref), (z, ld, x_back, ldg), (z_u, ld_u), dense = both(params, x)
    for got, want in zip(dense, (z_ref, ld_ref, x_ref, ldg_ref), strict=True):  # couplings as dense matrices
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(z_u, z_ref, rtol=1e-5, atol=1e-5)  # training's unrolled layout
    np.testing.assert_allclose(ld_u, ld_ref, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(z, z_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ld, ld_ref, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(x_back, x_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ldg, ldg_ref, rtol=1e-5, atol=1e-4)
    assert float(jnp.max(jnp.abs(ld))) > 1e-2  # perturbed params: the log-det is not trivially zero


@pytest.mark.parametrize("hw,kernel", [((3, 3), (3, 3)), ((2, 3), (3, 3)), ((4, 4), (3, 3)), ((3, 3), (5, 1)),
                                       ((3, 3), (1, 1))])
def test_conv_matrix_is_the_same_convolution(hw, kernel, key):
    """``conv_matrix`` (a patch flow's couplings on CPU) is flax's stride-1 SAME convolution as a matrix."""
    import flax.linen as nn

    from genprior_jax.priors.small_conv import conv_matrix

    x = jax.random.normal(key, (2, *hw, 3))
    conv = nn.Conv(5, kernel, padding="SAME", use_bias=False)
    params = conv.init(key, x)
    want = conv.apply(params, x)
    got = (x.reshape(2, -1) @ conv_matrix(params["params"]["kernel"], *hw)).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_conv_matrix_refuses_an_even_kernel():
    from genprior_jax.priors.small_conv import conv_matrix

    with pytest.raises(ValueError, match="odd kernel size, got \\(2, 3\\)"):
        conv_matrix(jnp.zeros((2, 3, 1, 1)), 3, 3)
