"""Checkpoints: a directory holding ``params.msgpack`` and ``config.json``, written atomically.

``config.json`` records the model kind and configuration, the SHA-256 of ``params.msgpack``, training metrics
and the command that produced it. :func:`save_checkpoint` writes everything into a temporary sibling
directory and renames it into place, so a crash never leaves a half-written checkpoint (the previous one, if
any, is kept until the new one is complete). :func:`load_checkpoint` verifies the checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from typing import Any

import flax.serialization
import jax
import numpy as np

PARAMS_FILE = "params.msgpack"
CONFIG_FILE = "config.json"


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        return obj.item()
    return obj


def _record_digest(record: dict[str, Any]) -> str:
    """SHA-256 of ``config.json``'s content (without this digest itself), canonically serialized."""
    body = {k: v for k, v in record.items() if k != "record_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _fsync_dir(path: str) -> None:
    """Make a rename in ``path`` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask_mode(mode: int) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def save_checkpoint(path: str, params: Any, kind: str, config: dict[str, Any],
                    metadata: dict[str, Any] | None = None) -> str:
    """Write ``params`` (a pytree of arrays) and its description to directory ``path`` atomically.

    The files are written and fsynced in a temporary sibling directory (left-overs of a killed earlier save are
    removed first), given the usual permissions, and swapped into place by renames (the previous checkpoint is
    moved to ``<path>.old`` until the new one is in; :func:`load_checkpoint` recovers it if a crash came between
    the two renames); the parent directory is fsynced. ``config.json`` carries the SHA-256 of the parameters and
    of its own content."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(path)
    for stale in os.listdir(parent):  # a save killed before its rename leaves its temporary directory behind
        if stale.startswith(base + ".tmp-"):
            shutil.rmtree(os.path.join(parent, stale), ignore_errors=True)
    state = flax.serialization.to_state_dict(jax.tree_util.tree_map(np.asarray, params))
    blob = flax.serialization.msgpack_serialize(state)
    record = {
        "kind": kind,
        "config": _to_jsonable(config),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "metadata": _to_jsonable(metadata or {}),
    }
    record["record_sha256"] = _record_digest(record)
    tmp = tempfile.mkdtemp(prefix=base + ".tmp-", dir=parent)
    try:
        with open(os.path.join(tmp, PARAMS_FILE), "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        with open(os.path.join(tmp, CONFIG_FILE), "w") as fh:
            json.dump(record, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _umask_mode(0o777))  # mkdtemp makes it private (0700)
        _fsync_dir(tmp)
        old = None
        if os.path.exists(path):
            old = path + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(parent)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_checkpoint(path: str) -> tuple[Any, dict[str, Any]]:
    """Read a checkpoint directory; returns ``(params, record)`` where ``record`` is ``config.json``.

    A save interrupted between its two renames leaves only ``<path>.old``: it is moved back and loaded. Raises
    ``FileNotFoundError`` if a file is missing and ``ValueError`` if a checksum (parameters or ``config.json``)
    or the format is wrong.
    """
    old = os.path.abspath(path) + ".old"
    if not os.path.exists(path) and os.path.isdir(old):
        os.replace(old, path)
    cfg_path = os.path.join(path, CONFIG_FILE)
    par_path = os.path.join(path, PARAMS_FILE)
    for p in (cfg_path, par_path):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"checkpoint {path!r}: expected file {os.path.basename(p)!r}, which is missing")
    try:
        with open(cfg_path) as fh:
            record = json.load(fh)
    except json.JSONDecodeError as err:
        raise ValueError(f"checkpoint {path!r}: {CONFIG_FILE} is not valid JSON ({err})") from None
    for field in ("kind", "config", "sha256"):
        if field not in record:
            raise ValueError(f"checkpoint {path!r}: {CONFIG_FILE} lacks the field {field!r}")
    if "record_sha256" in record and record["record_sha256"] != _record_digest(record):
        raise ValueError(f"checkpoint {path!r}: {CONFIG_FILE} was modified after it was written (its SHA-256 "
                         "does not match the one it records)")
    with open(par_path, "rb") as fh:
        blob = fh.read()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != record["sha256"]:
        raise ValueError(
            f"checkpoint {path!r}: {PARAMS_FILE} is corrupted: expected SHA-256 {record['sha256']}, got {digest}"
        )
    params = flax.serialization.msgpack_restore(blob)
    return params, record


def flax_restore(target: Any, state: Any) -> Any:
    """Restore a msgpack state dict into the structure of ``target`` (NamedTuples, optax states)."""
    import flax.serialization

    return flax.serialization.from_state_dict(target, state)


def state_dir(out: str | None) -> str | None:
    """Where a training run writes its resumable state: ``<out>.state`` beside the checkpoint (``None``: no ``out``)."""
    return None if out is None else out.rstrip(os.sep) + ".state"


def load_state(out: str | None, who: str) -> tuple[Any, dict[str, Any]]:
    """``load_checkpoint(state_dir(out))`` for a resumed run; ``FileNotFoundError`` naming ``who`` when absent."""
    path = state_dir(out)
    if path is None or not os.path.isdir(path):
        raise FileNotFoundError(f"{who}: --resume needs a training state at {path!r}")
    return load_checkpoint(path)
