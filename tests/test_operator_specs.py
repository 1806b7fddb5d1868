"""Operator spec strings: typed values, unknown and repeated keys refused with the valid keys named."""

import jax
import pytest

from genprior_jax.operators import EXAMPLES, make_operator, parse_spec
from genprior_jax.operators.registry import OPERATORS, PARAMS

SHAPE = (28, 28, 1)


def test_every_operator_declares_its_keys_and_every_example_parses():
    assert set(PARAMS) == set(OPERATORS)
    for spec in EXAMPLES.values():
        name, params = parse_spec(spec)
        assert set(params) <= set(PARAMS[name])
        make_operator(spec, jax.random.key(0), SHAPE)
    assert parse_spec("gaussian:m=100") == ("gaussian", {"m": 100})
    assert parse_spec("gaussian:m=1e2") == ("gaussian", {"m": 100})  # an integral value in any notation
    assert parse_spec("blur:gaussian=1.5,boundary=circular") == ("blur", {"gaussian": 1.5, "boundary": "circular"})


@pytest.mark.parametrize("spec,message", [
    ("gaussian:m=2.5", "m expected an integer, got '2.5'"),
    ("sr:factor=2.9", "factor expected an integer, got '2.9'"),
    ("radon:angles=2.5", "angles expected an integer, got '2.5'"),
    ("gaussian:m=abc", "m expected an integer, got 'abc'"),
    ("mask:missing=lots", "missing expected a number, got 'lots'"),
    ("mask:missing=nan", "missing expected a finite number, got 'nan'"),
    ("gaussian:m=3,m=4", "key 'm' given twice"),
    ("gaussian:k=3", r"unknown key 'k' for 'gaussian'; valid keys: \['m'\]"),
    ("identity:m=3", "unknown key 'm' for 'identity'; valid keys: none"),
    ("gaussian:m", "expected key=value pairs"),
    ("warp:k=3", "unknown operator 'warp'"),
])
def test_bad_specs_name_the_key_and_the_value(spec, message):
    with pytest.raises(ValueError, match=message) as err:
        make_operator(spec, jax.random.key(0), SHAPE)
    assert spec in str(err.value) or spec.startswith("warp")
