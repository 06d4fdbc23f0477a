"""CausalLM: the decoder-only language model shared by every family, with a KV cache.

Public API (all pure in the parameters, jit-able; see ``jaxunc.models.JittedModel`` for the pattern):

- ``model(input_ids [B, L], attention_mask [B, L], logit_positions [B, P]) -> float32 logits [B, P, V]``
  Padding may be on the left or the right (contiguous real tokens per row): positions are
  ``max(cumsum(mask) - 1, 0)``, keys with mask 0 are never attended, attention is causal by column.
  Hidden states are gathered at ``logit_positions`` before the final norm and unembedding.
- ``init_cache(batch_size, max_length) -> KVCache``
- ``prefill(input_ids, attention_mask, cache) -> (logits [B, V] at each row's last real token, cache)``
  (written for left-padded prompts, where that token is the last column).
- ``decode_step(tokens [B], cache) -> (logits [B, V], cache)`` appends one token to every row.
- ``hidden_states(input_ids, attention_mask) -> [num_layers + 1, B, L, hidden]`` (embeddings, then the
  output of every layer; no final norm).
"""

from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp
from flax import nnx

from jaxunc.models.config import ModelConfig
from jaxunc.models.layers import DecoderLayer, Embed, Linear, make_norm, rotary_cos_sin

F32 = jnp.float32
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def resolve_dtype(dtype: str | jnp.dtype) -> jnp.dtype:
    """'float32' | 'bfloat16' (or the jnp dtypes) -> jnp dtype; ValueError otherwise."""
    name = dtype if isinstance(dtype, str) else jnp.dtype(dtype).name
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return jnp.dtype(DTYPES[name])


@flax.struct.dataclass
class KVCache:
    """Per-layer keys/values [B, M, K, D] in the compute dtype plus bookkeeping.

    valid [B, M] bool: column holds a real token; pos [B, M] int32: that token's position;
    next_pos [B] int32: position of each row's next token; index [] int32: next column to write.
    """

    k: tuple[jax.Array, ...]
    v: tuple[jax.Array, ...]
    valid: jax.Array
    pos: jax.Array
    next_pos: jax.Array
    index: jax.Array

    @property
    def max_length(self) -> int:
        return self.valid.shape[1]


def _check_2d(name: str, x: jax.Array, batch: int | None = None) -> None:
    if x.ndim != 2 or (batch is not None and x.shape[0] != batch):
        want = f"[{batch}, L]" if batch is not None else "[B, L]"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")


