"""Prompt suffixes packed into fixed-shape rows: several items per row, one compiled shape per task.

A batch is [rows, length] tokens. Suffixes are placed first-fit in item order: each goes into the
first row of the batch with room for it and fewer than `segments` suffixes; a batch is full when
none has. Each placed suffix is a segment (ids 1, 2, ... within its row; 0 = padding) whose tokens
get positions prefix_length + 0, 1, ...; its answer slot is its last column. So padding is only what
is left at the end of rows, and every batch has the same shape whatever the lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class PackedBatch:
    input_ids: np.ndarray  # int32 [rows, length]
    positions: np.ndarray  # int32 [rows, length]: prefix_length + offset in the suffix (0 on padding)
    segments: np.ndarray  # int32 [rows, length]: 1.. per suffix, 0 = padding
    last: np.ndarray  # int32 [rows, segments]: column of each suffix's last token (0 for empty slots)
    items: np.ndarray  # int32 [rows, segments]: index of the item in each slot, -1 for empty slots

    @property
    def real_tokens(self) -> int:
        return int((self.segments > 0).sum())

    @property
    def n_items(self) -> int:
        return int((self.items >= 0).sum())


def pack(suffixes: Sequence[Sequence[int]], items: Sequence[int], *, rows: int, length: int, segments: int,
         pad_id: int, prefix_length: int = 0) -> list[PackedBatch]:
    """Pack `suffixes` (token lists; `items[k]` is the item of suffixes[k]) into batches (module docstring)."""
    if rows < 1 or length < 1 or segments < 1:
        raise ValueError(f"rows, length and segments must be >= 1, got {rows}, {length}, {segments}")
    too_long = [(items[k], len(s)) for k, s in enumerate(suffixes) if len(s) > length]
    if too_long:
        item, n = too_long[0]
        raise ValueError(f"item {item}: its prompt suffix has {n} tokens, more than the packed row length {length} "
                         "(engine.pack_length)")
    if any(len(s) == 0 for s in suffixes):
        raise ValueError("every suffix needs at least one token")
    batches, open_rows = [], []  # open_rows: per row [(item, tokens)], filled first-fit

    def flush():
        if open_rows:
            batches.append(_assemble(open_rows, rows, length, segments, pad_id, prefix_length))
            open_rows.clear()

    for item, tokens in zip(items, suffixes):
        for row in open_rows:
            if sum(len(t) for _, t in row) + len(tokens) <= length and len(row) < segments:
                row.append((item, tokens))
                break
        else:
            if len(open_rows) == rows:
                flush()
            open_rows.append([(item, tokens)])
    flush()
    return batches


def _assemble(packed_rows, rows: int, length: int, segments: int, pad_id: int, prefix_length: int) -> PackedBatch:
    ids = np.full((rows, length), pad_id, np.int32)
    pos = np.zeros((rows, length), np.int32)
    seg = np.zeros((rows, length), np.int32)
    last = np.zeros((rows, segments), np.int32)
    items = np.full((rows, segments), -1, np.int32)
    for r, row in enumerate(packed_rows):
        col = 0
        for s, (item, tokens) in enumerate(row):
            n = len(tokens)
            ids[r, col:col + n] = tokens
            pos[r, col:col + n] = prefix_length + np.arange(n)
            seg[r, col:col + n] = s + 1
            last[r, s], items[r, s] = col + n - 1, item
            col += n
    return PackedBatch(ids, pos, seg, last, items)


def pack_shape(lengths: Sequence[int], *, rows: int, length: int = 0, multiple: int = 64) -> tuple[int, int]:
    """(row length, segments per row) for suffixes of these lengths: length (0 = the longest suffix
    rounded up to `multiple`, at least 4 * multiple) and as many segments as the shortest suffixes fit."""
    longest, shortest = max(lengths), min(lengths)
    if not length:
        length = max(4 * multiple, -(-longest // multiple) * multiple)
    return length, max(1, min(length // shortest, length))
