"""The examples in the public docstrings run and print what they say (doctest)."""

import doctest
import importlib

import pytest

MODULES = ["genprior_jax.operators.registry", "genprior_jax.operators.base", "genprior_jax.metrics",
           "genprior_jax.transforms.wavelet", "genprior_jax.solvers.csgm", "genprior_jax.priors.untrained"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
