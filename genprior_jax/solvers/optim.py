"""Inner optimizers by name, built inside the trace so the learning rate can be a traced value."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

Array = jax.Array

OPTIMIZERS = ("adam", "sgd", "rmsprop", "lbfgs")
SCHEDULES = ("constant", "cosine")


def check_optimizer(name: str) -> str:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
    return name


def check_schedule(name: str) -> str:
    if name not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {name!r}; expected one of {SCHEDULES}")
    return name


def make_optimizer(name: str, learning_rate: Array | float, schedule: str = "constant",
                   num_steps: int = 1) -> optax.GradientTransformationExtraArgs:
    """``adam``/``sgd``/``rmsprop`` with step ``learning_rate`` (``schedule="cosine"`` decays it to 0 over
    ``num_steps``, which lets Adam settle on the minimizer instead of oscillating around it); ``lbfgs`` is optax's
    L-BFGS with a zoom line search, which chooses its own step (``learning_rate`` is then unused)."""
    lr: optax.ScalarOrSchedule = learning_rate
    if schedule == "cosine":
        lr = optax.cosine_decay_schedule(learning_rate, max(int(num_steps), 1))
    if name == "adam":
        return optax.adam(lr)
    if name == "sgd":
        return optax.sgd(lr)
    if name == "rmsprop":
        return optax.rmsprop(lr, momentum=0.9)
    if name == "lbfgs":
        return optax.lbfgs()
    raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")


def optimizer_step(name: str, opt: optax.GradientTransformationExtraArgs, value_fn: Callable[[Any], Any],
                   params: Any, opt_state: Any, has_aux: bool = False) -> tuple[Any, Any, Any]:
    """One update of ``params`` minimizing ``value_fn``; returns ``(params, opt_state, value_before)``.

    With ``has_aux`` (not for ``lbfgs``), ``value_fn`` returns ``(value, aux)`` and so does the third output: the
    auxiliary results of the same forward pass (e.g. the image), at the iterate before the update.

    A non-finite step is rejected: if the new iterate (or, for ``lbfgs``, the objective its line search found
    there) is not finite, ``params`` and ``opt_state`` stay as they were, so the solve stops at its last finite
    iterate (its objective then stops changing, which a tolerance reads as settled) instead of carrying NaN on.
    A non-finite objective *at* the current iterate (NaN measurements) is still returned as it is."""
    if name == "lbfgs":
        if has_aux:
            raise ValueError("optimizer_step: has_aux is not supported with optimizer='lbfgs'")
        value, grad = optax.value_and_grad_from_state(value_fn)(params, state=opt_state)
        updates, new_state = opt.update(grad, opt_state, params, value=value, grad=grad, value_fn=value_fn)
        new_value = optax.tree_utils.tree_get(new_state, "value")
    else:
        value, grad = jax.value_and_grad(value_fn, has_aux=has_aux)(params)
        updates, new_state = opt.update(grad, opt_state, params)
        new_value = None
    new_params = optax.apply_updates(params, updates)
    ok = _all_finite(new_params)
    if new_value is not None:
        ok = ok & jnp.all(jnp.isfinite(new_value))
    keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)  # noqa: E731
    return keep(new_params, params), keep(new_state, opt_state), value


def _all_finite(tree: Any) -> Array:
    leaves = [jnp.all(jnp.isfinite(a)) for a in jax.tree_util.tree_leaves(tree)
              if jnp.issubdtype(jnp.asarray(a).dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def minimizing_solver(loss: Callable[..., Array], init_variable: Callable[..., Any],
                      to_image: Callable[[Any, Any], Array], optimizer: str, opt_for: Callable[[Any], Any],
                      state_cls: type) -> Any:
    """A :class:`~genprior_jax.solvers.runner.Solver` that minimizes ``loss(v, problem, hyper, params)`` over a
    variable ``v`` with an optax optimizer.

    ``state_cls`` is a NamedTuple whose last field is ``opt_state`` and whose other fields hold ``v`` (one field:
    ``v`` itself; several: ``v`` is their tuple). ``init_variable(key, problem, hyper, params)`` gives the start,
    ``to_image(v, params)`` the estimate, ``opt_for(hyper)`` the optimizer (built inside the trace, so the step
    size can be traced).
    """
    from .runner import Solver

    n_var = len(state_cls._fields) - 1

    def pack(v: Any, opt_state: Any) -> Any:
        return state_cls(v, opt_state) if n_var == 1 else state_cls(*v, opt_state)

    def unpack(state: Any) -> Any:
        return state[0] if n_var == 1 else tuple(state[:-1])

    def init(key: Array, problem: Any, hyper: Any, params: Any) -> Any:
        v = init_variable(key, problem, hyper, params)
        return pack(v, opt_for(hyper).init(v))

    def step(state: Any, problem: Any, hyper: Any, params: Any) -> tuple[Any, Array]:
        v, opt_state, value = optimizer_step(optimizer, opt_for(hyper), lambda v: loss(v, problem, hyper, params),
                                             unpack(state), state.opt_state)
        return pack(v, opt_state), value

    def objective(state: Any, problem: Any, hyper: Any, params: Any) -> Array:
        return loss(unpack(state), problem, hyper, params)

    def estimate(state: Any, problem: Any, hyper: Any, params: Any) -> Array:
        return to_image(unpack(state), params)

    return Solver(init, step, objective, estimate)
