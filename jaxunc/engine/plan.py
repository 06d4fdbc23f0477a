"""Memory plan: bytes per device for parameters, one batch's activations and the KV cache, from the
model's config and the engine settings alone (before anything is loaded), checked against the
device's memory with an error that names a mesh or batch size that fits.

Per device (r = rows / data, heads and MLP columns divided by `model` where they are split, b = the
compute dtype's bytes, S = P + T keys, a = answer slots = r * segments):
  parameters   exact: each parameter's shard under the partition rules (engine/mesh.py)
  activations  max(trunk, measures) + prefix KV: XLA reuses the layers' buffers for the measures.
               trunk = r T (2 Hq S 4 + (F + 2 D) b): one scanned layer's scores and probabilities
               (float32) and its MLP; measures = 7 a V 4: about seven float32 [slots, vocab] arrays
               (logits, log-softmax, probabilities, top-k, nucleus search); prefix KV = 2 L P Hkv hd b
  KV cache     free response: 2 L r M Hkv hd b, M = P + suffix bucket + max_new_tokens
Fitted to XLA's own accounting (compiled memory_analysis of the scoring step, SmolLM2's shapes with
8 x 256 to 2 x 1024 tokens, 16 to 512 slots, prefixes of 64 to 512, MLP x4, vocabulary / 4: every
estimate within 10% of the compiled step); the tests hold the total per device within 20%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import numpy as np

from jaxunc.engine.mesh import DATA_AXIS, MODEL_AXIS, param_layout, Units
from jaxunc.models import ModelConfig, stacked_shapes
from jaxunc.models.transformer import resolve_dtype


@dataclass(frozen=True)
class MemoryPlan:
    params: int
    activations: int
    kv_cache: int

    @property
    def total(self) -> int:
        return self.params + self.activations + self.kv_cache

    def as_dict(self) -> dict:
        return {"params": self.params, "activations": self.activations, "kv_cache": self.kv_cache,
                "total": self.total}


def param_bytes_per_device(config: ModelConfig, dtype: str, mesh_shape: dict[str, int], fsdp: bool = False) -> int:
    """Parameter bytes on each device under the partition rules (a parameter is split only over axes
    that divide it, so every device holds the same share)."""
    units, total = Units.of(config), 0
    for path, s in stacked_shapes(config, dtype).items():
        spec = param_layout(path, tuple(s.shape), mesh_shape, units, fsdp).spec
        total += math.prod(s.shape) * np.dtype(s.dtype).itemsize // math.prod(mesh_shape[a] for a in spec if a)
    return total


def plan_memory(config: ModelConfig, *, dtype: str, mesh_shape: dict[str, int], rows: int, length: int,
                segments: int, prefix_width: int, fr_rows: int = 0, fr_length: int = 0, max_new_tokens: int = 0,
                fsdp: bool = False) -> MemoryPlan:
    """The plan of the module docstring for one multiple-choice packed batch (rows x length, `segments`
    answer slots per row) and, when fr_rows > 0, one free-response batch (fr_rows x fr_length)."""
    b = resolve_dtype(dtype).itemsize
    data, model = mesh_shape.get(DATA_AXIS, 1), mesh_shape.get(MODEL_AXIS, 1)
    split = lambda n: n // model if n % model == 0 else n  # noqa: E731  (split over model when it divides)
    hq, hkv, hd, d = split(config.num_heads), split(config.num_kv_heads), config.head_dim, config.hidden_size
    f, vocab = split(config.intermediate_size), config.vocab_size

    def trunk(r, t, keys):
        return r * t * (2 * hq * keys * 4 + (f + 2 * d) * b)

    def measures(slots):
        return 7 * slots * vocab * 4

    r = -(-rows // data)
    act = max(trunk(r, length, prefix_width + length), measures(r * segments))
    prefix = 2 * config.num_layers * prefix_width * hkv * hd * b
    cache = 0
    if fr_rows:
        fr = -(-fr_rows // data)
        width = prefix_width + fr_length + max_new_tokens
        cache = 2 * config.num_layers * fr * width * hkv * hd * b
        act = max(act, trunk(fr, fr_length, width), measures(fr))
    return MemoryPlan(param_bytes_per_device(config, dtype, mesh_shape, fsdp), act + prefix, cache)


PLAN_LENGTH = 512  # suffix tokens per row assumed by the plan when engine.pack_length is 0 (from the data)
PLAN_PREFIX = 256  # prefix columns assumed by the plan


def plan_for_config(config, model_config: ModelConfig, mesh_shape: dict[str, int], rows: int,
                    tasks: list[str]) -> MemoryPlan:
    """The plan of a run's config before any prompt is tokenized (PLAN_LENGTH / PLAN_PREFIX assumed)."""
    length = int(config.engine.pack_length) or PLAN_LENGTH
    fr = "fr" in tasks
    return plan_memory(model_config, dtype=config.model.dtype, mesh_shape=mesh_shape, rows=rows, length=length,
                       segments=max(1, length // 16), prefix_width=PLAN_PREFIX, fr_rows=rows if fr else 0,
                       fr_length=PLAN_LENGTH if fr else 0, max_new_tokens=int(config.engine.max_new_tokens),
                       fsdp=bool(config.engine.fsdp))


def device_memory(device=None) -> int | None:
    """Bytes one device may use: its allocator limit (GPU/TPU); on CPU the host's available memory
    shared by its local devices; None when unknown."""
    device = device or jax.local_devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024 // max(1, len(jax.local_devices()))
    except (OSError, KeyError, ValueError):
        return None


def check_fits(plan_fn, mesh_shape: dict[str, int], rows: int, limit: int | None, n_devices: int) -> MemoryPlan:
    """plan_fn(mesh_shape, rows) -> MemoryPlan; ValueError naming a mesh or batch size that fits when
    the plan exceeds `limit` bytes per device."""
    plan = plan_fn(mesh_shape, rows)
    if limit is None or plan.total <= limit:
        return plan
    options = []
    for m in (1, 2, 4, 8, 16, 32, 64):
        if n_devices % m:
            continue
        shape = {DATA_AXIS: n_devices // m, MODEL_AXIS: m}
        for r in sorted({rows, max(1, rows // 2), max(1, rows // 4), max(1, rows // 8), 1}, reverse=True):
            if r % shape[DATA_AXIS] == 0 and plan_fn(shape, r).total <= limit:
                options.append(f"--config.engine.mesh=data:{shape[DATA_AXIS]},model:{m} "
                               f"--config.engine.batch_size={r}")
                break
    hint = f"; try {options[0]}" if options else "; no mesh of these devices fits: use bfloat16 or more devices"
    raise ValueError(f"the model needs ~{plan.total / 2**30:.2f} GiB per device (parameters "
                     f"{plan.params / 2**30:.2f}, activations {plan.activations / 2**30:.2f}, KV cache "
                     f"{plan.kv_cache / 2**30:.2f}) but a device has {limit / 2**30:.2f} GiB{hint}")
