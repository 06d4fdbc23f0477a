"""The main job with --config.analysis.probes=True, end to end on a tiny random Llama checkpoint (real
byte-level BPE tokenizer, 12 Coane items):

- the scoring step's hidden states travel in the mcqa chunks (column `_hidden`), the merged item
  table does not carry them, hidden/coane__<model>.safetensors holds [items, layers + 1, hidden] in the
  table's row order, equal to CausalLM.hidden_states(final_norm=True) at each full prompt's last token;
- analysis/probes.csv, the probes figure and the report section are written;
- killed (SIGKILL after its first chunk) and started again: the same hidden file, byte for byte;
- rows stored without hidden states are refused for a probes run (never reused silently);
- probes_dtype=bfloat16 rewrites the file from the stored rows at half the size;
- bad input: probes with the free-response task only is a one-line usage error; a table with fewer
  items than folds and a constant target get messages while every other table is still written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

from jaxunc import prompts
from jaxunc.analyze import analyze_tables
from jaxunc.cli import UsageError
from jaxunc.configs import load_config_file
from jaxunc.engine.mcqa import HIDDEN_COLUMN
from jaxunc.engine.store import SettingsConflict
from jaxunc.hidden import from_bfloat16_bits, read_hidden, to_bfloat16_bits
from jaxunc.pipeline import run
from jaxunc.stats import probes as PR
from tiny_checkpoints import bpe_tokenizer, save_family_checkpoint

ROOT = Path(__file__).resolve().parents[1]
MODEL = "Llama-3.2-1B-Instruct"
LIMIT = 12


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_family_checkpoint("llama3", path, bpe_tokenizer())
    return path


def make_config(checkpoint: Path, out: Path, *, analysis: bool = False, **analysis_fields):
    config = load_config_file(ROOT / "configs" / "llama3.py", "1b-ins")
    config.model.checkpoint, config.model.cache_dir = str(checkpoint), str(out.parent / "cache")
    config.output_dir = str(out)
    config.data.limit = LIMIT
    config.engine.update(batch_size=2, chunk_size=4, batch_invariant=True)  # bit-identical across chunkings
    config.analysis.update(run=analysis, probes=True, bootstrap=20, probe_permutations=5, **analysis_fields)
    return config


def cli_args(config) -> list[str]:
    return [sys.executable, "-m", "jaxunc.main", f"--config={ROOT / 'configs' / 'llama3.py'}:1b-ins",
            f"--config.model.checkpoint={config.model.checkpoint}", f"--config.model.cache_dir={config.model.cache_dir}",
            f"--config.output_dir={config.output_dir}", f"--config.data.limit={LIMIT}",
            "--config.analysis.run=False", "--config.analysis.probes=True", "--config.engine.batch_size=2",
            "--config.engine.chunk_size=4", "--config.engine.batch_invariant=True"]


def hidden_file(out: Path) -> Path:
    return out / "hidden" / f"coane__{MODEL}.safetensors"


@pytest.fixture(scope="module")
def finished(tmp_path_factory, checkpoint):
    out = tmp_path_factory.mktemp("run") / "out"
    config = make_config(checkpoint, out, analysis=True)
    record = run(config)
    return config, out, record


def test_hidden_file_holds_the_last_token_states_in_table_order(finished, checkpoint):
    config, out, record = finished
    table = pd.read_parquet(out / "items" / f"coane__{MODEL}.parquet")
    assert HIDDEN_COLUMN not in table.columns
    parts = pd.read_parquet(out / "items" / "parts" / f"coane__{MODEL}.mcqa.parquet")
    assert HIDDEN_COLUMN in parts.columns  # the finished task table keeps them for reuse
    hs = read_hidden(hidden_file(out))
    from jaxunc.checkpoints import load_model
    loaded = load_model(checkpoint, cache_dir=Path(config.model.cache_dir))
    layers, width = loaded.config.num_layers + 1, loaded.config.hidden_size
    assert hs.dtype == "float32" and hs.data.shape == (LIMIT, layers, width)
    assert hs.item_ids == list(table["item_id"])
    entry = record["datasets"]["coane"]["hidden"]
    assert entry["bytes"] == hidden_file(out).stat().st_size == LIMIT * layers * width * 4 + (
        hidden_file(out).stat().st_size - LIMIT * layers * width * 4)
    tokens = prompts.tokenize_prompts(loaded.tokenizer, list(table["formatted_question_mcqa"]))
    width_t = max(map(len, tokens))
    ids = np.zeros((LIMIT, width_t), np.int32)
    mask = np.zeros_like(ids)
    for i, t in enumerate(tokens):
        ids[i, width_t - len(t):], mask[i, width_t - len(t):] = t, 1
    want = np.asarray(jax.jit(lambda m, i, k: m.hidden_states(i, k, final_norm=True))(loaded.model, ids, mask))
    want = want[:, :, -1].transpose(1, 0, 2)
    got = np.stack([hs.layer(l) for l in range(layers)], axis=1)
    assert np.abs(got - want).max() <= 1e-5  # the same prompts, packed after the cached prefix vs full


def test_probes_csv_figure_and_report(finished):
    _, out, _ = finished
    probes = pd.read_csv(out / "analysis" / "probes.csv")
    assert list(probes.columns[:10]) == ["dataset", "model", "layer", "target", "n", "r_oof", "rho_oof", "r2_oof",
                                         "perm_r95", "best"]
    assert {"human-ent", "correct"} <= set(probes["target"])
    n_layers = read_hidden(hidden_file(out)).n_layers
    ent = probes[(probes["target"] == "human-ent") & (probes["kind"] == "layer")]
    assert sorted(ent["layer"]) == list(range(n_layers)) and ent["r_oof"].notna().all()
    assert (probes["kind"] == "nested_best").sum() == probes["target"].nunique() - probes["r_oof"].isna().groupby(
        probes["target"]).all().sum()
    assert (out / "figures" / f"probes_coane_{MODEL}.png").exists()
    assert "## Activation probes" in (out / "report.md").read_text()
    for name in ("alignment", "calibration", "preference"):
        assert (out / "analysis" / f"{name}.csv").exists()


def test_killed_then_restarted_gives_the_same_hidden_file(tmp_path, checkpoint, finished):
    config = make_config(checkpoint, tmp_path / "killed")
    config.model.cache_dir = finished[0].model.cache_dir
    proc = subprocess.run(cli_args(config), cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "JAXUNC_TEST_KILL_AFTER_CHUNKS": "1"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert not hidden_file(tmp_path / "killed").exists()
    chunks = list((tmp_path / "killed" / "items" / "parts").glob("*.partial/chunk-*.parquet"))
    assert len(chunks) == 1 and HIDDEN_COLUMN in pd.read_parquet(chunks[0]).columns
    record = run(config)
    stats = record["datasets"]["coane"]["mcqa"]
    assert stats["n_reused"] == 4 and stats["n_computed"] == LIMIT - 4
    assert hidden_file(tmp_path / "killed").read_bytes() == hidden_file(finished[1]).read_bytes()


def test_rows_without_hidden_states_are_not_reused_and_bfloat16_rewrites_the_file(tmp_path, checkpoint, finished):
    plain = make_config(checkpoint, tmp_path / "out")
    plain.analysis.probes = False
    run(plain)
    assert not hidden_file(tmp_path / "out").exists()
    with pytest.raises(SettingsConflict, match=r"analysis.probes: None -> True"):
        run(make_config(checkpoint, tmp_path / "out"))
    out = finished[1]
    before = read_hidden(hidden_file(out))
    f32 = np.stack([before.layer(l) for l in range(before.n_layers)], axis=1)
    record = run(make_config(checkpoint, out, probes_dtype="bfloat16"))
    assert record["datasets"]["coane"]["mcqa"]["n_computed"] == 0  # the dtype is of the file, not the rows
    after = read_hidden(hidden_file(out))
    assert after.dtype == "bfloat16"
    assert hidden_file(out).stat().st_size < 0.51 * before.data.nbytes + 4096
    np.testing.assert_array_equal(np.stack([after.layer(l) for l in range(after.n_layers)], axis=1),
                                  from_bfloat16_bits(to_bfloat16_bits(f32)))
    run(make_config(checkpoint, out))  # back to float32 for the other tests of this module
    assert read_hidden(hidden_file(out)).dtype == "float32"


def test_probes_with_free_response_only_is_a_usage_error(tmp_path, checkpoint):
    config = make_config(checkpoint, tmp_path / "fr")
    config.tasks = "fr"
    with pytest.raises(UsageError, match=r"^config.analysis.probes=True needs the mcqa task .* config.tasks='fr'"):
        run(config)
    assert not (tmp_path / "fr").exists()


def test_too_few_items_and_a_constant_target_are_reported_and_other_tables_written(tmp_path, finished):
    """A table of 6 items (fewer than 2 x 5 folds) and one whose human-ent is constant, each with its
    hidden file: messages naming the table and target; alignment, calibration etc. still written."""
    _, out, _ = finished
    table = pd.read_parquet(out / "items" / f"coane__{MODEL}.parquet")
    root = tmp_path / "analysis_in"
    (root / "items").mkdir(parents=True)
    (root / "hidden").mkdir()
    small = table.head(6)
    small.to_parquet(root / "items" / "coane__small.parquet")
    flat = table.assign(model="flat", **{"human-ent": 1.0})
    flat.to_parquet(root / "items" / "coane__flat.parquet")
    for stem in ("small", "flat"):
        (root / "hidden" / f"coane__{stem}.safetensors").write_bytes(hidden_file(out).read_bytes())
    res = analyze_tables(root, tmp_path / "res", bootstrap=10, probe_permutations=3)
    problems = list(res["problems"]["problem"])
    assert any("fewer than 2 x cv_folds = 10" in p and "human-ent" in p for p in problems), problems
    assert any("coane/flat" in p and "human-ent is constant" in p for p in problems), problems
    probes = pd.read_csv(tmp_path / "res" / "analysis" / "probes.csv")
    flat_rows = probes[(probes["model"] == "flat") & (probes["target"] == "human-ent")]
    assert len(flat_rows) == 1 and flat_rows["r_oof"].isna().all()
    assert probes[(probes["model"] == "flat") & (probes["target"] != "human-ent")]["r_oof"].notna().any()
    for name in ("alignment", "calibration", "preference", "distribution", "combination"):
        assert (tmp_path / "res" / "analysis" / f"{name}.csv").exists()


def test_a_table_without_hidden_file_is_skipped_with_a_note(tmp_path, finished):
    _, out, _ = finished
    (tmp_path / "items").mkdir()
    (tmp_path / "items" / f"coane__{MODEL}.parquet").write_bytes((out / "items" / f"coane__{MODEL}.parquet").read_bytes())
    res = analyze_tables(tmp_path, tmp_path / "res", bootstrap=10)
    assert res["probes"].empty and list(res["probes"].columns) == PR.COLUMNS
    assert "Activation probes: skipped" in (tmp_path / "res" / "report.md").read_text()
