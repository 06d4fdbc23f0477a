"""Declared key maps: HF tensor names -> our flat parameter names (jaxunc.models docstring) + transform.

A rule is (HF pattern, our name pattern(s), transform); ``*`` in a pattern stands for the layer index.
``convert`` applies the family's rules and insists that every checkpoint tensor is used exactly once and
every parameter is filled with the right shape; otherwise one ValueError lists every problem.
IGNORED patterns are buffers some exporters save that are recomputed from the config (RoPE inverse
frequencies, old GPT-NeoX causal-mask buffers); they carry no learned values.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np

from jaxunc.models.config import ModelConfig

KEYMAP_VERSION = "1"  # bump when an existing map changes what it produces (it keys the cache)

Transform = Callable[[np.ndarray, ModelConfig], tuple[np.ndarray, ...]]


def identity(w: np.ndarray, cfg: ModelConfig) -> tuple[np.ndarray]:
    return (w,)


def linear(w: np.ndarray, cfg: ModelConfig) -> tuple[np.ndarray]:
    """torch Linear weight [out, in] -> our kernel [in, out]."""
    if w.ndim != 2:
        raise ValueError(f"expected a 2-D Linear weight, got shape {w.shape}")
    return (w.T,)


def neox_qkv(w: np.ndarray, cfg: ModelConfig) -> tuple[np.ndarray, ...]:
    """GPT-NeoX fused query_key_value, rows ordered [head, (q|k|v), head_dim] -> q, k, v.

    weight [3*H*D, hidden] -> three kernels [hidden, H*D]; bias [3*H*D] -> three biases [H*D].
    """
    h, d = cfg.num_heads, cfg.head_dim
    if w.shape[0] != 3 * h * d:
        raise ValueError(f"expected first dimension 3*heads*head_dim = {3 * h * d}, got shape {w.shape}")
    parts = w.reshape(h, 3, d, *w.shape[1:])
    out = [parts[:, j].reshape(h * d, *w.shape[1:]) for j in range(3)]
    return tuple(p.T if p.ndim == 2 else p for p in out)


def fused_qkv(w: np.ndarray, cfg: ModelConfig) -> tuple[np.ndarray, ...]:
    """Phi-3 qkv_proj, rows [q (H*D) | k (K*D) | v (K*D)] -> q, k, v kernels [hidden, *]."""
    q, kv = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
    if w.ndim != 2 or w.shape[0] != q + 2 * kv:
        raise ValueError(f"expected a 2-D weight with heads*head_dim + 2*kv_heads*head_dim = {q + 2 * kv} rows")
    return w[:q].T, w[q : q + kv].T, w[q + kv :].T


def fused_gate_up(w: np.ndarray, cfg: ModelConfig) -> tuple[np.ndarray, ...]:
    """Phi-3 gate_up_proj, rows [gate (I) | up (I)] -> gate, up kernels [hidden, I]."""
    i = cfg.intermediate_size
    if w.ndim != 2 or w.shape[0] != 2 * i:
        raise ValueError(f"expected a 2-D weight with 2*intermediate_size = {2 * i} rows")
    return w[:i].T, w[i:].T


@dataclasses.dataclass(frozen=True)
class Rule:
    hf: str
    ours: tuple[str, ...]
    transform: Transform = identity

    def match(self, name: str) -> re.Match | None:
        return re.fullmatch(re.escape(self.hf).replace(r"\*", r"(\d+)"), name)

    def targets(self, m: re.Match) -> list[str]:
        return [t.replace("*", m.group(1)) if "*" in t else t for t in self.ours]


def _rule(hf: str, ours: str | tuple[str, ...], transform: Transform = identity) -> Rule:
    return Rule(hf, (ours,) if isinstance(ours, str) else ours, transform)


def _linear_rules(hf: str, ours: str, bias: bool = True) -> list[Rule]:
    rules = [_rule(f"{hf}.weight", f"{ours}.kernel", linear)]
    return rules + ([_rule(f"{hf}.bias", f"{ours}.bias")] if bias else [])


def _decoder_rules(
    norms: dict[str, str], qk_norm: bool = False, fused: bool = False, model: str = "model", lm_head: str = "lm_head"
) -> list[Rule]:
    """Llama-style layout under `model.` (or the prefix `model`); `norms` maps HF norm names to ours,
    `qk_norm` adds self_attn.q_norm / k_norm, `fused` reads Phi-3's qkv_proj and gate_up_proj."""
    rules = [
        _rule(f"{model}.embed_tokens.weight", "embed.embedding"),
        _rule(f"{model}.norm.weight", "final_norm.scale"),
        *_linear_rules(lm_head, "lm_head", bias=False),
    ]
    attn, mlp = f"{model}.layers.*.self_attn", f"{model}.layers.*.mlp"
    if fused:
        q_k_v = tuple(f"layers.*.attn.{p}_proj.kernel" for p in "qkv")
        rules += [_rule(f"{attn}.qkv_proj.weight", q_k_v, fused_qkv), *_linear_rules(f"{attn}.o_proj", "layers.*.attn.o_proj")]
        gate_up = ("layers.*.mlp.gate_proj.kernel", "layers.*.mlp.up_proj.kernel")
        rules += [_rule(f"{mlp}.gate_up_proj.weight", gate_up, fused_gate_up), *_linear_rules(f"{mlp}.down_proj", "layers.*.mlp.down_proj")]
    else:
        for p in "qkvo":
            rules += _linear_rules(f"{attn}.{p}_proj", f"layers.*.attn.{p}_proj")
        for p in ("gate", "up", "down"):
            rules += _linear_rules(f"{mlp}.{p}_proj", f"layers.*.mlp.{p}_proj")
    if qk_norm:
        rules += [_rule(f"{attn}.{p}_norm.weight", f"layers.*.attn.{p}_norm.scale") for p in "qk"]
    rules += [_rule(f"{model}.layers.*.{hf}.weight", f"layers.*.{ours}.scale") for hf, ours in norms.items()]
    return rules


