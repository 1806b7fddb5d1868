"""AmbientGAN (Bora, Price & Dimakis, ICLR 2018): a generator learned from measurements only, and its baselines.

The data are ``y_i = f_{theta_i}(x_i)``: each training digit measured **once** (``draws="once"``, the default) by
a random measurement process (a :class:`~genprior_jax.operators.MeasurementModel`: block-pixels, convolve + noise,
keep-patch, Gaussian projections), with the draws ``theta_i`` fixed by :data:`DATA_SEED` so every method sees the
same measured set. The clean digits are never used otherwise. Modes of :func:`train_ambient_dcgan`:

- ``"ambient"``: the discriminator compares the measured data with ``f_theta(G(z))``, a fresh ``theta`` and
  fresh noise per generated sample per step (AmbientGAN); ``G`` itself still makes clean images.
- ``"ignore"`` (baseline i): a plain DCGAN trained on the measurements as if they were clean images.
- ``"unmeasure"`` (baseline ii): each measurement is first inverted classically (:func:`unmeasure`: TV-regularised
  least squares with the known ``theta_i``: TV inpainting for masks, TV deblurring for convolve + noise), then a
  plain DCGAN is trained on the estimates. Only for image-space linear measurements.
- ``"clean"``: the plain DCGAN on the clean digits (the upper bound; no measurement involved).

One fixed measurement per digit (``draws="once"``, the default) is the strict reading of "only measurements were
collected". The reference code (github.com/AshishBora/ambient-gan, ``src/commons/utils.py``: ``theta_val =
mdevice.sample_theta(hparams)`` at every iteration, applied to the real batch) measures the clean training images
afresh at every step instead, for the AmbientGAN and both baselines alike: ``draws="fresh"``
(:class:`FreshDraws`), an unlimited stream of measurements - over many epochs it reveals more about each digit
than one measurement does.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..data import load_mnist
from ..operators.base import LinearOperator
from ..operators.measurement_model import IMAGE_SPACE, MeasurementModel, parse_measurement
from .dcgan import train_dcgan

MODES = ("ambient", "ignore", "unmeasure", "clean")
DATA_SEED = 0  # the measurement draws of the training set: one fixed set shared by every mode and seed
UNMEASURE_LAMS = (0.001, 0.003, 0.01, 0.03, 0.1)  # TV weights tried by unmeasure's tuning
DRAWS = ("once", "fresh")  # the training set measured once, or afresh at every use (the reference code)


def measurement_keys(n: int) -> jax.Array:
    """The ``n`` per-digit keys of the measured training set (fixed by :data:`DATA_SEED`)."""
    return jax.random.split(jax.random.key(DATA_SEED), n)


@functools.cache
def _measure_fn(model: MeasurementModel) -> Any:
    return jax.jit(jax.vmap(model.measure))


@functools.cache
def _operator_fn(model: MeasurementModel) -> Any:
    return jax.jit(jax.vmap(model.operator))


def measure_dataset(model: MeasurementModel, images: Any, keys: jax.Array | None = None, chunk: int = 500
                    ) -> np.ndarray:
    """``(N, *model.out_shape)`` float32: image ``i`` measured once with ``keys[i]`` (default
    :func:`measurement_keys`), in chunks of ``chunk`` images."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or tuple(images.shape[1:]) != model.image_shape:
        raise ValueError(f"measure_dataset: expected images of shape (N, *{model.image_shape}), got {images.shape}")
    keys = measurement_keys(len(images)) if keys is None else keys
    f = _measure_fn(model)
    return np.concatenate([np.asarray(f(keys[i:i + chunk], jnp.asarray(images[i:i + chunk])))
                           for i in range(0, len(images), chunk)])


INVERTIBLE = tuple(sorted(set(IMAGE_SPACE) - {"keep-patch"}))  # keep-patch says nothing outside its patch


def without_theta(model: MeasurementModel) -> MeasurementModel:
    """``model`` with ``with_theta`` off: what the baselines train on (they see the measured images only; the
    classical inverse of (ii) gets ``theta`` from the operator itself)."""
    return dataclasses.replace(model, with_theta=False)


