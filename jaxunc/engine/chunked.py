"""The resumable loop shared by every task: the task's batches -> rows -> atomic chunks in the store."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from jaxunc.engine.store import CONTENT_KEY, ITEM_KEY, ChunkStore

# Tests set JAXUNC_TEST_KILL_AFTER_CHUNKS=n to SIGKILL the process right after its n-th chunk is written.
KILL_AFTER_CHUNKS = int(os.environ.get("JAXUNC_TEST_KILL_AFTER_CHUNKS") or 0)

# One progress bar per task: items done / total, elapsed < remaining, always as items per second
# (tqdm's own rate turns into s/item when slow).
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} items [{elapsed}<{remaining}, {rate_noinv_fmt}]"

# batches(todo item indices) -> per batch: (item indices scored, {name: array with one entry per item})
Batches = Callable[[list[int]], Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]]
# rows_fn(items of the chunk, {name: array [n_chunk, ...]}) -> one DataFrame row per item, with item_id
RowsFn = Callable[[pd.DataFrame, dict[str, np.ndarray]], pd.DataFrame]


def process_items(
    items: pd.DataFrame,
    store: ChunkStore,
    batches: Batches,
    rows_fn: RowsFn,
    *,
    item_keys: list[str],
    content_key: str,
    chunk_size: int,
    desc: str,
    process_index: int = 0,
    process_count: int = 1,
) -> dict:
    """Compute the items without a valid row in `store`; a chunk of at least `chunk_size` items (whole
    batches) is written atomically as soon as its batches are done.

    A stored row is valid when its content key and item key equal `content_key` and `item_keys[i]`
    (see engine.provenance); the returned record counts what was reused and why the rest was computed.
    With several processes (hosts) sharing one output folder, item i belongs to process
    (i // chunk_size) % process_count; each computes only its own items.
    """
    ids = list(items["item_id"])
    own = [i for i in range(len(items)) if (i // chunk_size) % process_count == process_index]
    reused, reasons = store.reusable([ids[i] for i in own], [item_keys[i] for i in own], content_key,
                                     keys_only=True)
    done_ids = set(reused["item_id"])
    todo = [i for i in own if ids[i] not in done_ids]
    start = time.perf_counter()
    pending: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
    written = [0]

    def flush():
        rows_idx = np.concatenate([r for r, _ in pending])
        ordered = {n: np.concatenate([o[n] for _, o in pending]) for n in pending[0][1]}
        rows = rows_fn(items.iloc[rows_idx], ordered)
        rows[CONTENT_KEY] = content_key
        rows[ITEM_KEY] = [item_keys[i] for i in rows_idx]
        store.write_chunk(rows)
        pending.clear()
        written[0] += 1
        if written[0] == KILL_AFTER_CHUNKS:  # fault injection for the resume tests: die as a kill would
            os.kill(os.getpid(), signal.SIGKILL)

    with tqdm(total=len(own), initial=len(own) - len(todo), desc=desc, unit="items",
              bar_format=BAR_FORMAT, dynamic_ncols=True) as bar:
        for scored, outputs in (batches(todo) if todo else ()):
            pending.append((np.asarray(scored), outputs))
            bar.update(len(scored))
            if sum(len(r) for r, _ in pending) >= chunk_size:
                flush()
        if pending:
            flush()
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
        count = len(store.reusable(item_ids, item_keys, content_key, keys_only=True)[0])
        if count == len(item_ids):
            return
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > timeout:
            raise TimeoutError(
                f"{store.partial_dir}: {len(item_ids) - count} items still missing after {timeout:.0f} s "
                f"without progress; another process may have died. Run again to resume.")
        time.sleep(poll)
