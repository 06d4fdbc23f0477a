"""launch/sweep.py: parsing sweep files and the commands it runs."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "launch"))
import sweep  # noqa: E402


def test_study_sweep_parses_into_one_run_per_line_then_analysis(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    runs = sweep.parse_sweep(ROOT / "launch" / "coane_study.txt")
    assert ("configs/gemma2.py", "2b-ins", "/checkpoints/gemma-2-2b-it") in runs
    assert runs[-1] == ("configs/smollm2.py", None, "")
    cmds = sweep.commands(runs, tmp_path, ["--config.data.limit=5"])
    assert len(cmds) == len(runs) + 1
    gemma = cmds[runs.index(("configs/gemma2.py", "2b-ins", "/checkpoints/gemma-2-2b-it"))]
    assert f"--config.output_dir={tmp_path / 'gemma2-2b-ins'}" in gemma
    assert "--config.model.checkpoint=/checkpoints/gemma-2-2b-it" in gemma and gemma[-1] == "--config.data.limit=5"
    assert cmds[-1][1:3] == ["-m", "jaxunc.analyze"] and f"--results={tmp_path}" in cmds[-1]


def test_bad_sweep_lines_are_named(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    bad = tmp_path / "bad.txt"
    bad.write_text("configs/smollm2.py\nconfigs/nope.py /x\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: config file configs/nope.py not found"):
        sweep.parse_sweep(bad)
