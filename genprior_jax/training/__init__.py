"""Training of priors on the embedded MNIST digits, with progress bars and atomic checkpoints."""

from .flow import dequantize, evaluate_bpd, train_flow
from .vae import train_vae

__all__ = ["dequantize", "evaluate_bpd", "train_flow", "train_vae"]
