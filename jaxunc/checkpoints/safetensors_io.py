"""Read HF safetensors checkpoints (one file or shards + model.safetensors.index.json) as numpy.

Tensors are read lazily one at a time through ``safetensors.safe_open(framework="numpy")``
(bfloat16 arrives as ml_dtypes.bfloat16). Pickle-based weights are refused: loading them runs
arbitrary code.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
from collections.abc import Iterator

import numpy as np
from safetensors import safe_open

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
FLOAT_DTYPES = ("float32", "float16", "bfloat16")


def pickle_refusal(path: pathlib.Path) -> ValueError:
    return ValueError(
        f"{path}: pickle-based weights (.bin/.pt/.pth/.ckpt) are refused because loading a pickle can "
        "execute arbitrary code. Convert it once where you trust the file, e.g. "
        "`AutoModelForCausalLM.from_pretrained(dir).save_pretrained(out_dir, safe_serialization=True)` "
        "in transformers, and load the directory holding model.safetensors."
    )


def safetensors_files(directory: pathlib.Path) -> list[pathlib.Path]:
    """The weight files of a checkpoint directory: the shards named by the index, or model.safetensors."""
    index = directory / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{index}: not a valid safetensors index (needs a `weight_map` object): {err}") from err
        files = sorted(set(weight_map.values()))
        missing = [f for f in files if not (directory / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{index} names shard files that do not exist: {missing}")
        return [directory / f for f in files]
    if (directory / SINGLE_FILE).is_file():
        return [directory / SINGLE_FILE]
    found = sorted(directory.glob("*.safetensors"))
    if len(found) == 1:
        return found
    pickles = sorted(p for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise pickle_refusal(pickles[0])
    if found:
        raise ValueError(f"{directory}: several .safetensors files but no {INDEX_FILE} to say which are weights")
    raise FileNotFoundError(f"{directory}: no {SINGLE_FILE}, {INDEX_FILE} or other .safetensors file")


def _open(file: pathlib.Path):
    """safe_open with a one-line error naming the file (truncated or not a safetensors file)."""
    try:
        return safe_open(str(file), framework="numpy")
    except Exception as err:  # SafetensorError, OSError
        raise ValueError(f"{file}: not a readable safetensors file ({' '.join(str(err).split())}); "
                         "it may be truncated or not a safetensors file") from None


class SafetensorsCheckpoint(contextlib.AbstractContextManager):
    """Open shards lazily: ``names`` lists every tensor, ``get(name)`` reads one as numpy."""

    def __init__(self, files: list[pathlib.Path], index: pathlib.Path | None = None):
        self._stack = contextlib.ExitStack()
        self._handles = [self._stack.enter_context(_open(f)) for f in files]
        self._where: dict[str, int] = {}
        for i, handle in enumerate(self._handles):
            for name in handle.keys():
                if name in self._where:
                    raise ValueError(f"tensor {name!r} appears in both {files[self._where[name]]} and {files[i]}")
                self._where[name] = i
        self.files = files
        if index is not None:
            listed = set(json.loads(index.read_text())["weight_map"])
            if listed != set(self._where):
                raise ValueError(
                    f"{index} disagrees with the shards: listed only {sorted(listed - set(self._where))[:10]}, "
                    f"in shards only {sorted(set(self._where) - listed)[:10]}"
                )

    @property
    def names(self) -> list[str]:
        return list(self._where)

    def get(self, name: str) -> np.ndarray:
        file = self.files[self._where[name]]
        try:
            array = self._handles[self._where[name]].get_tensor(name)
        except Exception as err:  # safetensors raises its own SafetensorError for truncated data
            raise ValueError(f"{file}: tensor {name!r} is unreadable ({' '.join(str(err).split())}); "
                             "the file may be truncated: copy it again") from None
        if array.dtype.name not in FLOAT_DTYPES:
            raise ValueError(f"tensor {name!r} has dtype {array.dtype.name}; supported: {FLOAT_DTYPES}")
        return array

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __exit__(self, *exc) -> None:
        self._stack.close()


def open_checkpoint(directory: pathlib.Path) -> SafetensorsCheckpoint:
    index = directory / INDEX_FILE
    return SafetensorsCheckpoint(safetensors_files(directory), index if index.is_file() else None)
