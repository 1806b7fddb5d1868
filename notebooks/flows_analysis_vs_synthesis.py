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
# # Invertible priors: synthesis (Asim et al.) vs analysis (Oberlin & Verm)
# The shipped Glow flow `glow-mnist` is a prior with an exact inverse `E = G^{-1}` and an exact log-density.
# *Synthesis* optimizes the latent: `min_z 1/2 ||A G(z) - y||^2 + lam ||z||^2`, `x = G(z)`.
# *Analysis* optimizes the image: `min_x 1/2 ||A x - y||^2 + lam ||E(x)||^2`, started at `x0 = G(0)`.
# Here on random inpainting (60 % missing pixels) of held-out digits. QUICK=1 runs a tiny version.

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
from genprior_jax.operators import RandomMask, measure
from genprior_jax.plotting import save_grid, show_image

quick = os.environ.get("QUICK") == "1"
n, steps, optimizer = (2, 3, "adam") if quick else (8, 30, "lbfgs")  # QUICK: Adam compiles in a third of the time

# %%
flow = gp.load_prior("glow-mnist")
print(flow)
x = gp.load_mnist("test", n=n).images
k_op, k_noise, k_syn, k_ana = jax.random.split(jax.random.key(0), 4)
op = RandomMask(k_op, (28, 28, 1), 0.6)
y = measure(k_noise, op, x, 0.01)

# %% [markdown]
# The flow's log-likelihood of the test digits, in bits per dimension (the training objective):

# %%
log_p = gp.priors.batch_log_prob(flow.params, flow.config, x)
print("bits/dim of these digits:", np.round(np.asarray(gp.priors.bits_per_dim(log_p, 28 * 28)), 3))

# %%
synthesis = gp.asim(flow, k_syn, y, op, lam=0.0, num_steps=steps, optimizer=optimizer)  # L-BFGS, z0 = 0 (GlowIP)
analysis = gp.analysis(flow, k_ana, y, op, lam=1e-3, num_steps=steps, optimizer=optimizer)
for name, res in (("synthesis", synthesis), ("analysis", analysis)):
    print(f"{name:>9}: PSNR {float(np.mean(gp.psnr(x, np.clip(res.x, 0, 1)))):.2f} dB, status {res.status}")

# %%
rows = {"truth": x, "observed": np.asarray(jax.vmap(op)(x)), "synthesis": synthesis.x, "analysis": analysis.x}
show_image(save_grid(rows, os.environ.get("QUICKSTART_PNG", "flows_analysis_vs_synthesis.png")))
