"""Resumable chunk storage (engine.store): atomic chunks, fingerprints, nothing lost."""

import pandas as pd
import pytest

from jaxunc.engine.store import ChunkStore, fingerprint, read_fingerprint


def _rows(ids):
    return pd.DataFrame({"item_id": ids, "value": [float(len(i)) for i in ids]})


def test_chunks_are_read_back_and_finalized_in_item_order(tmp_path):
    store = ChunkStore(tmp_path / "items" / "d__m.parquet", fingerprint({"a": 1}))
    store.write_chunk(_rows(["c", "a"]))
    store.write_chunk(_rows(["b"]))
    assert set(ChunkStore(store.final_path, store.fingerprint).load_done()["item_id"]) == {"a", "b", "c"}
    table = store.finalize(["a", "b", "c"])
    assert list(table["item_id"]) == ["a", "b", "c"]
    assert not store.partial_dir.exists()
    assert read_fingerprint(store.final_path) == store.fingerprint


def test_finalizing_a_subset_keeps_the_other_rows_for_later(tmp_path):
    store = ChunkStore(tmp_path / "t.parquet", "f1")
    store.write_chunk(_rows(["a", "b", "c"]))
    assert list(store.finalize(["b"])["item_id"]) == ["b"]
    assert set(store.load_done()["item_id"]) == {"a", "b", "c"}


def test_other_settings_are_refused_not_mixed(tmp_path):
    ChunkStore(tmp_path / "t.parquet", "f1").write_chunk(_rows(["a"]))
    with pytest.raises(RuntimeError, match="other settings"):
        ChunkStore(tmp_path / "t.parquet", "f2").load_done()


def test_fingerprint_depends_on_settings():
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
