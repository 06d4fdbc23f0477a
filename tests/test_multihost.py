"""Two processes sharing one output folder split the items by chunk; process 0 writes the table,
which equals a single-process run's (engine.process_index / process_count)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tiny_checkpoints import bpe_tokenizer, save_family_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def main_args(ckpt: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "jaxunc.main", f"--config={ROOT / 'configs' / 'llama3.py'}:1b-ins",
            f"--config.model.checkpoint={ckpt}", f"--config.model.cache_dir={cache}",
            f"--config.output_dir={out}", "--config.data.limit=7", "--config.engine.batch_size=2",
            "--config.engine.chunk_size=2", "--config.analysis.run=False", *extra]


def test_two_processes_give_the_single_process_table(tmp_path):
    ckpt, cache = tmp_path / "ckpt", tmp_path / "cache"
    save_family_checkpoint("llama3", ckpt, bpe_tokenizer())
    single = subprocess.run(main_args(ckpt, tmp_path / "single", cache), cwd=ROOT, capture_output=True, text=True)
    assert single.returncode == 0, single.stderr[-3000:]

    procs = [subprocess.Popen(main_args(ckpt, tmp_path / "multi", cache, f"--config.engine.process_index={i}",
                                        "--config.engine.process_count=2"),
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in (1, 0)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]

    name = "items/coane__Llama-3.2-1B-Instruct.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "multi" / name),
                                  pd.read_parquet(tmp_path / "single" / name))
    record = json.loads((tmp_path / "multi" / "run.json").read_text())
    assert record["hosts"] == {"index": 0, "count": 2}
    assert record["datasets"]["coane"]["mcqa"]["n_computed"] == 4  # chunks 0 and 2: items 0, 1, 4, 5
    assert not list((tmp_path / "multi").rglob("chunk-*.parquet"))  # process 0 merged and removed them


def test_local_launcher_joins_processes_with_jax_distributed(tmp_path):
    """launch/local.py: 2 processes, 2 simulated CPU devices each, joined by jax.distributed on
    127.0.0.1; each scores its chunks on its own devices (data:2), process 0 writes the table, which
    equals the single-process one."""
    ckpt, cache = tmp_path / "ckpt", tmp_path / "cache"
    save_family_checkpoint("llama3", ckpt, bpe_tokenizer())
    single = subprocess.run(main_args(ckpt, tmp_path / "single", cache), cwd=ROOT, capture_output=True, text=True)
    assert single.returncode == 0, single.stderr[-3000:]
    flags = main_args(ckpt, tmp_path / "multi", cache)[3:]  # the main job's flags, after `python -m jaxunc.main`
    proc = subprocess.run([sys.executable, str(ROOT / "launch" / "local.py"), "--num_processes=2",
                           "--devices_per_process=2", "--", *flags], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("--config.engine.coordinator_address=127.0.0.1:") == 2
    name = "items/coane__Llama-3.2-1B-Instruct.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "multi" / name),
                                  pd.read_parquet(tmp_path / "single" / name))
    record = json.loads((tmp_path / "multi" / "run.json").read_text())
    assert record["hosts"] == {"index": 0, "count": 2} and record["mesh"] == {"data": 2, "model": 1}
