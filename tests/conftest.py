import gc

import jax
import pytest


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
