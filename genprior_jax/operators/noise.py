"""Noise models and the forward model ``y = A.observe(A(x) + eta)``: one object samples the noise and gives the
likelihood the Bayesian methods use.

A noise model is a NamedTuple (a pytree: its parameters are traced leaves, its kind is the pytree structure) with

- ``sample(key, shape, dtype)``: a draw of the additive noise ``eta`` (what :func:`measure` adds to ``A x``);
- ``energy(op, pred, y)``: ``-log p(y | x) + const`` for one measurement, ``pred = op(x)`` (MAP, VI, Langevin);
- ``misfit(op, pred, y)``: the unweighted data term the optimization methods minimise.

The kinds:

- :class:`GaussianNoise` ``(sigma)``: ``y = A x + eta``, ``eta ~ N(0, sigma^2 I)``;
  ``energy = ||A x - y||^2 / (2 sigma^2)``.
- :class:`LogisticNoise` ``(temperature)``: the one-bit channel ``y = sign(A x + eta)`` of a
  :class:`~genprior_jax.operators.nonlinear.OneBit` operator with logistic ``eta`` of scale ``temperature``, so
  ``p(y = +1 | x) = sigmoid(A x / temperature)`` and ``energy = sum softplus(-y * A x / temperature)``.

:mod:`genprior_jax.likelihoods` keeps the old names (``Gaussian``, ``Logistic``) as aliases of these classes. A plain
number where a noise model is expected means ``GaussianNoise(number)`` (:func:`as_noise`).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, cast, runtime_checkable

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from .base import Array, Operator, _check_same_shape
from .nonlinear import OneBit
from .validation import check_key, check_number


@runtime_checkable
class NoiseModel(Protocol):
    """What :func:`measure` and the Bayesian methods need of a noise model (module docstring)."""

    def sample(self, key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array: ...

    def energy(self, op: Operator, pred: Array, y: Array) -> Array: ...

    def misfit(self, op: Operator, pred: Array, y: Array) -> Array: ...


class GaussianNoise(NamedTuple):
    """i.i.d. additive noise ``eta ~ N(0, sigma^2)`` per measurement entry; ``sigma`` may be traced.

    With :class:`GaussianCS` (entries ``N(0, 1/m)``) the csgm/GlowIP convention "noise 0.1 on ||eta||" is
    ``sigma = 0.1 / sqrt(m)``: see :func:`noise_std_for_norm`.
    """

    sigma: float | Array = 1.0

    def sample(self, key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
        """``sigma * eps``, ``eps ~ N(0, I)`` of ``shape``."""
        return jnp.asarray(self.sigma, dtype) * jax.random.normal(key, shape, dtype)

    def misfit(self, op: Operator, pred: Array, y: Array) -> Array:
        """``||pred - y||^2``."""
        _check_same_shape(pred, y, "Gaussian.misfit")
        return jnp.sum((pred - y) ** 2)

    def energy(self, op: Operator, pred: Array, y: Array) -> Array:
        """``-log p(y | x) + const = ||pred - y||^2 / (2 sigma^2)``."""
        _check_same_shape(pred, y, "Gaussian.energy")
        return jnp.sum((pred - y) ** 2) / (2 * jnp.asarray(self.sigma) ** 2)


class LogisticNoise(NamedTuple):
    """One-bit measurements ``y = sign(A x + eta)`` with logistic ``eta`` of scale ``temperature`` (traced).

    ``p(y = +1 | x) = sigmoid(A x / temperature)`` (:meth:`prob_positive`); the sign is the
    :class:`~genprior_jax.operators.nonlinear.OneBit` operator's ``observe``, so use it with a ``OneBit`` operator
    (:func:`measure` and the Bayesian methods refuse another).
    """

    temperature: float | Array = 0.1

    def sample(self, key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
        """``temperature * l``, ``l`` standard logistic of ``shape`` (added before the sign)."""
        return jnp.asarray(self.temperature, dtype) * jax.random.logistic(key, shape, dtype)

    def prob_positive(self, pred: Array) -> Array:
        """``p(y = +1 | x) = sigmoid(pred / temperature)`` per entry."""
        return jax.nn.sigmoid(pred / self.temperature)

    def misfit(self, op: Operator, pred: Array, y: Array) -> Array:
        """``sum(softplus(-y * pred / temperature))`` for ``y`` in ``{-1, +1}``."""
        _check_same_shape(pred, y, "Logistic.misfit")
        return jnp.sum(jax.nn.softplus(-y * pred / self.temperature))

    def energy(self, op: Operator, pred: Array, y: Array) -> Array:
        """The negative log-likelihood is the logistic loss itself."""
        return self.misfit(op, pred, y)


NOISE_MODELS: tuple[type, ...] = (GaussianNoise, LogisticNoise)
# the parameter that must be > 0 in a likelihood (>= 0 suffices to sample: 0 is noiseless)
_SCALE = {GaussianNoise: ("sigma", "the noise level sigma"), LogisticNoise: ("temperature", "temperature")}


def as_noise(noise: Any, who: str) -> Any:
    """``noise`` as a noise model: a plain number (or scalar array, traced or not) ``s`` is ``GaussianNoise(s)``;
    a noise model (:data:`NOISE_MODELS` or any object with ``sample`` / ``energy`` / ``misfit``) is returned as is.
    ``ValueError`` naming ``who`` otherwise."""
    if isinstance(noise, NOISE_MODELS) or (isinstance(noise, tuple) and isinstance(noise, NoiseModel)):
        return noise
    if isinstance(noise, (int, float, np.number, jax.core.Tracer)) or (
            isinstance(noise, (np.ndarray, jax.Array)) and np.ndim(noise) == 0):
        return GaussianNoise(cast(Any, noise))
    raise ValueError(f"{who}: expected a noise model (GaussianNoise(sigma), LogisticNoise(temperature)) or a noise "
                     f"std sigma, got {type(noise).__name__}")


def check_noise(noise: Any, op: Any, who: str, *, positive: bool) -> Any:
    """``noise`` as a noise model (:func:`as_noise`), its parameters checked (finite, ``> 0`` with ``positive``,
    else ``>= 0``; traced values pass) and its channel checked against ``op`` (``LogisticNoise`` needs a
    ``OneBit`` operator). ``ValueError`` naming ``who``, the parameter and the value otherwise."""
    noise = as_noise(noise, who)
    scale = _SCALE.get(type(noise))
    if scale is not None:
        check_number(getattr(noise, scale[0]), scale[1], who, positive=positive)
    if isinstance(noise, LogisticNoise) and not isinstance(op, OneBit):
        raise ValueError(f"{who}: LogisticNoise is the noise of a one-bit channel y = sign(A x + eta); expected a "
                         f"OneBit operator, got {type(op).__name__}")
    return noise


def noise_std_for_norm(norm: float, m: int) -> float:
    """Per-entry std giving an expected noise norm ``norm`` over ``m`` entries: ``norm / sqrt(m)``."""
    return float(norm) / float(m) ** 0.5


def measure(key: Array, op: Operator, x: Array, noise: Any) -> Array:
    """Noisy measurements ``y = op.observe(op(x) + eta)``, ``eta`` drawn from the noise model ``noise``.

    ``noise``: a noise model (:class:`GaussianNoise`, :class:`LogisticNoise`) or a number ``sigma`` meaning
    ``GaussianNoise(sigma)`` (``sigma >= 0``, may be traced). For most operators ``observe`` is the identity, so
    ``y = A x + eta``; for one-bit measurements it is the quantiser (the noise acts before the sign), for k-space
    operators the sampling mask (no noise on unsampled entries).

    ``x``: one image of shape ``op.in_shape`` (returns ``op.out_shape``) or a batch ``(B, *op.in_shape)`` (returns
    ``(B, *op.out_shape)``). A batch uses ``keys = jax.random.split(key, B)``, one per image, so
    ``measure(key, op, xs, noise)`` is ``jax.vmap(measure, (0, None, 0, None))(keys, op, xs, noise)`` (bit for bit),
    and ``[measure(keys[i], op, xs[i], noise) for i]`` up to float rounding of the batched ``A x``. Per-image
    operators (a batched ``op``): vmap.
    ``ValueError`` naming both shapes for any other shape of ``x``.
    """
    check_key(key, "measure")
    model = check_noise(noise, op, "measure", positive=False)
    in_shape = tuple(op.in_shape)
    shape = tuple(np.shape(x))

    def one(k: Array, xx: Array) -> Array:
        y = op.mv(xx)
        return op.observe(y + model.sample(k, y.shape, y.dtype))

    if shape == in_shape:
        return one(key, x)
    if len(shape) == len(in_shape) + 1 and shape[1:] == in_shape:
        return jax.vmap(one)(jax.random.split(key, shape[0]), jnp.asarray(x))
    raise ValueError(f"measure: expected x of shape op.in_shape {in_shape} (one image) or (B, *{in_shape}) (a batch), "
                     f"got {shape}")
