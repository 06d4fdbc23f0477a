"""The resumable loop shared by every task: chunks of items -> fixed-shape batches -> rows -> store."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from jaxunc.engine.batching import Batch, make_batches
from jaxunc.engine.store import CONTENT_KEY, ITEM_KEY, ChunkStore

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
    item_keys: list[str],
    content_key: str,
    batch_size: int,
    buckets: tuple[int, ...],
    pad_id: int,
    chunk_size: int,
    desc: str,
    process_index: int = 0,
    process_count: int = 1,
) -> dict:
    """Compute the items without a valid row in `store`, writing one atomic chunk every `chunk_size` items.

    A stored row is valid when its content key and item key equal `content_key` and `item_keys[i]`
    (see engine.provenance); the returned record counts what was reused and why the rest was computed.
    With several processes (hosts) sharing one output folder, item i belongs to process
    (i // chunk_size) % process_count; each computes only its own items.
    """
    ids = list(items["item_id"])
    own = [i for i in range(len(items)) if (i // chunk_size) % process_count == process_index]
    reused, reasons = store.reusable([ids[i] for i in own], [item_keys[i] for i in own], content_key)
    done_ids = set(reused["item_id"])
    todo = [i for i in own if ids[i] not in done_ids]
    start = time.perf_counter()
    with tqdm(total=len(own), initial=len(own) - len(todo), desc=desc, unit="item") as bar:
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
            rows = rows_fn(items.iloc[rows_idx], ordered)
            rows[CONTENT_KEY] = content_key
            rows[ITEM_KEY] = [item_keys[i] for i in rows_idx]
            store.write_chunk(rows)
    seconds = time.perf_counter() - start
    return {"n_computed": len(todo), "n_reused": len(own) - len(todo), "computed_because": dict(reasons),
            "seconds": seconds, "items_per_second": len(todo) / seconds if todo else None}


def wait_for_all(store: ChunkStore, item_ids: list[str], item_keys: list[str], content_key: str, *,
                 timeout: float, poll: float = 2.0) -> None:
    """Block until every item has a valid row in `store` (written by any process).

    Raises when no new row arrives for `timeout` seconds (a process died: rerun to resume).
    """
    last_count, last_change = -1, time.monotonic()
    while True:
        count = len(store.reusable(item_ids, item_keys, content_key)[0])
        if count == len(item_ids):
            return
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > timeout:
            raise TimeoutError(
                f"{store.partial_dir}: {len(item_ids) - count} items still missing after {timeout:.0f} s "
                f"without progress; another process may have died. Run again to resume.")
        time.sleep(poll)