def baseline_modes(model: MeasurementModel) -> tuple[str, ...]:
    """The :data:`MODES` that apply to ``model`` besides ``"clean"``: ``"ambient"`` always, ``"ignore"`` where
    the measurements are images, ``"unmeasure"`` where a classical inverse exists (:data:`INVERTIBLE`)."""
    model = without_theta(model)
    return (("ambient",) + (("ignore",) if model.out_shape == model.image_shape else ())
            + (("unmeasure",) if model.name in INVERTIBLE else ()))


def _linear_image_model(model: MeasurementModel, who: str) -> None:
    if model.name not in INVERTIBLE or not isinstance(model.draw(jax.random.key(0)), LinearOperator):
        raise ValueError(f"{who}: the classical inverse needs an image-space linear measurement {list(INVERTIBLE)} "
                         f"(keep-patch says nothing outside its patch); got {model.spec!r}")


def unmeasure(model: MeasurementModel, measured: Any, keys: jax.Array, lam: float, num_steps: int = 300,
              chunk: int = 500) -> np.ndarray:
    """The classical inverse of baseline (ii): for each measurement ``y_i`` (drawn with ``keys[i]``, as in
    :func:`measure_dataset`), ``argmin_x 1/2 ||A_i x - y_i||^2 + lam TV(x)`` over ``[0, 1]^n`` (PDHG,
    ``num_steps`` steps) with the known operator ``A_i``: TV inpainting for masks, TV deblurring for blur."""
    from ..solvers.tv import tv

    _linear_image_model(model, "unmeasure")
    measured = np.asarray(measured, np.float32)
    draw = _operator_fn(model)  # the operators measure() drew
    out = []
    for i in range(0, len(measured), chunk):
        ops = draw(keys[i:i + chunk])
        res = tv(jax.random.key(0), jnp.asarray(measured[i:i + chunk]), ops, lam=lam, num_steps=num_steps,
                 op_batched=True, batch_size=None, tol=None)  # exactly num_steps, as documented
        out.append(np.asarray(res.x))
    return np.concatenate(out)


@dataclasses.dataclass(frozen=True)
class FreshDraws:
    """The reference code's data protocol (``draws="fresh"``): every real batch of clean digits is measured afresh
    at every step - ``y_i = f_theta(x_i)`` with a new ``theta`` and new noise each time a digit is used - and, for
    baseline (ii) (``lam`` set), inverted by ``num_steps`` PDHG steps of TV with the operators just drawn.
    ``__call__(key, x)``: ``(B, *image_shape)`` clean images -> what the discriminator sees as real. Hashable, so
    the jitted training step is cached per protocol."""

    model: MeasurementModel
    lam: float | None = None
    num_steps: int = 300

    def __call__(self, key: jax.Array, x: jax.Array) -> jax.Array:
        y = self.model.measure_batch(key, x)
        if self.lam is None:
            return y
        from ..solvers.runner import Problem
        from ..solvers.tv import tv_fixed_steps

        ops = jax.vmap(self.model.operator)(jax.random.split(key, x.shape[0]))  # the draws measure_batch used
        return jax.vmap(lambda k, yi, op: tv_fixed_steps(k, Problem(yi, op), jnp.float32(self.lam), self.num_steps))(
            jax.random.split(jax.random.fold_in(key, 1), x.shape[0]), y, ops)


def tune_unmeasure(model: MeasurementModel, n: int = 32, lams: tuple[float, ...] = UNMEASURE_LAMS,
                   num_steps: int = 300) -> tuple[float, dict[float, float]]:
    """The TV weight of :func:`unmeasure` with the best mean PSNR on ``n`` **clean validation** digits (measured
    with their own keys): an oracle choice, generous to the baseline. Returns ``(lam, {lam: PSNR})``."""
    from ..metrics import psnr

    x = load_mnist("validation", n=n).images
    keys = jax.random.split(jax.random.key(DATA_SEED + 1), n)
    y = measure_dataset(model, x, keys)
    scores = {float(lam): float(np.mean(np.asarray(psnr(jnp.asarray(x), jnp.asarray(unmeasure(
        model, y, keys, lam, num_steps)))))) for lam in lams}
    return max(scores, key=lambda k: scores[k]), scores


