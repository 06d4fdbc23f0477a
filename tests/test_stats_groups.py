"""Statistics by group (jaxunc.stats.groups) against scipy and independent computations.

Tolerances: point estimates and scipy p-values 1e-12 absolute (1e-9 relative for p); heterogeneity
Q 1e-9 relative; null p-values checked for uniformity by a KS test (p > 0.01) and a rejection rate at
0.05 in [0, 0.15]; power cases need p < 1e-4.
"""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from jaxunc.analyze import analyze_tables
from jaxunc.configs import base_config
from jaxunc.stats import alignment as A
from jaxunc.stats import calibration as K
from jaxunc.stats import groups as G
from jaxunc.stats import multitest as M
from jaxunc.stats import preference as P
from jaxunc.stats.config import AnalysisConfig

SIZES = {"alpha": 70, "beta": 60, "gamma": 50, "delta": 6}  # delta is below min_group=10


def grouped_table(sizes=SIZES, seed=0, model="M_1B", strength=None, n_missing=0):
    """A per-item table with human signals and a `topic` column; per-topic alignment strength."""
    rng = np.random.default_rng(seed)
    strength = strength or {"alpha": 3.0, "beta": 0.5, "gamma": -1.0, "delta": 1.0}
    topic = np.repeat(list(sizes), list(sizes.values())).astype(object)
    n = len(topic)
    s = np.array([strength.get(t, 1.0) for t in topic])
    shares = [rng.dirichlet(np.ones(4)) for _ in range(n)]
    h = np.array([-(r * np.log(r)).sum() / np.log(4) for r in shares])
    pdf = [np.log(0.4 * r + 0.6 * rng.dirichlet(np.ones(4))) for r in shares]
    ent = s * h + 0.3 * rng.normal(size=n)
    gold = rng.integers(0, 4, n)
    z = pd.Series(ent).groupby(topic).transform(lambda e: (e - e.mean()) / e.std()).to_numpy()
    pred = np.where(rng.uniform(size=n) < 1 / (1 + np.exp(2 * z)), gold, (gold + 1) % 4)  # right when certain
    prob = np.array([np.exp(p).max() / np.exp(p).sum() for p in pdf])
    if n_missing:
        topic[rng.choice(n, n_missing, replace=False)] = None
    return pd.DataFrame({
        "Answers": [["a", "b", "c", "d"]] * n, "Answer_Ratios": shares, "human-ent": h,
        "MC_Human_Prop_Correct": 1 - h + 0.2 * rng.normal(size=n), "mc_choice-pdf": pdf,
        "mc_choice-ent": ent, "mc_choice-prob-renorm": np.clip(prob - 0.1 * (ent - ent.mean()), 0, 1),
        "mc_top-p-len-0.9": rng.integers(1, 5, n), "Correct_Answer": [chr(65 + g) for g in gold],
        "cloze_pred": [chr(65 + p) for p in pred], "topic": topic, "dataset": "toy", "model": model,
        "model_type": "base", "model_size": 1.0})


CFG = AnalysisConfig(bootstrap=50, permutations=100, group_by="topic", min_group=10)


def groupings(df, cfg=CFG):
    problems = []
    return G.groupings_of(df, cfg, "toy/M", problems), problems


# ---------------------------------------------------------------------------------------------
# splitting


def test_split_groups_labels_missing_small_and_bad_columns():
    df = grouped_table(n_missing=5)
    g = G.split_groups(df, "topic", 10, "toy/M")
    assert [lab for lab, _ in g.groups] == ["alpha", "beta", "gamma"]  # sorted labels
    assert g.n_missing == 5 and "5 items with no 'topic' label" in g.note
    assert [lab for lab, _ in g.small] == ["delta"]
    assert sum(len(i) for _, i in g.groups) + sum(k for _, k in g.small) + 5 == len(df)
    for lab, idx in g.groups:
        assert (df["topic"].iloc[idx] == lab).all()
    num = pd.DataFrame({"wave": [1.0, 2.0, np.nan, 1.0] * 5})
    gw = G.split_groups(num, "wave", 3)
    assert [lab for lab, _ in gw.groups] == ["1", "2"] and gw.n_missing == 5
    with pytest.raises(ValueError, match=r"group_by column 'subjekt' not found; available columns: .*topic"):
        G.split_groups(df, "subjekt", 10, "toy/M")
    with pytest.raises(ValueError, match="holds lists"):
        G.split_groups(df, "Answers", 10)
    with pytest.raises(ValueError, match="non-integer numbers"):
        G.split_groups(df, "human-ent", 10)


