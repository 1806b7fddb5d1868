"""Placing a batch of independent problems on a device mesh, and cutting it into padded chunks.

The runner's problems are independent, so data parallelism needs no communication: the batch axis (the
measurements, each with all its restarts) is split into equal contiguous blocks, one per device, with a
:class:`jax.sharding.NamedSharding`, and XLA's SPMD partitioner compiles one program that runs on every
device. A batch whose size ``B`` is not a multiple of the ``D`` devices is padded to the next multiple by
repeating a real measurement (:func:`pad_indices`); the padded rows are dropped from the results.

Multi-host: a mesh here holds only this process's devices (``jax.local_devices()``). Each process solves its own
slice of the measurements, which needs no cross-host traffic at all.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = "batch"


def resolve_mesh(mesh: Any) -> Mesh | None:
    """``None`` -> ``None``; ``"auto"`` -> a 1-D mesh (axis ``"batch"``) of all of this process's devices;
    a :class:`jax.sharding.Mesh` of this process's devices -> itself. Anything else raises ``ValueError``."""
    if mesh is None:
        return None
    if isinstance(mesh, str):
        if mesh != "auto":
            raise ValueError(f"mesh: expected None, 'auto' or a jax.sharding.Mesh, got the string {mesh!r}")
        return Mesh(np.array(jax.local_devices()), (BATCH_AXIS,))
    if not isinstance(mesh, Mesh):
        raise ValueError(f"mesh: expected None, 'auto' or a jax.sharding.Mesh, got {type(mesh).__name__}")
    me = jax.process_index()
    foreign = sorted({d.process_index for d in mesh.devices.flat} - {me})
    if foreign:
        raise ValueError(f"mesh: expected devices of this process ({me}) only, got devices of processes {foreign}; "
                         "build the mesh from jax.local_devices() and give each process its own slice of y")
    return mesh


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over all the mesh's axes together; other axes whole."""
    return NamedSharding(mesh, PartitionSpec(tuple(mesh.axis_names)))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of the mesh (parameters, hyper-parameters, a shared operator)."""
    return NamedSharding(mesh, PartitionSpec())


def round_up(n: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is ``>= n``."""
    return -(-n // multiple) * multiple


def pad_indices(start: int, size: int, n: int) -> np.ndarray:
    """Rows ``start, ..., start + size - 1`` of a batch of ``n``, the ones past the end replaced by ``n - 1``
    (padding repeats the last real element: it is a valid problem, and its copies are dropped afterwards)."""
    return np.minimum(np.arange(start, start + size), n - 1)
