"""The main job end to end on the embedded SmolLM2-135M-Instruct GGUF.

- `python -m jaxunc.main` killed with SIGKILL after its first chunk, started again with the same
  config, ends with a table identical to an uninterrupted run;
- a finished run is not recomputed;
- batch size 1 in one large bucket and batch size 16 in the default buckets give identical measures.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jaxunc import columns
from jaxunc.configs import load_config_file
from jaxunc.pipeline import run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 8
# engine.batch_invariant (the default) scores each item with the same kernels whatever the batch:
# results must be bit-identical (measured: 0.0). The batched forward alone differs by up to 8e-5 in
# float32 logits between batch sizes (XLA picks matmul kernels by shape).
BATCH_ATOL = 0.0

def smollm2_config(out: Path, cache: Path, **engine):
    config = load_config_file(ROOT / "configs" / "smollm2.py")
    config.output_dir, config.model.cache_dir = str(out), str(cache)
    config.data.limit = LIMIT
    config.analysis.run = False
    config.engine.update({"batch_size": 2, "chunk_size": 2, **engine})
    return config


def table_of(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "items" / "coane__SmolLM2-135M-Instruct.parquet")


def cli_args(config) -> list[str]:
    return [sys.executable, "-m", "jaxunc.main", f"--config={ROOT / 'configs' / 'smollm2.py'}",
            f"--config.output_dir={config.output_dir}", f"--config.model.cache_dir={config.model.cache_dir}",
            f"--config.data.limit={LIMIT}", "--config.analysis.run=False",
            f"--config.engine.batch_size={config.engine.batch_size}",
            f"--config.engine.chunk_size={config.engine.chunk_size}"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, cache):
    config = smollm2_config(tmp_path_factory.mktemp("uninterrupted"), cache)
    record = run(config)
    return config, record


def test_sigkill_then_restart_gives_identical_table(tmp_path, cache, uninterrupted):
    config = smollm2_config(tmp_path / "killed", cache)
    parts = tmp_path / "killed" / "items" / "parts"
    proc = subprocess.Popen(cli_args(config), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not list(parts.glob("*.partial/chunk-*.parquet")):
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.time() < deadline, "no chunk written within 300 s"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_chunks = len(list(parts.glob("*.partial/chunk-*.parquet")))
    assert 1 <= n_chunks < LIMIT // 2, "the kill should land mid-run"

    record = run(config)
    stats = record["datasets"]["coane"]["mcqa"]
    assert stats["n_reused"] == 2 * n_chunks and stats["n_computed"] == LIMIT - 2 * n_chunks
    pd.testing.assert_frame_equal(table_of(tmp_path / "killed"), table_of(Path(uninterrupted[0].output_dir)))


def test_finished_run_is_not_recomputed(uninterrupted):
    config, _ = uninterrupted
    before = table_of(Path(config.output_dir))
    record = run(config)
    assert record["datasets"]["coane"]["mcqa"]["n_computed"] == 0
    pd.testing.assert_frame_equal(table_of(Path(config.output_dir)), before)


def test_batch_size_and_bucket_do_not_change_results(tmp_path, cache):
    record = run(smollm2_config(tmp_path / "batch1", cache, batch_size=1, buckets="512"))
    assert record["datasets"]["coane"]["compilations"]["mcqa"] == 1  # one (batch, bucket) shape
    run(smollm2_config(tmp_path / "batch16", cache, batch_size=16, chunk_size=16))
    one, sixteen = table_of(tmp_path / "batch1"), table_of(tmp_path / "batch16")
    for col in columns.mc_columns():
        np.testing.assert_allclose(one[col], sixteen[col], rtol=0, atol=BATCH_ATOL, err_msg=col)
    np.testing.assert_allclose(np.stack(one["mc_choice-pdf"]), np.stack(sixteen["mc_choice-pdf"]), atol=BATCH_ATOL)
    assert list(one["cloze_pred"]) == list(sixteen["cloze_pred"])
