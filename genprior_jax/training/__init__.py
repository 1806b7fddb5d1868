"""Training of priors on the embedded MNIST digits, with progress bars and atomic checkpoints."""

from .dcgan import csgm_quality, dcgan_train_step, train_dcgan
from .flow import dequantize, evaluate_bpd, train_flow
from .vae import train_vae

__all__ = ["csgm_quality", "dcgan_train_step", "dequantize", "evaluate_bpd", "train_dcgan", "train_flow", "train_vae"]
