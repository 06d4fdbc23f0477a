"""Stored results are reused only when everything that determines them is unchanged (issue: results
never silently stale, runs never silently overwritten).

Every scenario runs the real main job (`pipeline.run`) on a tiny random Llama checkpoint saved with
transformers and a real byte-level BPE tokenizer; a changed input must give exactly the table a
fresh run on that input gives.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file, save_file

from jaxunc.configs import load_config_file
from jaxunc.engine.store import SettingsConflict
from jaxunc.pipeline import run
from tiny_checkpoints import bpe_tokenizer, save_family_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TABLE = "items/{}__Llama-3.2-1B-Instruct.parquet"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_family_checkpoint("llama3", path, bpe_tokenizer())
    return path


def make_config(checkpoint: Path, out: Path, **fields):
    config = load_config_file(ROOT / "configs" / "llama3.py", "1b-ins")
    config.model.checkpoint, config.model.cache_dir = str(checkpoint), str(out.parent / "cache")
    config.output_dir, config.analysis.run = str(out), False
    config.data.limit = 6
    config.engine.update(batch_size=2, chunk_size=2, max_new_tokens=4)
    for key, value in fields.items():
        group, name = key.split("__") if "__" in key else (None, key)
        (config[group] if group else config)[name] = value
    return config


def table(out: Path, dataset: str = "coane") -> pd.DataFrame:
    return pd.read_parquet(out / TABLE.format(dataset))


def write_items(path: Path, items: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


ITEMS = [{"question": f"Which is item {i}?", "options": ["alpha", "beta", "gamma"], "correct": "B",
          "human_shares": [0.2, 0.5, 0.3]} for i in range(5)]


def test_another_file_with_the_same_stem_is_refused(tmp_path, checkpoint):
    first = write_items(tmp_path / "a" / "good.jsonl", ITEMS)
    second = write_items(tmp_path / "b" / "good.jsonl", [{**i, "options": ["v", "w", "x", "y", "z"],
                                                         "human_shares": [1, 1, 1, 1, 1]} for i in ITEMS])
    out = tmp_path / "out"
    run(make_config(checkpoint, out, data__datasets=str(first)))
    before = (out / TABLE.format("good")).read_bytes()
    with pytest.raises(SettingsConflict, match=r"data.datasets: '.*/a/good.jsonl' -> '.*/b/good.jsonl'"):
        run(make_config(checkpoint, out, data__datasets=str(second)))
    assert (out / TABLE.format("good")).read_bytes() == before  # nothing destroyed on the way


def test_an_edited_file_recomputes_exactly_the_changed_items(tmp_path, checkpoint):
    path = write_items(tmp_path / "data" / "items.jsonl", ITEMS)
    out = tmp_path / "out"
    run(make_config(checkpoint, out, data__datasets=str(path)))
    edited = [dict(i) for i in ITEMS]
    edited[1]["question"] = "Which is the edited item?"
    edited[3]["options"] = ["alpha", "beta", "delta", "epsilon"]
    edited[3]["human_shares"] = [0.1, 0.2, 0.3, 0.4]
    edited[4]["human_shares"] = [0.6, 0.2, 0.2]
    write_items(path, edited)
    record = run(make_config(checkpoint, out, data__datasets=str(path)))
    stats = record["datasets"]["items"]["mcqa"]
    assert stats["n_computed"] == 3 and stats["n_reused"] == 2
    assert stats["computed_because"] == {"item or its prompt changed": 3}
    fresh = tmp_path / "fresh"
    run(make_config(checkpoint, fresh, data__datasets=str(path)))
    pd.testing.assert_frame_equal(table(out, "items"), table(fresh, "items"))


def test_new_weights_at_the_same_path_recompute_everything(tmp_path, checkpoint):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(checkpoint, ckpt)
    out = tmp_path / "out"
    run(make_config(checkpoint=ckpt, out=out))
    old = table(out)
    weights = load_file(ckpt / "model.safetensors")
    rng = np.random.default_rng(1)
    save_file({k: (v + 0.5 * rng.standard_normal(v.shape)).astype(v.dtype) for k, v in weights.items()},
              ckpt / "model.safetensors", metadata={"format": "pt"})
    record = run(make_config(checkpoint=ckpt, out=out))
    stats = record["datasets"]["coane"]["mcqa"]
    assert stats["n_computed"] == 6 and stats["computed_because"] == {"model, tokenizer or jaxunc code changed": 6}
    assert not np.allclose(table(out)["mc_choice-ent"], old["mc_choice-ent"])
    fresh = tmp_path / "fresh"
    run(make_config(checkpoint=ckpt, out=fresh))
    pd.testing.assert_frame_equal(table(out), table(fresh))


def test_a_changed_setting_is_refused_and_nothing_is_destroyed(tmp_path, checkpoint):
    out = tmp_path / "out"
    run(make_config(checkpoint, out, analysis__run=True, analysis__bootstrap=10))
    written = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".jaxunc.lock"}
    with pytest.raises(SettingsConflict) as err:
        run(make_config(checkpoint, out, model__prompt_format="icl2"))
    message = str(err.value)
    assert "model.prompt_format: 'chat' -> 'icl2'" in message and "\n" not in message
    assert "--config.output_dir" in message and "--config.recompute=True" in message
    assert {p: p.read_bytes() for p in written} == written
    record = run(make_config(checkpoint, out, model__prompt_format="icl2", recompute=True))
    assert record["datasets"]["coane"]["mcqa"]["n_computed"] == 6


def test_fewer_tasks_or_fewer_items_are_refused_more_are_added(tmp_path, checkpoint):
    out = tmp_path / "out"
    run(make_config(checkpoint, out, tasks="mcqa,fr"))
    with pytest.raises(SettingsConflict, match=r"tasks: 'mcqa,fr' -> 'mcqa'.*add fr to --config.tasks"):
        run(make_config(checkpoint, out, tasks="mcqa"))
    with pytest.raises(SettingsConflict, match=r"items: 6 -> 4"):
        run(make_config(checkpoint, out, tasks="mcqa,fr", data__limit=4))
    record = run(make_config(checkpoint, out, tasks="mcqa,fr", data__limit=8))
    assert record["datasets"]["coane"]["mcqa"]["n_reused"] == 6
    assert record["datasets"]["coane"]["fr"]["n_computed"] == 2
    assert len(table(out)) == 8 and table(out)["fr_model_answer"].notna().all()


def test_prompts_longer_than_the_context_are_refused_or_skipped(tmp_path, checkpoint):
    ckpt = tmp_path / "short-context"
    shutil.copytree(checkpoint, ckpt)
    config_json = json.loads((ckpt / "config.json").read_text())
    config_json["max_position_embeddings"] = 300  # the Coane chat prompts here have 270-313 tokens
    (ckpt / "config.json").write_text(json.dumps(config_json))
    with pytest.raises(ValueError, match=r"item coane-\d+: the mcqa prompt has \d+ tokens; the model takes at most 300"):
        run(make_config(ckpt, tmp_path / "raise"))
    record = run(make_config(ckpt, tmp_path / "skip", data__on_error="skip"))
    entry = record["datasets"]["coane"]
    skipped = [row for row, reason in entry["skipped"] if reason == "prompt longer than the model context"]
    assert skipped and entry["n_items"] == 6 - len(skipped)
    assert set(table(tmp_path / "skip")["item_id"]).isdisjoint(skipped)
