"""The hidden-state files of the activation probes: `<output_dir>/hidden/<dataset>__<model>.safetensors`.

One tensor `hidden` [items, layers + 1, hidden] (F32, or BF16 with analysis.probes_dtype=bfloat16) in
the per-item table's row order: entry 0 the embedding output, entry i the output of layer i, the last
entry after the final norm (transformers' output_hidden_states convention) at each item's last prompt
token. `__metadata__` holds `item_ids` (JSON list, the table's order), `convention`, `dataset`, `model`.

The safetensors layout (written here, read by any safetensors reader): 8-byte little-endian header size
N, N bytes of JSON header (padded with spaces to a multiple of 8), then the raw little-endian data.
Written atomically (temporary file in the same folder, fsync, os.replace); read with a memory map, one
layer at a time (`HiddenStates.layer`). Pure numpy (the statistics read these files without jax).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import ml_dtypes
import numpy as np

DTYPES = ("float32", "bfloat16")
_CODES = {"float32": "F32", "bfloat16": "BF16"}
CONVENTION = "transformers output_hidden_states at the last prompt token: embeddings, layers 1..N-1, final norm of N"


def hidden_path(output_dir: str | Path, stem: str) -> Path:
    """<output_dir>/hidden/<stem>.safetensors, stem = '<dataset>__<model>' as the item table's."""
    return Path(output_dir) / "hidden" / f"{stem}.safetensors"


def hidden_for_table(table_path: str | Path) -> Path:
    """The hidden-state file next to a per-item table <dir>/items/<stem>.parquet: <dir>/hidden/<stem>.safetensors."""
    table_path = Path(table_path)
    return hidden_path(table_path.parent.parent, table_path.stem)


def to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), rounded to nearest even (ml_dtypes' cast)."""
    return np.asarray(x, np.float32).astype(ml_dtypes.bfloat16).view(np.uint16)


def from_bfloat16_bits(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) -> float32 (exact)."""
    return np.asarray(bits, np.uint16).view(ml_dtypes.bfloat16).astype(np.float32)


def write_hidden(path: str | Path, rows: Iterable[np.ndarray], shape: tuple[int, int, int], item_ids: list[str],
                 dtype: str = "float32", metadata: dict[str, str] | None = None) -> int:
    """Write `rows` (one float32 array [layers + 1, hidden] per item, in table order) atomically as the
    tensor `hidden` of `shape`; returns the file size in bytes. ValueError on a row of another shape
    or a row count other than shape[0] (the file is then not created)."""
    if dtype not in DTYPES:
        raise ValueError(f"analysis.probes_dtype={dtype!r}: expected one of {DTYPES}")
    n, layers, width = (int(s) for s in shape)
    if len(item_ids) != n:
        raise ValueError(f"{path}: {len(item_ids)} item ids for {n} rows")
    item = layers * width * (4 if dtype == "float32" else 2)
    meta = {"item_ids": json.dumps([str(i) for i in item_ids]), "convention": CONVENTION,
            **{k: str(v) for k, v in (metadata or {}).items()}}
    header = json.dumps({"hidden": {"dtype": _CODES[dtype], "shape": [n, layers, width],
                                    "data_offsets": [0, n * item]}, "__metadata__": meta}).encode()
    header += b" " * (-len(header) % 8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(header)) + header)
            count = 0
            for row in rows:
                row = np.asarray(row, np.float32)
                if row.shape != (layers, width):
                    raise ValueError(f"{path}: row {count} has shape {row.shape}, expected {(layers, width)}")
                f.write((row if dtype == "float32" else to_bfloat16_bits(row)).astype("<f4" if dtype == "float32"
                                                                                       else "<u2").tobytes())
                count += 1
            if count != n:
                raise ValueError(f"{path}: {count} rows for {n} item ids")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.stat().st_size


@dataclass
class HiddenStates:
    """A hidden-state file opened with a memory map: `data` [items, layers + 1, hidden] (float32 or the
    raw bfloat16 bits as uint16), `item_ids` in row order, `metadata`."""

    path: Path
    data: np.ndarray
    dtype: str
    item_ids: list[str]
    metadata: dict[str, str]

    @property
    def n_items(self) -> int:
        return self.data.shape[0]

    @property
    def n_layers(self) -> int:
        """layers + 1 (the embedding output counts as layer 0)."""
        return self.data.shape[1]

    @property
    def width(self) -> int:
        return self.data.shape[2]

    def layer(self, index: int, rows: np.ndarray | None = None) -> np.ndarray:
        """float32 [items (or len(rows)), hidden]: entry `index` of every item (or of `rows`, in that order)."""
        block = self.data[:, index, :] if rows is None else self.data[np.asarray(rows), index, :]
        return np.array(block, np.float32) if self.dtype == "float32" else from_bfloat16_bits(block)


def read_hidden(path: str | Path) -> HiddenStates:
    """Open a file written by write_hidden (ValueError naming the file when it is not one)."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path}: not a safetensors file (shorter than its header)")
        (size,) = struct.unpack("<Q", head)
        if size > 1 << 30 or 8 + size > path.stat().st_size:
            raise ValueError(f"{path}: not a safetensors file (header size {size})")
        try:
            header = json.loads(f.read(size))
        except ValueError as err:
            raise ValueError(f"{path}: unreadable safetensors header ({err})") from err
    entry = header.get("hidden")
    codes = {v: k for k, v in _CODES.items()}
    if not isinstance(entry, dict) or entry.get("dtype") not in codes or len(entry.get("shape", ())) != 3:
        raise ValueError(f"{path}: no tensor 'hidden' [items, layers + 1, hidden] of F32 or BF16")
    dtype = codes[entry["dtype"]]
    shape = tuple(int(s) for s in entry["shape"])
    start, end = (int(o) for o in entry["data_offsets"])
    if end - start != int(np.prod(shape)) * (4 if dtype == "float32" else 2) or 8 + size + end > path.stat().st_size:
        raise ValueError(f"{path}: tensor 'hidden' {shape} does not match its data ({end - start} bytes)")
    meta = header.get("__metadata__") or {}
    ids = json.loads(meta["item_ids"]) if "item_ids" in meta else [str(i) for i in range(shape[0])]
    if len(ids) != shape[0]:
        raise ValueError(f"{path}: {len(ids)} item ids in the metadata for {shape[0]} rows")
    data = np.memmap(path, dtype="<f4" if dtype == "float32" else "<u2", mode="r", offset=8 + size + start,
                     shape=shape)
    return HiddenStates(path, data, dtype, [str(i) for i in ids], dict(meta))
