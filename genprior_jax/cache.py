"""JAX's persistent compilation cache, one call: a later process with the same shapes loads its compiled programs.

``gp.enable_compilation_cache()`` turns it on for the process (the CLI does it for ``demo``, ``reconstruct`` and
``posterior``). The directory is, in order: the ``path`` argument, ``$GENPRIOR_JAX_CACHE`` (``0`` turns it off),
``$XDG_CACHE_HOME/genprior_jax/xla`` (``~/.cache/genprior_jax/xla``). A cache already configured (e.g. by the
caller's own ``jax.config.update("jax_compilation_cache_dir", ...)``) is left alone. Every program is stored,
however fast it compiled: loading one beats compiling it.

Programs that carry host callbacks (a solve's step-level progress bar) are not stored by JAX; a solve without
``progress`` is.
"""

from __future__ import annotations

import os

import jax

__all__ = ["enable_compilation_cache"]


def enable_compilation_cache(path: str | os.PathLike[str] | None = None) -> str | None:
    """Turn JAX's persistent compilation cache on; returns its directory (None: left off, or configured elsewhere
    and left alone - then ``jax.config.jax_compilation_cache_dir`` says where). A ``path`` that cannot be made a
    directory raises ``ValueError``; the default or ``$GENPRIOR_JAX_CACHE`` directory that cannot leaves the
    cache off (a read-only home: the run goes on, compiling as usual)."""
    where = os.fspath(path) if path is not None else os.environ.get("GENPRIOR_JAX_CACHE")
    if where == "0" or (path is None and getattr(jax.config, "jax_compilation_cache_dir", None)):
        return None
    if not where:
        where = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "genprior_jax", "xla")
    try:
        os.makedirs(where, exist_ok=True)
    except OSError as err:
        if path is not None:
            raise ValueError(f"enable_compilation_cache: expected a directory that can be created, got {where!r} "
                             f"({err.strerror or err})") from err
        return None
    from jax.experimental.compilation_cache import compilation_cache

    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    compilation_cache.reset_cache()  # an import-time compile may have initialized it without a directory
    return where
