"""Measurement operators as pytrees: the general :class:`Operator` and its :class:`LinearOperator` subclass.

An operator ``A`` maps one unbatched image ``x`` of shape ``in_shape`` (``(H, W, C)``, float32) to a
prediction ``A(x)`` of shape ``out_shape``. It is a JAX pytree whose *leaves* are arrays (a sensing
matrix, a mask, a kernel) and whose *static* data are shapes and flags, so an operator can be passed
through ``jit``, ``vmap`` (a batch of operators, one per measurement, is an operator whose leaves carry a
leading axis) and ``grad``.

Interface of every :class:`Operator` (linear or not; modelled on lineax / scico / deepinv's ``Physics``):

- ``A(x)`` / ``A.mv(x)``: the noiseless, differentiable prediction, with a shape/dtype check that raises
  ``ValueError`` before any trace.
- ``A.observe(z)``: the output channel applied after the additive noise, ``y = A.observe(A(x) + eta)``
  (:func:`~genprior_jax.operators.noise.measure`); the identity by default, ``sign`` for one-bit measurements,
  the sampling mask for k-space (so that noise lands only on measured entries).
- The data term that solvers minimise is not an operator's business: it is the likelihood's
  (:mod:`genprior_jax.likelihoods`; ``||A x - y||^2`` for Gaussian noise, a logistic loss for one-bit data).
- ``A.in_shape`` / ``A.out_shape``: static shapes.

A :class:`LinearOperator` adds the adjoint and composition:

- ``A.T``: the adjoint, itself an operator (``A.T(y) = A^T y``; ``A.T.T is A``); ``A.rmv(y)``.
- ``A @ B``: composition ``x -> A(B(x))``.

Subclasses declare which attributes are array leaves (``_leaves``) and which are static (``_static``),
implement ``_apply(x)`` and, for linear operators where a closed form is cheap, ``_adjoint(y)``; otherwise the
adjoint comes from ``jax.linear_transpose``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Self

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Shape = tuple[int, ...]


def _check_input(x: Any, expected_shape: Shape, what: str) -> None:
    shape = tuple(np.shape(x))
    if shape != tuple(expected_shape):
        raise ValueError(f"{what}: expected an array of shape {tuple(expected_shape)}, got shape {shape}")
    dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{what}: expected a floating-point array, got dtype {dtype}")


def _check_same_shape(a: Any, b: Any, what: str) -> None:
    if tuple(np.shape(a)) != tuple(np.shape(b)):
        raise ValueError(f"{what}: expected the prediction and the measurement to have the same shape, "
                         f"got {tuple(np.shape(a))} and {tuple(np.shape(b))}")


class Operator:
    """Base class: a (possibly non-linear) map from ``in_shape`` to ``out_shape``, registered as a pytree."""

    _leaves: ClassVar[tuple[str, ...]] = ()
    _static: ClassVar[tuple[str, ...]] = ("in_shape", "out_shape")
    in_shape: Shape
    out_shape: Shape

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_with_keys(
            cls, cls._tree_flatten_with_keys, cls._tree_unflatten, cls._tree_flatten
        )

    # -- pytree -------------------------------------------------------------------------------
    def _tree_flatten(self) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        children = tuple(getattr(self, n) for n in self._leaves)
        aux = tuple(getattr(self, n) for n in self._static)
        return children, aux

    def _tree_flatten_with_keys(self) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        children, aux = self._tree_flatten()
        keyed = tuple((jax.tree_util.GetAttrKey(n), c) for n, c in zip(self._leaves, children))
        return keyed, aux

    @classmethod
    def _tree_unflatten(cls, aux: tuple[Any, ...], children: Iterable[Any]) -> Self:
        obj = object.__new__(cls)
        for n, v in zip(cls._leaves, children):
            object.__setattr__(obj, n, v)
        for n, v in zip(cls._static, aux):
            object.__setattr__(obj, n, v)
        return obj

    # -- maths --------------------------------------------------------------------------------
    def _apply(self, x: Array) -> Array:
        raise NotImplementedError

    def mv(self, x: Array) -> Array:
        """``A(x)`` for one image ``x`` of shape ``in_shape``; returns shape ``out_shape``."""
        _check_input(x, self.in_shape, f"{self.label} input")
        return self._apply(x)

    def __call__(self, x: Array) -> Array:
        return self.mv(x)

    def observe(self, z: Array) -> Array:
        """Output channel after the additive noise: ``y = observe(A(x) + eta)`` (shape ``out_shape``).

        The identity here; overridden by quantised measurements (one-bit: ``sign``) and by operators whose
        output has structurally-zero entries (k-space masks) so that the noise stays off them.
        """
        return z

    @property
    def label(self) -> str:
        """Name used in error messages."""
        return type(self).__name__

    @property
    def in_size(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def out_size(self) -> int:
        return int(np.prod(self.out_shape))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(in_shape={self.in_shape}, out_shape={self.out_shape})"


class LinearOperator(Operator):
    """A linear map from ``in_shape`` to ``out_shape``: an :class:`Operator` with an adjoint and composition."""

    def _adjoint(self, y: Array) -> Array:
        """Default adjoint: ``jax.linear_transpose`` of ``_apply``."""
        primal = jax.ShapeDtypeStruct(self.in_shape, y.dtype)
        (out,) = jax.linear_transpose(self._apply, primal)(y)
        return out

    def rmv(self, y: Array) -> Array:
        """``A^T y`` for one measurement ``y`` of shape ``out_shape``; returns shape ``in_shape``."""
        _check_input(y, self.out_shape, f"{self.label}.T input")
        return self._adjoint(y)

    @property
    def T(self) -> LinearOperator:
        return Adjoint(self)

    def __matmul__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return Composed(self, other)


class Adjoint(LinearOperator):
    """The adjoint ``A^T`` of an operator ``A`` (``out_shape -> in_shape``)."""

    _leaves = ("op",)
    _static = ()

    def __init__(self, op: LinearOperator):
        self.op = op

    @property
    def in_shape(self) -> Shape:  # type: ignore[override]
        return self.op.out_shape

    @property
    def out_shape(self) -> Shape:  # type: ignore[override]
        return self.op.in_shape

    def _apply(self, x: Array) -> Array:
        return self.op._adjoint(x)

    def _adjoint(self, y: Array) -> Array:
        return self.op._apply(y)

    @property
    def T(self) -> LinearOperator:
        return self.op

    @property
    def label(self) -> str:
        return f"{self.op.label}.T"


class Composed(LinearOperator):
    """``(A @ B)(x) = A(B(x))``; adjoint ``B^T A^T``."""

    _leaves = ("outer", "inner")
    _static = ()

    def __init__(self, outer: LinearOperator, inner: LinearOperator):
        if tuple(outer.in_shape) != tuple(inner.out_shape):
            raise ValueError(
                f"cannot compose {type(outer).__name__} (expects input shape {outer.in_shape}) after "
                f"{type(inner).__name__} (produces shape {inner.out_shape})"
            )
        self.outer = outer
        self.inner = inner

    @property
    def in_shape(self) -> Shape:  # type: ignore[override]
        return self.inner.in_shape

    @property
    def out_shape(self) -> Shape:  # type: ignore[override]
        return self.outer.out_shape

    def _apply(self, x: Array) -> Array:
        return self.outer._apply(self.inner._apply(x))

    def _adjoint(self, y: Array) -> Array:
        return self.inner._adjoint(self.outer._adjoint(y))

    def observe(self, z: Array) -> Array:
        return self.outer.observe(z)


def check_adjoint(op: LinearOperator, key: Array, *, num_probes: int = 4, dtype: Any = jnp.float32) -> float:
    """Dot-product test of the adjoint (as scico's ``valid_adjoint`` and deepinv's ``adjointness_test``):

    ``|<A x, y> - <x, A^T y>| / max(|<A x, y>|, |<x, A^T y>|, ||A x||, ||A^T y||)``

    for standard-normal ``x`` (``in_shape``) and ``y`` (``out_shape``), the inner products accumulated in float64
    so that only the operator's own round-off shows. ``||A x||`` is the standard deviation of ``<A x, y>`` over
    ``y`` (likewise ``||A^T y||``), so an inner product that happens to be near zero does not inflate the figure.
    A correct float32 operator gives about 1e-7; a 1 % error in the adjoint gives about 1e-2; 0 when everything
    vanishes (e.g. a mask that hides every pixel). The worst of ``num_probes`` independent pairs is returned, so
    a wrong adjoint is not missed because one draw happened to make ``<x, A^T y>`` small.

    >>> import jax
    >>> from genprior_jax.operators import Blur
    >>> check_adjoint(Blur.uniform((28, 28, 1), 7), jax.random.key(0)) < 1e-5
    True
    """
    return max(_adjoint_gap(op, k, dtype) for k in jax.random.split(key, num_probes))


def _adjoint_gap(op: LinearOperator, key: Array, dtype: Any) -> float:
    kx, ky = jax.random.split(key)
    x = jax.random.normal(kx, op.in_shape, dtype)
    y = jax.random.normal(ky, op.out_shape, dtype)
    ax = np.asarray(op.mv(x), np.float64)
    aty = np.asarray(op.rmv(y), np.float64)
    lhs = float(np.vdot(ax, np.asarray(y, np.float64)))
    rhs = float(np.vdot(np.asarray(x, np.float64), aty))
    scale = max(abs(lhs), abs(rhs), float(np.linalg.norm(ax)), float(np.linalg.norm(aty)))
    return 0.0 if scale == 0.0 else abs(lhs - rhs) / scale
