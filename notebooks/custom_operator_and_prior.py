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
# # Bring your own operator and your own prior
# An operator is a pytree subclass of `LinearOperator`: declare the array leaves and static fields, write
# `_apply` (and `_adjoint` where a closed form is cheap; otherwise `jax.linear_transpose` gives it). A prior is
# any pure function `generate(params, z)` wrapped in a `Prior`. Every solver then works with both.

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
import jax.numpy as jnp
import numpy as np

import genprior_jax as gp
from genprior_jax.operators import LinearOperator, check_adjoint, measure
from genprior_jax.plotting import save_grid, show_image

quick = os.environ.get("QUICK") == "1"


# %% [markdown]
# A column-sum ("projection onto the x axis") operator plus a few random pixel samples: `(28, 28, 1) -> (28 + k,)`.

# %%
class ColumnSumsAndPixels(LinearOperator):
    _leaves = ("pixels",)
    _static = ("in_shape", "out_shape")

    def __init__(self, key: jax.Array, shape: tuple[int, int, int], k: int):
        self.in_shape, self.out_shape = shape, (shape[1] + k,)
        self.pixels = jax.random.choice(key, shape[0] * shape[1], (k,), replace=False)

    def _apply(self, x: jax.Array) -> jax.Array:
        return jnp.concatenate([x[..., 0].sum(0), x[..., 0].reshape(-1)[self.pixels]])
    # no _adjoint: the base class transposes _apply with jax.linear_transpose


op = ColumnSumsAndPixels(jax.random.key(1), (28, 28, 1), k=60)
print("adjoint test (relative error):", float(check_adjoint(op, jax.random.key(2))))

# %% [markdown]
# A prior from any JAX function: here a linear "PCA" generator fit to training digits, `G(z) = mean + U z`.

# %%
train = gp.load_mnist("train", n=1000).images.reshape(1000, -1)
mean = train.mean(0)
_, s, vt = np.linalg.svd(train - mean, full_matrices=False)
d = 20
params = {"mean": jnp.asarray(mean), "basis": jnp.asarray(vt[:d].T * s[:d] / np.sqrt(len(train)))}


def generate(params, z):
    return (params["mean"] + params["basis"] @ z).reshape(28, 28, 1)


pca = gp.Prior(name="pca-mnist", latent_shape=(d,), image_shape=(28, 28, 1), generate=generate, params=params)

# %%
n = 4
x = gp.load_mnist("test", n=n).images
y = measure(jax.random.key(3), op, x, 0.01)
steps = 50 if quick else 1000
results = {name: gp.csgm(p, jax.random.key(4), y, op, lam=0.05, num_steps=steps, num_restarts=2)
           for name, p in (("PCA prior", pca), ("VAE prior", gp.load_prior("vae-mnist")))}
for name, res in results.items():
    print(f"{name}: per-pixel MSE {float(np.mean(gp.mse(x, np.clip(res.x, 0, 1)))):.4f}")
show_image(save_grid({"truth": x, **{k: v.x for k, v in results.items()}},
          os.environ.get("QUICKSTART_PNG", "custom_operator_and_prior.png")))
