"""Command-line interface: ``genprior-jax {demo,train,posterior,reconstruct,bench,priors}``."""

from __future__ import annotations

import argparse
import inspect
import os
import shlex
import sys
from typing import Any


def _default(value: float | int | None, default: float | int, name: str) -> float | int:
    """A training number: the model's default when not given; a given one must be positive (0 means 0, refused)."""
    if value is None:
        return default
    if not value > 0 or value != value:
        raise ValueError(f"{name}: expected a positive number, got {value}")
    return value


def training_defaults(model: str) -> dict[str, Any]:
    """The keyword defaults of the training function behind ``train <model>`` (read from its signature: one source
    for the API and the CLI; ``ambient-dcgan`` passes its optimizer keywords on to ``train_dcgan``)."""
    from . import training

    def kw(fn: Any) -> dict[str, Any]:
        return {n: p.default for n, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}

    if model == "ambient-dcgan":
        return {**kw(training.train_dcgan), **kw(training.train_ambient_dcgan)}
    return kw({"vae": training.train_vae, "flow": training.train_flow, "dcgan": training.train_dcgan,
               "patch-flow": training.train_patch_flow}[model])


def _digits(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        digits = tuple(int(d) for d in text.split(","))
    except ValueError:
        raise ValueError(f"--digits: expected comma-separated classes 0-9, e.g. 0,1,2; got {text!r}") from None
    if not digits or any(not 0 <= d <= 9 for d in digits) or len(set(digits)) != len(digits):
        raise ValueError(f"--digits: expected distinct classes 0-9, got {text!r}")
    return digits


# trainers that write <out>.state and take --resume (and every model with --data)
RESUMABLE = ("flow", "dcgan", "ambient-dcgan")


def _check_out(path: str) -> None:
    """``--out``: ``path`` is a writable directory, or can be created (its nearest existing ancestor is a writable
    directory); checked before any work, so a bad ``--out`` is found before a solve or a training run."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise NotADirectoryError(f"--out: {path!r} exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"--out: directory {path!r} is not writable")
        return
    ancestor = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise NotADirectoryError(f"--out: cannot create directory {path!r}: {ancestor!r} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"--out: cannot create directory {path!r}: {ancestor!r} is not writable")


def _check_train_out(args: argparse.Namespace) -> None:
    """Check ``--out`` before training (creatable and writable, as the ``<out>.state`` beside it) and never
    overwrite a checkpoint by accident: an existing one needs ``--resume`` (continue it) or ``--overwrite``."""
    _check_out(args.out)
    resumable = args.model in RESUMABLE or args.data is not None
    if resumable:
        _check_out(args.out.rstrip(os.sep) + ".state")
    if args.resume and args.overwrite:
        raise ValueError("train: --resume continues the checkpoint and --overwrite replaces it; give one of them")
    if os.path.isfile(os.path.join(args.out, "config.json")) and not (args.resume or args.overwrite):
        how = ("pass --resume to continue it or --overwrite to replace it" if resumable else
               f"pass --overwrite to replace it (train {args.model} cannot resume) or choose another --out")
        raise ValueError(f"train {args.model}: {args.out!r} holds a checkpoint; {how}")


def _train_ambient(args: argparse.Namespace, command: str) -> int:
    import jax
    import numpy as np

    from .data import load_mnist
    from .priors import load_prior
    from .sample_quality import mnist_classifier, sample_scores
    from .training import train_ambient_dcgan

    mode = args.mode or "ambient"
    if args.measurement is None and mode != "clean":
        raise ValueError("train ambient-dcgan: --measurement SPEC is required, e.g. block-pixels:p=0.5, "
                         "blur:gaussian=1.0,noise=0.1, keep-patch:size=14, gaussian:m=4")
    if args.epochs is not None or args.digits is not None or args.config is not None:
        raise ValueError("train ambient-dcgan: --epochs, --digits and --config do not apply (use --steps)")
    d = training_defaults("ambient-dcgan")
    _, metrics = train_ambient_dcgan(args.measurement, mode, seed=args.seed,
                                     steps=int(_default(args.steps, d["steps"], "--steps")),
                                     batch_size=int(_default(args.batch_size, d["batch_size"], "--batch-size")),
                                     learning_rate=float(_default(args.lr, d["learning_rate"], "--lr")), out=args.out,
                                     resume=args.resume, command=command, draws=args.draws or "once",
                                     **_gan_loss(args),
                                     **({} if args.fake_draws is None else {"fake_draws": args.fake_draws}))
    prior = load_prior(args.out)
    scores = sample_scores(mnist_classifier(0), np.asarray(prior.sample(jax.random.key(12345), 500)),
                           load_mnist("test").images)
    print(f"{metrics['steps']} steps ({mode}, {args.measurement}): inception score {scores['inception_score']:.2f}, "
          f"Frechet distance {scores['frechet_distance']:.1f} (500 samples vs the test digits), "
          f"{metrics['train_seconds']:.0f} s; checkpoint: {args.out}")
    return 0


def _gan_loss(args: argparse.Namespace) -> dict[str, Any]:
    """``train_dcgan`` keywords for ``--loss`` / ``--d-iters``; WGAN-GP takes the AmbientGAN reference code's
    settings (5 critic updates per step, penalty 10, Adam betas (0.5, 0.9999))."""
    loss = args.loss or "ns"
    if loss == "ns":
        if args.d_iters not in (None, 1):
            raise ValueError(f"train: --d-iters {args.d_iters} needs --loss wgan-gp (the 'ns' loss makes one D update)")
        return {}
    from .training import WGAN_GP_REFERENCE

    return {**WGAN_GP_REFERENCE, "d_iters": int(_default(args.d_iters, WGAN_GP_REFERENCE["d_iters"], "--d-iters"))}


DATA_ONLY = ("size", "gray", "flip", "config_set", "eval_every", "validation", "coordinator")


def _validation_arg(text: str | None) -> float | str:
    if text is None:
        return 0.1
    try:
        return float(text)
    except ValueError:
        return text


def _train_data(args: argparse.Namespace, command: str) -> int:
    """``train {vae,flow,dcgan} --data SPEC``: the sized architecture on the user's images, data-parallel."""
    from .training import MODELS, parse_overrides, train_prior

    if args.model not in MODELS:
        raise ValueError(f"train {args.model}: --data applies to {', '.join(MODELS)} (patch-flow trains on patches "
                         "of scikit-image's photos; ambient-dcgan on measured digits)")
    given = [f"--{n.replace('_', '-')}" for n in ("epochs", "patience", "digits", "config", "lr_decay", "eval_steps",
                                                   "loss", "d_iters") if getattr(args, n) is not None]
    if given:
        raise ValueError(f"train {args.model} --data: {', '.join(given)} do not apply (use --steps, --eval-every and "
                         "--config-set key=value)")
    if args.coordinator is not None:  # several processes (hosts): each runs this command with its --process-id
        import jax

        host, _, nproc = args.coordinator.partition(",")
        jax.distributed.initialize(host, num_processes=int(nproc or 0) or None, process_id=args.process_id)
    _, metrics = train_prior(args.model, args.data, args.out, size=args.size, gray=args.gray, flip=args.flip,
                             validation=_validation_arg(args.validation),
                             config=parse_overrides(args.config_set),
                             num_steps=int(_default(args.steps, 2000, "--steps")),
                             batch_size=int(_default(args.batch_size, 64, "--batch-size")),
                             learning_rate=None if args.lr is None else float(_default(args.lr, 1.0, "--lr")),
                             eval_every=args.eval_every, seed=args.seed, resume=args.resume, command=command)
    print(f"{metrics['steps']} steps on {metrics['data']['num_train']} images {metrics['data']['image_shape']} "
          f"({metrics['devices']} device(s)): best validation {metrics['val_loss']:.4g} {metrics['loss_unit']} at "
          f"step {metrics['best_step']}, {metrics['images_per_second']:.0f} images/s, "
          f"{metrics['train_seconds']:.0f} s; checkpoint: {args.out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .training import train_dcgan, train_flow, train_patch_flow, train_vae

    command = "genprior-jax " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    _check_train_out(args)
    if args.data is None and args.model == "diffusion":  # no shipped recipe: the shared loop on the digits
        args.data = "mnist"
    if args.data is not None:
        return _train_data(args, command)
    data_only = [f"--{n.replace('_', '-')}" for n in DATA_ONLY if getattr(args, n) not in (None, False)]
    if data_only:
        raise ValueError(f"train {args.model}: {', '.join(data_only)} need --data SPEC (without it the model trains "
                         "on the embedded digits with its shipped recipe)")
    lr = args.lr
    if args.lr_decay is not None and args.model != "flow":
        raise ValueError(f"train {args.model}: --lr-decay applies to flow only")
    if args.model not in ("dcgan", "ambient-dcgan") and (args.loss is not None or args.d_iters is not None):
        raise ValueError(f"train {args.model}: --loss and --d-iters apply to dcgan and ambient-dcgan only")
    if args.model != "ambient-dcgan" and (args.measurement is not None or args.mode is not None
                                          or args.draws is not None or args.fake_draws is not None):
        raise ValueError(f"train {args.model}: --measurement, --mode, --draws and --fake-draws apply to "
                         "ambient-dcgan only")
    if args.model == "patch-flow":
        if args.resume or args.digits is not None:
            raise ValueError("train patch-flow: --resume and --digits do not apply (it trains in minutes)")
        d = training_defaults("patch-flow")
        _, metrics = train_patch_flow(args.config or d["config_name"], seed=args.seed,
                                      epochs=int(_default(args.epochs, d["epochs"], "--epochs")),
                                      steps_per_epoch=int(_default(args.steps, d["steps_per_epoch"], "--steps")),
                                      batch_size=int(_default(args.batch_size, d["batch_size"], "--batch-size")),
                                      learning_rate=float(_default(lr, d["learning_rate"], "--lr")), out=args.out,
                                      command=command)
        print(f"best epoch {metrics['best_epoch']} of {metrics['epochs_run']}: held-out patch NLL "
              f"{metrics['test_nll']:.2f} nats ({metrics['test_bpd']:.3f} bits/dim), {metrics['train_seconds']:.0f} s;"
              f" checkpoint: {args.out}")
        return 0
    if args.model == "ambient-dcgan":
        return _train_ambient(args, command)
    if args.model == "dcgan":
        if args.epochs is not None or args.digits is not None:
            raise ValueError("train dcgan: --epochs and --digits do not apply (use --steps)")
        d = training_defaults("dcgan")
        _, metrics = train_dcgan(args.config or d["config_name"], seed=args.seed,
                                 steps=int(_default(args.steps, d["steps"], "--steps")),
                                 batch_size=int(_default(args.batch_size, d["batch_size"], "--batch-size")),
                                 learning_rate=float(_default(lr, d["learning_rate"], "--lr")), out=args.out,
                                 resume=args.resume, eval_steps=d["eval_steps"] if args.eval_steps is None
                                 else args.eval_steps, command=command,
                                 **_gan_loss(args))
        quality = (f", CSGM validation MSE {metrics['csgm_val_mse']:.4f} at m=100" if "csgm_val_mse" in metrics
                   else "")
        print(f"{metrics['steps']} steps: d loss {metrics['final_d_loss']:.3f}, g loss {metrics['final_g_loss']:.3f}"
              f"{quality}, {metrics['train_seconds']:.0f} s; checkpoint: {args.out}")
        return 0
    if args.steps is not None:
        raise ValueError(f"train {args.model}: --steps applies to dcgan only (use --epochs)")
    if args.model == "flow":
        d = training_defaults("flow")
        _, metrics = train_flow(args.config or d["config_name"], seed=args.seed,
                                epochs=int(_default(args.epochs, d["epochs"], "--epochs")),
                                batch_size=int(_default(args.batch_size, d["batch_size"], "--batch-size")),
                                learning_rate=float(_default(lr, d["learning_rate"], "--lr")),
                                digits=_digits(args.digits),
                                out=args.out, resume=args.resume, command=command,
                                decay=args.lr_decay or "cosine")
        print(f"best epoch {metrics['best_epoch']} of {metrics['epochs_run']}: validation "
              f"{metrics['val_bpd']:.3f} bits/dim, test {metrics['test_bpd']:.3f} bits/dim, "
              f"{metrics['train_seconds']:.0f} s; checkpoint: {args.out}")
        return 0
    if args.resume:
        raise ValueError("train vae: --resume is not supported (the VAE has no resumable state; it trains in about a "
                         "minute: rerun with --overwrite)")
    if args.digits is not None or args.config is not None:
        raise ValueError("train vae: --digits and --config do not apply to the VAE")
    d = training_defaults("vae")
    _, metrics = train_vae(seed=args.seed, epochs=int(_default(args.epochs, d["epochs"], "--epochs")),
                           batch_size=int(_default(args.batch_size, d["batch_size"], "--batch-size")),
                           learning_rate=float(_default(lr, d["learning_rate"], "--lr")),
                           patience=int(_default(args.patience, d["patience"], "--patience")), out=args.out,
                           command=command)
    print(f"best epoch {metrics['best_epoch']} of {metrics['epochs_run']}: validation ELBO "
          f"{metrics['val_elbo']:.2f}, test ELBO {metrics['test_elbo']:.2f} nats/image, "
          f"{metrics['train_seconds']:.0f} s; checkpoint: {args.out}")
    return 0


def _cmd_priors(args: argparse.Namespace) -> int:
    from .priors import available_priors, load_prior

    for name in available_priors():
        print(load_prior(name))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    _prepare_out(args.out)
    run_demo(out_dir=args.out, n_images=args.n, m=args.m, noise=args.noise, seed=args.seed,
             steps=args.steps, restarts=args.restarts, prior=args.prior)
    return 0


def _model_error_arg(text: str) -> float | str:
    """``--model-error``: ``auto`` or a finite number >= 0."""
    if text == "auto":
        return "auto"
    try:
        tau = float(text)
    except ValueError:
        raise ValueError(f"--model-error: expected a number >= 0 or 'auto', got {text!r}") from None
    if not (tau >= 0 and tau != float("inf")):
        raise ValueError(f"--model-error: expected a number >= 0 or 'auto', got {text!r}")
    return tau


def _prepare_out(path: str) -> str:
    """Create the output directory before any work (a bad ``--out`` is found before the solve, not after); a
    failure names ``--out`` and the path, not a bare errno."""
    _check_out(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out: cannot create directory {path!r}: {err.strerror or err}") from None
    return path


def _tol_arg(text: str) -> float | str:
    """``--tol``: ``none`` (run every step) or a finite number >= 0 (the run option ``tol``)."""
    if text.lower() == "none":
        return "none"
    try:
        tol = float(text)
    except ValueError:
        raise ValueError(f"--tol: expected a number >= 0 or 'none', got {text!r}") from None
    if not (tol >= 0 and tol != float("inf")):
        raise ValueError(f"--tol: expected a number >= 0 or 'none', got {text!r}")
    return tol


def _run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The run-option keywords of the generic flags: ``{}`` (the method's defaults), ``{"tol": None}`` for
    ``--tol none`` (exactly ``--steps`` steps) or ``{"tol": x}``."""
    if args.tol is None:
        return {}
    tol = _tol_arg(args.tol)
    return {"tol": None if tol == "none" else tol}


def _cmd_posterior(args: argparse.Namespace) -> int:
    from .demo import run_posterior_demo

    for dest in ("samples", "draws", "num_samples"):  # --samples, and --draws its old name
        value = getattr(args, dest, None)
        if value is not None and value < 1:
            raise ValueError(f"--samples (--draws): expected a positive number of posterior samples, got {value}")
    run_options = _run_options(args)
    if args.method == "langevin" and run_options.get("tol") is not None:
        raise ValueError("--tol: langevin is a sampler with no objective to settle (it runs --steps); give --tol none "
                         "or leave it out")
    _prepare_out(args.out)
    run_posterior_demo(out_dir=args.out, prior=args.prior, operator=args.operator, method=args.method,
                       n_images=args.n, noise=args.noise, seed=args.seed, steps=args.steps, num_samples=args.samples,
                       model_error=_model_error_arg(args.model_error), **run_options)
    return 0


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    import jax
    import numpy as np

    from .data import load_image_files
    from .datasets import parse_size
    from .operators import make_operator
    from .priors import load_prior
    from .reconstruction import reconstruct_images, write_outputs
    from .solvers import Status, get_method

    method = get_method(args.method)
    if args.prior is not None and not method.needs_prior:
        with_prior = ", ".join(name for name in _method_names() if get_method(name).needs_prior)
        raise ValueError(f"--prior: method {args.method!r} uses no trained prior; leave --prior out, or choose a "
                         f"method with a prior ({with_prior})")
    run_options = _run_options(args)
    _prepare_out(args.out)
    prior = None
    if method.needs_prior:
        args.prior = args.prior or method.default_prior
        prior = load_prior(args.prior)
    files = load_image_files(args.images, parse_size(args.size), args.gray)
    if prior is not None and not method.any_size:  # a trained prior has one image shape: never resize silently
        wrong = [(n, img.shape) for n, img in files if tuple(img.shape) != tuple(prior.image_shape)]
        if wrong:
            raise ValueError(f"prior {prior.name!r} generates images of shape {tuple(prior.image_shape)}; "
                             f"{len(wrong)} image(s) differ, e.g. {wrong[0][0]!r} {wrong[0][1]}: use a method that "
                             "needs no trained prior (tv, lasso-*, dip) or the patch prior (patchnr --prior "
                             "patch-flow) at native size, or --size / --gray")
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, (_, img) in enumerate(files):
        by_shape.setdefault(tuple(img.shape), []).append(i)
    k_op, k_run = jax.random.split(jax.random.key(args.seed))
    groups = []
    for shape, idx in by_shape.items():  # one operator and one compilation per shape
        op = make_operator(args.operator, k_op, shape)
        names, images = [files[i][0] for i in idx], np.stack([files[i][1] for i in idx])
        print(f"{args.method}: {len(images)} image(s) {shape}, operator {args.operator}, noise std {args.noise}")
        result = reconstruct_images(args.method, images, op, k_run, prior=prior, noise=args.noise,
                                    chunk_size=args.chunk, steps=args.steps, restarts=args.restarts, lam=args.lam,
                                    lr=args.lr, progress=not args.no_progress, **run_options)
        groups.append((names, images, result))
    config = {k: v for k, v in vars(args).items() if k != "func"}
    paths = write_outputs(args.out, groups, config)
    with open(paths["md"]) as fh:
        print(fh.read().rstrip())
    print(f"wrote {len(files)} reconstructions to {args.out}/images (PNG) and {args.out}/arrays (.npy), "
          + ", ".join(paths.values()))
    return 0 if any((g[2]["status"] != Status.NONFINITE).any() for g in groups) else 1


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import SUITE, format_report, plan, run_suite

    if args.list:
        for name, run_args in plan(args.size, args.only):
            how = "no run at this size" if run_args is None else " ".join([SUITE[name].script, *run_args])
            print(f"{name}: {how}")
        return 0
    report = run_suite(args.size, args.only, args.benchmarks_dir)
    print(format_report(report))
    return 0 if all(not str(r["status"]).startswith("failed") for r in report.values()) else 1


def _method_names() -> list[str]:
    from .solvers.methods import METHODS

    return sorted(METHODS)


def _posterior_method_names() -> list[str]:
    """The methods whose registry entry carries a posterior summary (``posterior`` runs them)."""
    from .solvers.methods import METHODS

    return [name for name, m in METHODS.items() if m.posterior]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genprior-jax",
                                     description="Inverse problems with deep generative priors (JAX).")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the Python traceback of a failure")
    sub_kw = {"parents": [common], "formatter_class": argparse.ArgumentDefaultsHelpFormatter}
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser("demo", **sub_kw, help="CSGM demo: recover held-out MNIST digits from Gaussian measurements "
                                       "(VAE vs Lasso-DCT)")
    demo.add_argument("--out", default="demo_out", help="output directory for the PNG grid and metrics JSON")
    demo.add_argument("--n", type=int, default=16, help="number of held-out test digits")
    demo.add_argument("--m", type=int, default=100, help="number of Gaussian measurements")
    demo.add_argument("--noise", type=float, default=0.01,
                      help="noise std per measurement entry, as in every subcommand (0.01 at m = 100: norm ~0.1)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--steps", type=int, default=1000, help="Adam steps per restart")
    demo.add_argument("--restarts", type=int, default=10)
    demo.add_argument("--prior", default="vae-mnist", help="prior name or checkpoint path")
    demo.set_defaults(func=_cmd_demo)

    train = sub.add_parser("train", **sub_kw, help="train a prior on your images (--data SPEC --size HxW: vae, flow, "
                           "dcgan, sized from the data, on every device) or on the embedded MNIST digits with the "
                           "shipped recipes (patch-flow: on scikit-image's photos); writes a checkpoint")
    train.add_argument("model", choices=["vae", "flow", "dcgan", "diffusion", "patch-flow", "ambient-dcgan"],
                       help="which prior to train (ambient-dcgan: a DCGAN learned from measured digits only; "
                            "diffusion: a score-based U-Net, --data mnist unless given)")
    train.add_argument("--out", required=True, help="checkpoint directory to write")
    train.add_argument("--seed", type=int, default=0)
    # the defaults shown are the training functions' (training_defaults): one source for the API and the CLI
    td = {m: training_defaults(m) for m in ("vae", "flow", "dcgan", "patch-flow", "ambient-dcgan")}
    train.add_argument("--epochs", type=int, default=None,
                       help=f"maximum epochs (vae: {td['vae']['epochs']} with early stopping on validation ELBO; "
                            f"flow: {td['flow']['epochs']}; patch-flow: {td['patch-flow']['epochs']})")
    train.add_argument("--patience", type=int, default=None,
                       help=f"vae: stop after this many epochs without improvement (default {td['vae']['patience']})")
    train.add_argument("--steps", type=int, default=None,
                       help=f"dcgan, ambient-dcgan: training steps, one D and one G update each (default "
                            f"{td['dcgan']['steps']}); patch-flow: steps per epoch (default "
                            f"{td['patch-flow']['steps_per_epoch']})")
    train.add_argument("--eval-steps", type=int, default=None,
                       help=f"dcgan: CSGM steps of the final quality check on 16 validation digits (default "
                            f"{td['dcgan']['eval_steps']}; 0: skip it)")
    train.add_argument("--batch-size", type=int, default=None,
                       help=f"default {td['vae']['batch_size']} (vae), {td['flow']['batch_size']} (flow), "
                            f"{td['dcgan']['batch_size']} (dcgan, ambient-dcgan), {td['patch-flow']['batch_size']} "
                            "(patch-flow)")
    train.add_argument("--config", default=None,
                       help=f"flow: {td['flow']['config_name']} (default) or realnvp-mnist; dcgan: "
                            f"{td['dcgan']['config_name']} (default); patch-flow: {td['patch-flow']['config_name']} "
                            "(default)")
    train.add_argument("--digits", default=None, help="flow: train on these classes only, e.g. 0,1,2,3,4")
    train.add_argument("--resume", action="store_true",
                       help="continue from <out>.state (flow, dcgan, diffusion and every model trained with --data)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace a checkpoint already in --out (without it, an existing checkpoint is refused)")
    train.add_argument("--lr-decay", choices=["cosine", "constant"], default=None,
                       help="flow: learning-rate schedule after the warm-up (default cosine to 1 %% of --lr)")
    train.add_argument("--measurement", default=None,
                       help="ambient-dcgan: the measurement model, e.g. block-pixels:p=0.5, "
                            "blur:gaussian=1.0,noise=0.1, keep-patch:size=14, gaussian:m=4; add theta=1 to show "
                            "the discriminator the draw as well (the mask: block-pixels:p=0.5,theta=1)")
    train.add_argument("--mode", choices=["ambient", "ignore", "unmeasure", "clean"], default=None,
                       help="ambient-dcgan: ambient (default; D sees measurements), ignore (baseline: a DCGAN on the "
                            "measurements as if clean), unmeasure (baseline: on TV-inverted measurements), clean")
    train.add_argument("--draws", choices=["once", "fresh"], default=None,
                       help="ambient-dcgan: once (default; each training digit measured once) or fresh (measured "
                            "afresh at every step, the AmbientGAN reference code's protocol)")
    train.add_argument("--loss", choices=["ns", "wgan-gp"], default=None,
                       help="dcgan, ambient-dcgan: ns (default, non-saturating) or wgan-gp (Wasserstein with gradient "
                            "penalty 10, Adam betas 0.5 / 0.9999: the AmbientGAN reference code's MNIST model)")
    train.add_argument("--fake-draws", type=int, default=None,
                       help="ambient-dcgan --mode ambient: measurements simulated per generated image (default 1)")
    train.add_argument("--d-iters", type=int, default=None,
                       help="wgan-gp: critic updates per step, each on its own batch (default 5)")
    train.add_argument("--lr", type=float, default=None,
                       help="default " + ", ".join(f"{td[m]['learning_rate']:g} ({m})" for m in td))
    data = train.add_argument_group("your images (vae, flow, dcgan)")
    data.add_argument("--data", default=None, metavar="SPEC",
                      help="train on these images: a folder (recursive; PNG, JPEG, TIFF, PGM/PPM; 8/16 bit), an .npy "
                           "/ .npz array (N, H, W[, C]), tfds:NAME[:SPLIT] or mnist; --steps (default 2000), "
                           "--batch-size (default 64, over all devices), --lr, --resume apply")
    data.add_argument("--size", default=None, metavar="HxW", help="centre-crop and resize every image to HxW")
    data.add_argument("--gray", action="store_true", help="convert colour images to grey")
    data.add_argument("--flip", action="store_true", help="random left-right flips")
    data.add_argument("--validation", default=None, metavar="FRACTION|SPEC",
                      help="fraction of --data held out for validation, split by --seed (default 0.1), or a second "
                           "spec holding the validation images (e.g. other people's faces)")
    data.add_argument("--config-set", action="append", default=None, metavar="KEY=VALUE",
                      help="override the architecture sized from the data, e.g. hidden=128 or channels=(32,64); "
                           "repeatable")
    data.add_argument("--eval-every", type=int, default=None,
                      help="steps between validation, sample grid and checkpoint (default: 10 per run)")
    data.add_argument("--coordinator", default=None, metavar="HOST:PORT[,N]",
                      help="several processes: jax.distributed.initialize(HOST:PORT, N); run the same command in "
                           "each with its --process-id")
    data.add_argument("--process-id", type=int, default=None, help="this process's rank (with --coordinator)")
    train.set_defaults(func=_cmd_train)

    post = sub.add_parser("posterior", **sub_kw,
                          help="posterior sampling (VI or Langevin): mean, std map and samples as a PNG")
    post.add_argument("--out", default="posterior_out")
    post.add_argument("--prior", default="vae-mnist", help="prior name or checkpoint path")
    post.add_argument("--operator", default="box:size=10",
                      help="operator spec, e.g. box:size=10, mask:missing=0.6, sr:factor=2")
    post.add_argument("--method", choices=_posterior_method_names(), default="vi")
    post.add_argument("--n", type=int, default=4, help="number of held-out test digits")
    post.add_argument("--noise", type=float, default=0.05, help="noise std per measurement entry (known)")
    post.add_argument("--steps", type=int, default=1000)
    post.add_argument("--samples", "--draws", dest="samples", type=int, default=None,
                      help="posterior samples for the mean / std (default: VI 16, Langevin 8 per chain; a multiple of "
                           "the 4 chains for Langevin); --draws is its old name")
    post.add_argument("--seed", type=int, default=0)
    post.add_argument("--tol", default=None, metavar="TOL|none",
                      help="relative objective change that stops a solve early (run option tol; default: the "
                           "method's); 'none' runs exactly --steps steps")
    post.add_argument("--model-error", default="0", metavar="TAU",
                      help="std of the image-space residual x = G(z) + e the prior cannot represent: a number, or "
                           "'auto' to estimate it from a MAP fit (widens the intervals to cover the truth); 0: none")
    post.set_defaults(func=_cmd_posterior)

    rec = sub.add_parser("reconstruct", **sub_kw, help="reconstruct a set of images with any method and operator")
    rec.add_argument("--method", default="csgm", choices=_method_names(),
                     help="reconstruction method (the registry genprior_jax.solvers.METHODS)")
    rec.add_argument("--prior", default=None,
                     help="prior name or checkpoint path, for methods with a prior (default: patch-flow for patchnr, "
                          "diffusion-mnist for dps, diffpir, ald and pnp, vae-mnist for the others)")
    rec.add_argument("--operator", default="gaussian:m=100",
                     help="operator spec, e.g. gaussian:m=100, mask:missing=0.6, box:size=7, blur:uniform=7, "
                          "sr:factor=2")
    rec.add_argument("--noise", type=float, default=0.01, help="noise std per measurement entry")
    rec.add_argument("--images", default="mnist-test:16",
                     help="mnist-<split>[:N], an image file or a directory of images (read at native size, "
                          "8/16-bit, grey/RGB/RGBA, PNG/JPEG/TIFF/PGM/PPM)")
    rec.add_argument("--size", default=None, metavar="HxW",
                     help="centre-crop and resize every image to HxW, as training's --size (default: native size)")
    rec.add_argument("--no-progress", action="store_true",
                     help="no step-level progress bar (its host callbacks keep JAX from caching the solve's "
                          "compiled program on disk; without them a repeated call with the same shapes skips the "
                          "compile)")
    rec.add_argument("--gray", action="store_true", help="convert colour images to grey")
    rec.add_argument("--out", default="reconstruct_out")
    rec.add_argument("--chunk", type=int, default=64, help="images per compiled solve (bounds memory)")
    rec.add_argument("--steps", type=int, default=None, help="override the method's number of steps")
    rec.add_argument("--restarts", type=int, default=None, help="override the method's restarts")
    rec.add_argument("--lam", type=float, default=None, help="override the method's regularization weight")
    rec.add_argument("--lr", type=float, default=None, help="override the method's step size")
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument("--tol", default=None, metavar="TOL|none",
                     help="stopping tolerance (run option tol; default: the method's); 'none' runs exactly --steps "
                          "steps")
    rec.set_defaults(func=_cmd_reconstruct)

    bench = sub.add_parser("bench", **sub_kw, help="run the benchmark suite (benchmarks/*.py) at a chosen size")
    bench.add_argument("--size", choices=["quick", "full"], default="quick",
                       help="quick: each script's smoke size (results *_quick*, git-ignored); full: committed settings")
    bench.add_argument("--only", nargs="+", default=None, help="benchmark names (see --list)")
    bench.add_argument("--list", action="store_true", help="print what would run and exit")
    bench.add_argument("--benchmarks-dir", default=None, help="the benchmarks/ folder of a source checkout")
    bench.set_defaults(func=_cmd_bench)

    priors = sub.add_parser("priors", **sub_kw, help="list the priors shipped with the package")
    priors.set_defaults(func=_cmd_priors)
    return parser


USAGE_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError)


def _enable_compile_cache() -> None:
    """The persistent compilation cache for the command line (:func:`genprior_jax.cache.enable_compilation_cache`)."""
    from .cache import enable_compilation_cache

    enable_compilation_cache()


def main(argv: list[str] | None = None) -> int:
    """Run a command; a user error prints one line (``genprior-jax CMD: error: ...``) and returns 2, a runtime
    failure returns 1 (``--debug``: the traceback instead)."""
    args = build_parser().parse_args(argv)
    if args.command in ("demo", "reconstruct", "posterior"):
        _enable_compile_cache()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"genprior-jax {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the top-level handler: every failure becomes one line
        if args.debug:
            raise
        kind = "error" if isinstance(err, USAGE_ERRORS) else f"failed ({type(err).__name__})"
        print(f"genprior-jax {args.command}: {kind}: {err} (--debug for the traceback)", file=sys.stderr)
        return 2 if isinstance(err, USAGE_ERRORS) else 1


if __name__ == "__main__":
    sys.exit(main())
