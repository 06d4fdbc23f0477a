"""Gemma 3 (text): Gemma 2's block (GeGLU, (1 + w) RMSNorm, sandwich norms, sqrt(hidden)-scaled
embeddings, scores scaled by query_pre_attn_scalar^-0.5) with (1 + w) RMSNorm of each query and key head
before RoPE, no soft-capping by default, and two layer types: five sliding-window ("local") layers per
full ("global") layer. Local layers use plain RoPE with base ``rope_local_base_freq`` (10k), global layers
``rope_theta`` (1M) with the declared scaling (4B-27B: linear, factor 8); ``ModelConfig.rope_for`` gives
each layer type its table.

model_type "gemma3_text" is ``Gemma3ForCausalLM`` (1B); model_type "gemma3" is the multimodal
``Gemma3ForConditionalGeneration`` (4B-27B), whose language model is read from ``text_config`` and whose
``language_model`` weights are loaded (the vision tower is skipped by the key map).
"""

from __future__ import annotations

from typing import Any

from jaxunc.models.config import ModelConfig, common_fields, layer_types_from_hf, require, rope_fields
from jaxunc.models.gemma import gemma_activation

MODEL_TYPES = ("gemma3_text", "gemma3")
ARCHITECTURES = ("Gemma3ForConditionalGeneration",)

# transformers' Gemma3TextConfig defaults: published multimodal configs give only a few `text_config`
# fields (gemma-3-4b-it: hidden_size, intermediate_size, num_hidden_layers, rope_scaling, sliding_window).
TEXT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 262_208,
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 26,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh",
    "max_position_embeddings": 131_072,
    "rms_norm_eps": 1e-6,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "bos_token_id": 2,
    "tie_word_embeddings": True,
    "attention_bias": False,
    "query_pre_attn_scalar": 256,
    "sliding_window": 4096,
    "final_logit_softcapping": None,
    "attn_logit_softcapping": None,
}
GLOBAL_THETA, LOCAL_THETA, SLIDING_PATTERN = 1_000_000.0, 10_000.0, 6


def text_config(hf: dict[str, Any]) -> dict[str, Any]:
    """The language model's config.json fields, Gemma3TextConfig defaults filled in. For the multimodal
    "gemma3" the fields come from `text_config`; top-level token ids and tie_word_embeddings win."""
    if hf["model_type"] == "gemma3":
        text = hf.get("text_config")
        if not isinstance(text, dict):
            raise ValueError("config.json (model_type 'gemma3') lacks the `text_config` of its language model")
        top = {k: hf[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id", "tie_word_embeddings")
               if hf.get(k) is not None}
        return {**TEXT_DEFAULTS, **{k: v for k, v in text.items() if v is not None}, **top, "model_type": "gemma3"}
    return {**TEXT_DEFAULTS, **{k: v for k, v in hf.items() if v is not None}}


def _ropes(text: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """(rope fields of the global layers, RoPE base of the local layers), from the nested transformers 5
    ``rope_parameters`` {"full_attention": ..., "sliding_attention": ...} or the older rope_theta,
    rope_scaling (global layers) and rope_local_base_freq."""
    nested = text.get("rope_parameters") or {}
    if "full_attention" in nested or "sliding_attention" in nested:
        full = rope_fields({**text, "rope_parameters": nested.get("full_attention") or {}, "rope_scaling": None},
                           default_theta=GLOBAL_THETA)
        local = dict(nested.get("sliding_attention") or {})
        kind = local.get("rope_type", local.get("type", "default"))
        if kind != "default":
            raise ValueError(
                f"unsupported RoPE type {kind!r} in config.json field rope_parameters.sliding_attention.rope_type; "
                "supported: default"
            )
        return full, float(local.get("rope_theta", text.get("rope_local_base_freq", LOCAL_THETA)))
    return rope_fields(text, default_theta=GLOBAL_THETA), float(text.get("rope_local_base_freq", LOCAL_THETA))


def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """ModelConfig for model_type gemma3_text / gemma3."""
    text = text_config(hf)
    if text.get("use_bidirectional_attention"):
        raise ValueError("config.json use_bidirectional_attention=true (an embedding model) is not supported; "
                         "supported: false (causal language models)")
    fields = common_fields(text)
    n = fields["num_layers"]
    if text.get("layer_types"):
        layer_types = layer_types_from_hf(text, n)
    else:
        pattern = int(text.get("sliding_window_pattern") or SLIDING_PATTERN)
        layer_types = tuple("sliding" if (i + 1) % pattern else "full" for i in range(n))
    sliding = "sliding" in layer_types
    full_rope, local_theta = _ropes(text)
    bias = bool(text.get("attention_bias", False))
    return ModelConfig(
        **fields,
        **full_rope,
        sliding_rope_theta=local_theta if sliding else None,
        norm_kind="rms_one_plus",
        norm_eps=float(text.get("rms_norm_eps", 1e-6)),
        activation=gemma_activation(text),
        gated_mlp=True,
        qkv_bias=bias,
        o_bias=bias,
        sandwich_norms=True,
        qk_norm="per_head",
        scale_embeddings=True,
        tie_word_embeddings=bool(text.get("tie_word_embeddings", True)),
        query_pre_attn_scalar=float(text.get("query_pre_attn_scalar") or fields["head_dim"]),
        attn_logit_softcap=text.get("attn_logit_softcapping"),
        final_logit_softcap=text.get("final_logit_softcapping"),
        sliding_window=int(require(text, "sliding_window")) if sliding else None,
        layer_types=layer_types,
    )