class CausalLM(nnx.Module):
    """Embeddings -> DecoderLayer x N -> final norm -> (tied or separate) unembedding.

    With ``rngs=None`` every parameter is a shape-only placeholder (use ``build_model(params=...)``).
    """

    def __init__(self, config: ModelConfig, *, dtype: str | jnp.dtype = "float32", rngs: nnx.Rngs | None):
        self.config = config
        self.dtype = resolve_dtype(dtype)
        cfg, dt = config, self.dtype
        self.embed = Embed(cfg.vocab_size, cfg.hidden_size, dtype=dt, rngs=rngs)
        self.layers = nnx.List([DecoderLayer(cfg, i, dtype=dt, rngs=rngs) for i in range(cfg.num_layers)])
        self.final_norm = make_norm(cfg, dt, rngs)
        tied = cfg.tie_word_embeddings
        self.lm_head = None if tied else Linear(cfg.hidden_size, cfg.vocab_size, bias=False, dtype=dt, rngs=rngs)

    # -- pieces ---------------------------------------------------------------------------------------

    def _embed(self, input_ids: jax.Array) -> jax.Array:
        h = self.embed(input_ids)
        if self.config.scale_embeddings:
            h = h * jnp.asarray(math.sqrt(self.config.hidden_size), dtype=self.dtype)
        return h

    def _masks(self, allowed: jax.Array, q_pos: jax.Array, k_pos: jax.Array) -> dict[str, jax.Array]:
        """{layer type: allowed [B, L, S]}; "sliding" layers also require q_pos - k_pos < window."""
        masks = {"full": allowed}
        if self.config.sliding_window and "sliding" in self.config.layer_types:
            near = (q_pos[:, :, None] - k_pos[:, None, :]) < self.config.sliding_window
            masks["sliding"] = allowed & near
        return masks

    def _ropes(self, positions: jax.Array) -> dict[str, tuple[jax.Array, jax.Array]]:
        """{layer type: (cos, sin)}: one table per distinct RoPE (Gemma 3: local vs global layers)."""
        cfg, ropes = self.config, {}
        for kind in dict.fromkeys(cfg.layer_types):
            same = [t for t in ropes if cfg.rope_for(t) == cfg.rope_for(kind)]
            ropes[kind] = ropes[same[0]] if same else rotary_cos_sin(positions, cfg.rope_for(kind), self.dtype)
        return ropes

    def _unembed(self, h: jax.Array) -> jax.Array:
        """h [..., hidden] -> float32 logits [..., V] (final norm, unembedding, optional soft-cap)."""
        h = self.final_norm(h)
        if self.config.tie_word_embeddings:
            logits = jnp.einsum("...d,vd->...v", h, self.embed.embedding[...], preferred_element_type=F32)
        else:
            logits = jnp.einsum("...d,dv->...v", h, self.lm_head.kernel[...], preferred_element_type=F32)
        cap = self.config.final_logit_softcap
        if cap is not None:
            logits = jnp.tanh(logits / cap) * cap
        return logits

    def _trunk(self, input_ids, positions, masks, cache=None, col=None, collect=False):
        """Run all layers; returns (final hidden [B, L, hidden], new (k, v) per layer, all hidden states)."""
        h = self._embed(input_ids)
        ropes = self._ropes(positions)
        new_k, new_v, states = [], [], [h]
        for i, layer in enumerate(self.layers):
            kind = self.config.layer_types[i]  # per-layer data: picks the mask and the RoPE table
            layer_cache = None if cache is None else (cache.k[i], cache.v[i], col)
            h, kv = layer(h, ropes[kind], masks[kind], layer_cache)
            if kv is not None:
                new_k.append(kv[0])
                new_v.append(kv[1])
            if collect:
                states.append(h)
        return h, (tuple(new_k), tuple(new_v)), states

    def _full_inputs(self, input_ids, attention_mask):
        _check_2d("input_ids", input_ids)
        _check_2d("attention_mask", attention_mask, input_ids.shape[0])
        if attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask shape {attention_mask.shape} != input_ids shape {input_ids.shape}")
        mask = attention_mask.astype(bool)
        pos = jnp.maximum(jnp.cumsum(mask.astype(jnp.int32), axis=1) - 1, 0)
        cols = jnp.arange(input_ids.shape[1])
        allowed = mask[:, None, :] & (cols[None, None, :] <= cols[None, :, None])
        return pos, self._masks(allowed, pos, pos)

    # -- public API -----------------------------------------------------------------------------------

    def __call__(self, input_ids: jax.Array, attention_mask: jax.Array, logit_positions: jax.Array) -> jax.Array:
        """float32 logits [B, P, V] at `logit_positions` (int [B, P], column indices into L)."""
        pos, masks = self._full_inputs(input_ids, attention_mask)
        _check_2d("logit_positions", logit_positions, input_ids.shape[0])
        h, _, _ = self._trunk(input_ids, pos, masks)
        h = jnp.take_along_axis(h, logit_positions.astype(jnp.int32)[:, :, None], axis=1)
        return self._unembed(h)

    def hidden_states(self, input_ids: jax.Array, attention_mask: jax.Array) -> jax.Array:
        """[num_layers + 1, B, L, hidden]: embedding output, then each layer's output (before final norm)."""
        pos, masks = self._full_inputs(input_ids, attention_mask)
        _, _, states = self._trunk(input_ids, pos, masks, collect=True)
        return jnp.stack(states)

    def init_cache(self, batch_size: int, max_length: int) -> KVCache:
        """Empty cache for `batch_size` rows and `max_length` total tokens (prompt + generated)."""
        cfg = self.config
        shape = (batch_size, max_length, cfg.num_kv_heads, cfg.head_dim)
        zeros = tuple(jnp.zeros(shape, self.dtype) for _ in range(cfg.num_layers))
        return KVCache(
            k=zeros,
            v=tuple(jnp.zeros(shape, self.dtype) for _ in range(cfg.num_layers)),
            valid=jnp.zeros((batch_size, max_length), bool),
            pos=jnp.zeros((batch_size, max_length), jnp.int32),
            next_pos=jnp.zeros((batch_size,), jnp.int32),
            index=jnp.zeros((), jnp.int32),
        )

    def _extend(self, input_ids, mask, cache: KVCache):
        """Append columns [index, index + L) to the cache and run the layers over them."""
        length = input_ids.shape[1]
        if length > cache.max_length:
            raise ValueError(f"{length} new tokens do not fit a cache of max_length {cache.max_length}")
        start = cache.index
        q_pos = cache.next_pos[:, None] + jnp.maximum(jnp.cumsum(mask.astype(jnp.int32), axis=1) - 1, 0)
        valid = jax.lax.dynamic_update_slice(cache.valid, mask, (0, start))
        k_pos = jax.lax.dynamic_update_slice(cache.pos, q_pos.astype(jnp.int32), (0, start))
        q_col = start + jnp.arange(length)
        k_col = jnp.arange(cache.max_length)
        allowed = valid[:, None, :] & (k_col[None, None, :] <= q_col[None, :, None])
        h, (ks, vs), _ = self._trunk(input_ids, q_pos, self._masks(allowed, q_pos, k_pos), cache, start)
        new_cache = KVCache(
            k=ks,
            v=vs,
            valid=valid,
            pos=k_pos,
            next_pos=cache.next_pos + jnp.sum(mask, axis=1, dtype=jnp.int32),
            index=start + length,
        )
        return h, new_cache

    def prefill(self, input_ids: jax.Array, attention_mask: jax.Array, cache: KVCache) -> tuple[jax.Array, KVCache]:
        """Run a (left-padded) prompt batch into `cache`; float32 logits [B, V] at each row's last real token."""
        _check_2d("input_ids", input_ids)
        if attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask shape {attention_mask.shape} != input_ids shape {input_ids.shape}")
        if cache.valid.shape[0] != input_ids.shape[0]:
            raise ValueError(f"cache batch {cache.valid.shape[0]} != input_ids batch {input_ids.shape[0]}")
        mask = attention_mask.astype(bool)
        h, cache = self._extend(input_ids, mask, cache)
        last = input_ids.shape[1] - 1 - jnp.argmax(mask[:, ::-1], axis=1)
        h_last = jnp.take_along_axis(h, last[:, None, None], axis=1)[:, 0]
        return self._unembed(h_last), cache

    def decode_step(self, tokens: jax.Array, cache: KVCache) -> tuple[jax.Array, KVCache]:
        """Append one token per row (tokens int [B]); float32 logits [B, V] for the next token."""
        if tokens.ndim != 1 or tokens.shape[0] != cache.valid.shape[0]:
            raise ValueError(f"tokens must have shape [{cache.valid.shape[0]}], got {tuple(tokens.shape)}")
        mask = jnp.ones((tokens.shape[0], 1), bool)
        h, cache = self._extend(tokens[:, None], mask, cache)
        return self._unembed(h[:, 0]), cache
