"""Resumable per-item results: chunks written atomically, merged into one parquet table at the end.

Layout for a final table `items/<dataset>__<model>.parquet`:
  items/<dataset>__<model>.partial/fingerprint.txt   the settings the chunks were computed with
  items/<dataset>__<model>.partial/chunk-p<process>-00000.parquet ...
A run killed at any point loses at most the chunk in flight; a restart with the same settings reads
the chunks back and computes only the missing items. The fingerprint leaves out `data.limit`, so a
short run's rows are reused by the full run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

FINGERPRINT_KEY = b"jaxunc.fingerprint"


def fingerprint(settings: dict) -> str:
    """sha256 of the canonical JSON of the settings that determine every per-item value."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_parquet_atomic(df: pd.DataFrame, path: Path, fingerprint_value: str | None = None) -> None:
    """Write to a temporary file in the same folder, fsync, then os.replace onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    if fingerprint_value is not None:
        meta = dict(table.schema.metadata or {})
        meta[FINGERPRINT_KEY] = fingerprint_value.encode()
        table = table.replace_schema_metadata(meta)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        pq.write_table(table, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_fingerprint(path: Path) -> str | None:
    meta = pq.read_schema(path).metadata or {}
    value = meta.get(FINGERPRINT_KEY)
    return value.decode() if value else None


class ChunkStore:
    """Chunks of finished rows for one (dataset, model) table, keyed by `item_id`."""

    def __init__(self, final_path: Path, fingerprint_value: str, writer: int = 0):
        self.final_path = Path(final_path)
        self.partial_dir = self.final_path.with_suffix(".partial")
        self.fingerprint = fingerprint_value
        self.writer = writer  # process index: hosts sharing one output folder never collide

    def _check_partial(self) -> None:
        stamp = self.partial_dir / "fingerprint.txt"
        if stamp.exists() and stamp.read_text().strip() != self.fingerprint:
            raise RuntimeError(
                f"{self.partial_dir} holds chunks computed with other settings (fingerprint "
                f"{stamp.read_text().strip()}, now {self.fingerprint}). Use another output_dir, or "
                f"set --config.recompute=True to discard them."
            )

    def load_done(self) -> pd.DataFrame:
        """Rows already computed with these settings: the final table's and every chunk's."""
        frames = []
        if self.final_path.exists() and read_fingerprint(self.final_path) == self.fingerprint:
            frames.append(pd.read_parquet(self.final_path))
        if self.partial_dir.exists():
            self._check_partial()
            for chunk in sorted(self.partial_dir.glob("chunk-*.parquet")):
                frames.append(pd.read_parquet(chunk))
        if not frames:
            return pd.DataFrame()
        done = pd.concat(frames, ignore_index=True)
        return done.drop_duplicates("item_id", keep="last").reset_index(drop=True)

    def discard(self) -> None:
        shutil.rmtree(self.partial_dir, ignore_errors=True)
        self.final_path.unlink(missing_ok=True)

    def write_chunk(self, rows: pd.DataFrame) -> Path:
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        stamp = self.partial_dir / "fingerprint.txt"
        if not stamp.exists():
            stamp.write_text(self.fingerprint + "\n")
        self._check_partial()
        index = len(list(self.partial_dir.glob(f"chunk-p{self.writer}-*.parquet")))
        path = self.partial_dir / f"chunk-p{self.writer}-{index:05d}.parquet"
        while path.exists():
            index += 1
            path = self.partial_dir / f"chunk-p{self.writer}-{index:05d}.parquet"
        write_parquet_atomic(rows, path)
        return path

    def finalize(self, item_ids: list[str]) -> pd.DataFrame:
        """Merge everything done into the final table, ordered as `item_ids`; drop the chunks."""
        done = self.load_done().set_index("item_id", drop=False)
        missing = [i for i in item_ids if i not in done.index]
        if missing:
            raise RuntimeError(f"{len(missing)} items have no result yet (first: {missing[:3]})")
        table = done.loc[item_ids].reset_index(drop=True)
        extra = done[~done.index.isin(item_ids)].reset_index(drop=True)
        write_parquet_atomic(table, self.final_path, self.fingerprint)
        old_chunks = sorted(self.partial_dir.glob("chunk-*.parquet"))
        if len(extra):  # rows of a larger earlier run stay for the next run, never dropped
            self.write_chunk(extra)
        for chunk in old_chunks:  # safe at any point: load_done drops duplicate item ids
            chunk.unlink()
        if not len(extra):
            shutil.rmtree(self.partial_dir, ignore_errors=True)
        return table