def test_config_group_by_fields():
    assert AnalysisConfig(group_by="subject, wave").group_by == ("subject", "wave")
    assert AnalysisConfig.from_any(dict(group_by=["a"])).group_by == ("a",)
    assert AnalysisConfig.from_any(base_config("x", model_name="m", model_type="base", size=1,
                                               prompt_format="icl2").analysis).group_by == ()
    with pytest.raises(ValueError, match="given twice"):
        AnalysisConfig(group_by="a,a")
    with pytest.raises(ValueError, match=r"analysis.min_group=2: expected >= 3"):
        AnalysisConfig(min_group=2)


# ---------------------------------------------------------------------------------------------
# group rows against scipy on the group's items


def test_alignment_group_rows_match_scipy_and_pooled_rows_unchanged():
    df = grouped_table()
    gs, _ = groupings(df)
    out = A.add_qvalues(G.alignment_rows(df, gs, CFG))
    pooled = out[out["group_by"] == "none"]
    ref = A.add_qvalues(A.alignment_table(df, CFG))
    assert (pooled["group"] == "all").all()
    pd.testing.assert_frame_equal(pooled.reset_index(drop=True)[A.COLUMNS], ref[A.COLUMNS], check_dtype=False)
    grp = out[(out["group_by"] == "topic") & out["measure"].notna()]
    assert set(grp["group"]) == {"alpha", "beta", "gamma"}
    funcs = {"spearman": stats.spearmanr, "pearson": stats.pearsonr, "kendall": stats.kendalltau}
    for _, r in grp.iterrows():
        sub = df[df["topic"] == r["group"]]
        res = funcs[r["method"]](sub[r["measure"]], sub[r["target"]])
        assert r["n"] == len(sub)
        assert r["coef"] == pytest.approx(res.statistic, abs=1e-12)
        assert r["p_value"] == pytest.approx(res.pvalue, rel=1e-9, abs=1e-300)
        if r["method"] != "kendall":
            assert r["ci_method"] == "bootstrap_percentile_B=50" and r["ci_low"] <= r["ci_high"]
    small = out[out["group"] == "delta"]
    assert len(small) == 1 and small["n"].iloc[0] == 6 and "min_group=10: not computed" in small["note"].iloc[0]
    # resamples are the group's own: a direct call with the group's seed gives the same interval
    sub = df[df["topic"] == "beta"].reset_index(drop=True)
    direct = A.alignment_table(sub, G.group_cfg(CFG, "topic", "beta"))
    got = grp[grp["group"] == "beta"].reset_index(drop=True)
    assert np.allclose(got["ci_low"], direct["ci_low"], equal_nan=True)


def test_group_qvalue_families_bh_and_bonferroni():
    df = pd.concat([grouped_table(), grouped_table(seed=1, model="N_1B")], ignore_index=True)
    rows = []
    for m, sub in df.groupby("model"):
        sub = sub.reset_index(drop=True)
        rows.append(G.alignment_rows(sub, groupings(sub)[0], CFG))
    rows = pd.concat(rows, ignore_index=True)
    for corr, fn in (("bh", M.bh_qvalues), ("bonferroni", M.bonferroni)):
        out = A.add_qvalues(rows, corr)
        pooled = out[(out["group_by"] == "none") & (out["method"] == "spearman")]
        assert np.allclose(pooled["q_value"], fn(pooled["p_value"].to_numpy()))  # models pooled, as before
        fam = out[(out["group_by"] == "topic") & (out["method"] == "spearman") & (out["model"] == "N_1B")]
        fam = fam[fam["p_value"].notna()]
        assert len(fam) == 3 * 3 * 2  # groups x measures x targets of one model
        assert np.allclose(fam["q_value"], fn(fam["p_value"].to_numpy()))
        assert fam["q_family"].str.contains("model=N_1B x group_by=topic x method=spearman").all()
        assert fam["q_family"].str.contains(r"\(18 tests\)").all()


