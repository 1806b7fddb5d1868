import gc
import os
import pathlib

import jax
import jax.numpy as jnp
import pytest

from genprior_jax.priors import Prior

# JAX's persistent compilation cache, shared by the xdist workers and kept between runs (git-ignored): a program
# compiled by one worker, or before jax.clear_caches() below, is loaded instead of compiled again. Programs that
# compile in under 0.1 s are not worth a disk entry.
_CACHE = pathlib.Path(__file__).resolve().parent.parent / ".jax_cache" / "tests"
if os.environ.get("GENPRIOR_TEST_COMPILE_CACHE", "1") != "0":
    _CACHE.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(_CACHE))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# Compile fast, run slower: the suite's time is mostly XLA compilation of small programs that then run a few
# steps, so the tests ask XLA for its cheapest compile (LLVM at -O0, no expensive passes: JAX's
# ``jax_disable_most_optimizations``). Measured here: the two slowest compile-bound tests 74.5 s -> 42.2 s.
# Values may differ from optimized code in the last float32 bits (fusion changes rounding); no fast-math either
# way. GENPRIOR_TEST_OPTIMIZE=1 compiles as users do.
# The environment variable carries it to the subprocesses (CLI runs, notebook kernels, multi-device runs). Tests
# that run long loops of one program are marked ``optimized``: they compile as users do (fixture below).
_FAST_COMPILE = os.environ.get("GENPRIOR_TEST_OPTIMIZE", "0") != "1"
if _FAST_COMPILE:
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
    jax.config.update("jax_disable_most_optimizations", True)


@pytest.fixture(autouse=True)
def _optimized_compile(request: pytest.FixtureRequest):
    """Full XLA optimization for tests marked ``optimized`` (run-bound: thousands of steps of one program)."""
    if not (_FAST_COMPILE and request.node.get_closest_marker("optimized")):
        yield
        return
    jax.config.update("jax_disable_most_optimizations", False)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", True)


@pytest.fixture
def key() -> jax.Array:
    return jax.random.key(0)


_CLEAR_ABOVE_BYTES = 3 * 2**30


def _rss_bytes() -> int | None:
    """This process's resident memory (Linux ``/proc``), or None where unknown."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@pytest.fixture(autouse=True, scope="module")
def _drop_compiled_code_after_module():
    """Free the compiled XLA programs when a test module ends with this process above 3 GB resident: the suite
    compiles many hundreds of distinct programs, and keeping them all made one pytest process grow past 5 GB (a CI
    run crashed in XLA:CPU). Below that they are kept: the next modules reuse the small programs (eager
    primitives, shared priors' functions) instead of compiling them again."""
    yield
    rss = _rss_bytes()
    if rss is None or rss > _CLEAR_ABOVE_BYTES:
        jax.clear_caches()
        gc.collect()


# The tiny linear prior the solver tests share: G(z) = W z + b on 4x4x1 images, z of size 3, so MAP, posterior and
# CSGM solutions are known in closed form. One module-level generate / encode (not a fresh lambda per test): a
# solver's compiled code is keyed on the prior's functions, so tests that share them share compilations.
LINEAR_SHAPE = (4, 4, 1)
LINEAR_LATENT = 3


def linear_generate(params, z):
    return (params["W"] @ z + params["b"]).reshape(LINEAR_SHAPE)


def linear_encode(params, x):
    """The least-squares inverse of :func:`linear_generate` (an encoder for the analysis method)."""
    return jnp.linalg.pinv(params["W"]) @ (x.reshape(-1) - params["b"])


def linear_params(key, latent=LINEAR_LATENT, scale=3.0):
    kw, kb = jax.random.split(key)
    return {"W": jax.random.normal(kw, (16, latent)) / scale, "b": 0.5 + 0.1 * jax.random.normal(kb, (16,))}


def make_linear_prior(key, latent=LINEAR_LATENT, scale=3.0, generate=linear_generate, encode=None):
    return Prior("linear", (latent,), LINEAR_SHAPE, generate, linear_params(key, latent, scale), encode=encode)


@pytest.fixture(scope="module")
def linear_prior():
    """The tiny linear prior (with its least-squares encoder), built once per module."""
    return make_linear_prior(jax.random.key(0), encode=linear_encode)
