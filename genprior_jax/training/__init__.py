"""Training of priors: any kind on your images at their size (:func:`train_prior`, one data-parallel loop,
:func:`train`), the shipped MNIST priors' own recipes, the patch flow on scikit-image's photos; with progress bars
and atomic checkpoints."""

from .ambient import DRAWS as AMBIENT_DRAWS
from .ambient import MODES as AMBIENT_MODES
from .ambient import FreshDraws, measure_dataset, train_ambient_dcgan, tune_unmeasure, unmeasure
from .dcgan import LOSSES as GAN_LOSSES
from .dcgan import WGAN_GP_REFERENCE, csgm_quality, dcgan_train_step, train_dcgan, wgan_gp_critic_loss
from .flow import dequantize, evaluate_bpd, train_flow
from .patch_flow import TEST_IMAGES, TRAIN_IMAGES, natural_image, train_patch_flow
from .tasks import MODELS, make_task, parse_overrides, train_prior
from .trainer import TrainTask, train
from .vae import train_vae

__all__ = ["MODELS", "TrainTask", "make_task", "parse_overrides", "train", "train_prior",
           "AMBIENT_DRAWS", "AMBIENT_MODES", "FreshDraws", "GAN_LOSSES", "TEST_IMAGES", "TRAIN_IMAGES",
           "WGAN_GP_REFERENCE", "csgm_quality", "dcgan_train_step", "dequantize", "evaluate_bpd", "measure_dataset",
           "natural_image", "train_ambient_dcgan", "train_dcgan", "train_flow", "train_patch_flow", "train_vae",
           "tune_unmeasure", "unmeasure", "wgan_gp_critic_loss"]
