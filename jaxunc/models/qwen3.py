"""Qwen3 (dense): the Qwen2 layout without q/k/v biases, plus RMSNorm of each query and key head over its
head_dim features before RoPE (``qk_norm="per_head"``); head_dim is its own field (Qwen3-0.6B: 16 heads
of 128 on a hidden size of 1024). Sliding layers only with ``use_sliding_window`` (as Qwen2)."""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxunc.models import llama
from jaxunc.models.config import ModelConfig

MODEL_TYPES = ("qwen3",)


def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """ModelConfig for model_type qwen3: Qwen2's sliding-layer rules; biases only with attention_bias."""
    base = llama.config_from_hf({**hf, "model_type": "qwen2"})
    bias = bool(hf.get("attention_bias", False))
    return dataclasses.replace(base, model_type="qwen3", qkv_bias=bias, o_bias=bias, qk_norm="per_head")
