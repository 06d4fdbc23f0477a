"""One writer per output folder (engine.lock), and runs killed at random points resume to the
identical table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jaxunc.engine.lock import OutputDirBusy, OutputLock
from tiny_checkpoints import bpe_tokenizer, save_family_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def test_a_second_lock_is_refused_with_the_owner(tmp_path):
    with OutputLock(tmp_path):
        with pytest.raises(OutputDirBusy, match=rf"is in use by another jaxunc run \(pid {os.getpid()} on "):
            OutputLock(tmp_path).acquire()
    with OutputLock(tmp_path):  # released: free again
        pass


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path, caplog):
    child = subprocess.Popen([sys.executable, "-c", (
        "import os, signal, sys\n"
        "from jaxunc.engine.lock import OutputLock\n"
        f"OutputLock({str(tmp_path)!r}).acquire()\n"
        "print('locked', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    child.wait()
    assert child.returncode == -signal.SIGKILL
    with caplog.at_level("INFO", logger="jaxunc.engine.lock"):
        with OutputLock(tmp_path):
            pass
    assert f"pid {child.pid}" in caplog.text  # whose lock was taken over


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_family_checkpoint("llama3", path, bpe_tokenizer())
    return path


def main_args(checkpoint: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "jaxunc.main", f"--config={ROOT / 'configs' / 'llama3.py'}:1b-ins",
            f"--config.model.checkpoint={checkpoint}", f"--config.model.cache_dir={out.parent / 'cache'}",
            f"--config.output_dir={out}", "--config.data.limit=10", "--config.engine.batch_size=1",
            "--config.engine.batch_invariant=True",  # one item per row: one chunk per item
            "--config.engine.chunk_size=1", "--config.analysis.run=False", *extra]


def test_a_second_run_on_a_busy_output_dir_stops(tmp_path, checkpoint):
    out = tmp_path / "out"
    with OutputLock(out):
        proc = subprocess.run(main_args(checkpoint, out), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"jaxunc: error: {out} is in use by another jaxunc run (pid {os.getpid()} on" in proc.stderr


def test_sigkill_at_random_points_always_resumes_to_the_identical_table(tmp_path, checkpoint):
    """Rounds of start-then-SIGKILL at seeded random points: either at a drawn time (start-up, loading,
    compilation, scoring or the final merge, depending on the machine's speed) or right after a drawn
    number of chunks (the fault-injection point JAXUNC_TEST_KILL_AFTER_CHUNKS, so that some kills
    surely land mid-scoring); then a last run must end with the uninterrupted run's table."""
    table = "items/coane__Llama-3.2-1B-Instruct.parquet"
    reference = tmp_path / "reference"
    done = subprocess.run(main_args(checkpoint, reference), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out, rng, killed = tmp_path / "killed", np.random.default_rng(20261201), []
    for kind in rng.choice(["time", "chunks"], size=6, p=[0.4, 0.6]):
        env = dict(os.environ)
        if kind == "chunks":
            env["JAXUNC_TEST_KILL_AFTER_CHUNKS"] = str(rng.integers(1, 3))
        proc = subprocess.Popen(main_args(checkpoint, out), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if kind == "time":
            try:
                proc.wait(timeout=float(rng.uniform(0.5, 8.0)))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=600)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, proc.returncode
        killed.append(str(kind))
    assert killed.count("chunks") >= 2, killed
    final = subprocess.run(main_args(checkpoint, out), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_parquet(out / table), pd.read_parquet(reference / table))
