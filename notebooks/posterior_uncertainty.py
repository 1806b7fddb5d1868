# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
# ---

# %% [markdown]
# # Posterior sampling and uncertainty maps (BRGM-style VI, and Langevin)
# `reconstruct(..., posterior=True)` returns the posterior mean, the per-pixel posterior std and samples.
# Box inpainting hides the centre of each digit: the std map shows where the measurements leave the answer open.

# %% [markdown]
# In Colab or any fresh kernel the next cell installs `genprior_jax` when it is missing (set `GENPRIOR_JAX_PIP`
# to the package's git URL or a wheel path; by default `pip install genprior_jax`).

# %%
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("genprior_jax") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", os.environ.get("GENPRIOR_JAX_PIP", "genprior_jax")],
                   check=True)

# %%
import os

import jax
import numpy as np

import genprior_jax as gp
from genprior_jax.operators import BoxMask, measure
from genprior_jax.plotting import save_grid, show_image

quick = os.environ.get("QUICK") == "1"
n, steps = (2, 50) if quick else (6, 1000)

# %%
prior = gp.load_prior("vae-mnist")
x = gp.load_mnist("test", n=n).images
k_noise, k_vi, k_mala = jax.random.split(jax.random.key(0), 3)
op = BoxMask((28, 28, 1), 10)
noise = gp.GaussianNoise(0.05)  # given once: it draws y, and it is the methods' likelihood
y = measure(k_noise, op, x, noise)

# %% [markdown]
# Mean-field variational inference over the latent (analytic entropy; K = 4 reparametrized samples per step):

# %%
vi = gp.reconstruct(prior, k_vi, y, op, method="vi", posterior=True, noise=noise, num_steps=steps,
                    learning_rate=0.02, num_elbo_samples=4, num_samples=16)
print("VI: posterior-mean PSNR", np.round(np.asarray(gp.psnr(x, np.clip(vi.x, 0, 1))), 2))

# %% [markdown]
# Metropolis-adjusted Langevin chains over the latent (4 chains per digit, second half kept):

# %%
mala = gp.reconstruct(prior, k_mala, y, op, method="langevin", posterior=True, noise=noise, num_steps=2 * steps,
                      burn_in=steps, thin=max(steps // 16, 1), num_samples=32, step_size=5e-5, init_std=0.0)
print("MALA: acceptance per chain", np.round(np.asarray(mala.acceptance), 2))

# %% [markdown]
# The latent posterior is conditioned as if the digit lay exactly in the VAE's range; it does not, so its
# intervals are far too narrow. `model_error="auto"` adds an image-space residual `x = G(z) + e`,
# `e ~ N(0, tau^2 I)`, with tau estimated from a MAP fit's residual (no ground truth), and draws `e` in every sample.


# %%
def coverage(rec):
    """Fraction of true pixels inside the samples' central 90 % interval."""
    lo, hi = np.quantile(np.clip(np.asarray(rec.samples), 0, 1), [0.05, 0.95], axis=1)
    return float(((x >= lo) & (x <= hi)).mean())


vi_me = gp.reconstruct(prior, k_vi, y, op, method="vi", posterior=True, noise=noise, num_steps=steps,
                       learning_rate=0.02, num_elbo_samples=4, num_samples=16, model_error="auto")
print(f"tau = {float(vi_me.model_error):.3f}; 90 % coverage: VI {coverage(vi):.3f}, "
      f"VI + model error {coverage(vi_me):.3f}")

# %%
rows = {"truth": x, "observed": np.asarray(jax.vmap(op)(x)), "VI mean": vi.x, "VI std x4": np.clip(4 * vi.std, 0, 1),
        "VI sample": vi.samples[:, 0], "MALA mean": mala.x, "MALA std x4": np.clip(4 * mala.std, 0, 1),
        "VI+me mean": vi_me.x, "VI+me std x4": np.clip(4 * vi_me.std, 0, 1)}
show_image(save_grid(rows, os.environ.get("QUICKSTART_PNG", "posterior_uncertainty.png")))
