"""End-to-end: analyze_tables and the CLI on small synthetic tables, including bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jaxunc.analyze import analyze_tables, default_output_dir

CFG = dict(bootstrap=20, permutations=20, reliability_figures=True)


def table(model, mtype, n=40, seed=0, n_opts=4, dataset=None):
    rng = np.random.default_rng(seed)
    k = np.full(n, n_opts) if np.isscalar(n_opts) else n_opts
    shares = [rng.dirichlet(np.ones(j)) for j in k]
    pdf = [np.log(s * 0.5 + 0.5 * rng.dirichlet(np.ones(len(s)))) for s in shares]
    h = np.array([-(s * np.log(s)).sum() / np.log(len(s)) for s in shares])
    df = pd.DataFrame({
        "Question": [f"q{i}" for i in range(n)], "Answers": [["x"] * j for j in k], "Answer_Ratios": shares,
        "Correct_Answer": [chr(65 + int(np.argmax(s))) for s in shares], "human-ent": h,
        "mc_choice-pdf": pdf, "cloze_pred": [chr(65 + int(np.argmax(p))) for p in pdf],
        "mc_choice-ent": h + 0.2 * rng.normal(size=n), "mc_choice-prob": [p.max() for p in pdf],
        "mc_choice-prob-renorm": [np.exp(p).max() / np.exp(p).sum() for p in pdf],
        "mc_top-p-len-0.9": rng.integers(1, 5, n), "model": model, "model_type": mtype, "model_size": 1.0})
    if dataset:
        df["dataset"] = dataset
    return df


def test_analyze_tables_mixed_datasets_and_bad_input(tmp_path):
    res_dir = tmp_path / "res"
    res_dir.mkdir()
    for i, (m, t) in enumerate([("A_1B", "base"), ("A_1B_Ins", "ins"), ("B_2B", "base"), ("B_2B_Ins", "ins")]):
        table(m, t, seed=i).to_parquet(res_dir / f"toy__{m}.parquet")
    var = table("A_1B", "base", n=60, n_opts=np.random.default_rng(0).integers(2, 6, 60), seed=9)
    var.to_parquet(res_dir / "other_A_1B.parquet")
    bad = table("C_1B", "base", seed=5).drop(columns=["human-ent", "Answer_Ratios"])
    bad.loc[:5, "mc_choice-ent"] = np.nan
    bad.to_parquet(res_dir / "toy__C_1B.parquet")
    table("D_1B", "base", seed=6).drop(columns=["Answers"]).to_parquet(res_dir / "toy__D_1B.parquet")
    (res_dir / "toy__broken.parquet").write_text("not parquet")
    out = analyze_tables(str(res_dir), tmp_path / "out", CFG)
    for name in ("alignment", "calibration", "preference", "compare", "combination", "temperature", "reliability",
                 "distribution", "distribution_items"):
        assert (tmp_path / "out" / "analysis" / f"{name}.csv").exists(), name
    al = out["alignment"]
    assert set(al["dataset"]) == {"toy", "other"}
    assert set(al.loc[al["dataset"] == "other", "method"]) >= {"partial_spearman", "stratified_spearman_n=3"}
    assert "partial_spearman" not in set(al.loc[al["dataset"] == "toy", "method"])
    probs = " ".join(out["problems"]["problem"])
    assert "toy/C_1B: no human-signal column" in probs and "several datasets" in probs
    assert "toy__broken.parquet: not read" in probs
    assert "toy/D_1B: missing column 'Answers'" in probs and "toy/D_1B: preference failed" in probs
    assert "D_1B" in set(al["model"])  # the table without options still gets its correlations
    cal = out["calibration"]
    c = cal[(cal["model"] == "C_1B") & (cal["measure"] == "mc_choice-ent")].iloc[0]
    assert c["n_dropped"] == 6 and c["n"] == 34
    cmp_ = out["compare"]
    assert (cmp_[cmp_["comparison"] == "base_vs_instruct"]["n_pairs"] == 2).any()
    figs = {p.name for p in (tmp_path / "out" / "figures").iterdir()}
    assert "alignment_toy_human-ent.png" in figs and "ece_toy.png" in figs and "reliability_toy_A_1B.png" in figs
    assert "accuracy_agreement_toy.png" in figs and "base_vs_instruct_toy_human-ent.png" in figs
    assert {"distribution_toy.png", "distribution_entropy_toy.png", "distribution_other.png"} <= figs
    dist = out["distribution"]
    assert set(dist["dataset"]) == {"toy", "other"}  # C_1B (no shares) gives no rows, D_1B (no Answers) does
    assert set(dist.loc[dist["dataset"] == "other", "n_options"]) == {"all", "2", "3", "4", "5"}
    assert set(dist.loc[dist["dataset"] == "toy", "n_options"]) == {"all"}
    assert dist["ci_method"].str.contains("B=20").all() and dist[dist["predictor"] != "model"]["p_value"].notna().all()
    report = (tmp_path / "out" / "report.md").read_text()
    assert "no human-signal column" in report and "Partial Spearman" in report
    assert "Distributional alignment" in report and "depends on n" in report


def test_stage_failure_keeps_other_tables(tmp_path):
    df = table("M_1B", "base")
    df["mc_choice-pdf"] = None  # temperature scaling and ordering agreement cannot run
    out = analyze_tables([df.assign(dataset="toy")], tmp_path, dict(run=True, figures=False), bootstrap=20,
                         permutations=20)  # the call shape of jaxunc.pipeline
    assert not out["alignment"].empty and not out["calibration"].empty
    assert "needs" in out["temperature"]["note"].iloc[0] or "usable" in out["temperature"]["note"].iloc[0]
    assert out["alignment"]["ci_method"].str.contains("B=20").any()
    with pytest.raises(ValueError, match="unknown fields"):
        analyze_tables([df.assign(dataset="toy")], tmp_path, dict(bootstrapp=3))


def test_default_output_dir(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({}))
    assert default_output_dir(str(tmp_path), None) == tmp_path
    assert default_output_dir(str(tmp_path), "x") == Path("x")
    with pytest.raises(ValueError, match="--output_dir"):
        default_output_dir(str(tmp_path / "items"), None)


def test_cli(tmp_path):
    run = tmp_path / "run"
    (run / "items").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    table("M_1B", "base").assign(dataset="toy").to_parquet(run / "items" / "toy__M_1B.parquet")
    r = subprocess.run([sys.executable, "-m", "jaxunc.analyze", f"--results={run}", "--bootstrap=10",
                        "--permutations=10", "--reliability_figures=False", "--reproduce_2025"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    al = pd.read_csv(run / "analysis" / "alignment.csv")
    assert (al["method"] == "pearson_2025_confounded").any()
    assert al.loc[al["method"] == "pearson_2025_confounded", "note"].str.contains("CONFOUNDED").all()
    (tmp_path / "plain").mkdir()
    table("M_1B", "base").assign(dataset="toy").to_parquet(tmp_path / "plain" / "toy__M_1B.parquet")
    r = subprocess.run([sys.executable, "-m", "jaxunc.analyze", f"--results={tmp_path / 'plain'}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "give --output_dir" in r.stderr
