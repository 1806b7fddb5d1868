"""Priors as pytrees (issue 28): a ``Prior`` goes through tree_map / jit / vmap; flax.nnx and linen generators
wrapped by ``Prior.from_nnx`` / ``Prior.from_linen`` run ``gp.csgm`` and ``gp.reconstruct``; a prior rebuilt with
the same architecture and other weights solves again without any XLA compilation (counted with a
``jax.monitoring`` listener); a ``generate`` of the wrong shape is refused when
the prior is built, naming ``generate`` and both shapes."""

import contextlib
import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import genprior_jax as gp
from genprior_jax.operators import GaussianCS
from genprior_jax.priors import Prior
from genprior_jax.solvers import csgm_solver

SHAPE = (8, 8, 1)
LATENT = 4
M = 24

# jax/_src/dispatch.py (jax 0.10): tracing to a jaxpr, lowering to MLIR, and the XLA compile (also recorded when the
# executable comes from the persistent compilation cache, so a disk hit still counts as a compile here)
TRACE, LOWER, COMPILE = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                         "/jax/core/compile/backend_compile_duration")


@contextlib.contextmanager
def count_compiles():
    counts = {TRACE: 0, LOWER: 0, COMPILE: 0}

    def listener(event: str, duration_secs: float, **kwargs: str | int) -> None:
        if event in counts:
            counts[event] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counts
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


class NNXGenerator(nnx.Module):
    """One latent (LATENT,) -> one image SHAPE."""

    def __init__(self, rngs: nnx.Rngs, hidden: int = 16):
        self.hidden = nnx.Linear(LATENT, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, int(np.prod(SHAPE)), rngs=rngs)

    def __call__(self, z):
        return nnx.sigmoid(self.out(nnx.tanh(self.hidden(z)))).reshape(SHAPE)


class LinenGenerator(nn.Module):
    """A batched linen generator: (N, LATENT) -> (N, *SHAPE), wrapped with batched=True."""

    hidden: int = 16

    @nn.compact
    def __call__(self, z):
        h = nn.tanh(nn.Dense(self.hidden)(z))
        return nn.sigmoid(nn.Dense(int(np.prod(SHAPE)))(h)).reshape(-1, *SHAPE)


def nnx_prior(seed: int, hidden: int = 16) -> Prior:
    return Prior.from_nnx(NNXGenerator(nnx.Rngs(seed), hidden), latent_shape=(LATENT,), image_shape=SHAPE)


def linen_prior(seed: int, hidden: int = 16) -> Prior:
    module = LinenGenerator(hidden)
    variables = module.init(jax.random.key(seed), jnp.zeros((1, LATENT)))
    return Prior.from_linen(module, variables, latent_shape=(LATENT,), image_shape=SHAPE, batched=True)


BUILDERS = {"nnx": nnx_prior, "linen": linen_prior}


def problem(prior: Prior):
    op = GaussianCS(jax.random.key(7), SHAPE, M)
    x = prior.sample(jax.random.key(8), 2)
    return jax.vmap(op.mv)(x), op, x


# one setting for every solve here, so the tests share one compiled program per adapter
SOLVE: dict[str, Any] = dict(num_steps=30, num_restarts=2, learning_rate=0.05, tol=1e-7)


def linear_generate(params, z):
    return (params["W"] @ z).reshape(SHAPE)


def linear_prior(key) -> Prior:
    return Prior("linear", (LATENT,), SHAPE, linear_generate, {"W": jax.random.normal(key, (64, LATENT))},
                 config={"hidden": [16], "note": "tiny"})


def test_a_prior_is_a_pytree_through_tree_map_jit_and_vmap(key):
    prior = linear_prior(key)
    leaves, treedef = jax.tree_util.tree_flatten(prior)
    assert len(leaves) == 1 and leaves[0] is prior.params["W"]
    doubled = jax.tree_util.tree_map(lambda a: 2 * a, prior)
    assert isinstance(doubled, Prior) and doubled.static == prior.static
    np.testing.assert_allclose(doubled.params["W"], 2 * prior.params["W"])
    z = jnp.ones(LATENT)
    np.testing.assert_allclose(jax.jit(lambda p, z: p.generate(p.params, z))(doubled, z),
                               2 * linear_generate(prior.params, z), rtol=1e-6)
    # vmap over a stack of two priors (same static part, stacked params)
    stack = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), prior, doubled)
    images = jax.vmap(lambda p: p.generate(p.params, z))(stack)
    assert images.shape == (2, *SHAPE)
    np.testing.assert_allclose(images[1], 2 * images[0], rtol=1e-6)
    # the static part is hashable and equal for equal architectures; the config stays a readable dict
    other = linear_prior(jax.random.fold_in(key, 1))
    assert hash(other.static) == hash(prior.static) and jax.tree_util.tree_structure(other) == treedef
    assert dict(prior.config) == {"hidden": [16], "note": "tiny"} and prior.config["hidden"] == [16]
    with pytest.raises(TypeError, match="read-only"):
        prior.config["hidden"] = [8]  # type: ignore[index]
    renamed = dataclasses.replace(prior, name="other")
    assert renamed.static != prior.static  # the name is static metadata too


