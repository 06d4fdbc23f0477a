"""Resumable per-item results: chunks written atomically, merged into one parquet table at the end.

Layout for one task's table `items/parts/<dataset>__<model>.<task>.parquet`:
  ....partial/manifest.json                  the settings the chunks were computed with
  ....partial/chunk-p<process>-00000.parquet  rows, each with `_content_key` and `_item_key`
A run killed at any point loses at most the chunk in flight. A row is reused only when its
`_content_key` (model, tokenizer, code) and `_item_key` (the item and its prompt) equal the current
ones (`jaxunc.engine.provenance`); a store holding rows computed with other *settings* refuses to be
used (SettingsConflict) instead of mixing or overwriting them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from jaxunc.engine.provenance import settings_conflicts

MANIFEST_KEY = b"jaxunc.manifest"
CONTENT_KEY, ITEM_KEY = "_content_key", "_item_key"
KEY_COLUMNS = (CONTENT_KEY, ITEM_KEY)


class SettingsConflict(RuntimeError):
    """Stored results were computed with other settings (the message lists them and the ways out)."""


def write_parquet_atomic(df: pd.DataFrame, path: Path, manifest: dict[str, Any] | None = None) -> None:
    """Write to a temporary file in the same folder, fsync, then os.replace onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    if manifest is not None:
        meta = dict(table.schema.metadata or {})
        meta[MANIFEST_KEY] = json.dumps(manifest, sort_keys=True, default=str).encode()
        table = table.replace_schema_metadata(meta)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        pq.write_table(table, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest a table was written with, or None (no file, or a table jaxunc did not write)."""
    if not Path(path).exists():
        return None
    value = (pq.read_schema(path).metadata or {}).get(MANIFEST_KEY)
    return json.loads(value) if value else None


def conflict_message(where: Path, differences: list[str], extra_way: str = "") -> str:
    """One line: what differs from the stored results and the ways out."""
    ways = f"{extra_way}, " if extra_way else ""
    return (f"{where} holds results computed with other settings ({'; '.join(differences)}); "
            f"{ways}use another --config.output_dir, or --config.recompute=True to discard them")


class ChunkStore:
    """Chunks of finished rows for one (dataset, model, task) table, keyed by `item_id`."""

    def __init__(self, final_path: Path, settings: dict[str, Any], writer: int = 0):
        self.final_path = Path(final_path)
        self.partial_dir = self.final_path.with_suffix(".partial")
        self.settings = dict(settings)
        self.writer = writer  # process index: hosts sharing one output folder never collide

    @property
    def _stamp(self) -> Path:
        return self.partial_dir / "manifest.json"

    def stored_settings(self) -> dict[str, Any] | None:
        """Settings of the chunks in flight, else of the finished table; None when there is neither."""
        if self._stamp.exists():
            return json.loads(self._stamp.read_text())["settings"]
        manifest = read_manifest(self.final_path)
        return manifest.get("settings") if manifest else None

    def check(self) -> None:
        """Raise SettingsConflict when stored rows were computed with other settings."""
        stored = self.stored_settings()
        if stored is not None and stored != self.settings:
            raise SettingsConflict(conflict_message(self.final_path, settings_conflicts(stored, self.settings)))

    def load_done(self, keys_only: bool = False) -> pd.DataFrame:
        """Every stored row (the finished table's and every chunk's), checked for settings first;
        keys_only: only item_id and the key columns are read (no measures, no hidden states)."""
        self.check()
        paths = [self.final_path] if self.final_path.exists() else []
        if self.partial_dir.exists():
            paths += sorted(self.partial_dir.glob("chunk-*.parquet"))
        wanted = ["item_id", *KEY_COLUMNS]
        # rows of an older jaxunc (without the key columns) are not reusable
        paths = [p for p in paths if set(wanted) <= set(pq.read_schema(p).names)]
        frames = [pd.read_parquet(p, columns=wanted if keys_only else None) for p in paths]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=wanted)

    def reusable(self, item_ids: list[str], item_keys: list[str], content_key: str,
                 keys_only: bool = False) -> tuple[pd.DataFrame, Counter]:
        """(stored rows that are still valid for these items, Counter of why the others are not);
        keys_only: the rows hold only item_id and the key columns (cheap: what is done, not the values)."""
        return _valid_rows(self.load_done(keys_only), item_ids, item_keys, content_key)

    def discard(self) -> None:
        shutil.rmtree(self.partial_dir, ignore_errors=True)
        self.final_path.unlink(missing_ok=True)

    def write_chunk(self, rows: pd.DataFrame) -> Path:
        missing = [c for c in ("item_id", *KEY_COLUMNS) if c not in rows]
        if missing:
            raise ValueError(f"chunk rows lack the columns {missing}")
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        if not self._stamp.exists():
            tmp = self._stamp.with_name(f".manifest.json.tmp-{os.getpid()}")
            tmp.write_text(json.dumps({"settings": self.settings}, sort_keys=True, default=str))
            os.replace(tmp, self._stamp)
        self.check()
        index = len(list(self.partial_dir.glob(f"chunk-p{self.writer}-*.parquet")))
        path = self.partial_dir / f"chunk-p{self.writer}-{index:05d}.parquet"
        while path.exists():
            index += 1
            path = self.partial_dir / f"chunk-p{self.writer}-{index:05d}.parquet"
        write_parquet_atomic(rows, path)
        return path

    def finalize(self, item_ids: list[str], item_keys: list[str], content_key: str,
                 manifest: dict[str, Any] | None = None) -> pd.DataFrame:
        """Merge the valid rows into the finished table, ordered as `item_ids`; drop the chunks.

        Rows of other items computed with the same content (a larger earlier run) are kept for a
        later run; rows computed with other content are stale and dropped.
        """
        done = self.load_done()  # read once: the table's rows and the rows kept for later both come from it
        rows, reasons = _valid_rows(done, item_ids, item_keys, content_key)
        if reasons:
            raise RuntimeError(f"{self.final_path}: {sum(reasons.values())} items have no valid result yet "
                               f"({dict(reasons)})")
        table = rows.set_index("item_id", drop=False).loc[item_ids].reset_index(drop=True)
        extra = done[(done[CONTENT_KEY] == content_key) & ~done["item_id"].isin(item_ids)]
        extra = extra.drop_duplicates("item_id", keep="last").reset_index(drop=True)
        write_parquet_atomic(table, self.final_path, {**(manifest or {}), "settings": self.settings})
        old_chunks = sorted(self.partial_dir.glob("chunk-*.parquet"))
        if len(extra):
            self.write_chunk(extra)
        for chunk in old_chunks:  # safe at any point: the finished table already holds their valid rows
            chunk.unlink()
        if not len(extra):
            shutil.rmtree(self.partial_dir, ignore_errors=True)
        return table


def _valid_rows(done: pd.DataFrame, item_ids: list[str], item_keys: list[str],
                content_key: str) -> tuple[pd.DataFrame, Counter]:
    """ChunkStore.reusable on already-read rows `done`."""
    valid = done[done[CONTENT_KEY] == content_key]
    wanted = pd.DataFrame({"item_id": item_ids, ITEM_KEY: item_keys})
    reused = valid.merge(wanted, on=["item_id", ITEM_KEY]).drop_duplicates("item_id", keep="last")
    reasons: Counter = Counter()
    known, current = set(done["item_id"]), set(valid["item_id"])
    for item_id in set(item_ids) - set(reused["item_id"]):
        if item_id not in known:
            reasons["not computed before"] += 1
        elif item_id not in current:
            reasons["model, tokenizer or jaxunc code changed"] += 1
        else:
            reasons["item or its prompt changed"] += 1
    return reused.reset_index(drop=True), reasons
