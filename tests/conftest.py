import gc
import os
import pathlib

import jax
import pytest

# JAX's persistent compilation cache, shared by the xdist workers and kept between runs (git-ignored): a program
# compiled by one worker, or before jax.clear_caches() below, is loaded instead of compiled again. Programs that
# compile in under 0.3 s are not worth a disk entry.
_CACHE = pathlib.Path(__file__).resolve().parent.parent / ".jax_cache" / "tests"
if os.environ.get("GENPRIOR_TEST_COMPILE_CACHE", "1") != "0":
    _CACHE.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(_CACHE))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.3)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture
def key() -> jax.Array:
    return jax.random.key(0)


@pytest.fixture(autouse=True, scope="module")
def _drop_compiled_code_after_module():
    """Free each test module's compiled XLA programs when it ends: the suite compiles many hundreds of distinct
    programs, and keeping them all made one pytest process grow past 5 GB (a CI run crashed in XLA:CPU)."""
    yield
    jax.clear_caches()
    gc.collect()
