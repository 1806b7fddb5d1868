"""Generative priors: the :class:`Prior` protocol, every model kind (VAE, DCGAN, RealNVP / Glow flows, untrained
generators), and loading by name."""

from .base import Prior
from .dcgan import CONFIGS as DCGAN_CONFIGS
from .dcgan import dcgan_functions, dcgan_modules, dcgan_prior, init_dcgan
from .diffusion import UNet, diffusion_prior, init_diffusion
from .flow import CONFIGS as FLOW_CONFIGS
from .flow import KINDS as FLOW_KINDS
from .flow import (
                   MultiScaleFlow,
                   batch_log_prob,
                   bits_per_dim,
                   flow_functions,
                   flow_prior,
                   init_flow,
                   latent_part_shapes,
)
from .flow_layers import ActNorm, AffineCoupling, InvConv1x1, Reverse, SplitPrior
from .registry import available_priors, load_prior
from .untrained import (
                   CONV_IMPLS,
                   GENERATORS,
                   DeepDecoderSize,
                   UntrainedGenerator,
                   WeightPrior,
                   default_deep_decoder,
                   fit_weight_prior,
                   layer_means,
                   untrained_generator,
                   weight_penalty,
)
from .vae import elbo, init_vae, vae_functions, vae_prior

__all__ = ["UNet", "diffusion_prior", "init_diffusion",
           "DCGAN_CONFIGS", "Prior", "available_priors", "dcgan_functions", "dcgan_modules", "dcgan_prior", "elbo",
           "init_dcgan", "init_vae", "load_prior", "vae_functions", "vae_prior", "CONV_IMPLS", "GENERATORS",
           "DeepDecoderSize", "UntrainedGenerator", "WeightPrior", "default_deep_decoder", "fit_weight_prior",
           "layer_means", "untrained_generator",
           "weight_penalty", "FLOW_CONFIGS", "FLOW_KINDS", "MultiScaleFlow", "batch_log_prob", "bits_per_dim",
           "flow_functions", "flow_prior", "init_flow", "latent_part_shapes", "ActNorm", "AffineCoupling",
           "InvConv1x1", "Reverse", "SplitPrior"]
