"""Gemma 2: Gemma plus attention-logit and final-logit soft-capping (c * tanh(x / c)), sliding-window
attention on alternating layers (layer 0 sliding), scores scaled by query_pre_attn_scalar^-0.5, and
norms both before and after the attention and the MLP blocks ("sandwich" norms)."""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxunc.models import gemma
from jaxunc.models.config import ModelConfig, layer_types_from_hf, require

MODEL_TYPES = ("gemma2",)


def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """ModelConfig for model_type gemma2: Gemma's, plus the Gemma 2 attention and norm changes."""
    base = gemma.config_from_hf(hf)
    n = base.num_layers
    if hf.get("layer_types"):
        layer_types = layer_types_from_hf(hf, n)
    else:
        layer_types = tuple("sliding" if i % 2 == 0 else "full" for i in range(n))
    window = int(require(hf, "sliding_window")) if "sliding" in layer_types else None
    return dataclasses.replace(
        base,
        sandwich_norms=True,
        query_pre_attn_scalar=float(hf.get("query_pre_attn_scalar") or base.head_dim),
        attn_logit_softcap=hf.get("attn_logit_softcapping"),
        final_logit_softcap=hf.get("final_logit_softcapping"),
        sliding_window=window,
        layer_types=layer_types,
    )
