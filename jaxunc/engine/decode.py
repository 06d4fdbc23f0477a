"""Jitted greedy decoding with a KV cache; per-step measure statistics kept as [batch, steps] tracks.

Nothing of size [batch, steps, vocab] exists: at step t the [batch, vocab] logits are reduced to the
scalars of `measures.step_statistics` and the greedy token, then dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxunc import measures
from jaxunc.engine.mesh import Mesh, batch_sharding, replicated


@dataclass
class Generation:
    tokens: np.ndarray  # int32 [batch, max_new]; steps past a row's first EOS are masked out later
    steps: np.ndarray  # int32 [batch]: steps up to and including the first EOS (or max_new)
    hit_cap: np.ndarray  # bool [batch]: no EOS before the cap
    stats: dict[str, np.ndarray]  # per-step statistics, each [batch, max_new]
    first: dict[str, np.ndarray]  # `fr_tok1_*` measures of the first step, each [batch]


def make_generate(model, mesh: Mesh, *, max_new_tokens: int, eos_ids: list[int], nucleus: str = "inclusive"):
    """A function (input_ids, attention_mask) -> Generation for left-padded prompt batches."""
    graphdef, state = nnx.split(model)
    state = jax.device_put(state, replicated(mesh))
    eos = jnp.asarray(sorted(set(eos_ids)) or [-1], dtype=jnp.int32)

    @jax.jit
    def generate(state, input_ids, attention_mask):
        model = nnx.merge(graphdef, state)
        batch, length = input_ids.shape
        cache = model.init_cache(batch, length + max_new_tokens)
        logits, cache = model.prefill(input_ids, attention_mask, cache)
        first = measures.next_token_measures(logits, prefix="fr_tok1_", nucleus=nucleus)
        shapes = jax.eval_shape(lambda x: measures.step_statistics(x, nucleus=nucleus), logits)
        tracks = {k: jnp.zeros((batch, max_new_tokens), s.dtype) for k, s in shapes.items()}
        tokens = jnp.zeros((batch, max_new_tokens), jnp.int32)
        done = jnp.zeros((batch,), bool)
        steps = jnp.zeros((batch,), jnp.int32)

        def cond(carry):
            t, _, _, _, _, done, _ = carry
            return (t < max_new_tokens) & ~jnp.all(done)

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

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> Generation:
        sharding = batch_sharding(mesh)
        tokens, steps, hit_cap, tracks, first = generate(
            state, jax.device_put(input_ids, sharding), jax.device_put(attention_mask, sharding))
        return Generation(np.asarray(tokens), np.asarray(steps), np.asarray(hit_cap),
                          {k: np.asarray(v) for k, v in tracks.items()},
                          {k: np.asarray(v) for k, v in first.items()})

    return run
