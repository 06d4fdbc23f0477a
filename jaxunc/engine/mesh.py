"""The device mesh and where every parameter lives on it.

Mesh: `engine.mesh` is a string of `axis:size` over the axes `data` (batch rows) and `model`
(tensor parallel), `-1` = the remaining devices, e.g. `data:-1,model:1` (default), `data:2,model:4`.
Axis types are Auto, so jit's sharding propagation (GSPMD) places the activations.

Parameters: PARAM_AXES names the logical axes of every parameter's dimensions by a regex on its
path (one readable table, in the style of big_vision's sharding rules and MaxText's logical axis
rules); MESH_RULES says which mesh axis each logical axis may be split over. A parameter is split
over `model` along the first dimension whose logical axis maps to `model` and divides the axis
size in whole units (query / key-value heads count in heads, not columns: SmolLM2's 9 heads do not
split 4 ways); failing that, along its `embed` dimension; failing that, it is replicated. With
`fsdp`, the `embed` dimension (or the next that divides) is also split over `data`. Every
parameter's spec, and why a fallback was taken, goes to run.json.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS, MODEL_AXIS = "data", "model"
AXES = (DATA_AXIS, MODEL_AXIS)
DEFAULT_MESH = "data:-1,model:1"

# (regex on the parameter path, logical axes of its dimensions); stacked layers lead with "layers".
PARAM_AXES: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    (r"embed\.embedding", ("vocab", "embed")),
    (r"lm_head\.kernel", ("embed", "vocab")),
    (r"layers\.attn\.q_proj\.kernel", ("layers", "embed", "q_heads")),
    (r"layers\.attn\.[kv]_proj\.kernel", ("layers", "embed", "kv_heads")),
    (r"layers\.attn\.o_proj\.kernel", ("layers", "q_heads", "embed")),
    (r"layers\.attn\.q_proj\.bias", ("layers", "q_heads")),
    (r"layers\.attn\.[kv]_proj\.bias", ("layers", "kv_heads")),
    (r"layers\.mlp\.(gate|up)_proj\.kernel", ("layers", "embed", "mlp")),
    (r"layers\.mlp\.(gate|up)_proj\.bias", ("layers", "mlp")),
    (r"layers\.mlp\.down_proj\.kernel", ("layers", "mlp", "embed")),
    (r".*", None),  # norms, output biases, q/k norm scales: small, replicated
)
# logical axis -> the mesh axis it is split over (MaxText's logical_axis_rules); `embed` is the
# fallback dimension for `model` and the FSDP dimension for `data`.
MESH_RULES: dict[str, str] = {"vocab": MODEL_AXIS, "q_heads": MODEL_AXIS, "kv_heads": MODEL_AXIS,
                              "mlp": MODEL_AXIS, "embed": DATA_AXIS}
FALLBACK = "embed"


def parse_mesh(spec: str, n_devices: int) -> dict[str, int]:
    """'data:2,model:4' -> {'data': 2, 'model': 4}; -1 takes the remaining devices. ValueError naming the
    field, what was given and what would work."""
    sizes: dict[str, int] = {}
    for part in [p.strip() for p in str(spec).split(",") if p.strip()]:
        name, _, value = part.partition(":")
        if name not in AXES:
            raise ValueError(f"engine.mesh={spec!r}: unknown axis {name!r}; the axes are {AXES}")
        if name in sizes:
            raise ValueError(f"engine.mesh={spec!r}: axis {name!r} given twice")
        try:
            sizes[name] = int(value)
        except ValueError:
            raise ValueError(f"engine.mesh={spec!r}: {part!r} is not axis:size") from None
        if sizes[name] < 1 and sizes[name] != -1:
            raise ValueError(f"engine.mesh={spec!r}: size {sizes[name]} of {name!r} must be >= 1 or -1")
    for name in AXES:
        sizes.setdefault(name, 1 if name == MODEL_AXIS else -1)
    free = [n for n in AXES if sizes[n] == -1]
    if len(free) > 1:
        raise ValueError(f"engine.mesh={spec!r}: only one axis may be -1")
    fixed = math.prod(v for v in sizes.values() if v != -1)
    if free:
        if n_devices % fixed:
            raise ValueError(f"engine.mesh={spec!r}: {n_devices} devices do not divide into the fixed "
                             f"axes ({fixed}); try {_suggest(n_devices)}")
        sizes[free[0]] = n_devices // fixed
    if math.prod(sizes.values()) != n_devices:
        raise ValueError(f"engine.mesh={spec!r}: {math.prod(sizes.values())} devices asked for, {n_devices} "
                         f"present; try {_suggest(n_devices)}")
    return {n: sizes[n] for n in AXES}


def _suggest(n: int) -> str:
    splits = [f"data:{n // m},model:{m}" for m in (1, 2, 4, 8) if n % m == 0]
    return " or ".join(f"--config.engine.mesh={s}" for s in splits)


def make_mesh(spec: str = DEFAULT_MESH, devices=None) -> Mesh:
    """A (data, model) mesh with Auto axis types over `devices` (default: this process's devices)."""
    devices = list(devices if devices is not None else jax.local_devices())
    sizes = parse_mesh(spec, len(devices))
    return jax.make_mesh(tuple(sizes.values()), AXES, axis_types=(AxisType.Auto,) * len(AXES), devices=devices)


def batch_sharding(mesh: Mesh, ndim: int = 1) -> NamedSharding:
    """Leading (batch) dimension split over the data axis, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS, *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


@dataclass(frozen=True)
class Units:
    """How many whole units a logical axis has (heads count in heads); dimension size otherwise."""

    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, config) -> "Units":
        return cls({"q_heads": config.num_heads, "kv_heads": config.num_kv_heads})


@dataclass(frozen=True)
class ParamLayout:
    """The chosen spec of one parameter and, when a fallback was taken, why."""

    spec: PartitionSpec
    note: str = ""


def logical_axes(path: str) -> tuple[str, ...] | None:
    for pattern, axes in PARAM_AXES:
        if re.fullmatch(pattern, path):
            return axes
    return None


def param_layout(path: str, shape: tuple[int, ...], mesh_shape: dict[str, int], units: Units,
                 fsdp: bool = False) -> ParamLayout:
    """Spec of one parameter: see the module docstring for the rules and fallbacks."""
    axes = logical_axes(path)
    if axes is None or len(axes) != len(shape):
        return ParamLayout(PartitionSpec(*([None] * len(shape))))
    assigned: list[str | None] = [None] * len(shape)
    notes = []

    def divides(dim: int, size: int) -> bool:
        whole = units.counts.get(axes[dim], shape[dim])
        return whole % size == 0 and shape[dim] % size == 0

    wanted = [(MODEL_AXIS, mesh_shape.get(MODEL_AXIS, 1))]
    if fsdp:
        wanted.append((DATA_AXIS, mesh_shape.get(DATA_AXIS, 1)))
    for mesh_axis, size in wanted:
        if size == 1:
            continue
        preferred = [d for d, a in enumerate(axes) if MESH_RULES.get(a) == mesh_axis and assigned[d] is None]
        fallback = [d for d, a in enumerate(axes) if a == FALLBACK and d not in preferred and assigned[d] is None]
        if mesh_axis == DATA_AXIS:  # FSDP: then any other free dimension
            fallback += [d for d, a in enumerate(axes) if a != "layers" and assigned[d] is None
                         and d not in preferred and d not in fallback]
        chosen = next((d for d in preferred + fallback if divides(d, size)), None)
        if chosen is None:
            tried = ", ".join(f"{axes[d]}={units.counts.get(axes[d], shape[d])}" for d in preferred + fallback)
            notes.append(f"{mesh_axis}:{size}: none of {tried or 'its dimensions'} divides; replicated")
            continue
        if preferred and chosen not in preferred:
            d = preferred[0]
            notes.append(f"{mesh_axis}:{size}: {axes[d]}={units.counts.get(axes[d], shape[d])} does not divide; "
                         f"split {axes[chosen]} instead")
        assigned[chosen] = mesh_axis
    return ParamLayout(PartitionSpec(*assigned), "; ".join(notes))


def param_layouts(shapes: dict[str, tuple[int, ...]], mesh: Mesh, config, fsdp: bool = False) -> dict[str, ParamLayout]:
    units, mesh_shape = Units.of(config), dict(mesh.shape)
    return {p: param_layout(p, tuple(s), mesh_shape, units, fsdp) for p, s in shapes.items()}


def kv_cache_spec(config, mesh: Mesh) -> PartitionSpec:
    """Stacked KV cache [layers, batch, length, kv_heads, head_dim]: rows over data, heads over model
    when they divide (as the k/v projections are split)."""
    model = mesh.shape[MODEL_AXIS]
    heads = MODEL_AXIS if model > 1 and config.num_kv_heads % model == 0 else None
    return PartitionSpec(None, DATA_AXIS, None, heads, None)


def sharding_record(layouts: dict[str, ParamLayout], shapes: dict[str, tuple[int, ...]], itemsize: dict[str, int],
                    mesh: Mesh) -> dict:
    """run.json's "sharding": mesh, total and per-device parameter bytes, every spec and fallback."""
    devices = list(mesh.devices.flat)
    per_device = np.zeros(len(devices), np.int64)
    for path, layout in layouts.items():
        sharding = NamedSharding(mesh, layout.spec)
        nbytes = math.prod(shapes[path]) * itemsize[path]
        for d, index in sharding.devices_indices_map(tuple(shapes[path])).items():
            part = math.prod(len(range(*sl.indices(n))) for sl, n in zip(index, shapes[path]))
            per_device[devices.index(d)] += nbytes * part // max(1, math.prod(shapes[path]))
    return {
        "mesh": dict(mesh.shape),
        "param_bytes_total": int(sum(math.prod(shapes[p]) * itemsize[p] for p in layouts)),
        "param_bytes_per_device": [int(b) for b in per_device],
        "specs": {p: str(tuple(l.spec)) for p, l in sorted(layouts.items())},
        "fallbacks": {p: l.note for p, l in sorted(layouts.items()) if l.note},
    }
