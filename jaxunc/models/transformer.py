"""CausalLM: the decoder-only language model shared by every family, with a KV cache.

Public API (all pure in the parameters, jit-able; see ``jaxunc.models.JittedModel`` for the pattern):

- ``model(input_ids [B, L], attention_mask [B, L], logit_positions [B, P]) -> float32 logits [B, P, V]``
  Padding may be on the left or the right (contiguous real tokens per row): positions are
  ``max(cumsum(mask) - 1, 0)``, keys with mask 0 are never attended, attention is causal by column.
  Hidden states are gathered at ``logit_positions`` before the final norm and unembedding.
- ``prefix_kv(prefix_ids [P]) -> PrefixKV``: a shared prompt prefix run once (positions 0..P-1).
- ``packed_logits(input_ids [B, T], positions, segments [B, T], logit_positions [B, S], prefix)``
  -> float32 [B, S, V]: several prompt suffixes packed into each row (segment ids 1, 2, ...; 0 =
  padding), each attending to the shared prefix and causally to its own segment.
- ``init_cache(batch_size, max_length, prefix=None) -> KVCache`` (the prefix copied into every row)
- ``prefill(input_ids, attention_mask, cache) -> (logits [B, V] at each row's last real token, cache)``
  (written for left-padded prompts, where that token is the last column).
- ``decode_step(tokens [B], cache) -> (logits [B, V], cache)`` appends one token to every row.
- ``hidden_states(input_ids, attention_mask, final_norm=False) -> [num_layers + 1, B, L, hidden]``
  (embeddings, then the output of every layer; final_norm=True applies the final norm to the last
  entry: transformers' ``output_hidden_states`` convention).
- ``packed_logits(..., hidden=True) -> (logits, hidden [B, S, num_layers + 1, hidden] float32)``: the
  same states at the logit positions only, in transformers' convention (probes; nothing of size
  [B, T, hidden] per layer leaves the layer scan).

Layers: one DecoderLayer whose parameters are stacked along a leading [num_layers] axis; the trunk
runs it under `jax.lax.scan` (scan_layers=True: compile time independent of depth) or unrolled.
Per-layer differences are data: each layer's type (full / sliding attention) indexes the masks and
RoPE tables built once per call.
"""

from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp
from flax import nnx

from jaxunc.models.config import ModelConfig
from jaxunc.models.layers import ATTENTION_IMPLS, DecoderLayer, Embed, Linear, constrain, make_norm, rotary_cos_sin

F32 = jnp.float32
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
DATA = "data"  # the mesh axis batch rows are split over (engine/mesh.py)


def resolve_dtype(dtype: str | jnp.dtype) -> jnp.dtype:
    """'float32' | 'bfloat16' (or the jnp dtypes) -> jnp dtype; ValueError otherwise."""
    name = dtype if isinstance(dtype, str) else jnp.dtype(dtype).name
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return jnp.dtype(DTYPES[name])


@flax.struct.dataclass
class KVCache:
    """Stacked keys/values [layers, B, M, K, D] in the compute dtype plus bookkeeping.

    valid [B, M] bool: column holds a real token; pos [B, M] int32: that token's position;
    next_pos [B] int32: position of each row's next token; index [] int32: next column to write.
    """

    k: jax.Array
    v: jax.Array
    valid: jax.Array
    pos: jax.Array
    next_pos: jax.Array
    index: jax.Array

    @property
    def max_length(self) -> int:
        return self.valid.shape[1]


@flax.struct.dataclass
class PrefixKV:
    """Keys/values [layers, P, K, D] of a shared prompt prefix at positions 0..P-1; only the first
    `length` (int32 scalar, <= P) columns are real, so prefixes of any length share one shape."""

    k: jax.Array
    v: jax.Array
    length: jax.Array

    @property
    def width(self) -> int:
        return self.k.shape[1]

    @property
    def valid(self) -> jax.Array:
        """bool [P]: the real columns."""
        return jnp.arange(self.width) < self.length


def _check_2d(name: str, x: jax.Array, batch: int | None = None) -> None:
    if x.ndim != 2 or (batch is not None and x.shape[0] != batch):
        want = f"[{batch}, L]" if batch is not None else "[B, L]"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")


