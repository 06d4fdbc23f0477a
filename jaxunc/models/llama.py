"""Llama-style family: Llama 2, Llama 3.x (llama3 RoPE scaling), Mistral, Qwen2, Falcon3, SmolLM2.

RMSNorm, SwiGLU MLP, RoPE on the full head, grouped-query attention. Falcon3 and SmolLM2 checkpoints
declare model_type "llama". Differences by model_type:
- llama: ``attention_bias`` adds biases to q/k/v/o, ``mlp_bias`` to the MLP; all layers full attention.
- mistral: no biases; ``sliding_window`` (v0.1: 4096) applies to every layer when set.
- qwen2: q/k/v biases (no o bias); sliding layers only when ``use_sliding_window`` (per ``layer_types``).
"""

from __future__ import annotations

from typing import Any

from jaxunc.models.config import ModelConfig, activation, common_fields, layer_types_from_hf, rope_fields

MODEL_TYPES = ("llama", "mistral", "qwen2")


def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """ModelConfig for model_type llama / mistral / qwen2."""
    fields = common_fields(hf)
    n = fields["num_layers"]
    model_type = hf["model_type"]
    window = hf.get("sliding_window")
    if model_type == "llama":
        bias = bool(hf.get("attention_bias", False))
        extra = dict(qkv_bias=bias, o_bias=bias, mlp_bias=bool(hf.get("mlp_bias", False)))
        window, layer_types = None, ("full",) * n
    elif model_type == "mistral":
        extra = {}
        layer_types = ("sliding",) * n if window else ("full",) * n
    elif model_type == "qwen2":
        extra = dict(qkv_bias=True)
        if not hf.get("use_sliding_window", False):
            window = None
        if hf.get("layer_types"):
            layer_types = layer_types_from_hf(hf, n)
        else:
            start = int(hf.get("max_window_layers", n))
            layer_types = tuple("sliding" if window and i >= start else "full" for i in range(n))
        if "sliding" not in layer_types:
            window = None
    else:
        raise ValueError(f"llama.config_from_hf got model_type {model_type!r}, expected one of {MODEL_TYPES}")
    return ModelConfig(
        **fields,
        **rope_fields(hf),
        **extra,
        norm_kind="rms",
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        activation=activation(hf.get("hidden_act", "silu"), "hidden_act"),
        gated_mlp=True,
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
        sliding_window=int(window) if window else None,
        layer_types=layer_types,
    )
