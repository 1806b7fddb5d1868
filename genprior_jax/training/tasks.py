"""The training tasks of :func:`~genprior_jax.training.trainer.train`: VAE, flow (Glow / RealNVP) and DCGAN, for
images of any size.

``make_task(model, image_shape, overrides, ...)`` sizes the architecture from the data (``config_for`` of
:mod:`~genprior_jax.priors.vae`, :mod:`~genprior_jax.priors.flow`, :mod:`~genprior_jax.priors.dcgan`: the shipped
MNIST configs for 28x28x1, a documented rule otherwise), applies ``overrides`` (``--config-set key=value``) and
returns the :class:`~genprior_jax.training.trainer.TrainTask`:

- ``vae``: loss ``-ELBO`` in nats per image (one reparametrized draw), Adam;
- ``flow``: bits/dim of uniformly dequantized 8-bit images, Adam with linear warm-up and cosine decay to 1 %,
  global-norm clipping at 50 (``genprior-jax train flow``'s recipe); ``loss_unit = "bits/dim"``;
- ``diffusion``: EDM denoising score matching (:func:`~genprior_jax.priors.diffusion.edm_loss`, per pixel), Adam
  with a 200-step linear warm-up and global-norm clipping at 1, an EMA of the weights (decay 0.999, warmed up as
  ``min(0.999, (1 + t) / (10 + t))`` after ``t`` updates; the checkpoint ships it, the validation loss is the
  EMA's), random ``crop`` crops for photos;
- ``dcgan``: the non-saturating GAN step of :func:`~genprior_jax.training.dcgan.dcgan_train_step` (Adam
  ``beta1 = 0.5``, generator EMA 0.999); validation loss ``softplus(-D(x))`` on held-out images (it tracks the
  discriminator's over-fitting; it does not rank generators, so the latest checkpoint is kept).
"""

from __future__ import annotations

import ast
from typing import Any, cast

import jax
import jax.numpy as jnp
import optax

from ..datasets import ImageDataset, load_dataset
from ..priors import dcgan as dcgan_mod
from ..priors import diffusion as diffusion_mod
from ..priors import flow as flow_mod
from ..priors import vae as vae_mod
from .flow import dequantize
from .trainer import TrainTask, train

__all__ = ["MODELS", "make_task", "parse_overrides", "train_prior"]

MODELS = ("vae", "flow", "dcgan", "diffusion")
DEFAULT_LEARNING_RATE = {"vae": 1e-3, "flow": 1e-3, "dcgan": 2e-4, "diffusion": 1e-3}


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["hidden=32", "channels=(16, 32)", "kind=realnvp"]`` -> ``{"hidden": 32, ...}`` (Python literals; a bare
    word is a string)."""
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--config-set: expected key=value, got {item!r}")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text.strip()
        out[name.strip()] = value
    return out


def _config(model: str, image_shape: tuple[int, ...], overrides: dict[str, Any]) -> dict[str, Any]:
    if model == "vae":
        base = vae_mod.config_for(image_shape)
        known = set(base) | {"arch", "hidden", "channels"}
    elif model == "flow":
        base = flow_mod.config_for(image_shape, overrides.get("kind", "glow"))
        known = set(base) | {"scale_floor", "split_prior", "logit_alpha"}
    elif model == "diffusion":
        base = diffusion_mod.config_for(image_shape)
        known = set(base)
    else:
        base = dcgan_mod.config_for(image_shape)
        known = set(base)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"--config-set: unknown {model} config keys {unknown}; expected some of {sorted(known)}")
    if "image_shape" in overrides and tuple(overrides["image_shape"]) != tuple(image_shape):
        raise ValueError(f"--config-set: image_shape comes from the data ({tuple(image_shape)}); use --size")
    config = {**base, **overrides}
    if model == "dcgan" and "channels" in overrides and "start" not in overrides:  # the start grid follows them
        config["start"] = max(1, int(image_shape[0]) // 2 ** len(tuple(overrides["channels"])))
    if model == "vae" and "channels" in overrides:
        config["arch"] = "conv"
    if model == "vae":
        return vae_mod.check_config(config)
    if model == "flow":
        return flow_mod.check_config(config)
    if model == "diffusion":
        return diffusion_mod.check_config(config)
    return dcgan_mod.check_config(config)


def _adam_step(loss: Any, opt: optax.GradientTransformation) -> Any:
    def step(state: Any, key: jax.Array, x: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
        value, grads = jax.value_and_grad(loss)(state["params"], key, x)
        updates, opt_state = opt.update(grads, state["opt_state"], state["params"])
        return {"params": optax.apply_updates(state["params"], updates), "opt_state": opt_state}, {"loss": value}
    return step


def make_task(model: str, image_shape: tuple[int, ...], overrides: dict[str, Any] | None = None, *,
              learning_rate: float | None = None, num_steps: int = 1000, warmup_steps: int = 200) -> TrainTask:
    """The :class:`TrainTask` of ``model`` (:data:`MODELS`) for images ``(H, W, C)``; ``learning_rate`` defaults to
    :data:`DEFAULT_LEARNING_RATE`; ``num_steps`` / ``warmup_steps`` shape the flow's schedule."""
    if model not in MODELS:
        raise ValueError(f"train: unknown model {model!r}; expected one of {MODELS}")
    lr = DEFAULT_LEARNING_RATE[model] if learning_rate is None else float(learning_rate)
    if not lr > 0:
        raise ValueError(f"train: expected learning_rate > 0, got {lr}")
    config = _config(model, tuple(int(s) for s in image_shape), dict(overrides or {}))
    hyper = {"learning_rate": lr}
    if model == "vae":
        return _vae_task(config, lr, hyper)
    if model == "flow":
        return _flow_task(config, lr, num_steps, warmup_steps, hyper)
    if model == "diffusion":
        return _diffusion_task(config, lr, warmup_steps, hyper)
    return _dcgan_task(config, lr, hyper)


