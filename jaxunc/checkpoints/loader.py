"""load_model: an HF safetensors directory or a .gguf file -> our Flax model + tokenizer.

Both paths go through the same declared key map (keymaps.py); the converted flat params are cached on
disk by content (cache.py), keyed by the checkpoint files, the dtype and the key-map version.
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

from jaxunc.checkpoints import keymaps, special_tokens
from jaxunc.checkpoints.special_tokens import SpecialTokens
from jaxunc.checkpoints.safetensors_io import PICKLE_SUFFIXES, open_checkpoint, pickle_refusal, safetensors_files
from jaxunc.models import CausalLM, ModelConfig, build_model, param_shapes
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


def load_model(
    path: str | pathlib.Path, *, dtype: str = "float32", cache_dir: str | pathlib.Path | None = None
) -> LoadedModel:
    """Load a local HF checkpoint directory (config.json + safetensors) or a `.gguf` file.

    `dtype` ("float32" | "bfloat16") is the parameter and activation dtype; logits are float32.
    `cache_dir` holds converted params (default: $JAXUNC_CACHE or ~/.cache/jaxunc).
    Refuses pickle weights, trust_remote_code (`auto_map`) configs and unsupported model types.
    """
    path = pathlib.Path(path).expanduser()
    dtype_name = resolve_dtype(dtype).name
    cache = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else None
    if path.suffix in PICKLE_SUFFIXES:
        raise pickle_refusal(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint path {path} does not exist")
    if path.is_file() and path.suffix == ".gguf":
        return _load_gguf(path, dtype_name, cache)
    if path.is_file():
        raise ValueError(
            f"{path}: expected a checkpoint directory (config.json + *.safetensors) or a .gguf file"
        )
    return _load_hf_dir(path, dtype_name, cache)


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
    return lambda: keymaps.convert(names(), get, config, expected, _NUMPY_DTYPES[dtype_name])


def _cached(files: list[pathlib.Path], config: ModelConfig, dtype_name: str, cache, convert):
    from jaxunc.checkpoints.cache import cached_params, content_key

    extra = f"dtype={dtype_name};keymap={config.model_type}-v{keymaps.KEYMAP_VERSION}"
    key = content_key(files, extra, cache_dir=cache)
    params = cached_params(key, convert, cache_dir=cache)
    # A cache file written under the same key was verified against it; re-check against the model.
    expected = param_shapes(config, dtype_name)
    if set(params) != set(expected) or any(tuple(params[k].shape) != tuple(v.shape) for k, v in expected.items()):
        log.warning("cached params for %s do not fit the model; converting again", files[0])
        params = convert()
    return params, key


def _finish(cached, config: ModelConfig, tokenizer, source: str, dtype_name: str, special: SpecialTokens) -> LoadedModel:
    from jaxunc.checkpoints.cache import entry_name

    params, key = cached
    model = build_model(config, dtype=dtype_name, params=params)
    n_params = int(sum(math.prod(a.shape) for a in params.values()))
    return LoadedModel(model=model, tokenizer=tokenizer, config=config, source=source, n_params=n_params,
                       content_key=entry_name(key), special_tokens=special)


def _load_hf_dir(directory: pathlib.Path, dtype_name: str, cache) -> LoadedModel:
    hf_config = _read_config(directory)
    config = ModelConfig.from_hf(hf_config)
    files = safetensors_files(directory)
    tokenizer = _load_tokenizer(directory)

    def convert() -> dict[str, np.ndarray]:
        with open_checkpoint(directory) as ckpt:
            return _convert_fn(lambda: ckpt.names, ckpt.get, config, dtype_name)()

    cached = _cached([directory / "config.json", *files], config, dtype_name, cache, convert)
    special = special_tokens.from_hf_dir(directory, tokenizer, hf_config)
    return _finish(cached, config, tokenizer, f"safetensors:{directory}", dtype_name, special)


def _load_gguf(path: pathlib.Path, dtype_name: str, cache) -> LoadedModel:
    from jaxunc.checkpoints.gguf_io import read_gguf

    header = read_gguf(path, with_tensors=False)
    special = special_tokens.from_gguf(header.metadata, header.tokenizer)
    config = ModelConfig.from_hf(header.config)

    def convert() -> dict[str, np.ndarray]:
        tensors = read_gguf(path).tensors
        return _convert_fn(lambda: list(tensors), tensors.__getitem__, config, dtype_name)()

    cached = _cached([path], config, dtype_name, cache, convert)
    return _finish(cached, config, header.tokenizer, f"gguf:{path}", dtype_name, special)
