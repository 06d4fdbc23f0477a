"""Shared building blocks: norms, rotary embeddings, grouped-query attention, MLPs, the decoder layer.

Every family is the same decoder layer with different ModelConfig flags. Shapes: B batch, L query
length, S key length, H query heads, K key/value heads (H % K == 0, G = H // K), D head_dim.
Norms and softmax run in float32 and cast back to the activation dtype.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from jaxunc.models.config import ModelConfig

F32 = jnp.float32
ATTENTION_IMPLS = ("xla", "jax")

# The mesh activations are laid out on while a model is traced (None: no hints, one device).
_ACTIVATION_MESH: contextvars.ContextVar = contextvars.ContextVar("activation_mesh", default=None)


@contextlib.contextmanager
def activation_mesh(mesh):
    """Within this context, `constrain` lays activations out on `mesh` (batch rows over `data`)."""
    token = _ACTIVATION_MESH.set(mesh)
    try:
        yield
    finally:
        _ACTIVATION_MESH.reset(token)


def constrain(x: jax.Array, *spec) -> jax.Array:
    """A sharding hint for x (a PartitionSpec over the mesh axes) when tracing under activation_mesh."""
    mesh = _ACTIVATION_MESH.get()
    if mesh is None:
        return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, PartitionSpec(*spec)))


def make_param(rngs: nnx.Rngs | None, init: nnx.Initializer, shape: tuple[int, ...], dtype: jnp.dtype) -> nnx.Param:
    """A parameter drawn with `init`, or a shape-only placeholder when `rngs` is None (abstract build:
    the loader fills every placeholder from a checkpoint, so no random numbers are generated)."""
    if rngs is None:
        return nnx.Param(jax.ShapeDtypeStruct(shape, jnp.dtype(dtype)))
    return nnx.Param(init(rngs.params(), shape, dtype))


class Linear(nnx.Module):
    """y = x @ kernel (+ bias); kernel [in, out], computed in `dtype`."""

    def __init__(self, n_in: int, n_out: int, *, bias: bool, dtype: jnp.dtype, rngs: nnx.Rngs | None):
        self.kernel = make_param(rngs, nnx.initializers.lecun_normal(), (n_in, n_out), dtype)
        self.bias = make_param(rngs, nnx.initializers.zeros_init(), (n_out,), dtype) if bias else None

    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.kernel[...]
        y = jnp.dot(x.astype(kernel.dtype), kernel)
        return y + self.bias[...] if self.bias is not None else y


class Embed(nnx.Module):
    """Token embedding table [vocab, hidden]; also the tied unembedding."""

    def __init__(self, vocab: int, dim: int, *, dtype: jnp.dtype, rngs: nnx.Rngs | None):
        self.embedding = make_param(rngs, nnx.initializers.normal(1.0), (vocab, dim), dtype)

    def __call__(self, ids: jax.Array) -> jax.Array:
        return jnp.take(self.embedding[...], ids, axis=0)


class RMSNorm(nnx.Module):
    """y = x / sqrt(mean(x^2) + eps) * w over the last axis, y computed in float32. Then: Llama casts y to
    the activation dtype and multiplies by w; `weight_f32` (OLMo 2) multiplies in float32 and casts;
    `one_plus` (Gemma) multiplies by (1 + w) in float32 and casts."""

    def __init__(
        self, dim: int, *, eps: float, one_plus: bool, dtype: jnp.dtype, rngs: nnx.Rngs | None, weight_f32: bool = False
    ):
        self.eps = eps
        self.one_plus = one_plus
        self.weight_f32 = weight_f32
        init = nnx.initializers.zeros_init() if one_plus else nnx.initializers.ones_init()
        self.scale = make_param(rngs, init, (dim,), dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        xf = x.astype(F32)
        y = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
        if self.one_plus:
            return (y * (1.0 + self.scale[...].astype(F32))).astype(x.dtype)
        if self.weight_f32:
            return (y * self.scale[...].astype(F32)).astype(x.dtype)
        return self.scale[...] * y.astype(x.dtype)


class LayerNorm(nnx.Module):
    """y = (x - mean) / sqrt(var + eps) * w + b, computed in float32."""

    def __init__(self, dim: int, *, eps: float, dtype: jnp.dtype, rngs: nnx.Rngs | None):
        self.eps = eps
        self.scale = make_param(rngs, nnx.initializers.ones_init(), (dim,), dtype)
        self.bias = make_param(rngs, nnx.initializers.zeros_init(), (dim,), dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        xf = x.astype(F32)
        mean = jnp.mean(xf, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(xf - mean), axis=-1, keepdims=True)
        y = (xf - mean) * jax.lax.rsqrt(var + self.eps)
        return (y * self.scale[...].astype(F32) + self.bias[...].astype(F32)).astype(x.dtype)


def make_norm(cfg: ModelConfig, dtype: jnp.dtype, rngs: nnx.Rngs | None, dim: int | None = None) -> RMSNorm | LayerNorm:
    """The config's norm over `dim` features (default hidden_size)."""
    dim = cfg.hidden_size if dim is None else dim
    if cfg.norm_kind == "layer":
        return LayerNorm(dim, eps=cfg.norm_eps, dtype=dtype, rngs=rngs)
    one_plus = cfg.norm_kind == "rms_one_plus"
    return RMSNorm(dim, eps=cfg.norm_eps, one_plus=one_plus, dtype=dtype, rngs=rngs, weight_f32=cfg.norm_kind == "rms_f32")


