"""The command line a user meets: --help on every entry point, the console scripts, a quiet default
(no backend probing lines) with a progress bar in items/s, the summary block at the end, and a report
without empty sections."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jaxunc.report.summary import best_aligned, summary_block
from tiny_checkpoints import bpe_tokenizer, save_family_checkpoint

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

# entry point -> (command, a phrase of what it does, flags it must list)
ENTRY_POINTS = {
    "jaxunc.main": ([sys.executable, "-m", "jaxunc.main"], "jaxunc main job: score one model", ["--config"]),
    "jaxunc.analyze": ([sys.executable, "-m", "jaxunc.analyze"], "the statistics and report again",
                       ["--results", "--output_dir", "--bootstrap", "--group_by"]),
    "jaxunc.reproduce": ([sys.executable, "-m", "jaxunc.reproduce"], "recompute the reference study's published",
                         ["--study", "--output_dir"]),
    "sweep": ([sys.executable, str(ROOT / "launch" / "sweep.py")], "Run a sweep of models", ["--sweep", "--dry_run"]),
    "local": ([sys.executable, str(ROOT / "launch" / "local.py")], "Start N local processes",
              ["--num_processes", "--gpus_per_process"]),
}


def console_script(name: str) -> list[str]:
    """What pip's wrapper for [project.scripts] `name` runs: import the entry function, call it (the
    module is not __main__, so flags defined only under `if __name__ == '__main__'` would be missing)."""
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"][name]
    module, _, function = target.partition(":")
    code = f"import sys; sys.argv[0] = {name!r}; from {module} import {function}; sys.exit({function}())"
    return [sys.executable, "-c", code]


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_help_says_what_each_entry_point_does(name):
    command, phrase, flags = ENTRY_POINTS[name]
    for flag in ("--help", "-h"):
        proc = subprocess.run([*command, flag], cwd=ROOT, capture_output=True, text=True, timeout=120, env=ENV)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert phrase in proc.stdout, proc.stdout[:500]
        for f in flags:
            assert f"  {f}:" in proc.stdout, (f, proc.stdout)


@pytest.mark.parametrize("name", ["jaxunc", "jaxunc-analyze", "jaxunc-reproduce"])
def test_console_scripts_have_their_flags(name, tmp_path):
    proc = subprocess.run([*console_script(name), "--help"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=ENV)
    assert proc.returncode == 0 and "flags:" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    if name == "jaxunc-analyze":  # and it really runs
        from test_analyze import table

        table("A_1B", "base").to_parquet(tmp_path / "toy__A_1B.parquet")
        proc = subprocess.run([*console_script(name), f"--results={tmp_path / 'toy__A_1B.parquet'}",
                               f"--output_dir={tmp_path / 'out'}", "--bootstrap=10", "--permutations=10",
                               "--figures=False"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=ENV)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert (tmp_path / "out" / "analysis" / "alignment.csv").exists()


# Runs the main job with torch hidden from transformers' availability check (as in an install without
# the test extra, where transformers logs "PyTorch was not found ...").
NO_TORCH = ("import importlib.util, runpy, sys; find = importlib.util.find_spec; "
            "importlib.util.find_spec = lambda name, *a: None if name == 'torch' else find(name, *a); "
            "sys.argv = ['jaxunc'] + sys.argv[1:]; runpy.run_module('jaxunc.main', run_name='__main__')")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt")
    save_family_checkpoint("llama3", path, bpe_tokenizer())
    return path


def run_main(checkpoint, out, *extra):
    args = [f"--config={ROOT / 'configs' / 'llama3.py'}:size=1b,ins=True", f"--config.model.checkpoint={checkpoint}",
            f"--config.model.cache_dir={out / 'cache'}", f"--config.output_dir={out / 'run'}", "--config.data.limit=6",
            "--config.engine.batch_size=2", "--config.analysis.bootstrap=20", *extra]
    return subprocess.run([sys.executable, "-c", NO_TORCH, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=ENV)


def test_quiet_default_progress_bar_and_summary(checkpoint, tmp_path):
    proc = run_main(checkpoint, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    err = proc.stderr.replace("\r", "\n")
    assert "PyTorch was not found" not in err and "Unable to initialize backend" not in err
    assert not [line for line in err.splitlines() if line[:1] in "IW" and line[1:5].isdigit()], err  # absl records
    assert "items/s]" in err and "coane mcqa: 100%" in err and "6/6 items" in err
    out = proc.stdout
    assert "== jaxunc summary ==" in out
    assert f"table    {tmp_path / 'run' / 'items'}" in out and f"report   {tmp_path / 'run' / 'report.md'}" in out
    assert "accuracy" in out and "(wilson 95%, n = 6)" in out
    assert "best-aligned measures per human signal" in out and "human-ent" in out and "q = " in out
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Base vs instruct" not in report  # one model: nothing to compare
    # the control: with --verbosity=0 the same lines are there, so the quiet default removed them
    loud = run_main(checkpoint, tmp_path / "loud", "--verbosity=0")
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert "PyTorch was not found" in loud.stderr
    assert "compiling the scoring step" in loud.stderr


def test_summary_block_orders_orients_and_puts_the_partial_beside_the_raw(tmp_path):
    (tmp_path / "analysis").mkdir()
    base = dict(dataset="d", model="M", model_type="base", model_size=1.0, group_by="none", group="all", n=50,
                target="human-ent", q_method="benjamini_hochberg")
    rows = [  # confidence measure B: raw -0.5 [-0.6, -0.4] -> oriented 0.5 [0.4, 0.6]
        dict(base, measure="mc_choice-prob", method="spearman", coef=-0.5, coef_oriented=0.5, ci_low=-0.6,
             ci_high=-0.4, q_value=1e-4),
        dict(base, measure="mc_choice-ent", method="spearman", coef=0.3, coef_oriented=0.3, ci_low=0.1, ci_high=0.45,
             q_value=0.01),
        dict(base, measure="mc_total-ent", method="spearman", coef=0.1, coef_oriented=0.1, ci_low=-0.1, ci_high=0.3,
             q_value=0.4),
        dict(base, measure="mc_var-ent", method="spearman", coef=0.05, coef_oriented=0.05, ci_low=-0.2, ci_high=0.3,
             q_value=0.7),
        dict(base, measure="mc_choice-prob", method="partial_spearman", coef=-0.45, coef_oriented=0.45, ci_low=np.nan,
             ci_high=np.nan, q_value=1e-3),
        dict(base, measure="mc_choice-ent", method="pearson", coef=0.9, coef_oriented=0.9, ci_low=0.8, ci_high=0.95,
             q_value=1e-9),
        # a confidence-type signal: aligned = negative coef_oriented; mc_choice-prob raw 0.4 [0.3, 0.5] is aligned
        dict(base, target="MC_Human_Prop_Correct", target_kind="confidence", measure="mc_choice-ent", method="spearman",
             coef=0.2, coef_oriented=0.2, ci_low=0.1, ci_high=0.3, q_value=0.02),
        dict(base, target="MC_Human_Prop_Correct", target_kind="confidence", measure="mc_choice-prob", method="spearman",
             coef=0.4, coef_oriented=-0.4, ci_low=0.3, ci_high=0.5, q_value=0.001),
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "analysis" / "alignment.csv", index=False)
    pd.DataFrame([dict(dataset="d", model="M", group_by="none", group="all", task="mc", measure="mc_choice-prob-renorm",
                       n=50, accuracy=0.6, accuracy_ci_low=0.46, accuracy_ci_high=0.72, accuracy_ci_method="wilson",
                       ece_width10=0.125)]).to_csv(tmp_path / "analysis" / "calibration.csv", index=False)
    best = best_aligned(pd.read_csv(tmp_path / "analysis" / "alignment.csv"), "d", "M", top=3)
    best = best[best["target"] == "human-ent"]
    assert list(best["measure"]) == ["mc_choice-prob", "mc_choice-ent", "mc_total-ent"]  # Pearson row ignored
    assert (best["ci_low"].iloc[0], best["ci_high"].iloc[0]) == (0.4, 0.6)
    assert best["partial"].iloc[0] == 0.45 and np.isnan(best["partial"].iloc[1])
    conf = best_aligned(pd.read_csv(tmp_path / "analysis" / "alignment.csv"), "d", "M", top=3)
    conf = conf[conf["target"] == "MC_Human_Prop_Correct"]
    assert list(conf["measure"]) == ["mc_choice-prob", "mc_choice-ent"] and list(conf["alignment"]) == [0.4, -0.2]
    assert (conf["ci_low"].iloc[0], conf["ci_high"].iloc[0]) == (0.3, 0.5)
    assert (conf["ci_low"].iloc[1], conf["ci_high"].iloc[1]) == (-0.3, -0.1)
    text = summary_block(tmp_path, ["M"])
    assert "accuracy 0.600 [0.460, 0.720] (wilson 95%, n = 50); ECE 0.125" in text
    assert "mc_choice-prob  0.500 [0.400, 0.600]  q = 0.0001  partial 0.450" in text
    assert "mc_var-ent" not in text and "partial Spearman controlling for the number of options" in text
    assert summary_block(tmp_path, ["other"]).count("/ M") == 0