def _vae_task(config: dict[str, Any], lr: float, hyper: dict[str, Any]) -> TrainTask:
    opt = optax.adam(lr)
    generate, _ = vae_mod.vae_functions(config.get("channels") or config["hidden"], config["latent"],
                                        config["image_shape"], config.get("arch", "mlp"))

    def loss(p: Any, key: jax.Array, x: jax.Array) -> jax.Array:
        return -jnp.mean(vae_mod.elbo(p, key, x, config))

    def init(key: jax.Array, x: jax.Array) -> Any:
        params = vae_mod.init_vae(key, config)
        return {"params": params, "opt_state": opt.init(params)}

    def sample(params: Any, key: jax.Array, n: int) -> jax.Array:
        z = jax.random.normal(key, (n, config["latent"]))
        return jax.vmap(generate, (None, 0))(params, z)

    return TrainTask("vae", config, init, _adam_step(loss, opt),
                     lambda s, k, x: -vae_mod.elbo(s["params"], k, x, config), lambda s: s["params"], sample,
                     "nats/image", True, hyper)


def _flow_task(config: dict[str, Any], lr: float, num_steps: int, warmup_steps: int,
               hyper: dict[str, Any]) -> TrainTask:
    warmup = max(1, min(warmup_steps, num_steps // 2))
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(num_steps, warmup + 1), end_value=0.01 * lr)
    opt = optax.chain(optax.clip_by_global_norm(50.0), optax.adam(schedule))
    dim = int(jnp.prod(jnp.asarray(config["image_shape"])))

    def per_image(p: Any, key: jax.Array, x: jax.Array) -> jax.Array:
        return flow_mod.bits_per_dim(flow_mod.batch_log_prob(p, config, dequantize(key, x)), dim)

    def init(key: jax.Array, x: jax.Array) -> Any:
        params = flow_mod.init_flow(key, config, dequantize(key, x))
        return {"params": params, "opt_state": opt.init(params)}

    def sample(params: Any, key: jax.Array, n: int) -> jax.Array:
        prior = flow_mod.flow_prior(params, config)
        z = 0.7 * jax.random.normal(key, (n, *prior.latent_shape))
        return jax.vmap(prior.generate, (None, 0))(params, z)

    return TrainTask("flow", config, init, _adam_step(lambda p, k, x: jnp.mean(per_image(p, k, x)), opt),
                     lambda s, k, x: per_image(s["params"], k, x), lambda s: s["params"], sample, "bits/dim", True,
                     {**hyper, "warmup_steps": warmup, "schedule": "warmup-cosine"})


def random_crops(key: jax.Array, x: jax.Array, crop: tuple[int, int]) -> jax.Array:
    """One random ``crop`` window of each image of a batch ``x`` ``(B, H, W, C)``: ``(B, h, w, C)``."""
    h, w = crop
    kh, kw = jax.random.split(key)
    top = jax.random.randint(kh, (x.shape[0],), 0, x.shape[1] - h + 1)
    left = jax.random.randint(kw, (x.shape[0],), 0, x.shape[2] - w + 1)
    return jax.vmap(lambda im, t, l: jax.lax.dynamic_slice(im, (t, l, 0), (h, w, im.shape[-1])))(x, top, left)


def _diffusion_task(config: dict[str, Any], lr: float, warmup_steps: int, hyper: dict[str, Any]) -> TrainTask:
    ema_decay = 0.999
    schedule = optax.linear_schedule(0.0, lr, max(1, warmup_steps))
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))
    crop = config.get("crop")
    prior_fn = diffusion_mod.diffusion_prior

    def init(key: jax.Array, x: jax.Array) -> Any:
        params = diffusion_mod.init_diffusion(key, config)
        return {"params": params, "ema": params, "opt_state": opt.init(params)}

    def step(state: Any, key: jax.Array, x: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
        k_crop, k_loss = jax.random.split(key)
        if crop is not None:
            x = random_crops(k_crop, x, crop)
        value, grads = jax.value_and_grad(lambda p: jnp.mean(diffusion_mod.edm_loss(p, k_loss, x, config)))(
            state["params"])
        updates, opt_state = opt.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        # EMA with warm-up (decay min(0.999, (1 + t) / (10 + t)) after t updates): a constant 0.999 keeps e^(-t/1000)
        # of the untrained network for t steps (measured on photos at step 500: validation loss 0.66 for that EMA,
        # 0.21 for the raw weights); the warm-up forgets it within a few hundred steps
        t = state["opt_state"][1][0].count.astype(jnp.float32)  # Adam's update count: the steps done before this one
        decay = jnp.minimum(ema_decay, (1.0 + t) / (10.0 + t))
        ema = jax.tree_util.tree_map(lambda e, p: decay * e + (1 - decay) * p, state["ema"], params)
        return {"params": params, "ema": ema, "opt_state": opt_state}, {"loss": value}

    def evaluate(state: Any, key: jax.Array, x: jax.Array) -> jax.Array:
        return diffusion_mod.edm_loss(state["ema"], key, x, config)

    def sample(params: Any, key: jax.Array, n: int) -> jax.Array:
        # photos trained on crops: the sample grid shows crops too (a full-size grid costs minutes on a CPU)
        prior = prior_fn(params, config)
        shape = prior.latent_shape if crop is None else (*crop, prior.latent_shape[-1])
        z = jax.random.normal(key, (n, *shape))
        return prior.generate(params, z)

    return TrainTask("diffusion", config, init, step, evaluate, lambda s: s["ema"], sample, "EDM loss/pixel", True,
                     {**hyper, "ema": ema_decay, "ema_warmup": "min(ema, (1 + t) / (10 + t))",
                      "warmup_steps": warmup_steps, "clip": 1.0})


def _dcgan_task(config: dict[str, Any], lr: float, hyper: dict[str, Any]) -> TrainTask:
    from .dcgan import dcgan_train_step

    beta1, ema = 0.5, 0.999
    gan_step = dcgan_train_step(config, lr, beta1, ema)
    opt = optax.adam(lr, b1=beta1)
    _, disc = dcgan_mod.dcgan_modules(config)
    funcs = dcgan_mod.dcgan_functions(config)

    def init(key: jax.Array, x: jax.Array) -> Any:
        params = dcgan_mod.init_dcgan(key, config)
        gan = {"params": params, "ema": params["generator"],
               "opt_state": {name: opt.init(p) for name, p in params.items()}}
        return {"gan": gan, "t": jnp.zeros((), jnp.float32)}

    def step(state: Any, key: jax.Array, x: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
        gan, d_loss, g_loss = gan_step(state["gan"], state["t"], key, x)
        return {"gan": gan, "t": state["t"] + 1}, {"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss}

    def evaluate(state: Any, key: jax.Array, x: jax.Array) -> jax.Array:
        logits = cast(jax.Array, disc.apply({"params": state["gan"]["params"]["discriminator"]}, x))
        return jax.nn.softplus(-jnp.reshape(logits, (x.shape[0], -1)).mean(-1))

    def export(state: Any) -> Any:
        return {"generator": state["gan"]["ema"], "discriminator": state["gan"]["params"]["discriminator"]}

    def sample(params: Any, key: jax.Array, n: int) -> jax.Array:
        z = jax.random.normal(key, (n, config["latent"]))
        return jax.vmap(funcs["generate"], (None, 0))(params, z)

    return TrainTask("dcgan", config, init, step, evaluate, export, sample, "softplus(-D(x))", False,
                     {**hyper, "beta1": beta1, "ema": ema, "loss": "ns"})


def train_prior(model: str, data: str | ImageDataset, out: str | None = None, *,
                size: tuple[int, int] | str | None = None, gray: bool = False, flip: bool = False,
                validation: float | str = 0.1, config: dict[str, Any] | None = None, num_steps: int = 2000,
                batch_size: int = 64, learning_rate: float | None = None, eval_every: int | None = None,
                seed: int = 0, resume: bool = False, mesh: Any = "auto", progress: bool = True,
                command: str = "") -> tuple[Any, dict[str, Any]]:
    """Train a ``model`` (:data:`MODELS`) prior on ``data`` (a spec for :func:`~genprior_jax.datasets.load_dataset`,
    or an :class:`~genprior_jax.datasets.ImageDataset`) at its size; returns ``(params, metrics)`` and writes the
    checkpoint to ``out`` (``load_prior(out)`` then builds the prior). ``config``: overrides of the sized
    architecture. Seed ``seed`` gives the split, the initialization, the data order and every step's draws.

    Example: ``train_prior("flow", "faces/", "priors/faces-glow", size="64x64", flip=True, num_steps=5000)``."""
    if isinstance(data, ImageDataset):
        dataset = data
    else:
        dataset = load_dataset(data, size=size, gray=gray, validation=validation, seed=seed)
    shape = tuple(dataset.train.shape[1:])
    task = make_task(model, shape, config, learning_rate=learning_rate, num_steps=num_steps)
    return train(task, dataset, jax.random.key(seed), batch_size=batch_size, num_steps=num_steps,
                 eval_every=eval_every, out=out, resume=resume, flip=flip, mesh=mesh, progress=progress,
                 command=command, seed=seed)