# ---------------------------------------------------------------------------------------------------
# Rotary position embeddings (the "rotate half" layout of Llama / GPT-NeoX).


def inverse_frequencies(cfg: ModelConfig, long: bool = False) -> np.ndarray:
    """float64 inv_freq_i = theta^(-2i / r), i < r/2, r = rotary_dim; then the configured scaling.

    llama3 scaling (Llama 3.1): with wavelength w = 2 pi / f and old context C, frequencies with
    w > C / low_freq_factor are divided by `factor`, those with w < C / high_freq_factor are kept, and in
    between f <- (1 - s) f / factor + s f with s = (C / w - low) / (high - low).
    linear scaling divides all frequencies by `factor`.
    longrope (Phi-3): f_i <- f_i / ext_i with ext = rope_long_factor if `long` else rope_short_factor.
    """
    r = cfg.rotary_dim
    inv = 1.0 / (cfg.rope_theta ** (np.arange(0, r, 2, dtype=np.float64) / r))
    if cfg.rope_type == "linear":
        inv = inv / cfg.rope_factor
    elif cfg.rope_type == "longrope":
        ext = cfg.rope_long_factor if long else cfg.rope_short_factor
        inv = inv / np.asarray(ext, dtype=np.float64)
    elif cfg.rope_type == "llama3":
        factor, low, high = cfg.rope_factor, cfg.rope_low_freq_factor, cfg.rope_high_freq_factor
        old = cfg.rope_original_max_position
        wavelen = 2 * np.pi / inv
        scaled = np.where(wavelen > old / low, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old / high) & (wavelen <= old / low)
        inv = np.where(medium, smoothed, scaled)
    return inv


ROPE_DIGIT_BITS = 8
ROPE_LEVELS = 4  # every non-negative int32 position