def stacked_layers(config: ModelConfig, dtype: jnp.dtype, rngs: nnx.Rngs | None) -> DecoderLayer:
    """One DecoderLayer whose parameters carry a leading [num_layers] axis (placeholders when rngs is None)."""
    n = config.num_layers
    layer = DecoderLayer(config, dtype=dtype, rngs=None)
    params = nnx.state(layer, nnx.Param)
    if rngs is None:
        stacked = jax.tree.map(lambda s: jax.ShapeDtypeStruct((n, *s.shape), s.dtype), params)
    else:
        draws = [nnx.state(DecoderLayer(config, dtype=dtype, rngs=rngs), nnx.Param) for _ in range(n)]
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *draws)
    nnx.update(layer, stacked)
    return layer


class CausalLM(nnx.Module):
    """Embeddings -> DecoderLayer x N (stacked) -> final norm -> (tied or separate) unembedding.

    With ``rngs=None`` every parameter is a shape-only placeholder (use ``build_model(params=...)``).
    `scan_layers` and `attention` ("xla" | "jax", see layers.attend) may be changed after building.
    """

    def __init__(self, config: ModelConfig, *, dtype: str | jnp.dtype = "float32", rngs: nnx.Rngs | None,
                 scan_layers: bool = True, attention: str = "xla"):
        if attention not in ATTENTION_IMPLS:
            raise ValueError(f"attention must be one of {ATTENTION_IMPLS}, got {attention!r}")
        self.config = config
        self.dtype = resolve_dtype(dtype)
        self.scan_layers = scan_layers
        self.attention = attention
        cfg, dt = config, self.dtype
        self.embed = Embed(cfg.vocab_size, cfg.hidden_size, dtype=dt, rngs=rngs)
        self.layers = stacked_layers(cfg, dt, rngs)
        self.final_norm = make_norm(cfg, dt, rngs)
        tied = cfg.tie_word_embeddings
        self.lm_head = None if tied else Linear(cfg.hidden_size, cfg.vocab_size, bias=False, dtype=dt, rngs=rngs)

    # -- pieces ---------------------------------------------------------------------------------------

    @property
    def _kinds(self) -> tuple[str, ...]:
        """The distinct layer types, in order of first use; layer i has type kinds[_kind_of[i]]."""
        return tuple(dict.fromkeys(self.config.layer_types))

    def _embed(self, input_ids: jax.Array) -> jax.Array:
        h = self.embed(input_ids)
        if self.config.scale_embeddings:
            h = h * jnp.asarray(math.sqrt(self.config.hidden_size), dtype=self.dtype)
        return h

    def _masks(self, allowed: jax.Array, q_pos: jax.Array, k_pos: jax.Array) -> jax.Array:
        """[kinds, B, L, S]: `allowed` per layer type; "sliding" also requires q_pos - k_pos < window."""
        masks = []
        for kind in self._kinds:
            if kind == "sliding":
                masks.append(allowed & ((q_pos[:, :, None] - k_pos[:, None, :]) < self.config.sliding_window))
            else:
                masks.append(allowed)
        return jnp.stack(masks)

    def _ropes(self, positions: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(cos, sin) [kinds, B, L, rotary_dim]: one table per layer type (Gemma 3: local vs global)."""
        tables = [rotary_cos_sin(positions, self.config.rope_for(kind), self.dtype) for kind in self._kinds]
        return jnp.stack([c for c, _ in tables]), jnp.stack([s for _, s in tables])

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

    def _trunk(self, input_ids, positions, masks, *, prefix: PrefixKV | None = None, cache: KVCache | None = None,
               keep_kv: bool = False, collect: jax.Array | None = None):
        """Run every layer over the tokens.

        Keys/values attended to: the tokens' own (default), after `prefix` (broadcast to every row), or
        written into `cache` at column cache.index (attention then spans the cache's M columns).
        Returns (final hidden [B, L, hidden], extras) with extras["k"], ["v"]: the tokens' own keys and
        values [layers, B, L, K, D] (keep_kv) or the updated cache arrays (cache); extras["states"]:
        each layer's output at the columns `collect` [B, P] -> [layers, B, P, hidden].
        """
        h = constrain(self._embed(input_ids), DATA, None, None)
        cos, sin = self._ropes(positions)
        kind_of = jnp.asarray([self._kinds.index(t) for t in self.config.layer_types], jnp.int32)
        graphdef, params = nnx.split(self.layers)
        col = None if cache is None else cache.index
        batch = input_ids.shape[0]

        def layer(carry, xs):
            h, cache_k, cache_v = carry
            p, kind, i = xs[:3]
            own: dict[str, jax.Array] = {}

            def kv(k, v):
                if cache is not None:
                    new_k = jax.lax.dynamic_update_slice(cache_k, k[None].astype(cache_k.dtype), (i, 0, col, 0, 0))
                    new_v = jax.lax.dynamic_update_slice(cache_v, v[None].astype(cache_v.dtype), (i, 0, col, 0, 0))
                    own["cache"] = (new_k, new_v)
                    return new_k[i], new_v[i]
                own["kv"] = (k, v)
                if prefix is not None:
                    pk, pv = (jnp.broadcast_to(x[None], (batch, *x.shape)).astype(k.dtype) for x in xs[3:])
                    return jnp.concatenate([pk, k], axis=1), jnp.concatenate([pv, v], axis=1)
                return k, v

            pick = lambda table: jax.lax.dynamic_index_in_dim(table, kind, keepdims=False)  # noqa: E731
            h = nnx.merge(graphdef, p)(h, (pick(cos), pick(sin)), pick(masks), kv, self.attention)
            h = constrain(h, DATA, None, None)
            cache_k, cache_v = own.get("cache", (cache_k, cache_v))
            out = {}
            if keep_kv:
                out["k"], out["v"] = own["kv"]
            if collect is not None:
                out["states"] = jnp.take_along_axis(h, collect[:, :, None], axis=1)
            return (h, cache_k, cache_v), out

        n = self.config.num_layers
        xs = (params, kind_of, jnp.arange(n, dtype=jnp.int32))
        if prefix is not None:
            xs = (*xs, prefix.k, prefix.v)
        empty = jnp.zeros((), self.dtype)
        carry = (h, cache.k, cache.v) if cache is not None else (h, empty, empty)
        if self.scan_layers:
            carry, ys = jax.lax.scan(layer, carry, xs)
        else:
            outs = []
            for i in range(n):
                carry, out = layer(carry, jax.tree.map(lambda x: x[i], xs))
                outs.append(out)
            ys = jax.tree.map(lambda *a: jnp.stack(a), *outs) if outs and outs[0] else {}
        h, cache_k, cache_v = carry
        extras = dict(ys)
        if cache is not None:
            extras["k"], extras["v"] = cache_k, cache_v
        return h, extras

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
        h, _ = self._trunk(input_ids, pos, masks)
        h = jnp.take_along_axis(h, logit_positions.astype(jnp.int32)[:, :, None], axis=1)
        return self._unembed(h)

    def hidden_states(self, input_ids: jax.Array, attention_mask: jax.Array, final_norm: bool = False) -> jax.Array:
        """[num_layers + 1, B, L, hidden]: embedding output, then each layer's output; the last entry
        before the final norm, or after it with final_norm=True (transformers' output_hidden_states)."""
        pos, masks = self._full_inputs(input_ids, attention_mask)
        every = jnp.broadcast_to(jnp.arange(input_ids.shape[1], dtype=jnp.int32), input_ids.shape)
        _, extras = self._trunk(input_ids, pos, masks, collect=every)
        states = extras["states"]
        if final_norm:
            states = jnp.concatenate([states[:-1], self.final_norm(states[-1])[None]])
        return jnp.concatenate([self._embed(input_ids)[None], states])

    def _convention_states(self, ids_at: jax.Array, states: jax.Array) -> jax.Array:
        """[B, S, layers + 1, hidden] float32 from the token ids at the gathered columns [B, S] and each
        layer's output there [layers, B, S, hidden]: embedding output, layers 1..N-1, final norm of N."""
        stack = jnp.concatenate([self._embed(ids_at)[None], states[:-1], self.final_norm(states[-1])[None]])
        return constrain(jnp.moveaxis(stack, 0, 2).astype(F32), DATA, None, None, None)

    def prefix_kv(self, prefix_ids: jax.Array, length: jax.Array | int | None = None) -> PrefixKV:
        """Keys/values of a shared prefix: the first `length` (default all) of prefix_ids (int [P],
        P >= 1; the rest is padding), run once at positions 0..length-1."""
        if prefix_ids.ndim != 1 or prefix_ids.shape[0] < 1:
            raise ValueError(f"prefix_ids must have shape [P] with P >= 1, got {tuple(prefix_ids.shape)}")
        width = prefix_ids.shape[0]
        length = jnp.asarray(width if length is None else length, jnp.int32)
        ids = prefix_ids[None].astype(jnp.int32)
        mask = (jnp.arange(width) < length)[None].astype(jnp.int32)
        pos, masks = self._full_inputs(ids, mask)
        _, extras = self._trunk(ids, pos, masks, keep_kv=True)
        return PrefixKV(extras["k"][:, 0], extras["v"][:, 0], length)

    def packed_logits(self, input_ids: jax.Array, positions: jax.Array, segments: jax.Array,
                      logit_positions: jax.Array, prefix: PrefixKV | None = None, *, hidden: bool = False):
        """float32 logits [B, S, V] at logit_positions [B, S] of packed rows (see the module docstring).

        positions [B, T]: each token's position in its own prompt (the prefix holds 0..P-1); segments
        [B, T] int: 1, 2, ... per packed suffix, 0 for padding columns.
        hidden=True returns (logits, hidden [B, S, layers + 1, hidden] float32): the states at the
        logit positions in transformers' output_hidden_states convention (embedding output, each
        layer's output, the last after the final norm), gathered inside the layer scan.
        """
        last = logit_positions.astype(jnp.int32)
        allowed, k_pos = packed_mask(positions, segments, prefix)
        h, extras = self._trunk(input_ids, positions, self._masks(allowed, positions, k_pos), prefix=prefix,
                                collect=last if hidden else None)
        h = jnp.take_along_axis(h, last[:, :, None], axis=1)
        logits = constrain(self._unembed(h), DATA, None, None)
        if not hidden:
            return logits
        return logits, self._convention_states(jnp.take_along_axis(input_ids, last, axis=1), extras["states"])

    def init_cache(self, batch_size: int, max_length: int, prefix: PrefixKV | None = None) -> KVCache:
        """Cache for `batch_size` rows and `max_length` total tokens (prefix + prompt + generated); the
        prefix, when given, fills columns [0, P) of every row."""
        cfg = self.config
        shape = (cfg.num_layers, batch_size, max_length, cfg.num_kv_heads, cfg.head_dim)
        k, v = jnp.zeros(shape, self.dtype), jnp.zeros(shape, self.dtype)
        valid = jnp.zeros((batch_size, max_length), bool)
        pos = jnp.zeros((batch_size, max_length), jnp.int32)
        width, length = 0, jnp.zeros((), jnp.int32)
        if prefix is not None:
            width, length = prefix.width, prefix.length
            if width >= max_length:
                raise ValueError(f"a prefix of {width} columns leaves no room in a cache of max_length {max_length}")
            put = lambda c, x: c.at[:, :, :width].set(jnp.broadcast_to(x[:, None], (*c.shape[:2], *x.shape[1:])))  # noqa: E731
            k, v = put(k, prefix.k.astype(self.dtype)), put(v, prefix.v.astype(self.dtype))
            valid = valid.at[:, :width].set(prefix.valid)
            pos = pos.at[:, :width].set(jnp.arange(width, dtype=jnp.int32))
        return KVCache(k=k, v=v, valid=valid, pos=pos, next_pos=jnp.full((batch_size,), length, jnp.int32),
                       index=jnp.asarray(width, jnp.int32))

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
        h, extras = self._trunk(input_ids, q_pos, self._masks(allowed, q_pos, k_pos), cache=cache)
        new_cache = KVCache(
            k=extras["k"],
            v=extras["v"],
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


def packed_mask(positions: jax.Array, segments: jax.Array, prefix: PrefixKV | None) -> tuple[jax.Array, jax.Array]:
    """(allowed [B, T, P + T], key positions [B, P + T]) of packed rows after a shared prefix of P columns.

    A token of segment s > 0 sees the prefix's real columns and the keys of segment s at or before
    its own column; padding columns (segment 0) see nothing and are seen by nothing.
    """
    b, t = segments.shape
    width = 0 if prefix is None else prefix.width
    real = segments > 0
    cols = jnp.arange(t)
    own = (segments[:, :, None] == segments[:, None, :]) & real[:, None, :] & (cols[None, None, :] <= cols[None, :, None])
    parts, k_pos = [own & real[:, :, None]], [positions]
    if prefix is not None:
        parts.insert(0, real[:, :, None] & prefix.valid[None, None, :])
        k_pos.insert(0, jnp.broadcast_to(jnp.arange(width, dtype=positions.dtype), (b, width)))
    return jnp.concatenate(parts, axis=2), jnp.concatenate(k_pos, axis=1)