def test_jit_does_not_retrace_for_a_rebuilt_prior(key):
    calls = []

    @jax.jit
    def mean_image(p):
        calls.append(1)
        return p.sample(jax.random.key(0), 3).mean()

    a, b = nnx_prior(0), nnx_prior(1)
    assert a.static == b.static and hash(a.static) == hash(b.static)
    assert float(mean_image(a)) != float(mean_image(b))  # the weights are used ...
    assert len(calls) == 1  # ... and the second prior reuses the first one's trace
    mean_image(nnx_prior(0, hidden=12))
    assert len(calls) == 2  # another architecture is another program


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_adapters_run_csgm_and_reconstruct(kind):
    prior = BUILDERS[kind](0)
    y, op, x = problem(prior)
    res = gp.csgm(prior, jax.random.key(1), y, op, **SOLVE)
    assert res.x.shape == (2, *SHAPE) and bool(jnp.all(jnp.isfinite(res.x)))
    # from a random start, 30 Adam steps come closer to the truth than the prior's mean image does
    assert float(jnp.mean((res.x - x) ** 2)) < float(jnp.mean((prior.sample(jax.random.key(3), 64).mean(0) - x) ** 2))
    rec = gp.reconstruct(prior, jax.random.key(1), y, op, method="csgm", **SOLVE)
    np.testing.assert_allclose(rec.x, res.x, atol=1e-5)


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_a_rebuilt_prior_solves_without_compiling(kind):
    build = BUILDERS[kind]
    first = build(0)
    y, op, _ = problem(first)
    solve = lambda prior: gp.csgm(prior, jax.random.key(2), y, op, **SOLVE)  # noqa: E731
    jax.block_until_ready(solve(first).x)  # warm: compiles this architecture's solve (unless an earlier test did)

    again = build(1)  # the same architecture, other weights
    assert again.static == first.static and csgm_solver(again) is csgm_solver(first)
    with count_compiles() as counts:
        res = jax.block_until_ready(solve(again))
    assert counts == {TRACE: 0, LOWER: 0, COMPILE: 0}, counts
    assert not np.allclose(res.x, solve(first).x)  # the new weights were used

    with count_compiles() as counts:  # the counter does see a compilation (a fresh function)
        jax.jit(lambda a: a + 1)(jnp.ones(3))
    assert min(counts.values()) >= 1, counts


@pytest.mark.parametrize("build, match", [
    pytest.param(lambda params: Prior("linear", (LATENT,), (8, 8, 3), linear_generate, params),
                 r"generate\(params, z\) with z of shape \(4,\) must return a float array of shape \(8, 8, 3\), got "
                 r"shape \(8, 8, 1\)", id="generate-image-shape"),
    pytest.param(lambda params: Prior("linear", (5,), SHAPE, linear_generate, params),  # (64, 4) @ (5,) fails
                 r"generate\(params, z\) failed on z of shape \(5,\)", id="generate-fails-on-latent"),
    pytest.param(lambda params: Prior("linear", (LATENT,), SHAPE, linear_generate, params,
                                      encode=lambda p, x: x.reshape(-1)),
                 r"encode\(params, x\) .* must return a float array of shape \(4,\), got shape \(64,\)",
                 id="encode-latent-shape"),
    pytest.param(lambda params: Prior.from_nnx(NNXGenerator(nnx.Rngs(0)), latent_shape=(LATENT,),
                                               image_shape=(8, 8, 3)),
                 r"generate.*shape \(8, 8, 3\)", id="nnx-image-shape"),
    pytest.param(lambda params: csgm_solver(linear_generate),  # type: ignore[arg-type]  # the old first argument
                 "csgm_solver: expected a Prior", id="solver-factory-given-a-function"),
])
def test_a_wrong_generate_shape_is_refused_at_construction_naming_generate(key, build, match):
    with pytest.raises(ValueError, match=match):
        build({"W": jax.random.normal(key, (64, LATENT))})
