"""ModelConfig: the architecture flags our Flax models read, built from an HF ``config.json`` dict.

Families differ only by the flags below; ``ModelConfig.from_hf(d)`` dispatches on ``d["model_type"]`` to
the family module's ``config_from_hf`` (llama.py, gemma.py, gemma2.py, gemma3.py, gpt_neox.py, phi3.py,
olmo2.py), which reads both the transformers 5 spelling (``rope_parameters``) and the older one
(``rope_theta``, ``rope_scaling``, ``rotary_pct``, ``rotary_emb_base``) found in published checkpoints.
Per-layer differences are data: ``layer_types[i]`` picks layer i's attention mask (full / sliding) and
its RoPE table (``rope_for(layer_type)``), so a scanned or sharded model can carry them as arrays.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

NormKind = Literal["rms", "rms_f32", "rms_one_plus", "layer"]
QKNorm = Literal["per_head", "full_width"]
RopeType = Literal["default", "linear", "llama3", "longrope"]
ROPE_TYPES = ("default", "linear", "llama3", "longrope")
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
    rope_type: RopeType = "default"
    rope_factor: float = 1.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_position: int = 8192
    max_position_embeddings: int = 2048
    # longrope (Phi-3 "su"): inv_freq_i / ext_i with ext = short_factor, or long_factor for a sequence longer
    # than rope_original_max_position; cos and sin are multiplied by rope_attention_factor.
    rope_short_factor: tuple[float, ...] | None = None
    rope_long_factor: tuple[float, ...] | None = None
    rope_attention_factor: float = 1.0
    # Gemma 3: sliding layers use plain RoPE with this base (full layers the rope_* fields above).
    sliding_rope_theta: float | None = None
    # Blocks.
    norm_kind: NormKind = "rms"  # also the kind of the q/k norms
    norm_eps: float = 1e-6
    activation: Activation = "silu"
    gated_mlp: bool = True  # SwiGLU/GeGLU: down(act(gate(x)) * up(x)); else down(act(up(x)))
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    parallel_residual: bool = False  # GPT-NeoX: x + attn(ln1(x)) + mlp(ln2(x))
    sandwich_norms: bool = False  # Gemma 2/3: extra norms on the attention and MLP outputs
    post_norms_only: bool = False  # OLMo 2: x += norm(attn(x)); x += norm(mlp(x)) (no input norms)
    # q/k RMSNorm before RoPE: "per_head" over head_dim (Qwen3, Gemma 3), "full_width" over the whole
    # projected width H*D / K*D (OLMo 2); None: no q/k norm.
    qk_norm: QKNorm | None = None
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
        bad_types = sorted(set(self.layer_types) - {"full", "sliding"})
        if bad_types:
            raise ValueError(f"layer_types has entries {bad_types}; supported: ['full', 'sliding']")
        if self.rope_type not in ROPE_TYPES:
            raise ValueError(f"rope_type {self.rope_type!r} is not supported; supported: {', '.join(ROPE_TYPES)}")
        if self.rope_type == "longrope":
            for name in ("rope_short_factor", "rope_long_factor"):
                factors = getattr(self, name)
                if factors is None or len(factors) != self.rotary_dim // 2:
                    got = "none" if factors is None else f"{len(factors)} entries"
                    raise ValueError(
                        f"longrope {name} must have rotary_dim / 2 = {self.rotary_dim // 2} entries, got {got}"
                    )
        if self.qk_norm not in (None, "per_head", "full_width"):
            raise ValueError(f"qk_norm={self.qk_norm!r}; supported: None, 'per_head', 'full_width'")
        if self.post_norms_only and (self.sandwich_norms or self.parallel_residual):
            raise ValueError("post_norms_only excludes sandwich_norms and parallel_residual")

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.partial_rotary_factor)

    @property
    def attn_scale(self) -> float:
        return float(self.query_pre_attn_scalar or self.head_dim) ** -0.5

    def rope_for(self, layer_type: LayerType) -> "ModelConfig":
        """The config whose rope_* fields give the RoPE of layers of `layer_type` (Gemma 3: sliding layers
        use plain RoPE with base sliding_rope_theta; every other case: this config)."""
        if layer_type == "sliding" and self.sliding_rope_theta is not None:
            return dataclasses.replace(
                self, rope_theta=self.sliding_rope_theta, rope_type="default", rope_factor=1.0,
                rope_short_factor=None, rope_long_factor=None, rope_attention_factor=1.0, sliding_rope_theta=None,
            )
        return self

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
        check_architectures(hf, getattr(FAMILIES[model_type], "ARCHITECTURES", ()))
        return FAMILIES[model_type].config_from_hf(hf)


# ---------------------------------------------------------------------------------------------------
# Helpers shared by the family modules' config_from_hf.


def check_architectures(hf: dict[str, Any], extra: tuple[str, ...] = ()) -> None:
    """config.json `architectures`, when given, must name a causal LM (``*ForCausalLM``, ``*LMHeadModel``)
    or one of the family's `extra` classes (Gemma 3's multimodal ``Gemma3ForConditionalGeneration``)."""
    names = hf.get("architectures")
    if not names:
        return
    ok = [a for a in names if isinstance(a, str) and (a.endswith(("ForCausalLM", "LMHeadModel")) or a in extra)]
    if not ok:
        supported = ", ".join(["*ForCausalLM", "*LMHeadModel", *extra])
        raise ValueError(
            f"unsupported architectures {names} in config.json (model_type {hf.get('model_type')!r}); "
            f"supported: {supported}"
        )


def require(hf: dict[str, Any], key: str) -> Any:
    if hf.get(key) is None:
        raise ValueError(f"config.json (model_type {hf.get('model_type')!r}) lacks required field `{key}`")
    return hf[key]


def activation(name: str | None, field: str) -> Activation:
    if name not in ACTIVATIONS:
        raise ValueError(f"unsupported activation {field}={name!r}; supported: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def _rope_type_field(params: dict[str, Any], scaling: dict[str, Any]) -> str:
    """The config.json field the RoPE type was read from (for error messages)."""
    for name, d in (("rope_parameters", params), ("rope_scaling", scaling)):
        for key in ("rope_type", "type"):
            if key in d:
                return f"{name}.{key}"
    return "rope_parameters.rope_type"


def rope_fields(
    hf: dict[str, Any], default_theta: float = 10000.0, type_aliases: dict[str, str] | None = None
) -> dict[str, Any]:
    """Rotary fields from ``rope_parameters`` (transformers 5) or ``rope_theta``/``rope_scaling`` (older).

    `type_aliases` renames declared types (Phi-3: "su" and "yarn" mean "longrope", as in transformers).
    longrope: factor defaults to max_position_embeddings / original_max_position_embeddings and the
    attention factor to sqrt(1 + ln(factor) / ln(original)) (1 when factor <= 1); the top-level
    ``original_max_position_embeddings`` (Phi-3) wins over the one inside the RoPE dict.
    """
    params = dict(hf.get("rope_parameters") or {})
    scaling = dict(hf.get("rope_scaling") or {})
    merged = {**scaling, **params}
    theta = merged.get("rope_theta", hf.get("rope_theta", hf.get("rotary_emb_base", default_theta)))
    partial = merged.get("partial_rotary_factor", hf.get("partial_rotary_factor", hf.get("rotary_pct", 1.0)))
    rope_type = merged.get("rope_type", merged.get("type", "default"))
    rope_type = (type_aliases or {}).get(rope_type, rope_type)
    max_pos = int(hf.get("max_position_embeddings") or 2048)
    out: dict[str, Any] = {
        "rope_theta": float(theta),
        "partial_rotary_factor": float(partial),
        "max_position_embeddings": max_pos,
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
            rope_original_max_position=int(merged.get("original_max_position_embeddings", max_pos)),
        )
    elif rope_type == "longrope":
        original = int(hf.get("original_max_position_embeddings") or merged.get("original_max_position_embeddings")
                       or max_pos)
        factor = float(merged.get("factor") or max_pos / original)
        attention = merged.get("attention_factor")
        if attention is None:
            attention = 1.0 if factor <= 1.0 else math.sqrt(1.0 + math.log(factor) / math.log(original))
        for key in ("short_factor", "long_factor"):
            if not isinstance(merged.get(key), (list, tuple)):
                raise ValueError(f"config.json rope_scaling/rope_parameters: longrope needs a list `{key}`")
        out.update(
            rope_type="longrope",
            rope_factor=factor,
            rope_original_max_position=original,
            rope_short_factor=tuple(float(x) for x in merged["short_factor"]),
            rope_long_factor=tuple(float(x) for x in merged["long_factor"]),
            rope_attention_factor=float(attention),
        )
    else:
        supported = ", ".join(ROPE_TYPES + tuple(type_aliases or ()))
        raise ValueError(
            f"unsupported RoPE type {rope_type!r} in config.json field {_rope_type_field(params, scaling)}; "
            f"supported: {supported}"
        )
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
