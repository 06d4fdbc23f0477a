"""Multiple-choice scoring: packed prompt suffixes after a cached prefix -> the `mc_*` measures.

prefix(ids [P], length) -> PrefixKV                      once per prefix group (jitted, one shape)
step(params, batch, prefix, choice_ids, n_choices) -> {column: [rows * segments]}
  logits = model.packed_logits(batch, prefix)             [rows, segments, vocab], on device only
  measures = next_token_measures(logits, choice_ids, n_choices)
Only the per-item measures (and the option log-probabilities) come back to the host.
probes=True: the step also returns "hidden" [rows * segments, layers + 1, hidden] float32, each
item's states at its last prompt token in transformers' output_hidden_states convention
(model.packed_logits(hidden=True)); per layer, only those columns leave the layer scan.

Default: one batched forward per step, rows split over the mesh's `data` axis, parameters as the
partition rules place them. Across batch compositions, float32 results move by float32 noise
(XLA picks matmul kernels by shape; the measured bound is in the README and tests). row_mode
(engine.batch_invariant=True): one item per row, and each device maps over its rows one at a time
(shard_map + lax.map), so every item is computed by the same kernels on the same shapes whatever the
batch: bit-identical results for any batch size or device count, at the cost of speed.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

import jax
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from jaxunc import measures
from jaxunc.engine.mesh import DATA_AXIS, MODEL_AXIS, Mesh
from jaxunc.engine.packing import PackedBatch
from jaxunc.models.layers import activation_mesh

log = logging.getLogger(__name__)


def packed_measures(graphdef, state, ids, positions, segments, last, prefix, choice_ids, n_choices, *,
                    mesh: Mesh | None = None, nucleus: str = "inclusive", probes: bool = False) -> dict:
    """The scoring step (module docstring): each packed slot's logits at its answer position after the
    prefix -> next_token_measures, flattened [rows * segments]; with probes also `hidden`
    [rows * segments, layers + 1, hidden]. Activations constrained to `mesh` (None: no constraints)."""
    with activation_mesh(mesh):
        model = nnx.merge(graphdef, state)
        if probes:
            logits, hidden = model.packed_logits(ids, positions, segments, last, prefix, hidden=True)
        else:
            logits = model.packed_logits(ids, positions, segments, last, prefix)
    rows, slots, vocab = logits.shape
    out = measures.next_token_measures(
        logits.reshape(rows * slots, vocab), choice_ids.reshape(rows * slots, *choice_ids.shape[2:]),
        n_choices.reshape(rows * slots), nucleus=nucleus)
    if probes:
        out["hidden"] = hidden.reshape(rows * slots, *hidden.shape[2:])
    return out


@dataclass
class Scorer:
    """Jitted prefix and scoring functions bound to a model's (sharded) parameters; counts compiled shapes."""

    model: object
    mesh: Mesh
    row_mode: bool = False
    nucleus: str = "inclusive"
    probes: bool = False
    shapes: set = field(default_factory=set)

    def __post_init__(self):
        self.graphdef, self.state = nnx.split(self.model)
        graphdef, mesh, nucleus, probes = self.graphdef, self.mesh, self.nucleus, self.probes
        heads = MODEL_AXIS if mesh.shape[MODEL_AXIS] > 1 and self.model.config.num_kv_heads % mesh.shape[MODEL_AXIS] == 0 else None
        kv = NamedSharding(mesh, PartitionSpec(None, None, heads, None))
        self._prefix_sharding = kv

        def prefix(state, ids, length):
            with activation_mesh(mesh):
                return nnx.merge(graphdef, state).prefix_kv(ids, length)

        score = functools.partial(packed_measures, graphdef, mesh=None if self.row_mode else mesh, nucleus=nucleus,
                                  probes=probes)
        self._prefix = jax.jit(prefix)
        if self.row_mode:
            data = PartitionSpec(DATA_AXIS)

            def rows_one_by_one(state, *args):
                *batch, prefix, choice_ids, n_choices = args

                def one(row):
                    ids, pos, seg, last, cids, n = (x[None] for x in row)
                    return jax.tree.map(lambda x: x[0], score(state, ids, pos, seg, last, prefix, cids, n))

                return jax.lax.map(one, (*batch, choice_ids, n_choices))

            self._score = jax.jit(jax.shard_map(
                rows_one_by_one, mesh=mesh, check_vma=False,
                in_specs=(PartitionSpec(), data, data, data, data, PartitionSpec(), data, data), out_specs=data))
        else:
            self._score = jax.jit(score)

    def prefix(self, tokens: list[int], width: int):
        """The PrefixKV of `tokens` padded to `width` columns (one compiled shape per width)."""
        ids = np.zeros(width, np.int32)
        ids[: len(tokens)] = tokens
        return self._prefix(self.state, ids, np.int32(len(tokens)))

    def __call__(self, batch: PackedBatch, prefix, choice_ids: np.ndarray, n_choices: np.ndarray) -> dict[str, np.ndarray]:
        """Measures per slot, flattened [rows * segments] (slots without an item hold filler values)."""
        shape = (batch.input_ids.shape, batch.last.shape, choice_ids.shape[2:], prefix.width)
        if shape not in self.shapes:
            self.shapes.add(shape)
            log.info("compiling the scoring step for %s (%d shapes so far)", shape, len(self.shapes))
        rows = NamedSharding(self.mesh, PartitionSpec(DATA_AXIS))
        args = [jax.device_put(a, rows) for a in (batch.input_ids, batch.positions, batch.segments, batch.last)]
        per_slot = [jax.device_put(a, rows) for a in (choice_ids, n_choices)]
        out = self._score(self.state, *args, prefix, *per_slot)
        return {k: np.asarray(v) for k, v in out.items()}

    @property
    def n_compilations(self) -> int:
        return len(self.shapes)
