"""Read a llama.cpp GGUF file into an HF-style config, HF-named float32 tensors and a fast tokenizer.

The header (metadata + tensor table) is parsed here with `struct` on a memory map: gguf.GGUFReader
builds a numpy view per string and needs ~4 s for a 49k-token vocabulary, this takes ~0.2 s. The
`gguf` package still provides the ggml type table and the dequantization (gguf.quants.dequantize).

Layout facts used here:
- GGUF lists dims fastest-first: a weight has ne = [in_features, out_features], so read as a C-order
  numpy array of shape reversed(ne) = [out_features, in_features] it is already in HF `nn.Linear` layout.
- llama.cpp's converter permutes the rows of Q and K so that its RoPE rotates adjacent pairs
  (x[2i], x[2i+1]) instead of HF's halves (x[i], x[i + d/2]). Per head, with d = head_dim, GGUF row
  2*i + j holds HF row j*d/2 + i (j in {0, 1}); `unpermute_rope_rows` undoes that.
- Tokenizer: `tokenizer.ggml.model == "gpt2"` is byte-level BPE whose vocabulary is already spelled in
  the GPT-2 byte alphabet; `tokenizer.ggml.pre` names the pre-tokenizer regex. "llama" is SentencePiece
  BPE with scores and byte fallback (gguf_spm.py).
"""

from __future__ import annotations

import dataclasses
import math
import mmap
import os
import pathlib
import re
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

# GGUF block tensor -> HF name under model.layers.N (llama.cpp's names; the gguf package's TensorNameMap).
_LAYER_MAP = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
# Per architecture: changes to _LAYER_MAP (a value of None: not a tensor of that architecture).
_ARCH_LAYER_MAP: dict[str, dict[str, str | None]] = {
    "llama": {"attn_q_norm.weight": None, "attn_k_norm.weight": None},
    "qwen3": {},
    # Gemma 3's ffn_norm is the norm before the MLP; the norms after attention / MLP have their own names.
    "gemma3": {
        "ffn_norm.weight": "pre_feedforward_layernorm.weight",
        "post_attention_norm.weight": "post_attention_layernorm.weight",
        "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
    },
    # OLMo 2 has only the norms after attention and after the MLP.
    "olmo2": {
        "attn_norm.weight": None,
        "ffn_norm.weight": None,
        "post_attention_norm.weight": "post_attention_layernorm.weight",
        "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
    },
    # Phi-3 keeps the fused projections: attn_qkv = qkv_proj, ffn_up = gate_up_proj (split by the key map).
    "phi3": {
        "attn_qkv.weight": "self_attn.qkv_proj.weight",
        "ffn_up.weight": "mlp.gate_up_proj.weight",
        "ffn_gate.weight": None,
        "attn_q_norm.weight": None,
        "attn_k_norm.weight": None,
    },
}
_GLOBAL_MAP = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
# llama.cpp's precomputed per-frequency RoPE divisors (Llama 3.1+): read into config["rope_scaling"].
_ROPE_FREQS = "rope_freqs.weight"
# Phi-3 longrope factors, read into config["rope_scaling"].
_ROPE_LONG, _ROPE_SHORT = "rope_factors_long.weight", "rope_factors_short.weight"
_IGNORED_TENSORS = {_ROPE_FREQS, _ROPE_LONG, _ROPE_SHORT}
# (low_freq_factor, high_freq_factor, original_max_position_embeddings) of the Llama 3.x releases.
_LLAMA3_ROPE_CANDIDATES = ((1.0, 4.0, 8192),)
# GGUF architecture -> HF model_type.
_MODEL_TYPES = {"llama": "llama", "qwen3": "qwen3", "gemma3": "gemma3_text", "phi3": "phi3", "olmo2": "olmo2"}
_SUPPORTED_ARCHITECTURES = tuple(_MODEL_TYPES)
# llama.cpp's converters permute Q/K rows only for its "llama" (adjacent-pair RoPE) architecture; the
# others use the rotate-half layout. Gemma files store every norm weight as 1 + w.
_PERMUTED_ARCHITECTURES = ("llama",)
_NORM_PLUS_ONE_ARCHITECTURES = ("gemma3",)

