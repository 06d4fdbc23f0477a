"""MMLU end to end, by subject: the main job on a small folder in the published MMLU layout (one
`<subject>_test.csv` per subject, no header: question, A, B, C, D, answer letter) with the embedded
SmolLM2 model and analysis.group_by=subject; the per-subject rows of calibration.csv and
heterogeneity.csv are checked against scipy on the written per-item table.

MMLU has no human signal, so its alignment rows (pooled and per group) are NaN with the reason (the
per-group alignment rows are checked on synthetic tables with human signals in
tests/test_stats_groups.py). Tolerances: 1e-12 absolute for
estimates, 1e-9 relative for p-values.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from jaxunc import columns as C
from jaxunc.configs import load_config_file
from jaxunc.stats import multitest as M

ROOT = Path(__file__).resolve().parents[1]

SUBJECTS = {
    "elementary_mathematics": [
        ("What is 2 + 3?", "4", "5", "6", "7", "B"), ("What is 10 - 4?", "6", "5", "7", "4", "A"),
        ("What is 3 x 3?", "6", "12", "9", "8", "C"), ("What is 12 / 4?", "2", "4", "6", "3", "D"),
        ("What is 7 + 8?", "15", "14", "16", "13", "A"), ("What is 5 x 4?", "25", "20", "15", "30", "B"),
    ],
    "high_school_geography": [
        ("What is the capital of France?", "Berlin", "Madrid", "Paris", "Rome", "C"),
        ("What is the capital of Japan?", "Tokyo", "Seoul", "Beijing", "Osaka", "A"),
        ("Which is the largest ocean?", "Atlantic", "Indian", "Arctic", "Pacific", "D"),
        ("On which continent is Egypt?", "Asia", "Africa", "Europe", "Oceania", "B"),
        ("What is the capital of Italy?", "Milan", "Naples", "Rome", "Turin", "C"),
        ("Which river flows through London?", "Thames", "Seine", "Danube", "Rhine", "A"),
    ],
    "astronomy": [
        ("Which planet is closest to the Sun?", "Venus", "Mercury", "Earth", "Mars", "B"),
        ("Which planet is known as the red planet?", "Jupiter", "Saturn", "Mars", "Venus", "C"),
        ("What does the Moon orbit?", "The Sun", "Mars", "The Earth", "Jupiter", "C"),
        ("Which is the largest planet?", "Jupiter", "Earth", "Mars", "Mercury", "A"),
        ("Which star is at the centre of our solar system?", "Sirius", "Vega", "Polaris", "The Sun", "D"),
        ("Which planet has prominent rings?", "Mars", "Saturn", "Mercury", "Venus", "B"),
    ],
    "world_religions": [  # 2 items: below min_group, reported and not computed
        ("In which city is the Kaaba?", "Mecca", "Cairo", "Rome", "Delhi", "A"),
        ("What is the holy book of Islam?", "Torah", "Vedas", "Quran", "Tripitaka", "C"),
    ],
}
MIN_GROUP = 5


def write_mmlu(folder: Path) -> Path:
    test = folder / "data" / "test"
    test.mkdir(parents=True)
    for subject, rows in SUBJECTS.items():
        with open(test / f"{subject}_test.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)
    return folder / "data"


@pytest.mark.slow
def test_main_job_mmlu_by_subject(tmp_path):
    from jaxunc.pipeline import run
    config = load_config_file(ROOT / "configs" / "smollm2.py")
    config.output_dir, config.model.cache_dir = str(tmp_path / "run"), str(tmp_path / "cache")
    config.data.datasets, config.data.path = "mmlu", str(write_mmlu(tmp_path / "mmlu"))
    config.analysis.update(dict(bootstrap=50, group_by="subject", min_group=MIN_GROUP))
    run(config)
    out = Path(config.output_dir)
    items = pd.read_parquet(out / "items" / "mmlu__SmolLM2-135M-Instruct.parquet")
    assert len(items) == sum(len(r) for r in SUBJECTS.values())
    assert set(items["subject"]) == set(SUBJECTS)
    cal = pd.read_csv(out / "analysis" / "calibration.csv")
    al = pd.read_csv(out / "analysis" / "alignment.csv")
    het = pd.read_csv(out / "analysis" / "heterogeneity.csv")
    # no human signal in MMLU (human-ent is all NaN): the pooled and the group alignment rows say so
    assert al["coef"].isna().all() and set(al["group"]) == {"all"} | set(SUBJECTS)
    assert al.loc[al["measure"].notna(), "note"].str.contains("fewer than 3 items").all()
    assert het.loc[het["statistic"].str.startswith("alignment_"), "p_value"].isna().all()
    assert set(cal["group"]) == {"all"} | set(SUBJECTS)

    small = cal[cal["group"] == "world_religions"]
    assert len(small) == 1 and small["n"].iloc[0] == 2 and "min_group=5: not computed" in small["note"].iloc[0]

    correct = (items["cloze_pred"] == items["Correct_Answer"]).to_numpy()
    grp = cal[(cal["group_by"] == "subject") & cal["measure"].notna() & (cal["task"] == "mc")]
    measures = set(grp["measure"])
    assert len(measures) >= 10 and set(grp["group"]) == set(SUBJECTS) - {"world_religions"}
    checked = 0
    for _, r in grp.iterrows():
        sel = (items["subject"] == r["group"]).to_numpy()
        u = items.loc[sel, r["measure"]].to_numpy(float) * C.orientation(r["measure"])
        c = correct[sel]
        assert r["n"] == sel.sum() == 6
        assert r["accuracy"] == pytest.approx(c.mean(), abs=1e-12)
        if 0 < c.sum() < len(c) and np.ptp(u) > 0:
            mw = stats.mannwhitneyu(u[~c], u[c])
            assert r["auroc"] == pytest.approx(mw.statistic / ((~c).sum() * c.sum()), abs=1e-12)
            assert r["auroc_p_value"] == pytest.approx(mw.pvalue, rel=1e-9)
            assert r["pointbiserial_r"] == pytest.approx(stats.pointbiserialr(c, u).statistic, abs=1e-12)
            checked += 1
        else:
            assert np.isnan(r["auroc"]) and isinstance(r["note"], str) and r["note"]
    # the q-values of the group rows: BH over all subjects x measures of this model
    fam = grp[grp["auroc_p_value"].notna()]
    assert np.allclose(fam["auroc_q_value"], M.bh_qvalues(fam["auroc_p_value"].to_numpy()))
    assert fam["q_family"].str.contains("group_by=subject x task=mc").all()
    pooled = cal[(cal["group"] == "all") & (cal["task"] == "mc")]
    assert (pooled["n"] == len(items)).all()
    assert pooled["accuracy"].iloc[0] == pytest.approx(correct.mean(), abs=1e-12)

    acc = het[(het["statistic"] == "accuracy")].iloc[0]
    computed = [s for s in SUBJECTS if s != "world_religions"]
    table = np.array([[correct[items["subject"] == s].sum(), (~correct[items["subject"] == s]).sum()]
                      for s in computed])
    if (table.sum(axis=0) > 0).all():
        ref = stats.chi2_contingency(table, correction=False)
        assert acc["Q"] == pytest.approx(ref.statistic, rel=1e-9) and acc["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert acc["k_groups"] == 3
    report = (out / "report.md").read_text()
    assert "## Statistics by group (group_by = subject)" in report and "world_religions (n=2)" in report
    assert (out / "figures" / "groups_auroc_mmlu_SmolLM2-135M-Instruct_subject.png").exists()
    print(f"per-subject rows checked against scipy: {len(grp)} (AUROC defined in {checked})")


def test_main_job_accepts_and_validates_group_by_flags(tmp_path):
    """--config.analysis.group_by / min_group are config fields of the main job (refused before the
    model loads when out of range)."""
    r = subprocess.run([sys.executable, "-m", "jaxunc.main", f"--config={ROOT / 'configs' / 'smollm2.py'}",
                        f"--config.output_dir={tmp_path / 'o'}", "--config.analysis.group_by=subject",
                        "--config.analysis.min_group=2"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "analysis.min_group=2: expected >= 3" in r.stderr and len(r.stderr.strip().splitlines()) == 1
