"""Dataset loaders and the item table (schema.py).

`load_dataset(name, ...)` reads "coane" or "protoqa" (shipped, CC-BY-4.0, see ATTRIBUTION.md),
"mmlu", "opinionqa" or "globalopinionqa" (local copies given by `path`; not shipped), or
"generic" / a file path (JSONL, CSV or parquet in the format of docs/datasets.md), validates every
row and returns a `LoadedDataset`.

Columns that hold one value per option besides `Answers` / `Answer_Ratios` (the survey loaders'
`human_shares:<target>` targets and `ordinal_values`) are permuted with the options when the
options are shuffled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxunc.data import coane, generic, globalopinionqa, mmlu, opinionqa, protoqa
from jaxunc.data.schema import (
    CORE_COLUMNS,
    MAX_FIELD_CHARS,
    PERMUTATION_METHOD,
    ItemValidationError,
    LoadedDataset,
    RawItem,
    build_items,
    human_entropy,
    human_plurality,
    human_shares,
)

READERS = {
    "coane": (coane.read_coane, coane.DEFAULT_SHUFFLE),
    "protoqa": (protoqa.read_protoqa, protoqa.DEFAULT_SHUFFLE),
    "mmlu": (mmlu.read_mmlu, mmlu.DEFAULT_SHUFFLE),
    "opinionqa": (opinionqa.read_opinionqa, opinionqa.DEFAULT_SHUFFLE),
    "globalopinionqa": (globalopinionqa.read_globalopinionqa, globalopinionqa.DEFAULT_SHUFFLE),
    "generic": (generic.read_generic, generic.DEFAULT_SHUFFLE),
}
PER_OPTION_PREFIXES = ("human_shares:",)
PER_OPTION_COLUMNS = ("ordinal_values",)
DATASETS = tuple(READERS)
SHIPPED = ("coane", "protoqa")  # the others are read from a local copy given as `path`

__all__ = [
    "CORE_COLUMNS",
    "DATASETS",
    "SHIPPED",
    "ItemValidationError",
    "LoadedDataset",
    "RawItem",
    "build_items",
    "human_entropy",
    "human_plurality",
    "human_shares",
    "load_dataset",
]


def load_dataset(
    name: str,
    *,
    path: str | None = None,
    limit: int | None = None,
    on_error: str = "raise",
    shuffle_options: bool | None = None,
    seed: int = 0,
    max_field_chars: int = MAX_FIELD_CHARS,
) -> LoadedDataset:
    """Loads and validates a dataset.

    name: "coane", "protoqa" (shipped; `path` overrides the file), "mmlu" (needs `path`),
    "generic" (needs `path`) or a path to a .jsonl/.csv/.parquet file.
    limit: read only the first `limit` source rows. on_error: "raise" (ItemValidationError naming
    the file and row) or "skip" (bad rows listed in `.skipped`). shuffle_options: permute each
    item's options with numpy.random.default_rng([seed, row]); None = the dataset's default (only
    ProtoQA shuffles, as it stores options by popularity). max_field_chars: a longer question or
    option is a bad row (refused before any tokenization). A file with no valid item raises.
    """
    if name not in READERS:
        if not generic.is_generic_path(name):
            raise ValueError(
                f"unknown dataset {name!r}: expected one of {DATASETS} or a path to a "
                f"{'/'.join(generic.SUFFIXES)} file"
            )
        if path is not None:
            raise ValueError(f"dataset {name!r} is a path; do not give path={path!r} as well")
        name, path = "generic", name
    reader, default_shuffle = READERS[name]
    shuffle = default_shuffle if shuffle_options is None else bool(shuffle_options)
    raws, source, n_rows = reader(path, limit)
    dataset = Path(source).stem if name == "generic" else name
    items, skipped = build_items(
        raws,
        dataset=dataset,
        source=source,
        on_error=on_error,
        shuffle=shuffle,
        seed=seed,
        max_field_chars=max_field_chars,
    )
    if len(items) == 0:
        raise ItemValidationError.none_valid(source, n_rows, skipped)
    if shuffle:
        _permute_per_option_columns(items, source)
    method = PERMUTATION_METHOD if shuffle else "identity"
    permutation = {"shuffled": shuffle, "seed": int(seed), "method": method}
    return LoadedDataset(items, dataset, source, skipped, permutation, n_rows)


def _permute_per_option_columns(items, source: str) -> None:
    """Put per-option list columns in presentation order, like Answers (in place)."""
    cols = [c for c in items.columns
            if c in PER_OPTION_COLUMNS or str(c).startswith(PER_OPTION_PREFIXES)]
    for col in cols:
        out = []
        for item_id, value, perm in zip(items["item_id"], items[col], items["option_permutation"]):
            if value is None or np.ndim(value) == 0:
                out.append(value)
                continue
            if len(value) != len(perm):
                raise ValueError(f"{source}: item {item_id}: column {col!r} has {len(value)} values for "
                                 f"{len(perm)} options")
            out.append([value[p] for p in perm])
        items[col] = out
