"""Generative priors: the :class:`Prior` protocol, models, and loading by name."""

from .base import Prior
from .dcgan import CONFIGS as DCGAN_CONFIGS
from .dcgan import dcgan_functions, dcgan_modules, dcgan_prior, init_dcgan
from .registry import available_priors, load_prior
from .untrained import (CONV_IMPLS, GENERATORS, UntrainedGenerator, WeightPrior, fit_weight_prior, layer_means,
                        untrained_generator, weight_penalty)
from .vae import elbo, init_vae, vae_functions, vae_prior

__all__ = ["DCGAN_CONFIGS", "Prior", "available_priors", "dcgan_functions", "dcgan_modules", "dcgan_prior", "elbo",
           "init_dcgan", "init_vae", "load_prior", "vae_functions", "vae_prior", "CONV_IMPLS", "GENERATORS",
           "UntrainedGenerator", "WeightPrior", "fit_weight_prior", "layer_means", "untrained_generator",
           "weight_penalty"]