# Pre-tokenizer split patterns (llama.cpp `tokenizer.ggml.pre` names). None = GPT-2 byte-level regex.
_GPT2_PRE = ("gpt-2", "gpt2", "default", "smollm")
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Qwen2 / Qwen3: the same with single digits.
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# o200k (GPT-4o; Phi-4-mini): case-aware words with contractions, up to 3 digits.
_GPT4O_SPLIT = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_SPLIT_PRE = {
    "llama3": _LLAMA3_SPLIT,
    "llama-bpe": _LLAMA3_SPLIT,
    "llama-v3": _LLAMA3_SPLIT,
    "dbrx": _LLAMA3_SPLIT,  # cl100k (OLMo 2)
    "qwen2": _QWEN2_SPLIT,
    "gpt-4o": _GPT4O_SPLIT,
}
_TOKEN_TYPE_CONTROL = 3
_TOKEN_TYPE_USER_DEFINED = 4


@dataclasses.dataclass
class GGUFCheckpoint:
    """A GGUF file read into HF conventions.

    config: HF config.json-style dict; tensors: HF name -> float32 array in HF layout (empty when read
    with `with_tensors=False`); tokenizer: transformers PreTrainedTokenizerFast; metadata: the GGUF
    key/value metadata except the large tokenizer arrays.
    """

    config: dict[str, Any]
    tensors: Mapping[str, np.ndarray]  # LazyTensors: each read dequantizes one tensor
    tokenizer: Any
    metadata: dict[str, Any]


