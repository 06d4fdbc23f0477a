"""Resumable chunk storage (engine.store): atomic chunks, settings refused not mixed, rows reused only
when their content key and item key are current, nothing lost."""

import pandas as pd
import pytest

from jaxunc.engine.store import CONTENT_KEY, ITEM_KEY, ChunkStore, SettingsConflict, read_manifest

SETTINGS = {"task": "mcqa", "model.prompt_format": "chat"}


def _rows(ids, content="c1", keys=None):
    keys = keys or {}
    return pd.DataFrame({"item_id": ids, "value": [float(len(i)) for i in ids],
                         CONTENT_KEY: content, ITEM_KEY: [keys.get(i, f"k-{i}") for i in ids]})


def _keys(ids):
    return [f"k-{i}" for i in ids]


def test_chunks_are_read_back_and_finalized_in_item_order(tmp_path):
    store = ChunkStore(tmp_path / "items" / "d__m.parquet", SETTINGS)
    store.write_chunk(_rows(["c", "a"]))
    store.write_chunk(_rows(["b"]))
    again = ChunkStore(store.final_path, SETTINGS)
    assert set(again.reusable(["a", "b", "c"], _keys("abc"), "c1")[0]["item_id"]) == {"a", "b", "c"}
    table = store.finalize(["a", "b", "c"], _keys("abc"), "c1", {"content": {"checkpoint": "x"}})
    assert list(table["item_id"]) == ["a", "b", "c"]
    assert not store.partial_dir.exists()
    assert read_manifest(store.final_path) == {"settings": SETTINGS, "content": {"checkpoint": "x"}}


def test_finalizing_a_subset_keeps_the_other_rows_for_later(tmp_path):
    store = ChunkStore(tmp_path / "t.parquet", SETTINGS)
    store.write_chunk(_rows(["a", "b", "c"]))
    assert list(store.finalize(["b"], _keys("b"), "c1")["item_id"]) == ["b"]
    assert set(store.reusable(["a", "b", "c"], _keys("abc"), "c1")[0]["item_id"]) == {"a", "b", "c"}


@pytest.mark.parametrize("stored_in", ["chunks", "finished table"])
def test_other_settings_are_refused_not_mixed(tmp_path, stored_in):
    store = ChunkStore(tmp_path / "t.parquet", SETTINGS)
    store.write_chunk(_rows(["a"]))
    if stored_in == "finished table":
        store.finalize(["a"], _keys("a"), "c1")
    other = ChunkStore(tmp_path / "t.parquet", {**SETTINGS, "model.prompt_format": "icl2"})
    with pytest.raises(SettingsConflict, match=r"model.prompt_format: 'chat' -> 'icl2'.*recompute=True"):
        other.check()
    with pytest.raises(SettingsConflict):
        other.reusable(["a"], _keys("a"), "c1")


def test_rows_of_other_content_or_changed_items_are_recomputed_with_reasons(tmp_path):
    store = ChunkStore(tmp_path / "t.parquet", SETTINGS)
    store.write_chunk(_rows(["a", "b"]))
    store.write_chunk(_rows(["c"], content="c0"))  # computed with an older model / code
    keys = ["k-a", "changed", "k-c", "k-d"]
    reused, reasons = store.reusable(["a", "b", "c", "d"], keys, "c1")
    assert list(reused["item_id"]) == ["a"]
    assert reasons == {"item or its prompt changed": 1, "model, tokenizer or jaxunc code changed": 1,
                       "not computed before": 1}
    with pytest.raises(RuntimeError, match="3 items have no valid result"):
        store.finalize(["a", "b", "c", "d"], keys, "c1")
    # what the resume and wait loops read: the same decision from the key columns alone, no values
    light, light_reasons = store.reusable(["a", "b", "c", "d"], keys, "c1", keys_only=True)
    assert list(light["item_id"]) == ["a"] and light_reasons == reasons
    assert "value" not in light.columns and "value" in reused.columns


def test_stale_rows_are_dropped_when_finalizing(tmp_path):
    store = ChunkStore(tmp_path / "t.parquet", SETTINGS)
    store.write_chunk(_rows(["a", "z"], content="c0"))
    store.write_chunk(_rows(["a"]))
    store.finalize(["a"], _keys("a"), "c1")
    assert not store.partial_dir.exists()  # z was computed with other content: not kept
    assert set(store.load_done()["item_id"]) == {"a"}


def test_chunk_without_keys_is_refused(tmp_path):
    with pytest.raises(ValueError, match="lack the columns"):
        ChunkStore(tmp_path / "t.parquet", SETTINGS).write_chunk(pd.DataFrame({"item_id": ["a"]}))
