"""Gemma (1): GeGLU MLP (tanh-approximated GELU), embeddings scaled by sqrt(hidden_size) in the compute
dtype, RMSNorm with (1 + w), explicit head_dim, tied embeddings, multi-query attention on 2B."""

from __future__ import annotations

from typing import Any

from jaxunc.models.config import ModelConfig, activation, common_fields, rope_fields

MODEL_TYPES = ("gemma",)


def gemma_activation(hf: dict[str, Any]) -> str:
    """Gemma uses the tanh approximation of GELU; `hidden_activation` overrides when present.

    Early Gemma configs say hidden_act "gelu" while the model was trained with the approximation
    (transformers < 5 substituted gelu_pytorch_tanh for them), so `hidden_act` is not trusted here.
    """
    return activation(hf.get("hidden_activation") or "gelu_pytorch_tanh", "hidden_activation")


def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """ModelConfig for model_type gemma."""
    fields = common_fields(hf)
    return ModelConfig(
        **fields,
        **rope_fields(hf),
        norm_kind="rms_one_plus",
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        activation=gemma_activation(hf),
        gated_mlp=True,
        qkv_bias=bool(hf.get("attention_bias", False)),
        o_bias=bool(hf.get("attention_bias", False)),
        scale_embeddings=True,
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", True)),
        layer_types=("full",) * fields["num_layers"],
    )
