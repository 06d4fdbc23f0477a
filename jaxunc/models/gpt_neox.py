"""GPT-NeoX / Pythia: LayerNorm, parallel residual x + attn(ln1(x)) + mlp(ln2(x)), RoPE on the first
rotary_pct of each head, biased fused q/k/v (split by the key map), plain GELU MLP, separate
``embed_out`` unembedding."""

from __future__ import annotations

from typing import Any

from jaxunc.models.config import ModelConfig, activation, common_fields, rope_fields

MODEL_TYPES = ("gpt_neox",)


def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """ModelConfig for model_type gpt_neox (old fields rotary_pct / rotary_emb_base accepted)."""
    fields = common_fields(hf)
    fields["num_kv_heads"] = fields["num_heads"]
    fields["head_dim"] = fields["hidden_size"] // fields["num_heads"]
    bias = bool(hf.get("attention_bias", True))
    return ModelConfig(
        **fields,
        **rope_fields(hf),
        norm_kind="layer",
        norm_eps=float(hf.get("layer_norm_eps", 1e-5)),
        activation=activation(hf.get("hidden_act", "gelu"), "hidden_act"),
        gated_mlp=False,
        qkv_bias=bias,
        o_bias=bias,
        mlp_bias=True,
        parallel_residual=bool(hf.get("use_parallel_residual", True)),
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
        layer_types=("full",) * fields["num_layers"],
    )
