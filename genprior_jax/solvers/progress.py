"""Step-level progress of a solve in flight: the compiled loop calls back to the host every ``every`` steps
(``jax.debug.callback`` with the unbatched step counter, so once per check, not once per problem) and the host
moves the active tqdm bar, which shows the rate and an ETA.

The callback reads the bar from this module's state, not from a closure, so a compiled program that is reused
later (the jit cache) drives the bar of the call that runs it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array

_STATE: dict[str, Any] = {"bar": None, "base": 0}


def every_for(num_steps: int) -> int:
    """Steps between two callbacks: about 100 updates per chunk."""
    return max(1, int(num_steps) // 100)


def tick(done: Array) -> None:
    """Inside the trace: report that ``done`` steps of the current chunk are finished."""
    jax.debug.callback(_host_tick, done, ordered=False)


def maybe_tick(i: Array, every: int, last: int, offset: Array | int = 0) -> None:
    """Tick ``offset + i + 1`` after step ``i`` (0-based) when ``i + 1`` is a multiple of ``every`` or the last
    step."""
    done = i + 1
    jax.lax.cond((done % every == 0) | (done == last), lambda: tick(offset + done), lambda: None)


def _host_tick(done: Any) -> None:
    bar = _STATE["bar"]
    if bar is not None:
        target = _STATE["base"] + int(jnp.asarray(done).max())
        if target > bar.n:
            bar.update(min(target, bar.total) - bar.n)


class StepBar:
    """``with StepBar(total, desc) as bar: ...; bar.next_chunk(steps)``: the bar the callbacks move."""

    def __init__(self, total: int, desc: str = "run") -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=int(total), desc=desc, unit="step")

    def __enter__(self) -> StepBar:
        _STATE["bar"], _STATE["base"] = self.bar, 0
        return self

    def chunk_done(self, steps: int) -> None:
        """The chunk in flight is finished (``steps`` is its share of the total, whether it stopped early)."""
        _STATE["base"] += int(steps)
        if _STATE["base"] > self.bar.n:
            self.bar.update(min(_STATE["base"], self.bar.total) - self.bar.n)

    def __exit__(self, *exc: Any) -> None:
        _STATE["bar"], _STATE["base"] = None, 0
        self.bar.close()
