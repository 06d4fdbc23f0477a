"""Jitted greedy decoding with a KV cache (after a shared prefix); per-step measure statistics kept as
[batch, steps] tracks. The cache is sharded like the keys/values (rows over data, heads over model).

Nothing of size [batch, steps, vocab] exists: at step t the [batch, vocab] logits are reduced to the
scalars of `measures.step_statistics` and the greedy token, then dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding

from jaxunc import measures
from jaxunc.engine.mesh import Mesh, batch_sharding, kv_cache_spec
from jaxunc.models.layers import activation_mesh


@dataclass
class Generation:
    tokens: np.ndarray  # int32 [batch, max_new]; steps past a row's first EOS are masked out later
    steps: np.ndarray  # int32 [batch]: steps up to and including the first EOS (or max_new)
    hit_cap: np.ndarray  # bool [batch]: no EOS before the cap
    stats: dict[str, np.ndarray]  # per-step statistics, each [batch, max_new]
    first: dict[str, np.ndarray]  # `fr_tok1_*` measures of the first step, each [batch]


@dataclass
class Generator:
    """Jitted greedy generation after an optional cached prefix, bound to a model's (sharded) parameters."""

    model: object
    mesh: Mesh
    max_new_tokens: int
    eos_ids: list[int]
    nucleus: str = "inclusive"
    shapes: set = field(default_factory=set)

    def __post_init__(self):
        graphdef, self.state = nnx.split(self.model)
        mesh, max_new, nucleus = self.mesh, self.max_new_tokens, self.nucleus
        eos = jnp.asarray(sorted(set(self.eos_ids)) or [-1], dtype=jnp.int32)
        cache_sharding = NamedSharding(mesh, kv_cache_spec(self.model.config, mesh))

        def prefix(state, ids, length):
            with activation_mesh(mesh):
                return nnx.merge(graphdef, state).prefix_kv(ids, length)

        def generate(state, input_ids, attention_mask, prefix):
            with activation_mesh(mesh):
                model = nnx.merge(graphdef, state)
                batch, length = input_ids.shape
                cache = model.init_cache(batch, prefix.width + length + max_new, prefix=prefix)
                cache = cache.replace(k=jax.lax.with_sharding_constraint(cache.k, cache_sharding),
                                      v=jax.lax.with_sharding_constraint(cache.v, cache_sharding))
                logits, cache = model.prefill(input_ids, attention_mask, cache)
                first = measures.next_token_measures(logits, prefix="fr_tok1_", nucleus=nucleus)
                shapes = jax.eval_shape(lambda x: measures.step_statistics(x, nucleus=nucleus), logits)
                tracks = {k: jnp.zeros((batch, max_new), s.dtype) for k, s in shapes.items()}
                tokens = jnp.zeros((batch, max_new), jnp.int32)
                done = jnp.zeros((batch,), bool)
                steps = jnp.zeros((batch,), jnp.int32)

                def cond(carry):
                    t, _, _, _, _, done, _ = carry
                    return (t < max_new) & ~jnp.all(done)

                def body(carry):
                    t, logits, cache, tokens, tracks, done, steps = carry
                    stats = measures.step_statistics(logits, nucleus=nucleus)
                    tracks = {k: v.at[:, t].set(stats[k]) for k, v in tracks.items()}
                    token = jnp.argmax(logits, axis=-1).astype(jnp.int32)
                    tokens = tokens.at[:, t].set(token)
                    steps = steps + (~done).astype(jnp.int32)
                    done = done | jnp.isin(token, eos)
                    logits, cache = model.decode_step(token, cache)
                    return t + 1, logits, cache, tokens, tracks, done, steps

                carry = (jnp.int32(0), logits, cache, tokens, tracks, done, steps)
                _, _, _, tokens, tracks, done, steps = jax.lax.while_loop(cond, body, carry)
                return tokens, steps, ~done, tracks, first

        self._prefix = jax.jit(prefix)
        self._generate = jax.jit(generate)

    def prefix(self, tokens: list[int], width: int):
        ids = np.zeros(width, np.int32)
        ids[: len(tokens)] = tokens
        return self._prefix(self.state, ids, np.int32(len(tokens)))

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray, prefix=None) -> Generation:
        """Greedy generation for left-padded prompts (after `prefix`, a PrefixKV; None: no prefix)."""
        prefix = self.prefix([], 1) if prefix is None else prefix
        self.shapes.add((input_ids.shape, prefix.width))
        rows = batch_sharding(self.mesh, 2)
        tokens, steps, hit_cap, tracks, first = self._generate(
            self.state, jax.device_put(input_ids, rows), jax.device_put(attention_mask, rows), prefix)
        return Generation(np.asarray(tokens), np.asarray(steps), np.asarray(hit_cap),
                          {k: np.asarray(v) for k, v in tracks.items()},
                          {k: np.asarray(v) for k, v in first.items()})

    @property
    def n_compilations(self) -> int:
        return len(self.shapes)


def make_generate(model, mesh: Mesh, *, max_new_tokens: int, eos_ids: list[int], nucleus: str = "inclusive"):
    """A Generator; call it as gen(input_ids, attention_mask[, gen.prefix(tokens, width)])."""
    return Generator(model, mesh, max_new_tokens, eos_ids, nucleus)
