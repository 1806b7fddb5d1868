"""Normalizing flows (RealNVP, Glow) as invertible priors."""

from .layers import ActNorm, AffineCoupling, InvConv1x1, Reverse, squeeze, unsqueeze
from .model import (CONFIGS, KINDS, MultiScaleFlow, batch_log_prob, bits_per_dim, check_config, flow_functions,
                    flow_prior, init_flow, latent_part_shapes)

__all__ = [
    "ActNorm", "AffineCoupling", "CONFIGS", "InvConv1x1", "KINDS", "MultiScaleFlow", "Reverse", "batch_log_prob",
    "bits_per_dim", "check_config", "flow_functions", "flow_prior", "init_flow", "latent_part_shapes", "squeeze",
    "unsqueeze",
]
