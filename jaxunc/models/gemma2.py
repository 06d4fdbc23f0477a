"""Gemma 2: Gemma plus attention-logit and final-logit soft-capping (c * tanh(x / c)), sliding-window
attention on alternating layers (layer 0 sliding), scores scaled by query_pre_attn_scalar^-0.5, and
norms both before and after the attention and the MLP blocks ("sandwich" norms)."""

from __future__ import annotations

from typing import Any

from jaxunc.models.config import ModelConfig, common_fields, layer_types_from_hf, require, rope_fields
from jaxunc.models.gemma import gemma_activation
from jaxunc.models.transformer import CausalLM

MODEL_TYPES = ("gemma2",)


def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """ModelConfig for model_type gemma2."""
    fields = common_fields(hf)
    n = fields["num_layers"]
    if hf.get("layer_types"):
        layer_types = layer_types_from_hf(hf, n)
    else:
        layer_types = tuple("sliding" if i % 2 == 0 else "full" for i in range(n))
    window = int(require(hf, "sliding_window")) if "sliding" in layer_types else None
    return ModelConfig(
        **fields,
        **rope_fields(hf),
        norm_kind="rms_one_plus",
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        activation=gemma_activation(hf),
        gated_mlp=True,
        qkv_bias=bool(hf.get("attention_bias", False)),
        o_bias=bool(hf.get("attention_bias", False)),
        sandwich_norms=True,
        scale_embeddings=True,
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", True)),
        query_pre_attn_scalar=float(hf.get("query_pre_attn_scalar") or fields["head_dim"]),
        attn_logit_softcap=hf.get("attn_logit_softcapping"),
        final_logit_softcap=hf.get("final_logit_softcapping"),
        sliding_window=window,
        layer_types=layer_types,
    )


Model = CausalLM