def test_calibration_group_rows_match_scipy():
    df = grouped_table()
    gs, _ = groupings(df)
    cal, rel = G.calibration_rows(df, gs, CFG)
    cal = K.add_qvalues(cal)
    assert len(rel) == len(K.calibration_table(df, CFG)[1])  # reliability: pooled rows only
    grp = cal[(cal["group_by"] == "topic") & cal["measure"].notna()]
    assert len(grp) == 3 * 3
    for _, r in grp.iterrows():
        sub = df[df["topic"] == r["group"]]
        correct = (sub["cloze_pred"] == sub["Correct_Answer"]).to_numpy()
        u = sub[r["measure"]].to_numpy(float) * (-1 if r["measure"] == "mc_choice-prob-renorm" else 1)
        mw = stats.mannwhitneyu(u[~correct], u[correct])
        assert r["accuracy"] == pytest.approx(correct.mean(), abs=1e-12)
        assert r["auroc"] == pytest.approx(mw.statistic / ((~correct).sum() * correct.sum()), abs=1e-12)
        assert r["auroc_p_value"] == pytest.approx(mw.pvalue, rel=1e-9)
        pb = stats.pointbiserialr(correct, u)
        assert r["pointbiserial_r"] == pytest.approx(pb.statistic, abs=1e-12)
        assert r["pointbiserial_p_value"] == pytest.approx(pb.pvalue, rel=1e-9)
    fam = grp["auroc_p_value"].to_numpy()
    assert np.allclose(grp["auroc_q_value"], M.bh_qvalues(fam))
    assert grp["q_family"].str.contains("group_by=topic x task=mc").all()


def test_preference_and_distribution_group_rows():
    df = grouped_table()
    gs, _ = groupings(df)
    pref = P.add_qvalues(G.preference_rows(df, gs, CFG))
    for _, r in pref[(pref["group_by"] == "topic") & pref["plurality_agreement"].notna()].iterrows():
        sub = df[df["topic"] == r["group"]]
        plural = [chr(65 + int(np.argmax(s))) for s in sub["Answer_Ratios"]]
        k = int((sub["cloze_pred"].to_numpy() == np.array(plural)).sum())
        bt = stats.binomtest(k, len(sub), 0.25)
        assert r["plurality_agreement"] == pytest.approx(k / len(sub), abs=1e-12)
        assert r["binom_p_value"] == pytest.approx(bt.pvalue, rel=1e-9)
        ci = bt.proportion_ci(method="exact")
        assert (r["plurality_ci_low"], r["plurality_ci_high"]) == pytest.approx((ci.low, ci.high), abs=1e-12)
    dist, items = G.distribution_rows(df, gs, CFG)
    grp = dist[(dist["group_by"] == "topic") & (dist["metric"] == "jsd") & (dist["predictor"] == "model")]
    assert set(grp["group"]) == {"alpha", "beta", "gamma"}
    small = dist[dist["group"] == "delta"]
    assert len(small) == 1 and small["n"].iloc[0] == 6 and "not computed" in small["note"].iloc[0]
    for _, r in grp.iterrows():
        sub = df[df["topic"] == r["group"]]
        ref = [distance.jensenshannon(np.exp(p) / np.exp(p).sum(), s / s.sum(), base=2) ** 2
               for p, s in zip(sub["mc_choice-pdf"], sub["Answer_Ratios"])]
        assert r["n"] == len(sub) and r["mean"] == pytest.approx(np.mean(ref), abs=1e-12)
    # the dataset_mean baseline stays the pooled leave-one-out mean: group means of its per-item JSD
    dm = dist[(dist["group_by"] == "topic") & (dist["metric"] == "jsd") & (dist["predictor"] == "dataset_mean")]
    a = dm[dm["group"] == "alpha"].iloc[0]
    rows = np.flatnonzero(df["topic"] == "alpha")
    assert a["mean"] == pytest.approx(items.set_index("item").loc[rows, "jsd_dataset_mean"].mean(), abs=1e-12)


