"""Random measurement models: a fresh operator and fresh noise per image, as AmbientGAN trains through.

A :class:`MeasurementModel` is a distribution over measurement processes ``f_theta``: ``theta`` (the mask, the
patch position, the projection matrix) and the noise are drawn from one PRNG key per image, so
``jax.vmap(model.measure)(keys, x)`` measures a batch with independent draws. Its output is what an AmbientGAN
discriminator sees (:attr:`MeasurementModel.out_shape`, always ``(H, W, c)`` so one convolutional discriminator
fits every model):

- image-space operators (``block-pixels``, ``keep-patch``, ``blur``, ``mask``, ``box``, ``identity``): the
  noisy measurement ``A_theta x + sigma eps`` itself, of the image's shape;
- ``gaussian:m=M`` (random Gaussian projections): the measurement is the pair ``(A_theta, y)``, as in the paper
  (the projection vectors are part of the measurement; ``y`` alone only tells ``||x||``), laid out as
  ``M C + M`` channels: the rows of ``A_theta`` reshaped to images (scaled by ``sqrt(M)`` to unit variance)
  followed by each ``y_i`` broadcast to a constant channel.

With ``theta=1`` (:attr:`MeasurementModel.with_theta`; the paper's "with theta" variant, its
Pad-Rotate-Project-theta) an image-space measurement also shows the draw ``theta`` itself: ``c`` more channels
holding ``A_theta 1`` (the operator applied to a white image: the mask for ``block-pixels`` / ``keep-patch`` /
``mask``). A zero in the measurement is then either a dropped pixel or a dark one, and the discriminator is told
which - on MNIST, whose background is 0, the two look alike. The data still carry only what was measured: ``theta``
is known to whoever measured (the same assumption as the classical inverse of baseline (ii)).

Specs are the operator specs of :func:`~genprior_jax.operators.make_operator` plus the optional keys
``noise=SIGMA`` and ``theta=0|1``: ``"block-pixels:p=0.5"``, ``"block-pixels:p=0.5,theta=1"``,
``"blur:gaussian=1.0,noise=0.1"`` (AmbientGAN's convolve + noise), ``"keep-patch:size=14"``, ``"gaussian:m=4"``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from .base import Array, Operator
from .noise import measure as _measure
from .registry import make_operator, parse_spec
from .simple import GaussianCS
from .validation import check_image_shape, check_key

# operators whose output keeps the image's shape (the discriminator sees the measurement as an image)
IMAGE_SPACE = ("identity", "mask", "box", "blur", "block-pixels", "keep-patch")
PROJECTIONS = ("gaussian",)


@dataclasses.dataclass(frozen=True)
class MeasurementModel:
    """A random measurement process for images of ``image_shape`` (hashable: a static argument of jitted code).

    Attributes:
        spec: the operator spec without the noise key, e.g. ``"block-pixels:p=0.5"``.
        image_shape: ``(H, W, C)``.
        noise: std ``sigma >= 0`` of the additive Gaussian noise on each measured entry.
        with_theta: image-space models only: append ``A_theta 1`` (``c`` channels) to the measurement.
    """

    spec: str
    image_shape: tuple[int, int, int]
    noise: float = 0.0
    with_theta: bool = False

    def __post_init__(self) -> None:
        if self.with_theta and self.name in PROJECTIONS:
            raise ValueError(f"MeasurementModel: theta=1 is for image-space measurements {list(IMAGE_SPACE)}; "
                             f"{self.spec!r} already shows its projections")

    @property
    def full_spec(self) -> str:
        """The spec :func:`parse_measurement` reads back into this model (noise and theta keys included)."""
        extra = ([f"noise={self.noise:g}"] if self.noise else []) + (["theta=1"] if self.with_theta else [])
        return self.spec + ("," if ":" in self.spec else ":") + ",".join(extra) if extra else self.spec

    @property
    def name(self) -> str:
        return self.spec.partition(":")[0]

    def draw(self, key: Array) -> Operator:
        """The operator ``A_theta`` of one draw (for ``gaussian``, a :class:`GaussianCS`)."""
        return make_operator(self.spec, key, self.image_shape)

    def operator(self, key: Array) -> Operator:
        """The operator that :meth:`measure` draws from ``key`` (the first of its two sub-keys; the second draws
        the noise): what a classical inverse of that measurement must use."""
        return self.draw(jax.random.split(key)[0])

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """Shape of :meth:`measure`'s output, the discriminator's input."""
        h, w, c = self.image_shape
        if self.name in PROJECTIONS:
            m = int(jax.eval_shape(self.draw, jax.random.key(0)).out_shape[0])  # shapes only, no matrix drawn
            return (h, w, m * c + m)
        return (h, w, 2 * c) if self.with_theta else (h, w, c)

    def observe(self, op: Operator, y: Array) -> Array:
        """The measurement ``(A_theta, y)`` as the discriminator's ``(H, W, c)`` input (see the module docstring)."""
        if self.name not in PROJECTIONS:
            if not self.with_theta:
                return y
            return jnp.concatenate([y, op(jnp.ones(self.image_shape, y.dtype))], axis=-1)  # the draw: A_theta 1
        assert isinstance(op, GaussianCS)
        h, w, c = self.image_shape
        m = y.shape[0]
        rows = op.matrix.reshape(m, h, w, c) * jnp.sqrt(jnp.float32(m))  # N(0, 1) entries
        rows = jnp.moveaxis(rows, 0, 2).reshape(h, w, m * c)
        return jnp.concatenate([rows, jnp.broadcast_to(y, (h, w, m))], axis=-1)

    def measure(self, key: Array, x: Array) -> Array:
        """One fresh draw: ``observe(A_theta, A_theta x + sigma eps)`` for one image ``x`` of ``image_shape``;
        ``theta`` and ``eps`` come from ``key``. Batch with ``jax.vmap(model.measure)(keys, xs)``."""
        check_key(key, "MeasurementModel.measure")
        if tuple(x.shape) != self.image_shape:
            raise ValueError(f"MeasurementModel.measure: expected an image of shape {self.image_shape}, got "
                             f"{tuple(x.shape)}")
        op = self.operator(key)
        return self.observe(op, _measure(jax.random.split(key)[1], op, x, self.noise))

    def measure_batch(self, key: Array, x: Array) -> Array:
        """``(B, *image_shape)`` images, one independent draw each (keys split from ``key``)."""
        return jax.vmap(self.measure)(jax.random.split(key, x.shape[0]), x)


