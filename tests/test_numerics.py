"""Operator numerics: ||A||^2, ||A||_F^2 and the least-squares solution A^+ y against dense linear algebra."""

import jax
import jax.numpy as jnp
import numpy as np

from genprior_jax.operators import GaussianCS, RandomMask, frobenius_sq, operator_norm_sq, pinv

SHAPE = (6, 6, 1)


def dense(op):
    n = int(np.prod(op.in_shape))
    return np.asarray(jax.vmap(op.mv)(jnp.eye(n).reshape(n, *op.in_shape)).reshape(n, -1), np.float64).T


def test_norms_match_dense(key):
    op = GaussianCS(key, SHAPE, 20)
    A = dense(op)
    np.testing.assert_allclose(float(operator_norm_sq(op, key, iters=200)), np.linalg.norm(A, 2) ** 2, rtol=1e-3)
    np.testing.assert_allclose(float(frobenius_sq(op)), np.sum(A**2), rtol=1e-5)


def test_pinv_is_the_minimum_norm_least_squares_solution(key):
    x = jax.random.uniform(key, SHAPE)
    for op in (GaussianCS(key, SHAPE, 36), GaussianCS(key, SHAPE, 20), RandomMask(key, SHAPE, 0.4)):
        y = op.mv(x) + 0.01 * jax.random.normal(jax.random.key(3), op.out_shape)
        ref = np.linalg.pinv(dense(op)) @ np.asarray(y, np.float64).ravel()
        got = np.asarray(pinv(op, y), np.float64).ravel()
        np.testing.assert_allclose(got, ref, atol=1e-3 * np.abs(ref).max())
    square = GaussianCS(key, SHAPE, 36)  # invertible: the exact solution, far beyond a fixed 50 CG steps' 22-29 dB
    err = np.asarray(pinv(square, square.mv(x))) - np.asarray(x)
    assert 10 * np.log10(1.0 / np.mean(err**2)) > 60
