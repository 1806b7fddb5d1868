"""Training of DCGAN priors on the embedded MNIST digits (``genprior-jax train dcgan``).

Non-saturating GAN loss (Goodfellow et al. 2014), per step on a minibatch ``x`` of real digits and fresh
latents ``z ~ N(0, I)``::

    L_D = E softplus(-l(x)) + E softplus(l(G(z)))      (= -log D(x) - log(1 - D(G(z))), l = logit D)
    L_G = E softplus(-l(G(z')))                        (= -log D(G(z')), with the just-updated D)

With ``loss="wgan-gp"`` (Gulrajani et al. 2017, the AmbientGAN reference code's MNIST model) the discriminator is a
critic ``f`` and each step makes ``d_iters`` critic updates, each on its own real batch, then one generator update::

    L_f = E f(G(z)) - E f(x) + gp_weight E (||grad f(x_hat)|| - 1)^2,   x_hat = x + a (G(z) - x), a ~ U(0, 1)
    L_G = -E f(G(z'))

(the penalty in the discriminator's input space: measurements for AmbientGAN, as in the reference code).

Adam (lr 2e-4, beta1 0.5, as in Radford et al.; ``beta2`` 0.999 unless given) for each network; an exponential
moving average of the generator weights (decay ``min(ema, (1 + t) / (10 + t))`` at step ``t``, Yazici et al. 2019)
is what the checkpoint ships as ``"generator"``. A Python loop over one jitted step (conv weight-gradients inside
``lax.scan`` are several times slower on XLA:CPU). The randomness of step ``t`` is ``fold_in(key, t)`` and the
data order of epoch ``e`` is ``fold_in(key, e)``, so a run resumed from ``<out>.state`` (written every
``checkpoint_every`` steps, with the checkpoint itself) follows the same trajectory as an uninterrupted one.
A non-finite loss stops the run with an error naming the step; the last good checkpoint stays on disk.

The shipped ``dcgan-mnist`` checkpoint: ``genprior-jax train dcgan --seed 0 --steps 4000 --out
genprior_jax/checkpoints/dcgan-mnist`` (its training time is in the README's checkpoint table).

At the end (``eval_steps > 0``), a cheap, honest quality number: CSGM recovery of ``eval_digits`` validation
digits from ``m = eval_m`` Gaussian measurements (noise norm 0.1, Adam lr 0.01, ``lam = 0``), mean per-pixel
MSE, written into the checkpoint's metrics with its settings.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ..checkpoint import flax_restore, load_state, save_checkpoint, state_dir
from ..data import SPLIT_SEED, load_mnist
from ..operators.measurement_model import MeasurementModel
from ..priors.dcgan import CONFIGS, check_config, dcgan_modules, dcgan_prior, init_dcgan


def csgm_quality(prior: Any, n: int = 16, m: int = 100, steps: int = 500, restarts: int = 4, seed: int = 0,
                 split: str = "validation") -> float:
    """Mean per-pixel MSE of CSGM (``lam = 0``, Adam lr 0.01) on the first ``n`` digits of ``split`` from
    ``m`` Gaussian measurements with noise norm 0.1 (the demo's setting)."""
    from ..metrics import mse
    from ..operators import GaussianCS, GaussianNoise, measure, noise_std_for_norm
    from ..solvers import csgm

    x = jnp.asarray(load_mnist(split, n=n).images)
    k_op, k_noise, k_solve = jax.random.split(jax.random.key(seed), 3)
    op = GaussianCS(k_op, prior.image_shape, m)
    y = measure(k_noise, op, x, GaussianNoise(noise_std_for_norm(0.1, m)))
    res = csgm(prior, k_solve, y, op, lam=0.0, num_steps=steps, num_restarts=restarts)
    return float(jnp.mean(mse(x, res.x)))


LOSSES = ("ns", "wgan-gp")
"""GAN losses: ``"ns"`` non-saturating (one D and one G update per step), ``"wgan-gp"`` Wasserstein with gradient
penalty (``d_iters`` critic updates per step); see the module docstring."""

WGAN_GP_REFERENCE: dict[str, Any] = {"loss": "wgan-gp", "d_iters": 5, "gp_weight": 10.0, "beta2": 0.9999}
"""The AmbientGAN reference code's MNIST WGAN-GP settings (``create_scripts/mnist/base_script.sh``), as
:func:`train_dcgan` keywords."""


def dcgan_train_step(config: dict[str, Any], learning_rate: float = 2e-4, beta1: float = 0.5, ema: float = 0.999,
                     measurement: MeasurementModel | None = None, real_process: Callable[..., Any] | None = None,
                     *, loss: str = "ns", d_iters: int = 1, gp_weight: float = 10.0, beta2: float = 0.999,
                     fake_draws: int = 1) -> Callable[..., tuple[Any, jax.Array, jax.Array]]:
    """The jitted training step ``step(state, t, key, x) -> (state, d_loss, g_loss)`` (see the module
    docstring), cached per configuration, hyper-parameters and measurement model so repeated runs in a process
    compile once.

    ``state = {"params": {"generator", "discriminator"}, "ema": generator params, "opt_state": {"generator",
    "discriminator"}}`` (Adam states of ``optax.adam(learning_rate, b1=beta1)``), ``t`` the step number (a
    float32 scalar, for the EMA warm-up), ``x`` a batch of real samples: images ``(B, H, W, C)`` in ``[0, 1]``,
    or, with a ``measurement`` model (AmbientGAN), measurements ``(B, *measurement.out_shape)``; then every
    generated image passes through its own fresh draw ``measurement.measure(k_i, G(z_i))`` (keys from the step's
    key) before the discriminator sees it, in both the D and the G update. ``fake_draws = K > 1`` measures every
    generated image ``K`` times, independently: the discriminator sees ``K B`` simulated measurements against ``B``
    real ones - a lower-variance estimate of the same AmbientGAN objective ``E_{z, theta} log(1 - D(f_theta(G(z))))``
    (with block-pixels ``p = 0.5`` and ``K = 2``, ``G`` gets gradient through 3/4 of each image's pixels, not 1/2).

    ``real_process(key, x) -> x'`` (hashable, jit-able; e.g. :class:`~genprior_jax.training.ambient.FreshDraws`)
    transforms each real batch inside the step with a key of its own, before the discriminator sees it: a fresh
    measurement of clean images at every step (the AmbientGAN reference code's protocol).

    ``loss`` (:data:`LOSSES`): with ``"wgan-gp"`` the step takes ``x`` of shape ``(d_iters, B, ...)``, one real
    batch per critic update, and returns the last critic loss; ``gp_weight`` is the penalty's weight.
    """
    c = check_config(config)
    if loss not in LOSSES:
        raise ValueError(f"dcgan_train_step: unknown loss {loss!r}; expected one of {LOSSES}")
    if d_iters < 1 or (loss == "ns" and d_iters != 1):
        raise ValueError(f"dcgan_train_step: expected d_iters >= 1 (and 1 with loss 'ns'), got {d_iters}")
    if fake_draws < 1 or (fake_draws > 1 and measurement is None):
        raise ValueError(f"dcgan_train_step: expected fake_draws >= 1 (and 1 without a measurement model), got "
                         f"{fake_draws}")
    items = tuple(sorted((k, v) for k, v in c.items() if k in _STEP_KEYS))
    if loss == "wgan-gp":
        return _wgan_step(items, float(learning_rate), float(beta1), float(beta2), float(ema), measurement,
                          real_process, int(d_iters), float(gp_weight), int(fake_draws))
    return _train_step(items, float(learning_rate), float(beta1), float(ema), measurement, real_process,
                       float(beta2), int(fake_draws))


_STEP_KEYS = ("image_shape", "latent", "start", "channels", "upsample", "groups")


def _networks(config_items: tuple[tuple[str, Any], ...], learning_rate: float, beta1: float, beta2: float,
              measurement: MeasurementModel | None, fake_draws: int = 1
              ) -> tuple[dict[str, Any], Any, optax.GradientTransformation,
                         Callable[[Any, jax.Array, jax.Array], jax.Array]]:
    """``(config, discriminator module, Adam, generate)`` of a training step; ``generate(pg, z, k)`` is the
    generator's batch ``G(z)`` (``B`` images), passed through a fresh measurement draw per sample (keys from
    ``k``) when a ``measurement`` model is given: ``fake_draws`` draws per image, ``(fake_draws B, ...)``."""
    config = dict(config_items)
    gen, disc = dcgan_modules(config)

    def generate(pg: Any, z: jax.Array, k: jax.Array) -> jax.Array:
        fake = cast(jax.Array, gen.apply({"params": pg}, z))
        if measurement is None:
            return fake
        if fake_draws > 1:  # image i measured by draws i, B + i, 2B + i, ...
            fake = jnp.tile(fake, (fake_draws,) + (1,) * (fake.ndim - 1))
        return measurement.measure_batch(k, fake)

    return config, disc, optax.adam(learning_rate, b1=beta1, b2=beta2), generate


@functools.cache
def _train_step(config_items: tuple[tuple[str, Any], ...], learning_rate: float, beta1: float, ema: float,
                measurement: MeasurementModel | None, real_process: Callable[..., Any] | None = None,
                beta2: float = 0.999, fake_draws: int = 1) -> Callable[..., tuple[Any, jax.Array, jax.Array]]:
    config, disc, opt, generate = _networks(config_items, learning_rate, beta1, beta2, measurement, fake_draws)

    def d_loss(pd: Any, x: jax.Array, fake: jax.Array) -> jax.Array:
        real_logit = cast(jax.Array, disc.apply({"params": pd}, x))
        fake_logit = cast(jax.Array, disc.apply({"params": pd}, fake))
        return jnp.mean(jax.nn.softplus(-real_logit)) + jnp.mean(jax.nn.softplus(fake_logit))

    def g_loss(pg: Any, pd: Any, z: jax.Array, k: jax.Array) -> jax.Array:
        return jnp.mean(jax.nn.softplus(-cast(jax.Array, disc.apply({"params": pd}, generate(pg, z, k)))))

    @jax.jit
    def step(s: Any, t: jax.Array, k: jax.Array, x: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
        kd, kg = jax.random.split(k)  # as before measurement models existed: plain runs reproduce bit for bit
        kmd, kmg = jax.random.split(jax.random.fold_in(k, 7))  # the measurement draws (unused without a model)
        p, o = s["params"], s["opt_state"]
        if real_process is not None:
            x = real_process(jax.random.fold_in(k, 11), x)
        z = jax.random.normal(kd, (x.shape[0], config["latent"]), jnp.float32)
        fake = generate(p["generator"], z, kmd)
        ld, grad_d = jax.value_and_grad(d_loss)(p["discriminator"], x, fake)
        upd, o_d = opt.update(grad_d, o["discriminator"], p["discriminator"])
        pd = optax.apply_updates(p["discriminator"], upd)
        z = jax.random.normal(kg, (x.shape[0], config["latent"]), jnp.float32)
        lg, grad_g = jax.value_and_grad(g_loss)(p["generator"], pd, z, kmg)
        upd, o_g = opt.update(grad_g, o["generator"], p["generator"])
        pg = optax.apply_updates(p["generator"], upd)
        return _new_state(s, t, ema, pg, pd, o_g, o_d), ld, lg

    return step


def _new_state(s: Any, t: jax.Array, ema: float, pg: Any, pd: Any, o_g: Any, o_d: Any) -> Any:
    """The training state after a step: new parameters and Adam states, the generator's EMA advanced."""
    decay = jnp.minimum(ema, (1.0 + t) / (10.0 + t))  # warm-up: early weights do not linger
    ema_g = jax.tree_util.tree_map(lambda e, q: decay * e + (1 - decay) * q, s["ema"], pg)
    return {"params": {"generator": pg, "discriminator": pd}, "ema": ema_g,
            "opt_state": {"generator": o_g, "discriminator": o_d}}


def wgan_gp_critic_loss(critic: Callable[[jax.Array], jax.Array], x: jax.Array, fake: jax.Array, key: jax.Array,
                        gp_weight: float | jax.Array = 10.0) -> jax.Array:
    """The WGAN-GP critic loss ``mean f(fake) - mean f(x) + gp_weight mean_i (||grad f(x_hat_i)|| - 1)^2`` with
    ``x_hat_i = x_i + a_i (fake_i - x_i)``, ``a_i ~ U(0, 1)`` from ``key`` (Gulrajani et al. 2017, Alg. 1).

    ``critic``: a batch ``(B, ...) -> (B,)`` of scores; ``x``, ``fake``: ``(B, ...)``, real and generated samples
    (the generator's output treated as a constant here). The norm is over all of a sample's entries."""
    a = jax.random.uniform(key, (x.shape[0],) + (1,) * (x.ndim - 1), x.dtype)
    grads = jax.grad(lambda v: jnp.sum(critic(v)))(x + a * (fake - x))
    slopes = jnp.sqrt(jnp.sum(jnp.square(grads), axis=tuple(range(1, x.ndim))) + 1e-12)
    return jnp.mean(critic(fake)) - jnp.mean(critic(x)) + gp_weight * jnp.mean(jnp.square(slopes - 1.0))


@functools.cache
def _wgan_step(config_items: tuple[tuple[str, Any], ...], learning_rate: float, beta1: float, beta2: float,
               ema: float, measurement: MeasurementModel | None, real_process: Callable[..., Any] | None,
               d_iters: int, gp_weight: float, fake_draws: int = 1
               ) -> Callable[..., tuple[Any, jax.Array, jax.Array]]:
    """The WGAN-GP step (module docstring): ``d_iters`` critic updates, one per real batch ``x[i]``, each with fresh
    latents, fresh measurement draws and fresh interpolation weights, then one generator update. With
    ``fake_draws = K`` the real batch is repeated ``K`` times against the ``K B`` simulated measurements (the same
    mean real score; each simulated measurement gets its own interpolation)."""
    config, disc, opt, generate = _networks(config_items, learning_rate, beta1, beta2, measurement, fake_draws)

    def critic(pd: Any, v: jax.Array) -> jax.Array:
        return cast(jax.Array, disc.apply({"params": pd}, v))

    def critic_loss(pd: Any, x: jax.Array, fake: jax.Array, k: jax.Array) -> jax.Array:
        if fake_draws > 1:
            x = jnp.tile(x, (fake_draws,) + (1,) * (x.ndim - 1))
        return wgan_gp_critic_loss(functools.partial(critic, pd), x, fake, k, gp_weight)

    def g_loss(pg: Any, pd: Any, z: jax.Array, k: jax.Array) -> jax.Array:
        return -jnp.mean(critic(pd, generate(pg, z, k)))

    @jax.jit
    def step(s: Any, t: jax.Array, k: jax.Array, x: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
        p, o = s["params"], s["opt_state"]
        pd, o_d, ld = p["discriminator"], o["discriminator"], jnp.zeros(())
        for i in range(d_iters):  # unrolled: conv weight-gradients inside lax.scan are slow on XLA:CPU
            kz, km, ka, kr = jax.random.split(jax.random.fold_in(k, i), 4)
            xi = x[i] if real_process is None else real_process(kr, x[i])
            z = jax.random.normal(kz, (xi.shape[0], config["latent"]), jnp.float32)
            ld, grad_d = jax.value_and_grad(critic_loss)(pd, xi, generate(p["generator"], z, km), ka)
            upd, o_d = opt.update(grad_d, o_d, pd)
            pd = optax.apply_updates(pd, upd)
        kz, km = jax.random.split(jax.random.fold_in(k, d_iters))
        z = jax.random.normal(kz, (x.shape[1], config["latent"]), jnp.float32)
        lg, grad_g = jax.value_and_grad(g_loss)(p["generator"], pd, z, km)
        upd, o_g = opt.update(grad_g, o["generator"], p["generator"])
        pg = optax.apply_updates(p["generator"], upd)
        return _new_state(s, t, ema, pg, pd, o_g, o_d), ld, lg

    return step


def train_dcgan(config_name: str = "dcgan-mnist", seed: int = 0, steps: int = 4000, batch_size: int = 64,
                learning_rate: float = 2e-4, beta1: float = 0.5, ema: float = 0.999, checkpoint_every: int = 1000,
                out: str | None = None, resume: bool = False, progress: bool = True, command: str = "",
                config_overrides: dict[str, Any] | None = None, eval_steps: int = 500, eval_digits: int = 16,
                eval_m: int = 100, data: Any = None, measurement: MeasurementModel | None = None,
                metadata: dict[str, Any] | None = None, real_process: Callable[..., Any] | None = None,
                loss: str = "ns", d_iters: int = 1, gp_weight: float = 10.0, beta2: float = 0.999,
                fake_draws: int = 1) -> tuple[Any, dict[str, Any]]:
    """Train a DCGAN from :data:`~genprior_jax.priors.dcgan.CONFIGS`; returns ``(params, metrics)`` with
    ``params = {"generator": EMA generator, "discriminator": ...}`` and writes the checkpoint (kind
    ``"dcgan"``) and ``samples.png`` to ``out``.

    ``data`` replaces the embedded training digits by other real samples ``(N, ...)`` (measured or
    "unmeasured" digits for the AmbientGAN baselines); with a ``measurement`` model the discriminator compares
    ``data`` (measurements, ``(N, *measurement.out_shape)``) with measured generated images - AmbientGAN (see
    :mod:`~genprior_jax.training.ambient`). With ``real_process`` (see :func:`dcgan_train_step`) ``data`` are the
    images that it transforms in every step (clean digits measured afresh at each use). ``metadata`` is stored in the
    checkpoint and the metrics. ``loss``, ``d_iters``, ``gp_weight``, ``beta2``, ``fake_draws``: see
    :func:`dcgan_train_step`; a
    WGAN-GP step uses ``d_iters`` batches of real samples (an epoch is ``N // (batch_size * d_iters)`` steps)."""
    if config_name not in CONFIGS:
        raise ValueError(f"train_dcgan: unknown config {config_name!r}; expected one of {sorted(CONFIGS)}")
    if steps < 1 or batch_size < 1 or not learning_rate > 0 or not 0 <= ema < 1 or checkpoint_every < 1:
        raise ValueError(f"train_dcgan: expected steps >= 1, batch_size >= 1, learning_rate > 0, 0 <= ema < 1, "
                         f"checkpoint_every >= 1; got {steps}, {batch_size}, {learning_rate}, {ema}, "
                         f"{checkpoint_every}")
    config = check_config({**CONFIGS[config_name], **(config_overrides or {})})
    if tuple(config["image_shape"]) != (28, 28, 1):
        raise ValueError(f"train_dcgan: the embedded data are 28x28x1 MNIST digits; config {config_name!r} wants "
                         f"{config['image_shape']}, and training on other images is not supported yet. Train a "
                         "28x28x1 config (dcgan-mnist); for photos of any size train the patch prior "
                         "(genprior-jax train patch-flow) and reconstruct with --method patchnr --prior <its --out>")
    disc_shape = tuple(config["image_shape"]) if measurement is None else measurement.out_shape
    if measurement is not None and measurement.image_shape != tuple(config["image_shape"]):
        raise ValueError(f"train_dcgan: the measurement model is for images of shape {measurement.image_shape}; "
                         f"the generator makes {config['image_shape']}")
    if data is None:
        if measurement is not None:
            raise ValueError("train_dcgan: a measurement model needs data = the measured training set")
        train = load_mnist("train").images
    else:
        train = np.asarray(data)
        data_shape = disc_shape if real_process is None else tuple(config["image_shape"])
        if train.dtype != np.float32 or train.ndim != 1 + len(data_shape) or tuple(train.shape[1:]) != data_shape:
            raise ValueError(f"train_dcgan: expected data of dtype float32 and shape (N, *{data_shape}), got "
                             f"{train.dtype} {train.shape}")
        if not np.all(np.isfinite(train)):
            raise ValueError("train_dcgan: data contain NaN or infinite values")
    step = dcgan_train_step(config, learning_rate, beta1, ema, measurement, real_process, loss=loss, d_iters=d_iters,
                            gp_weight=gp_weight, beta2=beta2, fake_draws=fake_draws)
    per_step = batch_size * d_iters
    if per_step > len(train):
        raise ValueError(f"train_dcgan: batch_size {batch_size} x d_iters {d_iters} exceeds the {len(train)} training "
                         f"samples")
    steps_per_epoch = len(train) // per_step
    opt = optax.adam(learning_rate, b1=beta1, b2=beta2)

    key = jax.random.key(seed)
    k_init, k_data, k_steps = jax.random.split(key, 3)
    params = init_dcgan(k_init, config, disc_shape)
    state = {"params": params, "ema": params["generator"],
             "opt_state": {name: opt.init(p) for name, p in params.items()}}
    start, history = 0, []
    state_path = state_dir(out)
    if resume:
        saved, record = load_state(out, "train_dcgan")
        state = jax.tree_util.tree_map(jnp.asarray, flax_restore(state, saved))
        start, history = record["metadata"]["step"], record["metadata"]["history"]

    extra_meta = dict(metadata or {})
    if loss != "ns":
        extra_meta.update({"loss": loss, "d_iters": d_iters, "gp_weight": gp_weight})
    if fake_draws != 1:
        extra_meta["fake_draws"] = fake_draws
    if measurement is not None:
        extra_meta["measurement"] = {"spec": measurement.spec, "noise": measurement.noise,
                                     **({"theta": True} if measurement.with_theta else {})}

    def shipped(s: Any) -> Any:
        return {"generator": s["ema"], "discriminator": s["params"]["discriminator"]}

    def save(s: Any, t: int, extra: dict[str, Any]) -> None:
        if out is None:
            return
        assert state_path is not None  # set whenever out is
        save_checkpoint(out, shipped(s), "dcgan", config, {"step": t, "history": history, "command": command,
                                                            **extra_meta, **extra})
        save_checkpoint(state_path, s, "train-state", config, {"step": t, "history": history})

    t0 = time.perf_counter()
    timed: list[float] = []  # seconds per step, the first (compiling) step of this process left out
    window: list[tuple[jax.Array, jax.Array]] = []
    order, epoch = None, -1
    bar = tqdm(range(start, steps), desc=f"train {config_name}", unit="step", disable=not progress,
               initial=start, total=steps)
    for t in bar:
        e, i = divmod(t, steps_per_epoch)
        if e != epoch:
            epoch, order = e, np.asarray(jax.random.permutation(jax.random.fold_in(k_data, e), len(train)))
        assert order is not None  # set at the first step (epoch starts at -1)
        batch = jnp.asarray(train[order[i * per_step : (i + 1) * per_step]])
        if loss == "wgan-gp":
            batch = batch.reshape(d_iters, batch_size, *batch.shape[1:])
        ts = time.perf_counter()
        state, ld, lg = step(state, jnp.float32(t), jax.random.fold_in(k_steps, t), batch)
        window.append((ld, lg))
        if t % 10 == 0 or t == steps - 1:
            ld_f, lg_f = float(ld), float(lg)
            if not (math.isfinite(ld_f) and math.isfinite(lg_f)):
                raise FloatingPointError(f"train_dcgan: losses became d={ld_f}, g={lg_f} at step {t}; the last "
                                         f"good checkpoint is at {out!r}")
            bar.set_postfix(d=f"{ld_f:.3f}", g=f"{lg_f:.3f}")
        else:
            jax.block_until_ready(ld)
        if t > start:
            timed.append(time.perf_counter() - ts)
        if (t + 1) % 100 == 0 or t == steps - 1:
            d_mean, g_mean = (float(v) for v in jnp.mean(jnp.asarray(window), axis=0))
            history.append({"step": t + 1, "d_loss": d_mean, "g_loss": g_mean,
                            "seconds": round(time.perf_counter() - t0, 1)})
            window = []
        if (t + 1) % checkpoint_every == 0 and t + 1 < steps:
            save(state, t + 1, {})
    seconds = time.perf_counter() - t0
    params = shipped(state)
    prior = dcgan_prior(params, config, config_name)
    metrics: dict[str, Any] = {
        "config_name": config_name, "steps": steps, "final_d_loss": history[-1]["d_loss"] if history else None,
        "final_g_loss": history[-1]["g_loss"] if history else None, "train_seconds": round(seconds, 1),
        "seconds_per_1000_steps": round(1000 * float(np.median(timed)), 1) if timed else None,
        "seed": seed, "split_seed": SPLIT_SEED, "batch_size": batch_size, "learning_rate": learning_rate,
        "beta1": beta1, "beta2": beta2, "ema": ema, "jax_version": jax.__version__, "command": command, **extra_meta,
    }
    if eval_steps > 0:
        metrics["csgm_val_mse"] = csgm_quality(prior, n=eval_digits, m=eval_m, steps=eval_steps)
        metrics["csgm_eval"] = (f"CSGM lam=0, Adam lr 0.01, {eval_steps} steps, 4 restarts, first {eval_digits} "
                                f"validation digits, m={eval_m} Gaussian measurements, noise norm 0.1; mean "
                                f"per-pixel MSE")
    if out is not None:
        save(state, steps, {"metrics": metrics})
        from ..plotting import save_grid

        rows = {f"{12 * r + 1}-{12 * r + 12}": np.asarray(prior.sample(jax.random.fold_in(key, 1000 + r), 12))
                for r in range(4)}
        quality = f", CSGM val MSE {metrics['csgm_val_mse']:.4f} at m={eval_m}" if eval_steps > 0 else ""
        save_grid(rows, os.path.join(out, "samples.png"), title=f"{config_name} samples, step {steps}{quality}")
    return params, metrics
