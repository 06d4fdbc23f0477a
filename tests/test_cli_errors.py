"""Every entry point reports bad input as one line naming the file/row/field and what was expected,
with exit status 2 for usage errors and 1 for data/model errors; JAXUNC_DEBUG=1 keeps the traceback.

Real files throughout: config files, a tiny transformers checkpoint (whole and truncated), data
files with bad bytes, empty and all-invalid files, parquet tables and a garbage one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_checkpoints import bpe_tokenizer, save_family_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SMOLLM2 = f"--config={ROOT / 'configs' / 'smollm2.py'}"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Checkpoints and data files shared by the cases, by name."""
    root = tmp_path_factory.mktemp("inputs")
    good = root / "ckpt"
    save_family_checkpoint("llama3", good, bpe_tokenizer())
    truncated = root / "truncated"
    shutil.copytree(good, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    (root / "bad_bytes.jsonl").write_bytes(
        b'{"question": "Q one?", "options": ["a", "b"]}\n'
        b'{"question": "Q \xff\xfe two?", "options": ["a", "b"]}\n'
        b'{"question": "Q three?", "options": ["a", "b"]}\n')
    (root / "empty.csv").write_text("")
    (root / "all_bad.csv").write_text('question,options\n"Q one?","[""only one""]"\n,"[""a"", ""b""]"\n')
    (root / "tables").mkdir()
    (root / "tables" / "garbage.parquet").write_bytes(b"not a parquet file at all")
    (root / "empty_dir").mkdir()
    (root / "table.csv").write_text("a,b\n1,2\n")
    return root


def jaxunc(*args: str, module: str = "jaxunc.main", env: dict | None = None, timeout: int = 300):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def assert_one_line(proc, status: int, message: str, prog: str = "jaxunc"):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == status, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in lines if line.startswith(f"{prog}: error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert message in errors[0], errors[0]


USAGE_CASES = {
    "missing config file": (["--config=configs/nope.py"], "--config=configs/nope.py: no such config file"),
    "no config": ([], "--config is required"),
    "unknown field": ([SMOLLM2, "--config.foo=1"], "--config.foo=1: the config has no field 'foo'; its fields:"),
    "unknown nested field": ([SMOLLM2, "--config.engine.batchsize=4"], "engine has no field 'batchsize'"),
    "bad size argument": ([f"--config={ROOT / 'configs' / 'gemma2.py'}:13b"],
                          "unknown size '13b'; choose one of ['2b', '9b']"),
    "bad value type": ([SMOLLM2, "--config.engine.batch_size=x"], "config.engine.batch_size"),
    "bad choice": ([SMOLLM2, "--config.engine.nucleus=foo"],
                   "config.engine.nucleus='foo': expected one of ('inclusive', 'exclusive2025')"),
    "bad tasks": ([SMOLLM2, "--config.tasks=mcqa,xyz"], "config.tasks must be a comma-separated subset"),
    "bad buckets": ([SMOLLM2, "--config.engine.buckets=64,x"], "engine.buckets must be comma-separated integers"),
    "negative bootstrap": ([SMOLLM2, "--config.analysis.bootstrap=-5"],
                           "config.analysis.bootstrap=-5: expected >= 0"),
    "empty datasets": ([SMOLLM2, "--config.data.datasets="], "config.data.datasets is empty"),
    "missing checkpoint": ([SMOLLM2, "--config.model.checkpoint=/no/such/checkpoint"],
                           "config.model.checkpoint: checkpoint path /no/such/checkpoint does not exist"),
    "missing data file": ([SMOLLM2, "--config.data.datasets=/no/such.jsonl"], "data file /no/such.jsonl does not exist"),
    "positional argument": ([SMOLLM2, "extra"], "unexpected arguments ['extra']"),
}


@pytest.mark.parametrize("case", sorted(USAGE_CASES))
def test_usage_errors_exit_2_with_one_line(case, tmp_path):
    args, message = USAGE_CASES[case]
    assert_one_line(jaxunc(*args, f"--config.output_dir={tmp_path}" if args else "--verbosity=0"), 2, message)


def test_dataset_names_are_checked_before_the_model_loads(files, tmp_path):
    proc = jaxunc(SMOLLM2, f"--config.model.checkpoint={files / 'truncated'}", "--config.data.datasets=coane,nosuch",
                  f"--config.output_dir={tmp_path}")
    assert_one_line(proc, 2, "config.data.datasets: unknown dataset 'nosuch'")


DATA_CASES = {
    "truncated safetensors": (["--config.model.checkpoint={truncated}"],
                              "{truncated}/model.safetensors: not a readable safetensors file"),
    "bytes that are not UTF-8": (["--config.data.datasets={root}/bad_bytes.jsonl"],
                                 "{root}/bad_bytes.jsonl: row 1 (line 2): line 2 is not valid UTF-8 (byte 0xff"),
    "empty CSV": (["--config.data.datasets={root}/empty.csv"], "{root}/empty.csv: the file is empty"),
    "every row invalid": (["--config.data.datasets={root}/all_bad.csv", "--config.data.on_error=skip"],
                          "{root}/all_bad.csv: none of the 2 rows is a valid item"),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_data_and_model_errors_exit_1_with_one_line(case, files, tmp_path):
    args, message = DATA_CASES[case]
    fill = dict(root=files, truncated=files / "truncated")
    proc = jaxunc(f"--config={ROOT / 'configs' / 'llama3.py'}:1b-ins", f"--config.model.checkpoint={files / 'ckpt'}",
                  f"--config.model.cache_dir={tmp_path / 'cache'}", f"--config.output_dir={tmp_path / 'out'}",
                  *[a.format(**fill) for a in args])
    assert_one_line(proc, 1, message.format(**fill))


def test_skip_leaves_out_only_the_row_with_bad_bytes(files, tmp_path):
    proc = jaxunc(f"--config={ROOT / 'configs' / 'llama3.py'}:1b-ins", f"--config.model.checkpoint={files / 'ckpt'}",
                  f"--config.model.cache_dir={tmp_path / 'cache'}", f"--config.output_dir={tmp_path / 'out'}",
                  f"--config.data.datasets={files / 'bad_bytes.jsonl'}", "--config.data.on_error=skip",
                  "--config.analysis.run=False")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "bad_bytes: 2 items from 3 rows" in proc.stdout and "1 x unreadable row" in proc.stdout


def test_debug_keeps_the_traceback(files, tmp_path):
    proc = jaxunc(SMOLLM2, f"--config.data.datasets={files / 'empty.csv'}", f"--config.output_dir={tmp_path}",
                  env={"JAXUNC_DEBUG": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "the file is empty" in proc.stderr


ANALYZE_CASES = {
    "no --results": ([], 2, "Flag --results must have a value"),
    "missing file": (["--results={root}/nope.parquet"], 2, "--results: {root}/nope.parquet does not exist"),
    "empty folder": (["--results={root}/empty_dir", "--output_dir={root}/x"], 2,
                     "directory {root}/empty_dir holds no per-item tables (*.parquet)"),
    "CSV file": (["--results={root}/table.csv", "--output_dir={root}/x"], 2,
                 "{root}/table.csv is a .csv file; per-item tables are .parquet files"),
    "no readable table": (["--results={root}/tables", "--output_dir={root}/x"], 1,
                          "no readable per-item table to analyse ({root}/tables/garbage.parquet: not read"),
    "bad bootstrap": (["--results={root}/tables", "--output_dir={root}/x", "--bootstrap=-5"], 2,
                      "--bootstrap=-5: expected >= 0"),
}


@pytest.mark.parametrize("case", sorted(ANALYZE_CASES))
def test_analyze_errors(case, files):
    args, status, message = ANALYZE_CASES[case]
    proc = jaxunc(*[a.format(root=files) for a in args], module="jaxunc.analyze")
    assert_one_line(proc, status, message.format(root=files), prog="jaxunc.analyze")


def test_sweep_errors(files, tmp_path):
    sweep = [sys.executable, str(ROOT / "launch" / "sweep.py")]
    proc = subprocess.run(sweep, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert_one_line(proc, 2, "--sweep is required", prog="sweep")
    bad = tmp_path / "bad.txt"
    bad.write_text("configs/smollm2.py\nconfigs/gemma2.py:13b /x\n")
    proc = subprocess.run([*sweep, f"--sweep={bad}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert_one_line(proc, 2, f"{bad}:2: configs/gemma2.py:13b: configs/gemma2.py: unknown size '13b'", prog="sweep")
    failing = tmp_path / "failing.txt"
    failing.write_text(f"configs/llama3.py:1b-ins {files / 'truncated'}\n")
    proc = subprocess.run([*sweep, f"--sweep={failing}", f"--output_dir={tmp_path / 'out'}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "not a readable safetensors file" in proc.stderr
    assert "sweep: error: command 1 of 2 failed (exit 1)" in proc.stderr
