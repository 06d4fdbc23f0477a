"""load_model: an HF safetensors directory or a .gguf file -> our Flax model + tokenizer.

Both paths go through the same declared key map (keymaps.py); the converted flat params are cached on
disk by content (cache.py), keyed by the checkpoint files, the dtype and the key-map version, and go
from the checkpoint or the cache to their shards on the mesh one tensor at a time (placement.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import pathlib
from typing import Any

import ml_dtypes
import numpy as np

import jax
from jax.sharding import Mesh

from jaxunc.checkpoints import keymaps, special_tokens
from jaxunc.checkpoints.placement import ParamsMismatch, assemble, place_params
from jaxunc.checkpoints.safetensors_io import PICKLE_SUFFIXES, open_checkpoint, pickle_refusal, safetensors_files
from jaxunc.checkpoints.special_tokens import SpecialTokens
from jaxunc.engine.mesh import ParamLayout, make_mesh, param_layouts, sharding_record
from jaxunc.models import CausalLM, ModelConfig, param_shapes, stacked_shapes
from jaxunc.models.transformer import resolve_dtype

log = logging.getLogger(__name__)

_NUMPY_DTYPES = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(ml_dtypes.bfloat16)}


@dataclasses.dataclass
class LoadedModel:
    model: CausalLM
    tokenizer: Any  # transformers PreTrainedTokenizerFast (TokenizersBackend in transformers 5)
    config: ModelConfig
    source: str  # "safetensors:<dir>" or "gguf:<file>"
    n_params: int
    content_key: str  # identity of the checkpoint files' content, dtype and key map (cache.entry_name)
    # End-of-turn / stop ids and BOS behaviour the checkpoint declares (special_tokens.py).
    special_tokens: SpecialTokens | None = None
    mesh: Mesh | None = None  # where the parameters live
    layouts: dict[str, ParamLayout] = dataclasses.field(default_factory=dict)  # spec of every parameter

    def sharding_record(self) -> dict:
        """run.json's "sharding" block (engine.mesh.sharding_record)."""
        shapes = {p: tuple(s.shape) for p, s in stacked_shapes(self.config, self.model.dtype).items()}
        itemsize = {p: np.dtype(s.dtype).itemsize for p, s in stacked_shapes(self.config, self.model.dtype).items()}
        return sharding_record(self.layouts, shapes, itemsize, self.mesh)


