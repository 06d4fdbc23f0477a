"""ModelConfig: the architecture flags our Flax models read, built from an HF ``config.json`` dict.

Families differ only by the flags below; ``ModelConfig.from_hf(d)`` dispatches on ``d["model_type"]`` to
the family module's ``config_from_hf`` (llama.py, gemma.py, gemma2.py, gpt_neox.py), which reads both
the transformers 5 spelling (``rope_parameters``) and the older one (``rope_theta``, ``rope_scaling``,
``rotary_pct``, ``rotary_emb_base``) found in published checkpoints.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

NormKind = Literal["rms", "rms_one_plus", "layer"]
Activation = Literal["silu", "gelu_tanh", "gelu"]
LayerType = Literal["full", "sliding"]

ACTIVATIONS: dict[str, Activation] = {
    "silu": "silu",
    "swish": "silu",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_new": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "gelu": "gelu",
}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of one decoder-only transformer (all sizes are per layer unless noted)."""

    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    # Rotary embeddings: inv_freq = theta^(-2i/rotary_dim) over the first rotary_dim = int(head_dim * partial).
    rope_theta: float = 10000.0
    partial_rotary_factor: float = 1.0
    rope_type: Literal["default", "linear", "llama3"] = "default"
    rope_factor: float = 1.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_position: int = 8192
    max_position_embeddings: int = 2048
    # Blocks.
    norm_kind: NormKind = "rms"
    norm_eps: float = 1e-6
    activation: Activation = "silu"
    gated_mlp: bool = True  # SwiGLU/GeGLU: down(act(gate(x)) * up(x)); else down(act(up(x)))
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    parallel_residual: bool = False  # GPT-NeoX: x + attn(ln1(x)) + mlp(ln2(x))
    sandwich_norms: bool = False  # Gemma 2: extra norms on the attention and MLP outputs
    scale_embeddings: bool = False  # Gemma: h0 = embed * sqrt(hidden_size) (cast to the compute dtype)
    tie_word_embeddings: bool = False
    # Attention.
    query_pre_attn_scalar: float | None = None  # scores scaled by this^-0.5 (default head_dim^-0.5)
    attn_logit_softcap: float | None = None  # scores <- cap * tanh(scores / cap)
    final_logit_softcap: float | None = None  # logits <- cap * tanh(logits / cap)
    sliding_window: int | None = None  # sliding layers attend to keys with q_pos - k_pos < window
    layer_types: tuple[LayerType, ...] = ()
    # Token ids (for tokenizers / engines; not used by the forward pass).
    bos_token_id: int | None = None
    eos_token_id: int | tuple[int, ...] | None = None
    pad_token_id: int | None = None

    def __post_init__(self) -> None:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_heads}) must be a multiple of num_key_value_heads "
                f"({self.num_kv_heads})"
            )
        if len(self.layer_types) != self.num_layers:
            raise ValueError(
                f"layer_types has {len(self.layer_types)} entries, expected num_hidden_layers={self.num_layers}"
            )
        if "sliding" in self.layer_types and not self.sliding_window:
            raise ValueError("layer_types has sliding layers but sliding_window is not set")
        if self.rotary_dim % 2:
            raise ValueError(f"rotary dimension {self.rotary_dim} must be even")

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.partial_rotary_factor)

    @property
    def attn_scale(self) -> float:
        return float(self.query_pre_attn_scalar or self.head_dim) ** -0.5

    @staticmethod
    def from_hf(hf: dict[str, Any]) -> "ModelConfig":
        """Build from an HF config.json dict; ValueError for unsupported or remote-code models."""
        from jaxunc.models import FAMILIES  # local: the family modules import this module

        if not isinstance(hf, dict):
            raise ValueError(f"config must be a dict (config.json contents), got {type(hf).__name__}")
        if hf.get("auto_map"):
            raise ValueError(
                "config.json has `auto_map`: this checkpoint needs trust_remote_code (its own Python "
                "modeling code), which jaxunc refuses to run. Use a checkpoint of a supported "
                f"architecture ({', '.join(sorted(FAMILIES))})."
            )
        model_type = hf.get("model_type")
        if model_type not in FAMILIES:
            raise ValueError(
                f"unsupported model_type {model_type!r} in config.json; supported: {', '.join(sorted(FAMILIES))}"
            )
        return FAMILIES[model_type].config_from_hf(hf)


