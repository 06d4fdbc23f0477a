"""Phi-3 / Phi-3.5 / Phi-4-mini: Llama-style blocks whose checkpoints fuse q/k/v into ``qkv_proj`` and
gate/up into ``gate_up_proj`` (split at load time by the key map, so the model keeps q/k/v and gate/up),
partial rotary (Phi-4-mini: 75% of each head), and "longrope" (alias "su") RoPE scaling with short and
long per-frequency factors where the checkpoint declares it. ``sliding_window`` (Phi-3-mini-4k: 2047)
applies to every layer, as in transformers."""

from __future__ import annotations

from typing import Any

from jaxunc.models.config import ModelConfig, activation, common_fields, rope_fields

MODEL_TYPES = ("phi3",)

# transformers' Phi3Config reads these old names as longrope.
ROPE_ALIASES = {"su": "longrope", "yarn": "longrope"}


def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """ModelConfig for model_type phi3 (no biases; RMSNorm; SwiGLU)."""
    fields = common_fields(hf)
    window = hf.get("sliding_window")
    n = fields["num_layers"]
    return ModelConfig(
        **fields,
        **rope_fields(hf, type_aliases=ROPE_ALIASES),
        norm_kind="rms",
        norm_eps=float(hf.get("rms_norm_eps", 1e-5)),
        activation=activation(hf.get("hidden_act", "silu"), "hidden_act"),
        gated_mlp=True,
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
        sliding_window=int(window) if window else None,
        layer_types=("sliding",) * n if window else ("full",) * n,
    )
