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
# # genprior_jax quickstart: CSGM on MNIST in a dozen lines
# The notebook `quickstart.ipynb` and this percent-format script are paired by jupytext (either can be edited).
# Set QUICK=1 in the environment for a small run (the test suite does).

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

import genprior_jax as gp
from genprior_jax.operators import GaussianCS, measure, noise_std_for_norm
from genprior_jax.plotting import save_grid, show_image

quick = os.environ.get("QUICK") == "1"
n, steps = (4, 100) if quick else (16, 1000)

# %%
prior = gp.load_prior("vae-mnist")
x = gp.load_mnist("test", n=n).images
k_op, k_noise, k_solve = jax.random.split(jax.random.key(0), 3)
op = GaussianCS(k_op, (28, 28, 1), m=100)
y = measure(k_noise, op, x, noise_std_for_norm(0.1, 100))
res = gp.csgm(prior, k_solve, y, op, lam=0.05, num_steps=steps)
lasso = gp.lasso(k_solve, y, op, lam=0.15, basis="dct", num_steps=1000)

# %%
print("per-pixel MSE  VAE:", float(gp.mse(x, res.x).mean()), " Lasso-DCT:", float(gp.mse(x, lasso.x).mean()))
rows = {"truth": x, "Lasso-DCT": lasso.x, "VAE": res.x}
show_image(save_grid(rows, os.environ.get("QUICKSTART_PNG", "quickstart.png")))