def train_ambient_dcgan(measurement: str | MeasurementModel | None, mode: str = "ambient", *, seed: int = 0,
                        steps: int = 4000, out: str | None = None, progress: bool = True, command: str = "",
                        unmeasure_lam: float | None = None, eval_steps: int = 0, draws: str = "once",
                        **train_kw: Any) -> tuple[Any, dict[str, Any]]:
    """Train a DCGAN (config ``dcgan-mnist``) on the measured training digits in one of :data:`MODES` (see the
    module docstring; ``measurement`` may be ``None`` for ``"clean"`` only); returns ``(params, metrics)`` as
    :func:`~genprior_jax.training.train_dcgan` and writes its checkpoint (kind ``"dcgan"``, loadable with
    :func:`~genprior_jax.priors.load_prior`) with the measurement spec and mode in its metadata.
    ``unmeasure_lam`` (mode ``"unmeasure"``): the TV weight, default tuned by :func:`tune_unmeasure`.
    ``draws`` (:data:`DRAWS`): ``"once"`` (default) measures each training digit once (the fixed measured set of the
    module docstring); ``"fresh"`` measures the clean training digits afresh every time a batch is used
    (:class:`FreshDraws`), as the AmbientGAN reference code does. ``fake_draws`` (mode ``"ambient"``, in
    ``train_kw``): simulated measurements per generated image (see
    :func:`~genprior_jax.training.dcgan_train_step`)."""
    if mode not in MODES:
        raise ValueError(f"train_ambient_dcgan: unknown mode {mode!r}; expected one of {MODES}")
    if draws not in DRAWS:
        raise ValueError(f"train_ambient_dcgan: unknown draws {draws!r}; expected one of {DRAWS}")
    if int(train_kw.get("fake_draws", 1)) != 1 and mode != "ambient":
        raise ValueError(f"train_ambient_dcgan: fake_draws (simulated measurements per generated image) applies to "
                         f"mode 'ambient' only; got mode {mode!r}")
    train_kw = {"seed": seed, "steps": steps, "out": out, "progress": progress, "command": command,
                "eval_steps": eval_steps, **train_kw}
    if mode == "clean":  # the measurement (if any) plays no part
        return train_dcgan(metadata={"ambient_mode": mode}, **train_kw)
    if measurement is None:
        raise ValueError(f"train_ambient_dcgan: mode {mode!r} needs a measurement model")
    model = measurement if isinstance(measurement, MeasurementModel) else parse_measurement(measurement,
                                                                                            (28, 28, 1))
    if mode != "ambient":
        model = without_theta(model)  # the baselines see measured images, never theta
    meta: dict[str, Any] = {"ambient_mode": mode, "measurement_spec": model.spec, "measurement_noise": model.noise,
                            "measurement_theta": model.with_theta, "data_seed": DATA_SEED, "draws": draws}
    if mode != "ambient" and model.out_shape != model.image_shape:
        raise ValueError(f"train_ambient_dcgan(mode={mode!r}): the measurements of {model.spec!r} are not images "
                         f"(shape {model.out_shape}); only mode='ambient' can train on them")
    clean = load_mnist("train").images
    keys = measurement_keys(len(clean))
    if mode == "unmeasure":
        _linear_image_model(model, "train_ambient_dcgan(mode='unmeasure')")
        if unmeasure_lam is None:
            unmeasure_lam, scores = tune_unmeasure(model)
            meta["unmeasure_tuning_psnr"] = scores
        meta["unmeasure_lam"] = unmeasure_lam
    if draws == "fresh":
        process = FreshDraws(model, float(unmeasure_lam) if mode == "unmeasure" else None)  # type: ignore[arg-type]
        return train_dcgan(data=clean, measurement=model if mode == "ambient" else None, real_process=process,
                           metadata=meta, **train_kw)
    measured = measure_dataset(model, clean, keys)
    if mode == "ambient":
        return train_dcgan(data=measured, measurement=model, metadata=meta, **train_kw)
    data = measured if mode == "ignore" else unmeasure(model, measured, keys, float(unmeasure_lam))  # type: ignore[arg-type]
    return train_dcgan(data=np.asarray(data, np.float32), metadata=meta, **train_kw)
