"""The resumable loop shared by every task: chunks of items -> fixed-shape batches -> rows -> store."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from jaxunc.engine.batching import Batch, make_batches
from jaxunc.engine.store import ChunkStore

# batch_fn(batch, global_rows) -> {name: array with one leading entry per real row of the batch}
BatchFn = Callable[[Batch, np.ndarray], dict[str, np.ndarray]]
# rows_fn(items of the chunk, {name: array [n_chunk, ...]}) -> one DataFrame row per item, with item_id
RowsFn = Callable[[pd.DataFrame, dict[str, np.ndarray]], pd.DataFrame]


def process_items(
    items: pd.DataFrame,
    token_lists: list[list[int]],
    store: ChunkStore,
    batch_fn: BatchFn,
    rows_fn: RowsFn,
    *,
    batch_size: int,
    buckets: tuple[int, ...],
    pad_id: int,
    chunk_size: int,
    desc: str,
) -> dict:
    """Compute the items not yet in `store`, writing one atomic chunk every `chunk_size` items."""
    done = store.load_done()
    done_ids = set(done["item_id"]) if len(done) else set()
    todo = [i for i, item_id in enumerate(items["item_id"]) if item_id not in done_ids]
    start = time.perf_counter()
    with tqdm(total=len(items), initial=len(items) - len(todo), desc=desc, unit="item") as bar:
        for c0 in range(0, len(todo), chunk_size):
            rows_idx = np.asarray(todo[c0:c0 + chunk_size])
            outputs: dict[int, dict[str, np.ndarray]] = {}
            for batch in make_batches([token_lists[i] for i in rows_idx], batch_size, buckets, pad_id):
                filled = np.concatenate([batch.rows, np.full(batch_size - batch.n_real, batch.rows[0])])
                out = batch_fn(batch, rows_idx[filled])
                for k, r in enumerate(batch.rows):
                    outputs[int(r)] = {name: v[k] for name, v in out.items()}
                bar.update(batch.n_real)
            names = list(outputs[0])
            ordered = {n: np.stack([outputs[k][n] for k in range(len(rows_idx))]) for n in names}
            store.write_chunk(rows_fn(items.iloc[rows_idx], ordered))
    seconds = time.perf_counter() - start
    return {"n_computed": len(todo), "n_reused": len(items) - len(todo), "seconds": seconds,
            "items_per_second": len(todo) / seconds if todo else None}
