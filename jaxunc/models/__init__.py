"""Flax NNX decoder-only language models: Llama-style, Gemma, Gemma 2, Gemma 3, Qwen3, Phi-3, OLMo 2,
GPT-NeoX.

One model class (``CausalLM`` in transformer.py) built from shared layers (layers.py); each family module
(llama.py, qwen3.py, gemma.py, gemma2.py, gemma3.py, phi3.py, olmo2.py, gpt_neox.py) maps its HF
config.json onto ``ModelConfig`` flags (docs/models.md has the table).

Parameters, flattened: ``flat_params(model)`` / ``build_model(params=...)`` use a dict keyed by the
module path joined with dots, e.g. ``"embed.embedding"``, ``"layers.0.attn.q_proj.kernel"`` (Linear
kernels are [in, out]), ``"layers.0.mlp_norm.scale"``, ``"final_norm.scale"``, ``"lm_head.kernel"``.

Jitting (what the engine should do): split once, jit pure functions of (state, inputs)::

    jm = JittedModel(model)           # graphdef/state split once; functions jitted once per shape
    logits = jm.forward(jm.state, input_ids, attention_mask, logit_positions)
    cache = jm.init_cache(batch_size, max_length)
    logits, cache = jm.prefill(jm.state, input_ids, attention_mask, cache)
    logits, cache = jm.decode_step(jm.state, tokens, cache)   # the cache argument is donated

``jm.state`` can be sharded (jax.device_put with NamedSharding) before the calls. Inside your own jitted
function use ``nnx.merge(jm.graphdef, state)`` and call the model's methods.
"""

from __future__ import annotations

import dataclasses
import re
from types import ModuleType
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxunc.models import gemma, gemma2, gemma3, gpt_neox, llama, olmo2, phi3, qwen3
from jaxunc.models.config import ModelConfig
from jaxunc.models.transformer import CausalLM, KVCache, PrefixKV, resolve_dtype

_LAYER = re.compile(r"layers\.(\d+)\.(.+)")

FAMILIES: dict[str, ModuleType] = {
    **{t: llama for t in llama.MODEL_TYPES},
    **{t: gemma for t in gemma.MODEL_TYPES},
    **{t: gemma2 for t in gemma2.MODEL_TYPES},
    **{t: gpt_neox for t in gpt_neox.MODEL_TYPES},
    **{t: qwen3 for t in qwen3.MODEL_TYPES},
    **{t: gemma3 for t in gemma3.MODEL_TYPES},
    **{t: phi3 for t in phi3.MODEL_TYPES},
    **{t: olmo2 for t in olmo2.MODEL_TYPES},
}

__all__ = [
    "FAMILIES",
    "CausalLM",
    "JittedModel",
    "KVCache",
    "PrefixKV",
    "ModelConfig",
    "build_model",
    "flat_params",
    "param_shapes",
    "split_layer_name",
    "stacked_shapes",
]


def _flatten(state: nnx.State) -> dict[str, Any]:
    return {".".join(str(p) for p in path): var for path, var in nnx.to_flat_state(state)}


def _abstract(config: ModelConfig, dtype: str | jnp.dtype) -> tuple[nnx.GraphDef, nnx.State]:
    return nnx.split(CausalLM(config, dtype=dtype, rngs=None))


def split_layer_name(name: str) -> tuple[str, int | None]:
    """'layers.3.attn.q_proj.kernel' -> ('layers.attn.q_proj.kernel', 3); other names -> (name, None)."""
    m = _LAYER.fullmatch(name)
    return (f"layers.{m.group(2)}", int(m.group(1))) if m else (name, None)


def stacked_shapes(config: ModelConfig, dtype: str | jnp.dtype = "float32") -> dict[str, jax.ShapeDtypeStruct]:
    """The model's own parameter paths -> ShapeDtypeStruct; layer parameters lead with [num_layers]."""
    _, state = _abstract(config, dtype)
    return {k: v.get_value() for k, v in _flatten(state).items()}