# ---------------------------------------------------------------------------------------------
# heterogeneity


def test_cochran_q_and_fisher_z_against_independent_formula():
    df = grouped_table()
    gs, _ = groupings(df)
    al = G.alignment_rows(df, gs, CFG)
    het = pd.DataFrame(G.alignment_heterogeneity(al))
    row = het[(het["statistic"] == "alignment_spearman") & (het["measure"] == "mc_choice-ent")
              & (het["target"] == "human-ent")].iloc[0]
    z, w = [], []
    for lab in ("alpha", "beta", "gamma"):
        sub = df[df["topic"] == lab]
        z.append(np.arctanh(stats.spearmanr(sub["mc_choice-ent"], sub["human-ent"]).statistic))
        w.append((len(sub) - 3) / 1.06)
    z, w = np.array(z), np.array(w)
    q = np.sum(w * z**2) - np.sum(w * z) ** 2 / np.sum(w)  # the same Q, expanded
    assert row["k_groups"] == 3 and row["df"] == 2
    assert row["Q"] == pytest.approx(q, rel=1e-9)
    assert row["p_value"] == pytest.approx(stats.chi2.sf(q, 2), rel=1e-9)
    assert row["p_value"] < 1e-4  # strengths 3 / 0.5 / -1: the groups differ
    assert "1.06/(n-3)" in row["test"]


def test_cochran_q_null_is_uniform_and_has_power():
    """Spearman per group of k=6 groups from one bivariate normal: p roughly uniform; with
    different correlations: small p."""
    rng = np.random.default_rng(0)

    def p_value(rhos, n=60):
        z, v = [], []
        for rho in rhos:
            xy = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=n)
            z.append(np.arctanh(stats.spearmanr(xy[:, 0], xy[:, 1]).statistic))
            v.append(1.06 / (n - 3))
        return G.cochran_q(np.array(z), np.array(v))[2]

    null = np.array([p_value([0.4] * 6) for _ in range(300)])
    assert stats.kstest(null, "uniform").pvalue > 0.01  # measured 0.08
    assert 0.0 <= np.mean(null < 0.05) <= 0.15  # measured 0.04
    assert p_value([0.0, 0.0, 0.0, 0.7, 0.7, 0.7]) < 1e-4


def brute_delong(u, wrong):
    x, y = u[wrong], u[~wrong]
    psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), v10.var(ddof=1) / len(x) + v01.var(ddof=1) / len(y)


def test_delong_variance_vs_brute_force_and_bootstrap():
    rng = np.random.default_rng(3)
    u = np.round(rng.normal(size=150), 1)  # ties
    wrong = rng.uniform(size=150) < 1 / (1 + np.exp(-u))
    a, v = brute_delong(u, wrong)
    assert K.auroc(u, wrong) == pytest.approx(a, abs=1e-12)
    assert G.delong_variance(u, wrong) == pytest.approx(v, rel=1e-10)
    boot = []
    for _ in range(1000):
        i = rng.integers(0, 150, 150)
        boot.append(K.auroc(u[i], wrong[i]))
    assert 0.7 < np.var(boot) / v < 1.4  # measured 1.02


def test_auroc_heterogeneity_null_uniform_and_power():
    rng = np.random.default_rng(1)

    def p_value(shifts, n=80):
        est, var = [], []
        for s in shifts:
            u = rng.normal(size=n)
            wrong = rng.uniform(size=n) < 1 / (1 + np.exp(-s * u))
            est.append(K.auroc(u, wrong))
            var.append(G.delong_variance(u, wrong))
        return G.cochran_q(np.array(est), np.array(var))[2]

    null = np.array([p_value([1.0] * 5) for _ in range(300)])
    assert stats.kstest(null, "uniform").pvalue > 0.01  # measured 0.80
    assert 0.0 <= np.mean(null < 0.05) <= 0.15  # measured 0.07
    assert p_value([0.0, 0.0, 3.0, 3.0, 3.0], n=150) < 1e-4