_PLAIN_NORMS = {"input_layernorm": "attn_norm", "post_attention_layernorm": "mlp_norm"}
_SANDWICH_NORMS = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "attn_out_norm",
    "pre_feedforward_layernorm": "mlp_norm",
    "post_feedforward_layernorm": "mlp_out_norm",
}

_POST_NORMS = {"post_attention_layernorm": "attn_out_norm", "post_feedforward_layernorm": "mlp_out_norm"}

# Gemma3ForConditionalGeneration: the language model under `language_model.model.` (files saved by
# transformers, also transformers 5's save_pretrained) or `model.language_model.` (its module names).
_GEMMA3_MULTIMODAL = [
    *_decoder_rules(_SANDWICH_NORMS, qk_norm=True, model="language_model.model", lm_head="language_model.lm_head"),
    *_decoder_rules(_SANDWICH_NORMS, qk_norm=True, model="model.language_model", lm_head="lm_head"),
]

_GPT_NEOX = [
    _rule("gpt_neox.embed_in.weight", "embed.embedding"),
    _rule("gpt_neox.final_layer_norm.weight", "final_norm.scale"),
    _rule("gpt_neox.final_layer_norm.bias", "final_norm.bias"),
    *_linear_rules("embed_out", "lm_head", bias=False),
    _rule("gpt_neox.layers.*.input_layernorm.weight", "layers.*.attn_norm.scale"),
    _rule("gpt_neox.layers.*.input_layernorm.bias", "layers.*.attn_norm.bias"),
    _rule("gpt_neox.layers.*.post_attention_layernorm.weight", "layers.*.mlp_norm.scale"),
    _rule("gpt_neox.layers.*.post_attention_layernorm.bias", "layers.*.mlp_norm.bias"),
    _rule(
        "gpt_neox.layers.*.attention.query_key_value.weight",
        ("layers.*.attn.q_proj.kernel", "layers.*.attn.k_proj.kernel", "layers.*.attn.v_proj.kernel"),
        neox_qkv,
    ),
    _rule(
        "gpt_neox.layers.*.attention.query_key_value.bias",
        ("layers.*.attn.q_proj.bias", "layers.*.attn.k_proj.bias", "layers.*.attn.v_proj.bias"),
        neox_qkv,
    ),
    *_linear_rules("gpt_neox.layers.*.attention.dense", "layers.*.attn.o_proj"),
    *_linear_rules("gpt_neox.layers.*.mlp.dense_h_to_4h", "layers.*.mlp.up_proj"),
    *_linear_rules("gpt_neox.layers.*.mlp.dense_4h_to_h", "layers.*.mlp.down_proj"),
]

KEYMAPS: dict[str, list[Rule]] = {
    "llama": _decoder_rules(_PLAIN_NORMS),
    "mistral": _decoder_rules(_PLAIN_NORMS),
    "qwen2": _decoder_rules(_PLAIN_NORMS),
    "gemma": _decoder_rules(_PLAIN_NORMS),
    "gemma2": _decoder_rules(_SANDWICH_NORMS),
    "gpt_neox": _GPT_NEOX,
    "qwen3": _decoder_rules(_PLAIN_NORMS, qk_norm=True),
    "gemma3_text": _decoder_rules(_SANDWICH_NORMS, qk_norm=True),
    "gemma3": _GEMMA3_MULTIMODAL,
    "phi3": _decoder_rules(_PLAIN_NORMS, fused=True),
    "olmo2": _decoder_rules(_POST_NORMS, qk_norm=True),
}