def param_shapes(config: ModelConfig, dtype: str | jnp.dtype = "float32") -> dict[str, jax.ShapeDtypeStruct]:
    """Flat (per-layer) parameter name -> ShapeDtypeStruct, without allocating the parameters."""
    out = {}
    for path, s in stacked_shapes(config, dtype).items():
        if path.startswith("layers."):
            rest = path[len("layers."):]
            out.update({f"layers.{i}.{rest}": jax.ShapeDtypeStruct(s.shape[1:], s.dtype) for i in range(s.shape[0])})
        else:
            out[path] = s
    return out


def flat_params(model: CausalLM) -> dict[str, jax.Array]:
    """The model's parameters as a flat dict (see module docstring for the key format)."""
    out = {}
    for path, var in _flatten(nnx.state(model, nnx.Param)).items():
        value = var.get_value()
        if path.startswith("layers."):
            rest = path[len("layers."):]
            out.update({f"layers.{i}.{rest}": value[i] for i in range(value.shape[0])})
        else:
            out[path] = value
    return out


def build_model(
    config: ModelConfig,
    *,
    dtype: str | jnp.dtype = "float32",
    rngs: nnx.Rngs | None = None,
    params: Mapping[str, Any] | None = None,
    scan_layers: bool = True,
) -> CausalLM:
    """A model for `config`: random init from `rngs`, or filled from flat `params` (no random init).

    `params` must hold exactly the keys of ``param_shapes(config, dtype)`` with those shapes (arrays are
    cast to the model dtype and the layers' stacked); otherwise ValueError naming the missing /
    unexpected / mis-shaped keys.
    """
    if params is None:
        return CausalLM(config, dtype=dtype, rngs=rngs if rngs is not None else nnx.Rngs(0), scan_layers=scan_layers)
    if rngs is not None:
        raise ValueError("pass either rngs (random init) or params, not both")
    dt = resolve_dtype(dtype)
    expected = param_shapes(config, dt)
    missing = sorted(set(expected) - set(params))
    unexpected = sorted(set(params) - set(expected))
    if missing or unexpected:
        raise ValueError(f"params do not match the model: missing {missing}, unexpected {unexpected}")
    for name, want in expected.items():
        got = tuple(np.shape(params[name]))
        if got != tuple(want.shape):
            raise ValueError(f"parameter {name}: expected shape {tuple(want.shape)}, got {got}")
    graphdef, state = _abstract(config, dt)
    for path, var in _flatten(state).items():
        if path.startswith("layers."):
            rest = path[len("layers."):]
            value = np.stack([np.asarray(params[f"layers.{i}.{rest}"]) for i in range(config.num_layers)])
        else:
            value = params[path]
        var.set_value(jnp.asarray(value, dtype=dt))
    model = nnx.merge(graphdef, state)
    model.scan_layers = scan_layers
    return model


@dataclasses.dataclass
class JittedModel:
    """A model split once into (graphdef, state) with jitted pure functions of (state, ...)."""

    graphdef: nnx.GraphDef
    state: nnx.State
    forward: Callable[..., jax.Array]
    prefill: Callable[..., tuple[jax.Array, KVCache]]
    decode_step: Callable[..., tuple[jax.Array, KVCache]]
    init_cache: Callable[[int, int], KVCache]

    def __init__(self, model: CausalLM):
        self.graphdef, self.state = nnx.split(model)
        gd = self.graphdef

        def forward(state, input_ids, attention_mask, logit_positions):
            return nnx.merge(gd, state)(input_ids, attention_mask, logit_positions)

        def prefill(state, input_ids, attention_mask, cache):
            return nnx.merge(gd, state).prefill(input_ids, attention_mask, cache)

        def decode_step(state, tokens, cache):
            return nnx.merge(gd, state).decode_step(tokens, cache)

        self.forward = jax.jit(forward)
        self.prefill = jax.jit(prefill, donate_argnums=3)
        self.decode_step = jax.jit(decode_step, donate_argnums=2)
        self.init_cache = model.init_cache
