"""Alignment statistics vs scipy and explicit resampling; confound control; bad input."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from jaxunc.stats import alignment as A
from jaxunc.stats import bootstrap as bs
from jaxunc.stats import multitest as M
from jaxunc.stats.config import AnalysisConfig


def make_table(n=80, seed=0, n_opts=None, dataset="toy", model="m1"):
    rng = np.random.default_rng(seed)
    h = rng.uniform(size=n)
    k = n_opts if n_opts is not None else np.full(n, 4)
    return pd.DataFrame({
        "Answers": [["a"] * int(j) for j in k], "human-ent": h,
        "MC_Human_Prop_Correct": 1 - h + 0.3 * rng.normal(size=n),
        "mc_choice-ent": h + 0.5 * rng.normal(size=n),
        "mc_choice-prob": np.round(-h + 0.5 * rng.normal(size=n), 1),  # ties
        "dataset": dataset, "model": model, "model_type": "base", "model_size": 1.0})


def test_point_estimates_match_scipy():
    df = make_table()
    out = A.alignment_table(df, AnalysisConfig(bootstrap=50))
    for _, r in out.iterrows():
        x, y = df[r["measure"]], df[r["target"]]
        ref = {"spearman": stats.spearmanr, "pearson": stats.pearsonr, "kendall": stats.kendalltau}[r["method"]](x, y)
        assert r["coef"] == pytest.approx(ref.statistic, abs=1e-12)
        assert r["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
        assert r["coef_oriented"] == pytest.approx(r["coef"] * (-1 if r["measure"] == "mc_choice-prob" else 1))
    assert set(out["method"]) == {"spearman", "pearson", "kendall"}  # n constant: no partial / strata
    assert (out.loc[out["method"] != "kendall", "ci_method"] == "bootstrap_percentile_B=50").all()


def test_count_bootstrap_equals_explicit_resampling():
    rng = np.random.default_rng(3)
    n = 40
    x = np.round(rng.normal(size=(n, 3)), 1)
    y = np.column_stack([x[:, 0] + rng.normal(size=n), np.round(rng.normal(size=n), 1)])
    z = rng.integers(2, 6, n).astype(float)
    counts = bs.count_matrix(n, 5, np.random.default_rng(9))
    out = bs.bootstrap_corr(x, y, z, 5, np.random.default_rng(9))
    for b in range(5):
        i = np.repeat(np.arange(n), counts[b].astype(int))
        assert np.allclose(bs.weighted_ranks(x[:, 1], counts)[b][i], stats.rankdata(x[i, 1]))
        for m in range(3):
            for t in range(2):
                assert out["spearman"][b, m, t] == pytest.approx(stats.spearmanr(x[i, m], y[i, t]).statistic, abs=1e-12)
                assert out["pearson"][b, m, t] == pytest.approx(stats.pearsonr(x[i, m], y[i, t]).statistic, abs=1e-12)
                ref = A.partial_spearman(x[i, m], y[i, t], z[i])[0]
                assert out["partial_spearman"][b, m, t] == pytest.approx(ref, abs=1e-12)


def test_partial_spearman_is_residual_correlation():
    rng = np.random.default_rng(1)
    x, y, z = rng.normal(size=50), rng.normal(size=50), rng.integers(2, 6, 50)
    rx, ry, rz = (stats.rankdata(v) for v in (x, y, z))
    res = lambda a: a - np.polyval(np.polyfit(rz, a, 1), rz)  # noqa: E731
    assert A.partial_spearman(x, y, z)[0] == pytest.approx(stats.pearsonr(res(rx), res(ry)).statistic, abs=1e-12)


def test_confound_by_number_of_options():
    """Measure and human entropy both depend only on n: raw Spearman high, partial near 0."""
    rng = np.random.default_rng(0)
    n_opts = rng.integers(2, 10, 600)
    df = make_table(600, n_opts=n_opts)
    df["human-ent"] = np.log(n_opts) + 0.3 * rng.normal(size=600)
    df["mc_choice-ent"] = np.log(n_opts) + 0.3 * rng.normal(size=600)
    out = A.alignment_table(df[["Answers", "human-ent", "mc_choice-ent", "dataset", "model", "model_type",
                                "model_size"]], AnalysisConfig(bootstrap=100, reproduce_2025=True))
    get = lambda meth: out[out["method"] == meth].iloc[0]  # noqa: E731
    assert get("spearman")["coef"] > 0.7          # measured 0.83
    assert abs(get("partial_spearman")["coef"]) < 0.1  # measured ~0.0
    assert get("partial_spearman")["ci_low"] < 0 < get("partial_spearman")["ci_high"]
    strata = out[out["method"].str.startswith("stratified_spearman_n=")]
    assert len(strata) == 8 and strata["coef"].abs().max() < 0.35
    conf = get("pearson_2025_confounded")
    assert conf["target"] == "H(r)" and "CONFOUNDED" in conf["note"] and conf["coef"] > 0.7


def test_bootstrap_interval_coverage():
    """95% percentile intervals cover the population Spearman (6/pi) asin(rho/2) about 95% of the time."""
    rho = 0.5
    truth = 6 / np.pi * np.arcsin(rho / 2)
    rng = np.random.default_rng(5)
    hits = 0
    reps = 60
    for r in range(reps):
        xy = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=80)
        b = bs.bootstrap_corr(xy[:, :1], xy[:, 1], None, 300, np.random.default_rng(r))
        lo, hi = bs.percentile_ci(b["spearman"][:, 0, 0])
        hits += lo <= truth <= hi
    assert 0.85 <= hits / reps <= 1.0  # measured 0.93


def test_nan_dropped_and_counted_constant_and_tiny():
    df = make_table(30)
    df.loc[[0, 1, 2], "mc_choice-ent"] = np.nan
    df["mc_total-ent"] = 0.5
    out = A.alignment_table(df, AnalysisConfig(bootstrap=20))
    r = out[(out["measure"] == "mc_choice-ent") & (out["method"] == "spearman") & (out["target"] == "human-ent")].iloc[0]
    assert (r["n"], r["n_dropped"]) == (27, 3)
    ok = df["mc_choice-ent"].notna()
    assert r["coef"] == pytest.approx(stats.spearmanr(df.loc[ok, "mc_choice-ent"], df.loc[ok, "human-ent"]).statistic)
    c = out[out["measure"] == "mc_total-ent"]
    assert c["coef"].isna().all() and (c["note"] == "constant measure").all()
    tiny = A.alignment_table(make_table(2), AnalysisConfig(bootstrap=20))
    assert tiny["coef"].isna().all() and tiny["note"].str.contains("fewer than 3").all()


def test_qvalues_bh_and_bonferroni():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.2])
    # BH by hand: sorted p 0.01, 0.03, 0.04, 0.2 (m = 4) -> p*m/rank = 0.04, 0.06, 0.0533, 0.2, then running min from the top
    assert np.allclose(M.bh_qvalues(p), [0.04, 0.0533333, 0.0533333, np.nan, 0.2], equal_nan=True, atol=1e-6)
    assert np.allclose(M.bonferroni(p), [0.04, 0.16, 0.12, np.nan, 0.8], equal_nan=True)
    tab = A.alignment_tables([make_table(seed=1), make_table(seed=2, model="m2")], AnalysisConfig(bootstrap=0))
    fam = tab[tab["method"] == "spearman"]
    assert np.allclose(fam["q_value"], M.bh_qvalues(fam["p_value"].to_numpy()))