def rotary_cos_sin(positions: jax.Array, cfg: ModelConfig, dtype: jnp.dtype) -> tuple[jax.Array, jax.Array]:
    """cos/sin of positions * inv_freq, duplicated to rotary_dim: [B, L, rotary_dim] in `dtype`.

    The angle is never formed in float32 (its rounding, |angle| * 2^-24, reaches 2e-5 rad at position 400
    and moved SmolLM2 logits by up to 1.8e-4). The integer position is split into base-256 digits
    p = sum_j d_j 256^j (j < 4); cos/sin of d_j 256^j inv_freq come from float64-computed tables and are
    combined with the angle-addition formulas, so each result is within a few float32 ulps of exact.

    longrope: a row whose sequence so far is longer than rope_original_max_position (max position + 1 >
    C, transformers' rule per forward call) uses the long factors, every other row the short ones; both
    are then multiplied by rope_attention_factor. Keys already in a KV cache keep the rotation they were
    written with (transformers instead recomputes the whole cache once when a decode crosses C).
    """
    if cfg.rope_type == "longrope":
        cos_s, sin_s = _exact_cos_sin(positions, inverse_frequencies(cfg, long=False))
        cos_l, sin_l = _exact_cos_sin(positions, inverse_frequencies(cfg, long=True))
        is_long = (jnp.max(positions, axis=-1, keepdims=True) + 1 > cfg.rope_original_max_position)[..., None]
        scale = jnp.asarray(cfg.rope_attention_factor, F32)
        cos = jnp.where(is_long, cos_l, cos_s) * scale
        sin = jnp.where(is_long, sin_l, sin_s) * scale
    else:
        cos, sin = _exact_cos_sin(positions, inverse_frequencies(cfg))
    cos, sin = jnp.concatenate([cos, cos], axis=-1), jnp.concatenate([sin, sin], axis=-1)
    return cos.astype(dtype), sin.astype(dtype)


