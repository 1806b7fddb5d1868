"""Every operator by name, with a text spec parser (``"gaussian:m=100"``, ``"blur:uniform=7"``).

``OPERATORS[name](key, shape, **params)`` builds an operator; tests are parametrized over this table, so a
new operator registered here is covered by the jit / vmap / grad / shape tests automatically (and, when it is
linear, by the adjoint tests).

Specs of the measurement families beyond the linear image-space ones:

- ``fourier:rate=0.25`` (MRI, variable-density mask), ``fourier:rate=0.25,lines=1`` (Cartesian lines);
  optional ``power=`` (density exponent) and ``center=`` (fraction of samples in the fully sampled centre).
- ``radon:angles=30`` (parallel-beam tomography over ``[0, pi)``), optional ``detectors=``.
- ``structured:m=100`` (sub-sampled randomised DCT).
- ``phase:m=200`` (``|A x|``, Gaussian ``A``) or ``phase:rate=0.5`` (Fourier magnitudes).
- ``block-pixels:p=0.5`` (each pixel zeroed with probability ``p``) and ``keep-patch:size=14`` (a random patch
  kept): AmbientGAN's random masks, a fresh one per key.
- ``onebit:m=300`` (``sign(A x)``, Gaussian ``A``), optional ``temperature=`` of the logistic loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import Array, LinearOperator, Operator, Shape
from .blur import Blur, Downsample
from .fourier import SubsampledFourier
from .masks import BlockPixels, BoxMask, KeepPatch, RandomMask
from .nonlinear import OneBit, PhaseRetrieval
from .radon import Radon
from .simple import GaussianCS, Identity
from .structured import StructuredCS

Factory = Callable[..., Operator]


def _blur(key: Array, shape: Shape, uniform: int | None = None, gaussian: float | None = None,
          size: int | None = None, boundary: str = "zero") -> LinearOperator:
    if (uniform is None) == (gaussian is None):
        raise ValueError("blur: give exactly one of uniform=K or gaussian=SIGMA")
    if uniform is not None:
        return Blur.uniform(shape, int(uniform), boundary)
    return Blur.gaussian(shape, float(gaussian), None if size is None else int(size), boundary)  # type: ignore[arg-type]


def _fourier(key: Array, shape: Shape, rate: float = 0.25, lines: int = 0, power: float = 2.0,
             center: float = 0.25) -> LinearOperator:
    if lines not in (0, 1):
        raise ValueError(f"fourier: expected lines=0 (variable density) or lines=1 (Cartesian lines), got {lines!r}")
    return SubsampledFourier.random(key, shape, float(rate), bool(lines), float(power), float(center))


def _phase(key: Array, shape: Shape, m: int | None = None, rate: float | None = None) -> Operator:
    if (m is None) == (rate is None):
        raise ValueError("phase: give exactly one of m=M (Gaussian A) or rate=R (subsampled Fourier A)")
    if m is not None:
        return PhaseRetrieval(GaussianCS(key, shape, int(m)))
    return PhaseRetrieval(SubsampledFourier.random(key, shape, float(rate)))  # type: ignore[arg-type]


OPERATORS: dict[str, Factory] = {
    "identity": lambda key, shape: Identity(shape),
    "gaussian": lambda key, shape, m=100: GaussianCS(key, shape, int(m)),
    "mask": lambda key, shape, missing=0.6: RandomMask(key, shape, float(missing)),
    "box": lambda key, shape, size=7: BoxMask(shape, int(size)),
    "block-pixels": lambda key, shape, p=0.5: BlockPixels(key, shape, float(p)),
    "keep-patch": lambda key, shape, size=14: KeepPatch(key, shape, int(size)),
    "blur": _blur,
    "sr": lambda key, shape, factor=2: Downsample(shape, int(factor)),
    "fourier": _fourier,
    "radon": lambda key, shape, angles=30, detectors=None: Radon(shape, int(angles), detectors),
    "structured": lambda key, shape, m=100: StructuredCS(key, shape, int(m)),
    "phase": _phase,
    "onebit": lambda key, shape, m=300, temperature=0.1: OneBit(GaussianCS(key, shape, int(m)), float(temperature)),
}

# Small default parameters for 28x28 images, one entry per registered operator (used by tests and docs). Variants
# (Fourier lines, Radon detector counts, Fourier phase retrieval) are tested in
# tests/test_operators_mri_ct_nonlinear.py.
EXAMPLES: dict[str, str] = {
    "identity": "identity",
    "gaussian": "gaussian:m=100",
    "mask": "mask:missing=0.6",
    "box": "box:size=7",
    "block-pixels": "block-pixels:p=0.5",
    "keep-patch": "keep-patch:size=14",
    "blur-uniform": "blur:uniform=7",
    "blur-gaussian": "blur:gaussian=1.0",
    "blur-circular": "blur:uniform=5,boundary=circular",
    "sr": "sr:factor=2",
    "fourier": "fourier:rate=0.25",
    "radon": "radon:angles=30",
    "structured": "structured:m=100",
    "phase": "phase:m=200",
    "onebit": "onebit:m=300",
}


# the keys each spec accepts and their types (int fields refuse "2.5"; bool fields take 0 / 1)
PARAMS: dict[str, dict[str, type]] = {
    "identity": {},
    "gaussian": {"m": int},
    "mask": {"missing": float},
    "box": {"size": int},
    "block-pixels": {"p": float},
    "keep-patch": {"size": int},
    "blur": {"uniform": int, "gaussian": float, "size": int, "boundary": str},
    "sr": {"factor": int},
    "fourier": {"rate": float, "lines": int, "power": float, "center": float},
    "radon": {"angles": int, "detectors": int},
    "structured": {"m": int},
    "phase": {"m": int, "rate": float},
    "onebit": {"m": int, "temperature": float},
}


def _convert(spec: str, key: str, text: str, kind: type) -> Any:
    """``text`` as ``kind``; ``ValueError`` naming the spec, the key, the value and what was expected."""
    if kind is str:
        return text
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"operator spec {spec!r}: {key} expected {'an integer' if kind is int else 'a number'}, "
                         f"got {text!r}") from None
    if kind is int:
        if not value.is_integer():
            raise ValueError(f"operator spec {spec!r}: {key} expected an integer, got {text!r}")
        return int(value)
    if not value == value or value in (float("inf"), float("-inf")):
        raise ValueError(f"operator spec {spec!r}: {key} expected a finite number, got {text!r}")
    return value


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"gaussian:m=100"`` -> ``("gaussian", {"m": 100})``; unknown or repeated keys and values of the wrong type
    are ``ValueError``s that name the spec, the key and the valid keys."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    if name not in OPERATORS:
        raise ValueError(f"unknown operator {name!r}; expected one of {sorted(OPERATORS)}")
    valid = PARAMS[name]
    params: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        k, eq, v = item.partition("=")
        k = k.strip()
        if not eq:
            raise ValueError(f"operator spec {spec!r}: expected key=value pairs after ':', got {item!r}")
        if k not in valid:
            raise ValueError(f"operator spec {spec!r}: unknown key {k!r} for {name!r}; valid keys: "
                             f"{sorted(valid) or 'none'}")
        if k in params:
            raise ValueError(f"operator spec {spec!r}: key {k!r} given twice")
        params[k] = _convert(spec, k, v.strip(), valid[k])
    return name, params


def make_operator(spec: str, key: Array, shape: Shape) -> Operator:
    """Build an operator from a text spec ``"name:key=value,..."`` (:data:`EXAMPLES`) for images of ``shape``.

    >>> import jax
    >>> op = make_operator("gaussian:m=100", jax.random.key(0), (28, 28, 1))
    >>> op.in_shape, op.out_shape
    ((28, 28, 1), (100,))
    >>> make_operator("mask:missing=0.6", jax.random.key(0), (28, 28, 1)).out_shape
    (28, 28, 1)
    >>> make_operator("warp:k=3", jax.random.key(0), (28, 28, 1))
    Traceback (most recent call last):
    ...
    ValueError: unknown operator 'warp'; ...
    """
    name, params = parse_spec(spec)
    return OPERATORS[name](key, shape, **params)
