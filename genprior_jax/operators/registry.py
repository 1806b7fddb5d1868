"""Every operator by name, with a text spec parser (``"gaussian:m=100"``, ``"blur:uniform=7"``).

``OPERATORS[name](key, shape, **params)`` builds an operator; tests are parametrized over this table, so a
new operator registered here is covered by the adjoint / jit / vmap / grad / shape tests automatically.
"""

from __future__ import annotations

from typing import Any, Callable

from .base import Array, LinearOperator, Shape
from .blur import Blur, Downsample
from .masks import BoxMask, RandomMask
from .simple import GaussianCS, Identity

Factory = Callable[..., LinearOperator]


def _blur(key: Array, shape: Shape, uniform: int | None = None, gaussian: float | None = None,
          size: int | None = None, boundary: str = "zero") -> LinearOperator:
    if (uniform is None) == (gaussian is None):
        raise ValueError("blur: give exactly one of uniform=K or gaussian=SIGMA")
    if uniform is not None:
        return Blur.uniform(shape, int(uniform), boundary)
    return Blur.gaussian(shape, float(gaussian), None if size is None else int(size), boundary)  # type: ignore[arg-type]


OPERATORS: dict[str, Factory] = {
    "identity": lambda key, shape: Identity(shape),
    "gaussian": lambda key, shape, m=100: GaussianCS(key, shape, int(m)),
    "mask": lambda key, shape, missing=0.6: RandomMask(key, shape, float(missing)),
    "box": lambda key, shape, size=7: BoxMask(shape, int(size)),
    "blur": _blur,
    "sr": lambda key, shape, factor=2: Downsample(shape, int(factor)),
}

# Small default parameters for 28x28 images, one entry per registered operator (used by tests and docs).
EXAMPLES: dict[str, str] = {
    "identity": "identity",
    "gaussian": "gaussian:m=100",
    "mask": "mask:missing=0.6",
    "box": "box:size=7",
    "blur-uniform": "blur:uniform=7",
    "blur-gaussian": "blur:gaussian=1.0",
    "blur-circular": "blur:uniform=5,boundary=circular",
    "sr": "sr:factor=2",
}


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"gaussian:m=100"`` -> ``("gaussian", {"m": 100})``."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    if name not in OPERATORS:
        raise ValueError(f"unknown operator {name!r}; expected one of {sorted(OPERATORS)}")
    params: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        k, eq, v = item.partition("=")
        if not eq:
            raise ValueError(f"operator spec {spec!r}: expected key=value pairs after ':', got {item!r}")
        params[k.strip()] = _parse_value(v.strip())
    return name, params


def make_operator(spec: str, key: Array, shape: Shape) -> LinearOperator:
    """Build an operator from a text spec for images of ``shape``."""
    name, params = parse_spec(spec)
    try:
        return OPERATORS[name](key, shape, **params)
    except TypeError as err:  # unknown keyword for this operator
        raise ValueError(f"operator spec {spec!r}: {err}") from None