def unpermute_rope_rows(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's Q/K row permutation: GGUF row (h, 2i + j) -> HF row (h, j*d/2 + i).

    `weight` is [n_heads * head_dim, ...] (a weight matrix or a bias vector).
    """
    rows = weight.shape[0]
    if rows % (2 * n_heads):
        raise ValueError(f"cannot unpermute {rows} rows into {n_heads} heads of even size")
    half = rows // n_heads // 2
    w = weight.reshape(n_heads, half, 2, *weight.shape[1:])
    return np.ascontiguousarray(w.swapaxes(1, 2).reshape(weight.shape))


# GGUF value types (gguf spec): id -> struct format; 8 = string, 9 = array.
_SCALAR_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NUMPY_TYPES = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?", 10: "<u8", 11: "<i8", 12: "<f8"}
_STRING, _ARRAY = 8, 9


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One entry of the GGUF tensor table: ggml dims ne (fastest first), ggml type, absolute byte offset."""

    name: str
    dims: tuple[int, ...]
    ggml_type: int
    offset: int


class _Cursor:
    """Little-endian reader over a memory-mapped GGUF file that fails with a ValueError past the end."""

    def __init__(self, buf: mmap.mmap, path: pathlib.Path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ValueError(f"{self.path}: truncated GGUF file (needs byte {self.pos + n}, has {len(self.buf)})")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return self.take(self.unpack("<Q")).decode("utf-8", errors="replace")

    def value(self, kind: int):
        if kind in _SCALAR_FORMATS:
            return self.unpack(_SCALAR_FORMATS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind, count = self.unpack("<I"), self.unpack("<Q")
            if item_kind in _NUMPY_TYPES:
                dtype = np.dtype(_NUMPY_TYPES[item_kind])
                return np.frombuffer(self.take(count * dtype.itemsize), dtype=dtype).tolist()
            return [self.value(item_kind) for _ in range(count)]
        raise ValueError(f"{self.path}: unknown GGUF value type {kind} at byte {self.pos}")


def read_gguf_header(path: str | pathlib.Path) -> tuple[dict[str, Any], list[TensorInfo]]:
    """Metadata dict and tensor table of a GGUF (v2/v3, little-endian) file, without reading tensor data.

    Layout: "GGUF", u32 version, u64 n_tensors, u64 n_kv, n_kv x (string key, u32 type, value),
    n_tensors x (string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset), padding to
    `general.alignment` (default 32), then the tensor data.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {path}")
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size < 24:
            raise ValueError(f"{path} is not a GGUF file (too short)")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            cur = _Cursor(buf, path)
            if cur.take(4) != b"GGUF":
                raise ValueError(f"{path} is not a GGUF file (bad magic bytes)")
            version = cur.unpack("<I")
            if version not in (2, 3):
                raise ValueError(f"{path}: GGUF version {version} is not supported (2 or 3 expected)")
            n_tensors, n_kv = cur.unpack("<Q"), cur.unpack("<Q")
            meta: dict[str, Any] = {}
            for _ in range(n_kv):
                key = cur.string()
                meta[key] = cur.value(cur.unpack("<I"))
            table = []
            for _ in range(n_tensors):
                name = cur.string()
                dims = tuple(cur.unpack("<Q") for _ in range(cur.unpack("<I")))
                table.append((name, dims, cur.unpack("<I"), cur.unpack("<Q")))
            alignment = meta.get("general.alignment", 32)
            if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
                raise ValueError(f"{path}: general.alignment={alignment!r} is not a positive power of two")
            start = -(-cur.pos // alignment) * alignment
            size = len(buf)
    tensors = [TensorInfo(name, dims, kind, start + offset) for name, dims, kind, offset in table]
    for info in tensors:
        if info.offset + _nbytes(info, path) > size:
            raise ValueError(f"{path}: truncated GGUF file (tensor {info.name!r} runs past the end)")
    return meta, tensors


def _nbytes(info: TensorInfo, path: pathlib.Path) -> int:
    import gguf

    try:
        block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(info.ggml_type)]
    except (ValueError, KeyError) as err:
        raise ValueError(f"{path}: tensor {info.name!r} has unknown ggml type {info.ggml_type}") from err
    if info.dims[0] % block:
        raise ValueError(f"{path}: tensor {info.name!r} row of {info.dims[0]} is not a multiple of {block}")
    return math.prod(info.dims) // block * type_size


def _require(meta: dict[str, Any], key: str, path: pathlib.Path) -> Any:
    if key not in meta:
        raise ValueError(f"{path}: GGUF metadata key {key!r} is missing")
    return meta[key]


def _hf_config(arch: str, meta: dict[str, Any], tensor_names: set[str], path: pathlib.Path) -> dict[str, Any]:
    """HF config.json-style dict from the `{arch}.*` metadata keys (llama.cpp's key names)."""
    key = lambda name: f"{arch}.{name}"  # noqa: E731
    hidden = int(_require(meta, key("embedding_length"), path))
    n_heads = int(_require(meta, key("attention.head_count"), path))
    n_kv = int(meta.get(key("attention.head_count_kv"), n_heads))
    head_dim = int(meta.get(key("attention.key_length"), hidden // n_heads))
    rope_dim = int(meta.get(key("rope.dimension_count"), head_dim))
    if rope_dim != head_dim and arch != "phi3":
        raise ValueError(
            f"{path}: partial rotary ({key('rope.dimension_count')}={rope_dim}, head_dim={head_dim}) is not {arch}"
        )
    tokens = meta.get("tokenizer.ggml.tokens")
    vocab = meta.get(key("vocab_size"), len(tokens) if tokens is not None else None)
    if vocab is None:
        raise ValueError(f"{path}: neither {key('vocab_size')} nor tokenizer.ggml.tokens gives the vocabulary size")
    rope_scaling = None
    scaling_type = meta.get(key("rope.scaling.type"))
    if scaling_type not in (None, "none"):
        rope_scaling = {"rope_type": scaling_type, "factor": float(meta[key("rope.scaling.factor")])}
        if key("rope.scaling.original_context_length") in meta:
            rope_scaling["original_max_position_embeddings"] = int(meta[key("rope.scaling.original_context_length")])
    config = {
        "model_type": _MODEL_TYPES[arch],
        "hidden_size": hidden,
        "intermediate_size": int(_require(meta, key("feed_forward_length"), path)),
        "num_hidden_layers": int(_require(meta, key("block_count"), path)),
        "num_attention_heads": n_heads,
        "num_key_value_heads": n_kv,
        "head_dim": head_dim,
        "rms_norm_eps": float(meta.get(key("attention.layer_norm_rms_epsilon"), 1e-5)),
        "rope_theta": float(meta.get(key("rope.freq_base"), 10000.0)),
        "rope_scaling": rope_scaling,
        "max_position_embeddings": int(meta.get(key("context_length"), 2048)),
        "vocab_size": int(vocab),
        "tie_word_embeddings": "output.weight" not in tensor_names,
        "bos_token_id": meta.get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": meta.get("tokenizer.ggml.eos_token_id"),
        "pad_token_id": meta.get("tokenizer.ggml.padding_token_id"),
        "torch_dtype": "float32",
        "name_or_path": str(meta.get("general.name", path.stem)),
    }
    if arch == "llama":
        config.update(
            architectures=["LlamaForCausalLM"], hidden_act="silu", mlp_bias=False,
            attention_bias="blk.0.attn_q.bias" in tensor_names,
        )
    elif arch == "qwen3":
        config.update(architectures=["Qwen3ForCausalLM"], hidden_act="silu",
                      attention_bias="blk.0.attn_q.bias" in tensor_names)
    elif arch == "olmo2":
        config.update(architectures=["Olmo2ForCausalLM"], hidden_act="silu")
    elif arch == "gemma3":
        config.update(_gemma3_fields(meta, config, path))
    elif arch == "phi3":
        config.update(architectures=["Phi3ForCausalLM"], hidden_act="silu",
                      partial_rotary_factor=rope_dim / head_dim)
        window = meta.get(key("attention.sliding_window"))
        config["sliding_window"] = int(window) if window else None
    return config


def _gemma3_fields(meta: dict[str, Any], config: dict[str, Any], path: pathlib.Path) -> dict[str, Any]:
    """Gemma 3 facts llama.cpp keeps in code when the file does not state them: local layers use RoPE base
    10000 (`rope.freq_base_swa`), every 6th layer is global (`attention.sliding_window_pattern`, per layer
    true = sliding), and scores are scaled by head_dim^-0.5 except on the 27B (hidden 5376), which uses
    (hidden / heads)^-0.5 (`attention.scale` when given)."""
    key = lambda name: f"gemma3.{name}"  # noqa: E731
    n = config["num_hidden_layers"]
    pattern = meta.get(key("attention.sliding_window_pattern"))
    if isinstance(pattern, list):
        if len(pattern) != n:
            raise ValueError(f"{path}: {key('attention.sliding_window_pattern')} has {len(pattern)} entries, expected {n}")
        layer_types = ["sliding_attention" if p else "full_attention" for p in pattern]
    else:
        every = int(pattern) if pattern else 6
        layer_types = ["sliding_attention" if (i + 1) % every else "full_attention" for i in range(n)]
    if key("attention.scale") in meta:
        scalar = float(meta[key("attention.scale")]) ** -2
    elif config["hidden_size"] == 5376:
        scalar = config["hidden_size"] / config["num_attention_heads"]
    else:
        scalar = config["head_dim"]
    return {
        "architectures": ["Gemma3ForCausalLM"],
        "hidden_activation": "gelu_pytorch_tanh",
        "rms_norm_eps": float(meta.get(key("attention.layer_norm_rms_epsilon"), 1e-6)),
        "rope_local_base_freq": float(meta.get(key("rope.freq_base_swa"), 10000.0)),
        "sliding_window": int(_require(meta, key("attention.sliding_window"), path)),
        "layer_types": layer_types,
        "query_pre_attn_scalar": scalar,
        "final_logit_softcapping": None,
        "attn_logit_softcapping": None,
    }


def _llama3_smooth(inv_freq: np.ndarray, low: float, high: float, original: int) -> np.ndarray:
    """s = clip((original / wavelength - low) / (high - low), 0, 1), wavelength = 2 pi / inv_freq."""
    return np.clip((original * inv_freq / (2 * np.pi) - low) / (high - low), 0.0, 1.0)


def llama3_rope_divisors(inv_freq: np.ndarray, factor: float, low: float, high: float, original: int) -> np.ndarray:
    """Divisors d with inv_freq_scaled = inv_freq / d for HF "llama3" RoPE scaling.

    scaled = (1 - s) * inv_freq / factor + s * inv_freq (s from `_llama3_smooth`), so
    d = 1 / ((1 - s) / factor + s).
    """
    smooth = _llama3_smooth(inv_freq, low, high, original)
    return 1.0 / ((1.0 - smooth) / factor + smooth)


def _rope_scaling_from_freqs(divisors: np.ndarray, config: dict[str, Any], path: pathlib.Path) -> dict[str, Any] | None:
    """Identify llama.cpp's rope_freqs tensor as HF llama3 RoPE scaling (None if all divisors are 1).

    For each candidate (low, high, original), `factor` is solved from the frequency with the smallest
    s: 1 / d = (1 - s) / factor + s; the candidate is accepted if it then reproduces every divisor.
    """
    dim = config["head_dim"]
    inv_freq = config["rope_theta"] ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    divisors = np.asarray(divisors, np.float64).reshape(-1)
    if divisors.shape == inv_freq.shape and np.allclose(divisors, 1.0, rtol=1e-6):
        return None
    if divisors.shape == inv_freq.shape:
        for low, high, original in _LLAMA3_ROPE_CANDIDATES:
            smooth = _llama3_smooth(inv_freq, low, high, original)
            i = int(np.argmin(smooth))
            if smooth[i] >= 1.0 or 1.0 / divisors[i] - smooth[i] <= 0:
                continue
            factor = float((1.0 - smooth[i]) / (1.0 / divisors[i] - smooth[i]))
            if np.allclose(llama3_rope_divisors(inv_freq, factor, low, high, original), divisors, rtol=1e-3):
                return {"rope_type": "llama3", "factor": factor, "low_freq_factor": low,
                        "high_freq_factor": high, "original_max_position_embeddings": original}
    raise ValueError(
        f"{path}: tensor {_ROPE_FREQS!r} ({divisors.size} RoPE frequency divisors) does not match llama3 RoPE "
        f"scaling with (low, high, original context) in {list(_LLAMA3_ROPE_CANDIDATES)}; not supported"
    )


def hf_tensor_name(gguf_name: str, arch: str = "llama") -> str | None:
    """HF name of a GGUF tensor of architecture `arch` (None for tensors read into the config)."""
    if gguf_name in _GLOBAL_MAP:
        return _GLOBAL_MAP[gguf_name]
    if gguf_name in _IGNORED_TENSORS:
        return None
    layer_map = {**_LAYER_MAP, **_ARCH_LAYER_MAP[arch]}
    match = re.fullmatch(r"blk\.(\d+)\.(.+)", gguf_name)
    if match and layer_map.get(match.group(2)) is not None:
        return f"model.layers.{match.group(1)}.{layer_map[match.group(2)]}"
    raise ValueError(f"unknown {arch} GGUF tensor {gguf_name!r}")


def _dequantize(path: pathlib.Path, info: TensorInfo, data: np.ndarray | None = None) -> np.ndarray:
    """One tensor as a float32 C-order array of shape reversed(ne), copied out of the file."""
    import gguf
    from gguf import quants

    if data is None:
        data = np.memmap(path, dtype=np.uint8, mode="r")
    nbytes = _nbytes(info, path)
    shape = tuple(reversed(info.dims))  # numpy order: slowest dim first
    row_bytes = nbytes // max(1, math.prod(shape[:-1]))
    raw = data[info.offset : info.offset + nbytes].reshape(*shape[:-1], row_bytes)
    try:
        weights = quants.dequantize(raw, gguf.GGMLQuantizationType(info.ggml_type))
    except NotImplementedError as err:
        raise ValueError(f"{path}: tensor {info.name!r}: {err}") from err
    weights = np.array(weights, dtype=np.float32, order="C")  # copy out of the memory map
    if weights.shape != shape:
        raise ValueError(f"{path}: tensor {info.name!r} dequantized to {weights.shape}, expected {shape}")
    return weights


class LazyTensors(Mapping):
    """HF name -> float32 tensor, dequantized from the file when read (one at a time, never all)."""

    def __init__(self, path: pathlib.Path, infos: list[TensorInfo], config: dict[str, Any], arch: str):
        self._path, self._config, self._arch = path, config, arch
        self._infos: dict[str, TensorInfo] = {}
        for info in infos:
            try:
                name = hf_tensor_name(info.name, arch)
            except ValueError as err:
                raise ValueError(f"{path}: {err}") from err
            if name is not None:
                self._infos[name] = info

    def __getitem__(self, name: str) -> np.ndarray:
        info = self._infos[name]
        weights = _dequantize(self._path, info)
        if self._arch in _PERMUTED_ARCHITECTURES and ".attn_q." in info.name:
            weights = unpermute_rope_rows(weights, self._config["num_attention_heads"])
        elif self._arch in _PERMUTED_ARCHITECTURES and ".attn_k." in info.name:
            weights = unpermute_rope_rows(weights, self._config["num_key_value_heads"])
        if self._arch in _NORM_PLUS_ONE_ARCHITECTURES and info.name.endswith("norm.weight"):
            weights = weights - np.float32(1.0)
        return weights

    def __iter__(self):
        return iter(self._infos)

    def __len__(self) -> int:
        return len(self._infos)


def _pre_tokenizer(pre: str | None, path: pathlib.Path):
    from tokenizers import Regex, pre_tokenizers

    if pre in _SPLIT_PRE:
        return pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(_SPLIT_PRE[pre]), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre == "smollm":  # llama.cpp: "\p{N}" split first, then the GPT-2 regex
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    if pre is None or pre in _GPT2_PRE:
        return byte_level
    raise ValueError(
        f"{path}: tokenizer.ggml.pre={pre!r} is not supported; known: {sorted(set(_GPT2_PRE) | set(_SPLIT_PRE))}"
    )


TOKENIZER_MODELS = ("gpt2", "llama")


def _byte_level_backend(meta: dict[str, Any], path: pathlib.Path):
    """Byte-level BPE ("gpt2") from tokens + merges, with the `tokenizer.ggml.pre` pre-tokenizer."""
    from tokenizers import Tokenizer, decoders, models

    tokens: list[str] = _require(meta, "tokenizer.ggml.tokens", path)
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"{path}: tokenizer.ggml.tokens has duplicate entries")
    merges = []
    for merge in _require(meta, "tokenizer.ggml.merges", path):
        parts = merge.split(" ")
        if len(parts) != 2:
            raise ValueError(f"{path}: malformed merge {merge!r} in tokenizer.ggml.merges")
        merges.append((parts[0], parts[1]))
    vocab = {token: index for index, token in enumerate(tokens)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    backend.pre_tokenizer = _pre_tokenizer(meta.get("tokenizer.ggml.pre"), path)
    backend.decoder = decoders.ByteLevel()
    return backend


def build_tokenizer(meta: dict[str, Any], path: pathlib.Path):
    """transformers PreTrainedTokenizerFast from the GGUF tokenizer metadata: byte-level BPE ("gpt2") or
    SentencePiece BPE ("llama", see gguf_spm.py). Control (and unknown) tokens become special tokens,
    user-defined ones added tokens; BOS/EOS are added per tokenizer.ggml.add_bos_token / add_eos_token
    (when the flag is absent llama.cpp adds a BOS for "llama" vocabularies and none for "gpt2")."""
    from tokenizers import AddedToken, processors
    from transformers import PreTrainedTokenizerFast

    from jaxunc.checkpoints.gguf_spm import UNKNOWN, sentencepiece_backend

    kind = meta.get("tokenizer.ggml.model")
    if kind == "gpt2":
        backend = _byte_level_backend(meta, path)
    elif kind == "llama":
        backend = sentencepiece_backend(meta, path, _require)
    else:
        raise ValueError(
            f"{path}: tokenizer.ggml.model={kind!r} is not supported; supported: {list(TOKENIZER_MODELS)}"
        )
    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    vocab = {token: index for index, token in enumerate(tokens)}
    types = meta.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    special_kinds = (_TOKEN_TYPE_CONTROL, UNKNOWN) if kind == "llama" else (_TOKEN_TYPE_CONTROL,)
    special = [t for t, k in zip(tokens, types) if k in special_kinds]
    user = [t for t, k in zip(tokens, types) if k == _TOKEN_TYPE_USER_DEFINED]
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in user])

    def token(key: str) -> str | None:
        index = meta.get(f"tokenizer.ggml.{key}_token_id")
        return None if index is None else tokens[index]

    bos = token("bos")
    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", kind == "llama"))
    add_eos = bool(meta.get("tokenizer.ggml.add_eos_token", False))
    eos = token("eos")
    if (add_bos and bos is None) or (add_eos and eos is None):
        raise ValueError(f"{path}: add_bos/add_eos set but the bos/eos token id is missing")
    single = ([f"{bos}:0"] if add_bos else []) + ["$A:0"] + ([f"{eos}:0"] if add_eos else [])
    pair = single + ([f"{bos}:1"] if add_bos else []) + ["$B:1"] + ([f"{eos}:1"] if add_eos else [])
    special_pairs = [(t, vocab[t]) for t in {bos, eos} if t is not None and (add_bos or add_eos)]
    template = processors.TemplateProcessing(single=" ".join(single), pair=" ".join(pair), special_tokens=special_pairs)
    if kind == "gpt2":
        backend.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False), template])
    else:
        backend.post_processor = template
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        unk_token=token("unknown"),
        pad_token=token("padding"),
        chat_template=meta.get("tokenizer.chat_template"),
        model_max_length=int(meta.get(f"{meta.get('general.architecture')}.context_length", 2048)),
        clean_up_tokenization_spaces=False,
    )


