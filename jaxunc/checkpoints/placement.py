"""Parameters from a stream of (flat name, host array) straight to their shards on the mesh.

Host memory holds one tensor at a time: each is cut into the pieces its NamedSharding gives each
device (`jax.make_array_from_callback`), and a layer's tensor is written into its slot of the
stacked [num_layers, ...] parameter, which is allocated sharded once and updated in place (a jitted
dynamic_update_slice with the stacked array donated). No device ever holds more than its shards.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxunc.engine.mesh import ParamLayout
from jaxunc.models import CausalLM, ModelConfig, split_layer_name, stacked_shapes


class ParamsMismatch(ValueError):
    """The stream's tensors do not fit the model (a name it lacks, a shape it does not expect, a gap)."""


def _put(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


@functools.lru_cache(maxsize=None)
def _zeros(shape: tuple[int, ...], dtype: np.dtype, sharding: NamedSharding):
    return jax.jit(lambda: jax.numpy.zeros(shape, dtype), out_shardings=sharding)


@functools.lru_cache(maxsize=None)
def _insert(sharding: NamedSharding):
    """stacked[i] = layer, in place (the stacked array is donated)."""
    return jax.jit(lambda stacked, layer, i: jax.lax.dynamic_update_index_in_dim(stacked, layer, i, 0),
                   donate_argnums=0, out_shardings=sharding)


def place_params(stream: Iterable[tuple[str, np.ndarray]], config: ModelConfig, dtype: str, mesh: Mesh,
                 layouts: dict[str, ParamLayout]) -> dict[str, jax.Array]:
    """The model's parameters (stacked paths) as sharded arrays, filled from `stream` one tensor at a time."""
    shapes = stacked_shapes(config, dtype)
    placed: dict[str, jax.Array] = {}
    filled: dict[str, set[int]] = {}
    for name, array in stream:
        path, layer = split_layer_name(name)
        if path not in shapes:
            raise ParamsMismatch(f"tensor {name!r} has no parameter in the {config.model_type} model")
        full = tuple(shapes[path].shape)
        want = full if layer is None else full[1:]
        if tuple(array.shape) != want or (layer is not None and not 0 <= layer < full[0]):
            raise ParamsMismatch(f"tensor {name!r} has shape {tuple(array.shape)}; the model expects {want}")
        spec = layouts[path].spec
        array = np.asarray(array, dtype=shapes[path].dtype)
        if layer is None:
            placed[path] = _put(array, NamedSharding(mesh, spec))
            continue
        sharding = NamedSharding(mesh, spec)
        if path not in placed:
            placed[path] = _zeros(full, np.dtype(shapes[path].dtype), sharding)()
        one = _put(array, NamedSharding(mesh, PartitionSpec(*tuple(spec)[1:])))
        placed[path] = _insert(sharding)(placed[path], one, layer)
        filled.setdefault(path, set()).add(layer)
    missing = sorted(set(shapes) - set(placed))
    gaps = {p: sorted(set(range(shapes[p].shape[0])) - f) for p, f in filled.items() if len(f) != shapes[p].shape[0]}
    if missing or gaps:
        raise ParamsMismatch(f"no tensor for the parameters {missing[:8]}" if missing else
                             f"layers missing: {dict(list(gaps.items())[:4])}")
    return placed


def assemble(config: ModelConfig, dtype: str, placed: dict[str, jax.Array], scan_layers: bool = True) -> CausalLM:
    """A CausalLM whose parameters are the placed arrays (no other allocation)."""
    graphdef, state = nnx.split(CausalLM(config, dtype=dtype, rngs=None, scan_layers=scan_layers))
    for path, var in nnx.to_flat_state(state):
        var.set_value(placed[".".join(str(p) for p in path)])
    return nnx.merge(graphdef, state)