def load_model(
    path: str | pathlib.Path, *, dtype: str = "float32", cache_dir: str | pathlib.Path | None = None,
    mesh: Mesh | None = None, fsdp: bool = False, scan_layers: bool = True,
) -> LoadedModel:
    """Load a local HF checkpoint directory (config.json + safetensors) or a `.gguf` file.

    `dtype` ("float32" | "bfloat16") is the parameter and activation dtype; logits are float32.
    `cache_dir` holds converted params (default: $JAXUNC_CACHE or ~/.cache/jaxunc).
    `mesh` (default: this process's first device): every parameter goes straight from the checkpoint
    or the cache to its shards, one tensor at a time, as the partition rules of engine/mesh.py say
    (`fsdp`: also split over the data axis).
    Refuses pickle weights, trust_remote_code (`auto_map`) configs and unsupported model types.
    """
    path = pathlib.Path(path).expanduser()
    dtype_name = resolve_dtype(dtype).name
    cache = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else None
    if path.suffix in PICKLE_SUFFIXES:
        raise pickle_refusal(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint path {path} does not exist")
    if mesh is None:
        mesh = make_mesh("data:1,model:1", jax.local_devices()[:1])
    placement = dict(mesh=mesh, fsdp=fsdp, scan_layers=scan_layers)
    if path.is_file() and path.suffix == ".gguf":
        return _load_gguf(path, dtype_name, cache, placement)
    if path.is_file():
        raise ValueError(
            f"{path}: expected a checkpoint directory (config.json + *.safetensors) or a .gguf file"
        )
    return _load_hf_dir(path, dtype_name, cache, placement)


def model_config(path: str | pathlib.Path) -> ModelConfig:
    """The architecture of a checkpoint from its config.json or GGUF header alone (no weights read)."""
    path = pathlib.Path(path).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        from jaxunc.checkpoints.gguf_io import read_gguf

        return ModelConfig.from_hf(read_gguf(path, with_tensors=False).config)
    return ModelConfig.from_hf(_read_config(path))


def _read_config(directory: pathlib.Path) -> dict[str, Any]:
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{directory}: no config.json (expected an HF checkpoint directory)")
    try:
        return json.loads(config_file.read_text())
    except ValueError as err:
        raise ValueError(f"{config_file}: not valid JSON: {err}") from err


def _load_tokenizer(directory: pathlib.Path) -> Any:
    """tokenizer.json read verbatim as PreTrainedTokenizerFast (with tokenizer_config.json: special tokens,
    chat template). AutoTokenizer only as the fallback for sentencepiece-only checkpoints: in
    transformers 5 it may rebuild model-specific tokenizers from their own rules instead of the file."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if (directory / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)
    if (directory / "tokenizer.model").is_file():
        return AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False, local_files_only=True)
    raise FileNotFoundError(f"{directory}: no tokenizer.json or tokenizer.model next to the weights")


def _convert_fn(names, get, config: ModelConfig, dtype_name: str):
    expected = {k: tuple(v.shape) for k, v in param_shapes(config, dtype_name).items()}
    return lambda: keymaps.iter_convert(names(), get, config, expected, _NUMPY_DTYPES[dtype_name])


def _placed_model(files: list[pathlib.Path], config: ModelConfig, dtype_name: str, cache, convert, placement,
                  tokenizer, source: str, special: SpecialTokens) -> LoadedModel:
    """Stream the params (cache entry, else conversion) onto the mesh; an invalid or unfitting cache
    entry is discarded and the checkpoint converted again."""
    from jaxunc.checkpoints.cache import CacheEntry, CacheInvalid, cached_stream, content_key, entry_name

    extra = f"dtype={dtype_name};keymap={config.model_type}-v{keymaps.KEYMAP_VERSION}"
    key = content_key(files, extra, cache_dir=cache)
    mesh = placement["mesh"]
    shapes = {p: tuple(s.shape) for p, s in stacked_shapes(config, dtype_name).items()}
    layouts = param_layouts(shapes, mesh, config, placement["fsdp"])
    for attempt in range(2):
        from_cache = CacheEntry(key, cache).exists
        try:
            placed = place_params(cached_stream(key, convert, cache), config, dtype_name, mesh, layouts)
            break
        except (CacheInvalid, ParamsMismatch) as err:
            if not from_cache or attempt:
                raise
            log.warning("cached params for %s do not fit the model (%s); converting again", files[0], err)
            CacheEntry(key, cache).discard()
    model = assemble(config, dtype_name, placed, placement["scan_layers"])
    n_params = int(sum(math.prod(a.shape) for a in placed.values()))
    return LoadedModel(model=model, tokenizer=tokenizer, config=config, source=source, n_params=n_params,
                       content_key=entry_name(key), special_tokens=special, mesh=mesh, layouts=layouts)


def _load_hf_dir(directory: pathlib.Path, dtype_name: str, cache, placement) -> LoadedModel:
    hf_config = _read_config(directory)
    config = ModelConfig.from_hf(hf_config)
    files = safetensors_files(directory)
    tokenizer = _load_tokenizer(directory)

    def convert():
        with open_checkpoint(directory) as ckpt:
            yield from _convert_fn(lambda: ckpt.names, ckpt.get, config, dtype_name)()

    special = special_tokens.from_hf_dir(directory, tokenizer, hf_config)
    return _placed_model([directory / "config.json", *files], config, dtype_name, cache, convert, placement,
                         tokenizer, f"safetensors:{directory}", special)


def _load_gguf(path: pathlib.Path, dtype_name: str, cache, placement) -> LoadedModel:
    from jaxunc.checkpoints.gguf_io import read_gguf

    header = read_gguf(path, with_tensors=False)
    special = special_tokens.from_gguf(header.metadata, header.tokenizer)
    config = ModelConfig.from_hf(header.config)

    def convert():
        tensors = read_gguf(path).tensors
        return _convert_fn(lambda: list(tensors), tensors.__getitem__, config, dtype_name)()

    return _placed_model([path], config, dtype_name, cache, convert, placement, header.tokenizer, f"gguf:{path}",
                         special)