def _exact_cos_sin(positions: jax.Array, inv: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """float32 cos/sin of positions * inv [..., r/2] from base-256 digit tables (see rotary_cos_sin)."""
    base = 1 << ROPE_DIGIT_BITS
    pos = positions.astype(jnp.int32)
    cos = sin = None
    for level in range(ROPE_LEVELS):
        angles = np.arange(base, dtype=np.float64)[:, None] * float(base**level) * inv[None, :]
        digit = (pos >> (ROPE_DIGIT_BITS * level)) & (base - 1)
        c = jnp.take(jnp.asarray(np.cos(angles), F32), digit, axis=0)
        s = jnp.take(jnp.asarray(np.sin(angles), F32), digit, axis=0)
        cos, sin = (c, s) if cos is None else (cos * c - sin * s, sin * c + cos * s)
    return cos, sin


def apply_rotary(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """x [B, L, N, D]: rotate the first r = cos.shape[-1] dims as x*cos + rotate_half(x)*sin, pass the rest."""
    r = cos.shape[-1]
    rot, rest = x[..., :r], x[..., r:]
    x1, x2 = rot[..., : r // 2], rot[..., r // 2 :]
    rotated = jnp.concatenate([-x2, x1], axis=-1)
    out = rot * cos[:, :, None, :] + rotated * sin[:, :, None, :]
    return jnp.concatenate([out, rest], axis=-1) if rest.shape[-1] else out


# ---------------------------------------------------------------------------------------------------
# Attention.


def attend(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    allowed: jax.Array,
    *,
    scale: float,
    softcap: float | None,
    impl: str = "xla",
) -> jax.Array:
    """softmax(cap(q k^T * scale) masked) v with grouped-query heads.

    q [B, L, H, D], k/v [B, S, K, D], allowed bool [B, L, S]. Returns [B, L, H*D]. impl "xla": the
    function below (scores and softmax in float32, probabilities cast to v's dtype); "jax":
    `jax.nn.dot_product_attention` (cuDNN's fused kernel on GPU where it applies; no soft-capping,
    so soft-capped models always take "xla"). A query with no allowed key (padding) attends to
    every key uniformly ("xla") or to key 0 ("jax"): finite either way, and never read.
    """
    if impl == "jax" and softcap is None:
        no_key = ~jnp.any(allowed, axis=-1, keepdims=True)
        mask = allowed | (no_key & (jnp.arange(allowed.shape[-1]) == 0))
        out = jax.nn.dot_product_attention(q, k.astype(q.dtype), v.astype(q.dtype), mask=mask[:, None], scale=scale)
        return out.reshape(*q.shape[:2], -1)
    return attend_xla(q, k, v, allowed, scale=scale, softcap=softcap)


def attend_xla(q, k, v, allowed, *, scale: float, softcap: float | None) -> jax.Array:
    """attend's "xla" path. Layout: the G = H / K query heads sharing a key head are stacked along
    the query axis, so each (batch, key head) is one [G*L, D] x [D, S] matmul (no repeated keys; the
    attention alone is ~1.9x faster on XLA:CPU than batching over (K, G) separately at B=8, L=250)."""
    b, length, h, d = q.shape
    s_len, kv_heads = k.shape[1], k.shape[2]
    g = h // kv_heads
    q = q.reshape(b, length, kv_heads, g, d).transpose(0, 2, 3, 1, 4).reshape(b, kv_heads, g * length, d)
    k = k.transpose(0, 2, 1, 3)
    v = v.transpose(0, 2, 1, 3)
    scores = jnp.einsum("bkqd,bksd->bkqs", q, k, preferred_element_type=F32) * scale
    if softcap is not None:
        scores = jnp.tanh(scores / softcap) * softcap
    scores = scores.reshape(b, kv_heads, g, length, s_len)
    scores = jnp.where(allowed[:, None, None, :, :], scores, jnp.finfo(F32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype).reshape(b, kv_heads, g * length, s_len)
    out = jnp.einsum("bkqs,bksd->bkqd", probs, v).reshape(b, kv_heads, g, length, d)
    return out.transpose(0, 3, 1, 2, 4).reshape(b, length, h * d)


# kv(k_new [B, L, K, D], v_new) -> (keys, values) to attend over: the new ones alone, after a shared
# prefix, or written into a KV cache (the model's trunk provides it; see CausalLM._trunk).
KVFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def _own_kv(k: jax.Array, v: jax.Array) -> tuple[jax.Array, jax.Array]:
    return k, v


def _linear(n_in: int, n_out: int, bias: bool, dtype: jnp.dtype, rngs: nnx.Rngs | None) -> Linear:
    return Linear(n_in, n_out, bias=bias, dtype=dtype, rngs=rngs)


class Attention(nnx.Module):
    """Multi-head attention with GQA, RoPE (full or partial), optional q/k/v/o biases and soft-capping.

    qk_norm (the config's norm kind, before RoPE): "per_head" normalises each head's D features with
    q_norm / k_norm scales of size D (Qwen3, Gemma 3); "full_width" normalises the whole projection,
    scales of size H*D and K*D (OLMo 2).
    """

    def __init__(self, cfg: ModelConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs | None):
        hd, h, kv = cfg.head_dim, cfg.num_heads, cfg.num_kv_heads
        self.num_heads, self.num_kv_heads, self.head_dim = h, kv, hd
        self.scale = cfg.attn_scale
        self.softcap = cfg.attn_logit_softcap
        self.q_proj = _linear(cfg.hidden_size, h * hd, cfg.qkv_bias, dtype, rngs)
        self.k_proj = _linear(cfg.hidden_size, kv * hd, cfg.qkv_bias, dtype, rngs)
        self.v_proj = _linear(cfg.hidden_size, kv * hd, cfg.qkv_bias, dtype, rngs)
        self.o_proj = _linear(h * hd, cfg.hidden_size, cfg.o_bias, dtype, rngs)
        self.qk_norm = cfg.qk_norm
        if cfg.qk_norm is not None:
            per_head = cfg.qk_norm == "per_head"
            self.q_norm = make_norm(cfg, dtype, rngs, hd if per_head else h * hd)
            self.k_norm = make_norm(cfg, dtype, rngs, hd if per_head else kv * hd)

    def __call__(
        self,
        x: jax.Array,
        rope: tuple[jax.Array, jax.Array],
        allowed: jax.Array,
        kv: KVFn = _own_kv,
        impl: str = "xla",
    ) -> jax.Array:
        """x [B, L, hidden] -> [B, L, hidden]; queries attend over kv(new keys, new values), masked by
        `allowed` [B, L, S]."""
        b, length, _ = x.shape
        q, k = self.q_proj(x), self.k_proj(x)
        if self.qk_norm == "full_width":
            q, k = self.q_norm(q), self.k_norm(k)
        q = q.reshape(b, length, self.num_heads, self.head_dim)
        k = k.reshape(b, length, self.num_kv_heads, self.head_dim)
        v = self.v_proj(x).reshape(b, length, self.num_kv_heads, self.head_dim)
        if self.qk_norm == "per_head":
            q, k = self.q_norm(q), self.k_norm(k)
        cos, sin = rope
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        keys, values = kv(k, v)
        out = attend(q, keys, values, allowed, scale=self.scale, softcap=self.softcap, impl=impl)
        return self.o_proj(out)


class MLP(nnx.Module):
    """Gated (SwiGLU / GeGLU): down(act(gate(x)) * up(x)); plain (GPT-NeoX): down(act(up(x)))."""

    def __init__(self, cfg: ModelConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs | None):
        self.activation = cfg.activation
        self.gated = cfg.gated_mlp
        if cfg.gated_mlp:
            self.gate_proj = _linear(cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias, dtype, rngs)
        self.up_proj = _linear(cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias, dtype, rngs)
        self.down_proj = _linear(cfg.intermediate_size, cfg.hidden_size, cfg.mlp_bias, dtype, rngs)

    def _act(self, x: jax.Array) -> jax.Array:
        if self.activation == "silu":
            return jax.nn.silu(x)
        return jax.nn.gelu(x, approximate=self.activation == "gelu_tanh")

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.gated:
            return self.down_proj(self._act(self.gate_proj(x)) * self.up_proj(x))
        return self.down_proj(self._act(self.up_proj(x)))


class DecoderLayer(nnx.Module):
    """One block; the norms around attention and MLP are set by flags (n_in: attn_norm / mlp_norm,
    n_out: attn_out_norm / mlp_out_norm).

    Sequential pre-norm (Llama): x += attn(n_in(x)); x += mlp(n_in(x)).
    sandwich_norms (Gemma 2/3): x += n_out(attn(n_in(x))); x += n_out(mlp(n_in(x))).
    post_norms_only (OLMo 2): x += n_out(attn(x)); x += n_out(mlp(x)).
    parallel_residual (GPT-NeoX): x = mlp(n_in(x)) + attn(n_in(x)) + x.
    """

    def __init__(self, cfg: ModelConfig, *, dtype: jnp.dtype, rngs: nnx.Rngs | None):
        self.parallel = cfg.parallel_residual
        self.pre_norms = not cfg.post_norms_only
        self.post_norms = cfg.sandwich_norms or cfg.post_norms_only
        if self.pre_norms:
            self.attn_norm = make_norm(cfg, dtype, rngs)
        self.attn = Attention(cfg, dtype=dtype, rngs=rngs)
        if self.pre_norms:
            self.mlp_norm = make_norm(cfg, dtype, rngs)
        self.mlp = MLP(cfg, dtype=dtype, rngs=rngs)
        if self.post_norms:
            self.attn_out_norm = make_norm(cfg, dtype, rngs)
            self.mlp_out_norm = make_norm(cfg, dtype, rngs)

    def __call__(self, x, rope, allowed, kv: KVFn = _own_kv, impl: str = "xla"):
        a = self.attn(self.attn_norm(x) if self.pre_norms else x, rope, allowed, kv, impl)
        if self.parallel:
            return self.mlp(self.mlp_norm(x)) + a + x
        if self.post_norms:
            a = self.attn_out_norm(a)
        x = x + a
        m = self.mlp(self.mlp_norm(x) if self.pre_norms else x)
        if self.post_norms:
            m = self.mlp_out_norm(m)
        return x + m