# ---------------------------------------------------------------------------------------------------
# Helpers shared by the family modules' config_from_hf.


def require(hf: dict[str, Any], key: str) -> Any:
    if hf.get(key) is None:
        raise ValueError(f"config.json (model_type {hf.get('model_type')!r}) lacks required field `{key}`")
    return hf[key]


def activation(name: str | None, field: str) -> Activation:
    if name not in ACTIVATIONS:
        raise ValueError(f"unsupported activation {field}={name!r}; supported: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def rope_fields(hf: dict[str, Any], default_theta: float = 10000.0) -> dict[str, Any]:
    """Rotary fields from ``rope_parameters`` (transformers 5) or ``rope_theta``/``rope_scaling`` (older)."""
    params = dict(hf.get("rope_parameters") or {})
    scaling = dict(hf.get("rope_scaling") or {})
    merged = {**scaling, **params}
    theta = merged.get("rope_theta", hf.get("rope_theta", hf.get("rotary_emb_base", default_theta)))
    partial = merged.get("partial_rotary_factor", hf.get("partial_rotary_factor", hf.get("rotary_pct", 1.0)))
    rope_type = merged.get("rope_type", merged.get("type", "default"))
    out: dict[str, Any] = {
        "rope_theta": float(theta),
        "partial_rotary_factor": float(partial),
        "max_position_embeddings": int(hf.get("max_position_embeddings") or 2048),
    }
    if rope_type == "default":
        out["rope_type"] = "default"
    elif rope_type == "linear":
        out.update(rope_type="linear", rope_factor=float(merged["factor"]))
    elif rope_type == "llama3":
        out.update(
            rope_type="llama3",
            rope_factor=float(merged["factor"]),
            rope_low_freq_factor=float(merged["low_freq_factor"]),
            rope_high_freq_factor=float(merged["high_freq_factor"]),
            rope_original_max_position=int(
                merged.get("original_max_position_embeddings", out["max_position_embeddings"])
            ),
        )
    else:
        raise ValueError(f"unsupported RoPE type {rope_type!r}; supported: default, linear, llama3")
    return out


def common_fields(hf: dict[str, Any]) -> dict[str, Any]:
    """Sizes and token ids read the same way by every family."""
    hidden = int(require(hf, "hidden_size"))
    heads = int(require(hf, "num_attention_heads"))
    eos = hf.get("eos_token_id")
    return {
        "model_type": hf["model_type"],
        "vocab_size": int(require(hf, "vocab_size")),
        "hidden_size": hidden,
        "intermediate_size": int(require(hf, "intermediate_size")),
        "num_layers": int(require(hf, "num_hidden_layers")),
        "num_heads": heads,
        "num_kv_heads": int(hf.get("num_key_value_heads") or heads),
        "head_dim": int(hf.get("head_dim") or hidden // heads),
        "bos_token_id": hf.get("bos_token_id"),
        "eos_token_id": tuple(eos) if isinstance(eos, list) else eos,
        "pad_token_id": hf.get("pad_token_id"),
    }


def layer_types_from_hf(hf: dict[str, Any], num_layers: int, default: str = "full") -> tuple[LayerType, ...]:
    """``layer_types`` ("full_attention"/"sliding_attention") as ("full"/"sliding"), else all ``default``."""
    names = hf.get("layer_types")
    if not names:
        return tuple([default] * num_layers)  # type: ignore[list-item]
    mapping = {"full_attention": "full", "sliding_attention": "sliding"}
    bad = [n for n in names if n not in mapping]
    if bad:
        raise ValueError(f"unsupported layer_types entries {sorted(set(bad))}; supported: {sorted(mapping)}")
    return tuple(mapping[n] for n in names)  # type: ignore[misc]
