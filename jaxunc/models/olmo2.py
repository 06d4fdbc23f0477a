"""OLMo 2: no norms on the block inputs, RMSNorm on the attention and MLP outputs before each residual add
(``post_norms_only``), RMSNorm of the whole projected query (H*D) and key (K*D) before RoPE
(``qk_norm="full_width"``), SwiGLU MLP, untied unembedding. Its RMSNorm multiplies the weight in float32
before casting (``norm_kind="rms_f32"``)."""

from __future__ import annotations

from typing import Any

from jaxunc.models.config import ModelConfig, activation, common_fields, rope_fields

MODEL_TYPES = ("olmo2",)


def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """ModelConfig for model_type olmo2."""
    fields = common_fields(hf)
    bias = bool(hf.get("attention_bias", False))
    return ModelConfig(
        **fields,
        **rope_fields(hf),
        norm_kind="rms_f32",
        norm_eps=float(hf.get("rms_norm_eps", 1e-5)),
        activation=activation(hf.get("hidden_act", "silu"), "hidden_act"),
        gated_mlp=True,
        qkv_bias=bias,
        o_bias=bias,
        post_norms_only=True,
        qk_norm="full_width",
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
        layer_types=("full",) * fields["num_layers"],
    )
