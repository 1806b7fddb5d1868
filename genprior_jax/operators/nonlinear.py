"""Non-linear measurement operators: phase retrieval, one-bit compressed sensing, any JAX function.

They are :class:`~genprior_jax.operators.base.Operator` pytrees (jit / vmap / grad like the linear ones) without
an adjoint. Solvers use only the prediction ``op(x)`` and the likelihood of the operator's measurement channel
(:func:`genprior_jax.likelihoods.likelihood_for`: Gaussian, or logistic for one-bit data), and
:func:`~genprior_jax.operators.noise.measure` draws ``y = op.observe(op(x) + sigma * eps)``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.core
import jax.numpy as jnp

from .base import Array, LinearOperator, Operator, Shape
from .validation import check_image_shape


def _check_linear(inner: object, who: str) -> None:
    if not isinstance(inner, LinearOperator):
        raise ValueError(f"{who}: expected a genprior_jax LinearOperator to wrap, got {type(inner).__name__}")


def _safe_norm_last(v: Array) -> Array:
    """``sqrt(sum(v^2, axis=-1))`` with a zero (not NaN) gradient where the norm is 0."""
    sq = jnp.sum(v**2, axis=-1)
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


class PhaseRetrieval(Operator):
    """Magnitude-only measurements ``y = |A x|`` of a linear operator ``A``.

    For a real-valued ``A`` (e.g. :class:`~genprior_jax.operators.simple.GaussianCS`) this is the entrywise
    absolute value, ``out_shape = A.out_shape``. For an operator with real-stacked complex output (a trailing
    ``(real, imag)`` axis, flagged by ``A.real_stacked``, e.g.
    :class:`~genprior_jax.operators.fourier.SubsampledFourier`: Fourier phase retrieval) it is the complex modulus
    over that axis, ``out_shape = A.out_shape[:-1]``; the modulus has a zero gradient where ``A x = 0`` (e.g.
    unsampled k-space), not NaN. The loss is the default amplitude loss ``||y_hat - y||^2``; noise is additive on
    ``|A x|`` (and kept off ``A``'s structural zeros). There is a global sign ambiguity (``x`` and ``-x`` give the
    same ``y``), lifted by a prior on ``[0, 1]`` images.
    """

    _leaves = ("inner",)
    _static = ("complex_modulus",)

    def __init__(self, inner: LinearOperator):
        _check_linear(inner, "PhaseRetrieval")
        self.inner = inner
        self.complex_modulus = bool(getattr(inner, "real_stacked", False))

    @property
    def in_shape(self) -> Shape:  # type: ignore[override]
        return self.inner.in_shape

    @property
    def out_shape(self) -> Shape:  # type: ignore[override]
        return tuple(self.inner.out_shape[:-1]) if self.complex_modulus else self.inner.out_shape

    @property
    def label(self) -> str:
        return f"PhaseRetrieval({self.inner.label})"

    def _apply(self, x: Array) -> Array:
        v = self.inner._apply(x)
        return _safe_norm_last(v) if self.complex_modulus else jnp.abs(v)

    def observe(self, z: Array) -> Array:
        if self.complex_modulus:  # the inner channel (e.g. the k-space mask) applied to a real-stacked copy
            return self.inner.observe(jnp.stack([z, jnp.zeros_like(z)], axis=-1))[..., 0]
        return self.inner.observe(z)


class OneBit(Operator):
    """One-bit compressed sensing: ``y = sign(A x + eta)`` in ``{-1, +1}`` for a linear operator ``A``.

    ``op(x)`` is the real-valued pre-quantisation prediction ``A x`` (what the likelihood compares with ``y``;
    the sign itself has a zero gradient). The quantiser is :meth:`observe` (``sign``, with ``sign(0) = +1``),
    applied by :func:`~genprior_jax.operators.noise.measure` *after* the noise, so ``sigma`` is the noise on
    ``A x`` before quantisation (sign flips near the threshold). The noiseless measurement is
    ``op.observe(op(x))``.

    Its likelihood (:class:`genprior_jax.likelihoods.Logistic`) is the logistic loss
    ``sum(softplus(-y * A x / temperature))``: the negative
    log-likelihood of a logistic-noise quantiser, smooth, small when the signs agree with margin
    ``>> temperature`` (the scale is that of ``A x``: for ``N(0, 1/m)`` entries, ``|A x| ~ ||x|| / sqrt(m)``,
    about 0.5 for an MNIST digit at ``m = 300``). Large temperatures approach the linear correlation loss
    ``-<y, A x> / (2 temperature) + const`` (Plan & Vershynin); small ones a hinge-like loss. One-bit data carry
    no information on ``||x||`` beyond what the prior imposes.

    Args:
        inner: the linear operator ``A`` (real output).
        temperature: positive scalar; a leaf (traced, so changing it does not recompile).
    """

    _leaves = ("inner", "temperature")
    _static = ()

    def __init__(self, inner: LinearOperator, temperature: float | Array = 0.1):
        _check_linear(inner, "OneBit")
        if getattr(inner, "real_stacked", False):
            raise ValueError(f"OneBit: expected an operator with real output, got {inner.label} (real-stacked complex)")
        if not isinstance(temperature, jax.core.Tracer) and not float(temperature) > 0:
            raise ValueError(f"OneBit: expected a positive temperature, got {temperature!r}")
        self.inner = inner
        self.temperature = jnp.asarray(temperature, jnp.float32)

    @property
    def in_shape(self) -> Shape:  # type: ignore[override]
        return self.inner.in_shape

    @property
    def out_shape(self) -> Shape:  # type: ignore[override]
        return self.inner.out_shape

    @property
    def label(self) -> str:
        return f"OneBit({self.inner.label})"

    def _apply(self, x: Array) -> Array:
        return self.inner._apply(x)

    def observe(self, z: Array) -> Array:
        return jnp.where(z >= 0, 1.0, -1.0).astype(z.dtype)


class FunctionMeasurement(Operator):
    """Any differentiable JAX function ``f: (H, W, C) -> out_shape`` as a measurement operator.

    ``f`` is static (part of the pytree structure, compared by identity), so reuse one function object: a new
    lambda per call recompiles. It is checked once with ``jax.eval_shape`` on a float32 input. The loss is the
    default ``||f(x) - y||^2`` and noise is additive.
    """

    _static = ("in_shape", "out_shape", "fn")

    def __init__(self, fn: Callable[[Array], Array], in_shape: Shape, out_shape: Shape):
        if not callable(fn):
            raise ValueError(f"FunctionMeasurement: expected a callable, got {type(fn).__name__}")
        in_shape = check_image_shape(in_shape, "FunctionMeasurement")
        out_shape = tuple(int(s) for s in out_shape)
        out = jax.eval_shape(fn, jax.ShapeDtypeStruct(in_shape, jnp.float32))
        if not hasattr(out, "shape") or tuple(out.shape) != out_shape or not jnp.issubdtype(out.dtype, jnp.floating):
            got = (tuple(out.shape), out.dtype) if hasattr(out, "shape") else type(out).__name__
            raise ValueError(f"FunctionMeasurement: expected fn to map {in_shape} to a floating array of shape "
                             f"{out_shape}, got {got}")
        self.fn = fn
        self.in_shape = in_shape
        self.out_shape = out_shape

    @property
    def label(self) -> str:
        return f"FunctionMeasurement({getattr(self.fn, '__name__', type(self.fn).__name__)})"

    def _apply(self, x: Array) -> Array:
        return self.fn(x)

