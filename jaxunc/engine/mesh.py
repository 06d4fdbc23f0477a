"""The device mesh: batches are laid out over a 1-D `data` axis from the start.

On one CPU device the mesh has size 1; on a GPU/TPU host or a pod slice the same code shards the
batch over every device, so scaling out changes no numbers.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_data_mesh(devices=None) -> Mesh:
    """A mesh with one `data` axis over `devices` (default: all devices), Auto axis type."""
    devices = list(devices if devices is not None else jax.devices())
    return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over the data axis, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    n = mesh.shape[DATA_AXIS]
    if batch_size % n:
        raise ValueError(
            f"engine.batch_size={batch_size} must be a multiple of the {n} devices on the "
            f"'{DATA_AXIS}' mesh axis"
        )


def shard_batch(arrays: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Put each host array on the mesh, batch dimension over the data axis."""
    sharding = batch_sharding(mesh)
    return {k: jax.device_put(v, sharding) for k, v in arrays.items()}