def _phi3_longrope(meta: dict[str, Any], infos: list[TensorInfo], config: dict[str, Any], path: pathlib.Path):
    """Phi-3 rope_factors_long / rope_factors_short tensors -> HF "longrope" rope_scaling (None without them)."""
    factors = {t.name: _dequantize(path, t).reshape(-1).tolist() for t in infos if t.name in (_ROPE_LONG, _ROPE_SHORT)}
    if not factors:
        return None
    if len(factors) != 2:
        raise ValueError(f"{path}: Phi-3 file has only one of {_ROPE_LONG!r} and {_ROPE_SHORT!r}")
    original = int(meta.get("phi3.rope.scaling.original_context_length", config["max_position_embeddings"]))
    scaling = {"rope_type": "longrope", "long_factor": factors[_ROPE_LONG], "short_factor": factors[_ROPE_SHORT],
               "original_max_position_embeddings": original}
    if "phi3.rope.scaling.attn_factor" in meta:
        scaling["attention_factor"] = float(meta["phi3.rope.scaling.attn_factor"])
    return scaling


def read_gguf(path: str | pathlib.Path, with_tensors: bool = True) -> GGUFCheckpoint:
    """Read a GGUF file of a supported architecture (llama, qwen3, gemma3, phi3, olmo2): config,
    dequantized float32 HF tensors and tokenizer.

    With `with_tensors=False` only metadata is decoded (fast; `tensors` is empty).
    """
    path = pathlib.Path(path)
    meta, infos = read_gguf_header(path)
    arch = meta.get("general.architecture")
    if arch not in _SUPPORTED_ARCHITECTURES:
        raise ValueError(
            f"{path}: GGUF architecture {arch!r} is not supported; supported: {list(_SUPPORTED_ARCHITECTURES)}"
        )
    config = _hf_config(arch, meta, {t.name for t in infos}, path)
    rope_freqs = [t for t in infos if t.name == _ROPE_FREQS]
    if rope_freqs:
        config["rope_scaling"] = _rope_scaling_from_freqs(_dequantize(path, rope_freqs[0]), config, path)
    if arch == "phi3":
        config["rope_scaling"] = _phi3_longrope(meta, infos, config, path)
        if config["rope_scaling"]:
            config["original_max_position_embeddings"] = config["rope_scaling"]["original_max_position_embeddings"]
    tokenizer = build_tokenizer(meta, path)
    tensors = LazyTensors(path, infos, config, arch) if with_tensors else {}
    small_meta = {k: v for k, v in meta.items() if not (k.startswith("tokenizer.ggml.") and isinstance(v, list))}
    return GGUFCheckpoint(config=config, tensors=tensors, tokenizer=tokenizer, metadata=small_meta)
