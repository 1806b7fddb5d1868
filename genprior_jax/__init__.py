"""genprior_jax: imaging inverse problems with deep generative priors, in JAX.

Quick start::

    import jax
    import genprior_jax as gp

    prior = gp.load_prior("vae-mnist")
    x = gp.load_mnist("test", n=16).images                      # (16, 28, 28, 1) in [0, 1]
    k_op, k_noise, k_solve = jax.random.split(jax.random.key(0), 3)
    op = gp.operators.GaussianCS(k_op, (28, 28, 1), m=100)       # A with N(0, 1/m) entries
    y = gp.measure(k_noise, op, x, gp.GaussianNoise(0.1 / 100**0.5))  # one noise model, a batch of images
    res = gp.csgm(prior, k_solve, y, op, lam=0.05)               # res.x: (16, 28, 28, 1)
    print(gp.metrics.mse(x, res.x).mean())
"""

from . import adversarial, metrics, operators, priors, solvers, transforms
from .cache import enable_compilation_cache
from .checkpoint import load_checkpoint, save_checkpoint
from .data import Dataset, DatasetUnavailableError, load_mnist, load_tfds
from .datasets import ImageDataset, load_dataset
from .metrics import mse, psnr, ssim
from .operators import GaussianNoise, LogisticNoise, check_adjoint, measure, noise_std_for_norm
from .priors import Prior, available_priors, load_prior
from .solvers import (
                      Reconstruction,
                      Result,
                      RunOptions,
                      Solver,
                      Status,
                      ald,
                      analysis,
                      asim,
                      bm3d_denoise,
                      csgm,
                      diffpir,
                      dip,
                      dps,
                      langevin,
                      lasso,
                      map_estimate,
                      patchnr,
                      pnp,
                      reconstruct,
                      run,
                      tv,
                      variational,
)
from .training import train_prior

__version__ = "0.1.0"

__all__ = [
    "Dataset",
    "DatasetUnavailableError",
    "GaussianNoise",
    "ImageDataset",
    "LogisticNoise",
    "Prior",
    "Reconstruction",
    "Result",
    "RunOptions",
    "Solver",
    "Status",
    "adversarial",
    "ald",
    "analysis",
    "asim",
    "available_priors",
    "bm3d_denoise",
    "check_adjoint",
    "csgm",
    "diffpir",
    "dip",
    "dps",
    "enable_compilation_cache",
    "langevin",
    "lasso",
    "load_checkpoint",
    "load_dataset",
    "load_mnist",
    "load_prior",
    "load_tfds",
    "map_estimate",
    "patchnr",
    "pnp",
    "measure",
    "metrics",
    "mse",
    "noise_std_for_norm",
    "operators",
    "priors",
    "psnr",
    "reconstruct",
    "run",
    "save_checkpoint",
    "solvers",
    "ssim",
    "transforms",
    "train_prior",
    "tv",
    "variational",
]