def _take_key(items: list[str], key: str, spec: str) -> tuple[str | None, list[str]]:
    """``(value of key=VALUE or None, the other items)`` from a spec's ``key=value`` items; ``ValueError`` if the
    key is given twice."""
    found = [s for s in items if s.partition("=")[0].strip() == key]
    if len(found) > 1:
        raise ValueError(f"measurement spec {spec!r}: key {key!r} given twice")
    return (found[0].partition("=")[2].strip() if found else None), [s for s in items if s not in found]


def parse_measurement(spec: str, image_shape: Any) -> MeasurementModel:
    """``"blur:gaussian=1.0,noise=0.1"`` -> ``MeasurementModel("blur:gaussian=1.0", shape, 0.1)``;
    ``"block-pixels:p=0.5,theta=1"`` -> ``MeasurementModel("block-pixels:p=0.5", shape, 0.0, True)``.

    ``ValueError`` for an unknown operator or key (naming the valid ones), a negative noise level, or an operator
    whose output is neither image-shaped nor a random projection (e.g. ``sr``, ``radon``: not supported here).
    """
    shape = check_image_shape(image_shape, "parse_measurement")
    name, _, rest = spec.partition(":")
    items = [s.strip() for s in rest.split(",") if s.strip()]
    theta_text, items = _take_key(items, "theta", spec)
    if theta_text not in (None, "0", "1"):
        raise ValueError(f"measurement spec {spec!r}: theta expected 0 or 1, got {theta_text!r}")
    noise_text, items = _take_key(items, "noise", spec)
    noise = 0.0
    if noise_text is not None:
        try:
            noise = float(noise_text)
        except ValueError:
            raise ValueError(f"measurement spec {spec!r}: noise expected a number, got {noise_text!r}") from None
        if not noise >= 0 or noise == float("inf"):
            raise ValueError(f"measurement spec {spec!r}: expected a finite noise >= 0, got {noise}")
    op_spec = name.strip() + (":" + ",".join(items) if items else "")
    op_name, _ = parse_spec(op_spec)
    if op_name not in IMAGE_SPACE + PROJECTIONS:
        raise ValueError(f"measurement spec {spec!r}: expected one of {sorted(IMAGE_SPACE + PROJECTIONS)} (an "
                         f"image-shaped measurement or random projections), got {op_name!r}")
    model = MeasurementModel(op_spec, shape, noise, theta_text == "1")  # __post_init__ refuses theta=1 for projections
    model.draw(jax.random.key(0))  # builds once: parameter errors (size too large, p outside [0, 1]) surface now
    return model
