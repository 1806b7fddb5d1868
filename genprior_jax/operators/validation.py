"""Argument checks shared by the operator constructors (raise before anything is traced)."""

from __future__ import annotations

from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import numpy as np


def check_image_shape(shape: Any, who: str) -> tuple[int, int, int]:
    """Return ``shape`` as a tuple ``(H, W, C)`` of positive ints, or raise ``ValueError``."""
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise ValueError(f"{who}: expected an image shape (H, W, C), got {shape!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{who}: expected an image shape (H, W, C) of positive sizes, got {shape}")
    return shape  # type: ignore[return-value]


def check_key(key: Any, who: str) -> None:
    """Accept a typed PRNG key or a raw ``uint32[2]`` key."""
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return
    arr = np.asarray(key) if not isinstance(key, jax.core.Tracer) else key
    if arr.dtype != np.uint32 or arr.shape[-1:] != (2,):
        raise ValueError(
            f"{who}: expected a PRNG key (jax.random.key(...) or jax.random.PRNGKey(...)), "
            f"got {type(key).__name__} of dtype {getattr(arr, 'dtype', None)} and shape {np.shape(arr)}"
        )


def check_fraction(value: float, who: str, name: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{who}: expected {name} in [0, 1], got {value}")
    return value


def require_linear(op: Any, who: str) -> None:
    """Raise ``ValueError`` unless ``op`` is a :class:`~genprior_jax.operators.base.LinearOperator` (methods that
    need the adjoint ``A^T``: Lasso, TV, back-projection inits)."""
    from .base import LinearOperator

    if not isinstance(op, LinearOperator):
        raise ValueError(f"{who}: expected a linear operator (it needs the adjoint A^T), got the non-linear "
                         f"{type(op).__name__}; use a latent-space method (csgm, map, vi, langevin) instead")


def check_number(value: Any, name: str, who: str, *, positive: bool = False) -> None:
    """``ValueError`` unless a concrete ``value`` is a finite number ``>= 0`` (``> 0`` with ``positive``), naming
    the argument, the value and the valid range. Traced values pass (they are checked where they are concrete)."""
    if isinstance(value, jax.core.Tracer):
        return
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: expected {name} to be a number, got {value!r}") from None
    if arr.shape != ():
        raise ValueError(f"{who}: expected {name} to be a scalar, got shape {arr.shape}")
    ok = np.isfinite(arr) and (arr > 0 if positive else arr >= 0)
    if not ok:
        raise ValueError(f"{who}: expected {name} {'> 0' if positive else '>= 0'} and finite, got {value!r}")
