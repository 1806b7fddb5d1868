"""Load a prior by name (a checkpoint shipped with the package) or by checkpoint path."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..checkpoint import load_checkpoint
from .base import Prior
from .dcgan import dcgan_prior
from .diffusion import diffusion_prior
from .flow import flow_prior
from .vae import vae_prior

CHECKPOINT_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "checkpoints")

# kind recorded in config.json -> builder(params, config, name)
BUILDERS: dict[str, Callable[[Any, dict[str, Any], str], Prior]] = {
    "vae": lambda params, config, name: vae_prior(params, config, name),
    "flow": lambda params, config, name: flow_prior(params, config, name),
    "dcgan": lambda params, config, name: dcgan_prior(params, config, name),
    "diffusion": lambda params, config, name: diffusion_prior(params, config, name),
}


def available_priors() -> list[str]:
    """Names of the checkpoints shipped with the package."""
    if not os.path.isdir(CHECKPOINT_DIR):
        return []
    return sorted(d for d in os.listdir(CHECKPOINT_DIR)
                  if not d.endswith(".state")  # resumable training states written beside a checkpoint
                  and os.path.isfile(os.path.join(CHECKPOINT_DIR, d, "config.json")))


def load_prior(name_or_path: str) -> Prior:
    """``load_prior("vae-mnist")`` or ``load_prior("/path/to/checkpoint_dir")``.

    Raises ``ValueError`` for an unknown name, ``FileNotFoundError`` for a missing checkpoint file and
    ``ValueError`` for a corrupted one.
    """
    if os.sep in name_or_path or os.path.isdir(name_or_path):
        path, name = name_or_path, os.path.basename(os.path.normpath(name_or_path))
        if not os.path.exists(path):
            raise FileNotFoundError(f"load_prior: no checkpoint directory at {path!r}")
    else:
        names = available_priors()
        if name_or_path not in names:
            raise ValueError(f"load_prior: unknown prior {name_or_path!r}; expected one of {names} "
                             "or a checkpoint path")
        path, name = os.path.join(CHECKPOINT_DIR, name_or_path), name_or_path
    params, record = load_checkpoint(path)
    kind = record["kind"]
    if kind not in BUILDERS:
        raise ValueError(f"load_prior: checkpoint {path!r} has kind {kind!r}; expected one of {sorted(BUILDERS)}")
    return BUILDERS[kind](params, record["config"], name)