IGNORED = [
    re.compile(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq"),
    re.compile(r"gpt_neox\.layers\.\d+\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)"),
]
# Tensors of a checkpoint that are not part of the language model, skipped per model_type.
SKIPPED = {"gemma3": re.compile(r"(model\.)?(vision_tower|multi_modal_projector)\..+")}

# Where the unembedding and the embedding live (any of the names), for tied checkpoints.
_LM_HEAD = {"gpt_neox": ("embed_out.weight",), "gemma3": ("lm_head.weight", "language_model.lm_head.weight")}
_EMBED = {
    "gpt_neox": ("gpt_neox.embed_in.weight",),
    "gemma3": ("language_model.model.embed_tokens.weight", "model.language_model.embed_tokens.weight"),
}


def hf_name(rules: list[Rule], ours: str) -> str:
    """The checkpoint tensor name a rule expects for our parameter `ours` (for error messages)."""
    for rule in rules:
        for template in rule.ours:
            m = re.fullmatch(re.escape(template).replace(r"\*", r"(\d+)"), ours)
            if m:
                return repr(rule.hf.replace("*", m.group(1)) if "*" in rule.hf else rule.hf)
    return "?"


def convert(
    names: Iterable[str],
    get: Callable[[str], np.ndarray],
    config: ModelConfig,
    expected: Mapping[str, tuple[int, ...]],
    dtype: np.dtype,
) -> dict[str, np.ndarray]:
    """Checkpoint tensors -> flat params in `dtype` with exactly the names and shapes of `expected`
    (all of iter_convert's pairs in one dict)."""
    return dict(iter_convert(names, get, config, expected, dtype))


def iter_convert(
    names: Iterable[str],
    get: Callable[[str], np.ndarray],
    config: ModelConfig,
    expected: Mapping[str, tuple[int, ...]],
    dtype: np.dtype,
) -> Iterator[tuple[str, np.ndarray]]:
    """Checkpoint tensors -> (flat param name, array in `dtype`), one at a time.

    `names` lists the checkpoint's tensors and `get(name)` loads one (so tensors are read one at a time).
    After the last pair, raises ValueError listing shape mismatches (tensor, its shape, parameter,
    expected shape), unused tensors and missing parameters, if there are any.
    """
    if config.model_type not in KEYMAPS:
        raise ValueError(f"no key map for model_type {config.model_type!r}; supported: {sorted(KEYMAPS)}")
    rules = KEYMAPS[config.model_type]
    names = list(names)
    lm_heads = _LM_HEAD.get(config.model_type, ("lm_head.weight",))
    embed = next((e for e in _EMBED.get(config.model_type, ("model.embed_tokens.weight",)) if e in names), None)
    skipped = SKIPPED.get(config.model_type)
    source: dict[str, str] = {}
    problems: list[str] = []
    unused: list[str] = []
    mismatched: set[str] = set()
    for name in names:
        if any(p.fullmatch(name) for p in IGNORED) or (skipped is not None and skipped.fullmatch(name)):
            continue
        if config.tie_word_embeddings and name in lm_heads and embed is not None:
            if not np.array_equal(get(name), get(embed)):
                problems.append(
                    f"tensor {name!r}: config has tie_word_embeddings=true but this unembedding differs from {embed!r}"
                )
            continue
        hits = [(rule, m) for rule in rules if (m := rule.match(name))]
        if not hits:
            unused.append(f"{name} (no key-map rule)")
            continue
        rule, m = hits[0]
        targets = rule.targets(m)
        if any(t not in expected for t in targets):
            why = f"maps to {', '.join(targets)}, which this {config.model_type} config has no parameter for"
            unused.append(f"{name} ({why})")
            continue
        tensor = get(name)
        try:
            outs = rule.transform(np.asarray(tensor), config)
        except ValueError as err:
            problems.append(f"tensor {name!r} of shape {tuple(tensor.shape)}: {err}")
            continue
        for target, out in zip(targets, outs):
            if target in source:
                problems.append(f"parameter {target} filled twice: from {source[target]!r} and {name!r}")
            elif tuple(out.shape) != tuple(expected[target]):
                mismatched.add(target)
                problems.append(
                    f"tensor {name!r} has shape {tuple(tensor.shape)} -> {tuple(out.shape)} for parameter "
                    f"{target}, which expects shape {tuple(expected[target])}"
                )
            else:
                source[target] = name
                yield target, np.ascontiguousarray(out.astype(dtype, copy=False))
    missing = [f"{t} (tensor {hf_name(rules, t)})" for t in sorted(set(expected) - set(source) - mismatched)]
    if unused:
        problems.append(f"unused checkpoint tensors: {unused}")
    if missing:
        problems.append(f"parameters with no checkpoint tensor (missing tensors): {missing}")
    if problems:
        raise ValueError(f"checkpoint does not match the {config.model_type} model:\n  " + "\n  ".join(problems))