def test_ece_permutation_group_ece_matches_and_null_power():
    rng = np.random.default_rng(2)
    conf = rng.uniform(size=300)
    correct = (rng.uniform(size=300) < conf).astype(float)
    codes = np.repeat([0, 1, 2], 100)
    _, _, e = G._permutation_ece(conf, correct, codes, np.empty((0, 300), int))
    for g in range(3):
        sel = codes == g
        assert e[g] == pytest.approx(K.calibration_errors(conf[sel], correct[sel])["ece_width10"], abs=1e-12)

    def p_value(overconfident):
        conf = rng.uniform(0.2, 1.0, size=300)
        truth = np.where(np.repeat(overconfident, 100), conf - 0.3, conf)
        correct = (rng.uniform(size=300) < truth).astype(float)
        perms = rng.permuted(np.tile(codes, (200, 1)), axis=1)
        t, tp, _ = G._permutation_ece(conf, correct, codes, perms)
        return (1 + np.sum(tp >= t - 1e-12)) / (1 + len(tp))

    null = np.array([p_value([False] * 3) for _ in range(60)])
    assert stats.kstest(null, "uniform").pvalue > 0.01  # measured 0.89
    assert p_value([False, False, True]) < 0.01  # measured 1/201, the smallest possible p


def test_item_heterogeneity_rows_vs_scipy():
    df = grouped_table()
    gs, _ = groupings(df)
    _, items = G.distribution_rows(df, gs, CFG)
    het = pd.DataFrame(G.item_heterogeneity(df, gs[0], CFG, items))
    correct = (df["cloze_pred"] == df["Correct_Answer"]).to_numpy()
    labs = ["alpha", "beta", "gamma"]
    table = np.array([[correct[df["topic"] == t].sum(), (~correct[df["topic"] == t]).sum()] for t in labs])
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = ((table - expected) ** 2 / expected).sum()
    acc = het[het["statistic"] == "accuracy"].iloc[0]
    assert acc["Q"] == pytest.approx(chi2, rel=1e-9) and acc["p_value"] == pytest.approx(stats.chi2.sf(chi2, 2))
    au = het[(het["statistic"] == "auroc") & (het["measure"] == "mc_choice-ent")].iloc[0]
    est, var = [], []
    for t in labs:
        sub = df["topic"] == t
        a, v = brute_delong(df.loc[sub, "mc_choice-ent"].to_numpy(float), ~correct[sub])
        est.append(a)
        var.append(v)
    w = 1 / np.array(var)
    q = np.sum(w * (np.array(est) - np.sum(w * est) / w.sum()) ** 2)
    assert au["k_groups"] == 3 and au["Q"] == pytest.approx(q, rel=1e-9)
    assert au["p_value"] == pytest.approx(stats.chi2.sf(q, 2), rel=1e-9)
    kw = het[het["statistic"] == "distribution_jsd"].iloc[0]
    ref = stats.kruskal(*[items.set_index("item").loc[np.flatnonzero(df["topic"] == t), "jsd_model"] for t in labs])
    assert kw["Q"] == pytest.approx(ref.statistic, rel=1e-9) and kw["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    ece = het[het["statistic"] == "ece_width10"]
    assert list(ece["measure"]) == ["mc_choice-ent", "mc_choice-prob-renorm"] and ece["p_value"].between(0, 1).all()


# ---------------------------------------------------------------------------------------------
# end to end through analyze_tables and the CLI, including bad input


def test_analyze_tables_grouped_outputs_and_bad_input(tmp_path):
    good = grouped_table(n_missing=4)
    single = grouped_table(seed=2, model="S_1B").assign(topic="only")
    lacking = grouped_table(seed=3, model="L_1B").drop(columns="topic")
    out = analyze_tables([good, single, lacking], tmp_path, dict(bootstrap=30, permutations=50, group_by="topic",
                                                                 min_group=10))
    for name in ("alignment", "calibration", "preference", "distribution", "heterogeneity", "groups", "compare"):
        assert (tmp_path / "analysis" / f"{name}.csv").exists(), name
    probs = " | ".join(out["problems"]["problem"])
    assert "toy/L_1B: group_by column 'topic' not found; available columns: " in probs and "mc_choice-ent" in probs
    assert "toy/S_1B: group_by=topic: one group only ('only')" in probs
    assert "toy/M_1B: group_by=topic: 4 items with a missing label dropped" in probs
    al = pd.read_csv(tmp_path / "analysis" / "alignment.csv")
    assert set(al.loc[al["model"] == "L_1B", "group"]) == {"all"}  # pooled rows still written
    assert set(al.loc[al["model"] == "S_1B", "group"]) == {"all", "only"}
    m = al[(al["model"] == "M_1B") & (al["group_by"] == "topic") & al["measure"].notna()]
    assert m["note"].str.contains("4 items with no 'topic' label left out of the groups").all()
    het = out["heterogeneity"]
    assert set(het["model"]) == {"M_1B", "S_1B"}
    assert het.loc[het["model"] == "S_1B", "p_value"].isna().all()  # one group: no test
    assert {"alignment_spearman", "auroc", "ece_width10", "accuracy", "plurality_agreement",
            "distribution_jsd"} <= set(het["statistic"])
    assert list(het.columns[:11]) == ["dataset", "model", "group_by", "statistic", "measure", "target", "k_groups",
                                      "n_items", "Q", "df", "p_value"]
    # compare.csv and the pooled figures use the pooled rows only
    assert (out["compare"]["n_pairs"].fillna(0) <= 3).all()
    assert (tmp_path / "figures" / "groups_auroc_toy_M_1B_topic.png").exists()
    report = (tmp_path / "report.md").read_text()
    assert "## Statistics by group (group_by = topic)" in report and "strongest 1" in report and "weakest 1" in report
    assert "4 items with a missing label dropped" in report and "dataset x model x group_by x statistic" in report
    assert "delta (n=" in report  # the small group is listed with its size


def test_cli_group_by(tmp_path):
    res = tmp_path / "res"
    res.mkdir()
    grouped_table().to_parquet(res / "toy__M_1B.parquet")
    r = subprocess.run([sys.executable, "-m", "jaxunc.analyze", f"--results={res}", f"--output_dir={tmp_path / 'o1'}",
                        "--group_by=subjekt"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "column 'subjekt' is in none of the tables; available columns:" in err[0]
    assert "topic" in err[0] and not (tmp_path / "o1").exists()  # refused before computing anything
    r = subprocess.run([sys.executable, "-m", "jaxunc.analyze", f"--results={res}", f"--output_dir={tmp_path / 'o2'}",
                        "--group_by=topic", "--min_group=10", "--bootstrap=20", "--permutations=20", "--figures=False"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    cal = pd.read_csv(tmp_path / "o2" / "analysis" / "calibration.csv")
    assert {"all", "alpha", "beta", "gamma", "delta"} == set(cal["group"])
    r = subprocess.run([sys.executable, "-m", "jaxunc.analyze", f"--results={res}", f"--output_dir={tmp_path / 'o3'}",
                        "--min_group=1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--min_group=1: expected >= 3" in r.stderr


def test_failing_group_and_id_like_column_are_reported():
    df = grouped_table()
    df["item"] = np.arange(len(df))
    probs = []
    gs = G.groupings_of(df, AnalysisConfig(group_by="item,topic", min_group=10), "toy/M", probs)
    assert [g.column for g in gs] == ["topic"] and "is it a category column?" in probs[0]

    def flaky(d, c):
        if d["topic"].iloc[0] == "beta":
            raise RuntimeError("boom")
        return A.alignment_table(d, c)

    parts = pd.concat(G._per_group(flaky, df, gs, CFG, A.COLUMNS), ignore_index=True)
    bad = parts[parts["group"] == "beta"]
    assert len(bad) == 1 and "group failed: RuntimeError: boom" in bad["note"].iloc[0]
    assert {"alpha", "gamma"} <= set(parts["group"])
