"""Length-bucketed, left-padded batches of fixed shape.

Every batch has shape [batch_size, bucket]: the number of distinct compiled shapes is the number of
distinct buckets used, whatever the data. Short final batches are filled with copies of their first
row (their outputs are dropped), so the batch size never changes a result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def parse_buckets(spec: str | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """'64,128,256' -> (64, 128, 256), sorted and validated."""
    if isinstance(spec, str):
        try:
            values = [int(v) for v in spec.split(",") if v.strip()]
        except ValueError as err:
            raise ValueError(f"engine.buckets must be comma-separated integers, got {spec!r}") from err
    else:
        values = [int(v) for v in spec]
    if not values or min(values) < 1:
        raise ValueError(f"engine.buckets must hold positive lengths, got {spec!r}")
    return tuple(sorted(set(values)))


def bucket_for(length: int, buckets: tuple[int, ...]) -> int:
    """Smallest bucket >= length; beyond the largest, the next multiple of the largest."""
    for b in buckets:
        if length <= b:
            return b
    top = buckets[-1]
    return -(-length // top) * top


@dataclass(frozen=True)
class Batch:
    rows: np.ndarray  # [n_real] indices into the token lists, in input order
    input_ids: np.ndarray  # int32 [batch_size, bucket], left-padded
    attention_mask: np.ndarray  # int32 [batch_size, bucket], 1 = token

    @property
    def n_real(self) -> int:
        return len(self.rows)


def left_pad(token_lists: list[list[int]], length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Left-pad every list to `length`: the last prompt token sits at column length - 1."""
    ids = np.full((len(token_lists), length), pad_id, dtype=np.int32)
    mask = np.zeros((len(token_lists), length), dtype=np.int32)
    for i, toks in enumerate(token_lists):
        if len(toks) > length:
            raise ValueError(f"row {i}: {len(toks)} tokens do not fit a bucket of {length}")
        if toks:
            ids[i, length - len(toks):] = toks
            mask[i, length - len(toks):] = 1
    return ids, mask


def make_batches(
    token_lists: list[list[int]], batch_size: int, buckets: tuple[int, ...], pad_id: int
) -> list[Batch]:
    """Group rows by bucket (input order kept inside a bucket) into fixed-shape batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for i, toks in enumerate(token_lists):
        if not toks:
            raise ValueError(f"row {i}: empty prompt after tokenization")
    by_bucket: dict[int, list[int]] = {}
    for i, toks in enumerate(token_lists):
        by_bucket.setdefault(bucket_for(len(toks), buckets), []).append(i)
    batches = []
    for bucket in sorted(by_bucket):
        rows = by_bucket[bucket]
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            filled = chunk + [chunk[0]] * (batch_size - len(chunk))
            ids, mask = left_pad([token_lists[r] for r in filled], bucket, pad_id)
            batches.append(Batch(np.asarray(chunk), ids, mask))
    return batches
