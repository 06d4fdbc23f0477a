"""Distributional alignment (jaxunc.stats.distribution) against scipy and explicit computations."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from jaxunc.stats import distribution as D
from jaxunc.stats.config import AnalysisConfig


def random_pairs(seed=0, n_items=60, kmax=7):
    """Padded d, r [N, K] (some exact zeros), mask, lengths."""
    rng = np.random.default_rng(seed)
    n = rng.integers(2, kmax + 1, n_items)
    d = np.zeros((n_items, kmax))
    r = np.zeros((n_items, kmax))
    for i, k in enumerate(n):
        a, b = rng.dirichlet(np.ones(k) * 0.7), rng.dirichlet(np.ones(k))
        if i % 5 == 0:
            a[rng.integers(k)] = 0.0  # zero entries on either side
        if i % 7 == 0:
            b[rng.integers(k)] = 0.0
        d[i, :k], r[i, :k] = a / a.sum(), b / b.sum()
    mask = np.arange(kmax)[None, :] < n[:, None]
    return d, r, mask, n


def test_jsd_tvd_hellinger_match_scipy():
    d, r, mask, n = random_pairs()
    got_j, got_t, got_h = D.jsd(d, r), D.tvd(d, r), D.hellinger(d, r)
    for i, k in enumerate(n):
        a, b = d[i, :k], r[i, :k]
        # scipy's jensenshannon is the distance (square root of the divergence)
        assert got_j[i] == pytest.approx(distance.jensenshannon(a, b, base=2) ** 2, abs=1e-12)
        assert got_t[i] == pytest.approx(distance.cityblock(a, b) / 2, abs=1e-12)
        assert got_h[i] == pytest.approx(distance.euclidean(np.sqrt(a), np.sqrt(b)) / np.sqrt(2), abs=1e-12)
    assert (got_j >= 0).all() and (got_j <= 1).all()
    onehot = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    assert D.jsd(*onehot)[0] == pytest.approx(1.0) and D.tvd(*onehot)[0] == 1.0 and D.hellinger(*onehot)[0] == 1.0


def test_kl_with_stated_smoothing_matches_scipy_entropy():
    d, r, mask, n = random_pairs(1)
    got = D.kl_human_model(r, d, mask)
    for i, k in enumerate(n):
        smooth = np.maximum(d[i, :k], D.KL_EPS)
        smooth /= smooth.sum()
        assert got[i] == pytest.approx(stats.entropy(r[i, :k], smooth), abs=1e-10)  # nats
    # unsmoothed KL is infinite where d = 0 and r > 0; the floor keeps it finite and near ln(1/eps)
    worst = D.kl_human_model(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), np.ones((1, 2), bool))[0]
    assert np.isfinite(worst) and worst == pytest.approx(np.log((1 + D.KL_EPS) / D.KL_EPS), rel=1e-9)


def test_wasserstein_and_representativeness_match_scipy():
    d, r, mask, n = random_pairs(2)
    rng = np.random.default_rng(3)
    x_pos = np.tile(np.arange(d.shape[1], dtype=float), (len(d), 1))
    x_val = np.where(mask, rng.permutation(d.shape[1] * len(d)).reshape(d.shape) * 0.5, 0.0)  # distinct, unsorted
    for x in (x_pos, x_val):
        w1, wmax = D.wasserstein1(d, r, x, mask)
        rep = D.representativeness(d, r, x, mask)
        for i, k in enumerate(n):
            xs = x[i, :k]
            ref = stats.wasserstein_distance(xs, xs, d[i, :k], r[i, :k])
            e0, e1 = np.eye(k)[np.argmin(xs)], np.eye(k)[np.argmax(xs)]
            ref_max = stats.wasserstein_distance(xs, xs, e0, e1)  # OpinionQA's W1_max
            assert w1[i] == pytest.approx(ref, abs=1e-12)
            assert wmax[i] == pytest.approx(ref_max, abs=1e-12)
            assert rep[i] == pytest.approx(1 - ref / ref_max, abs=1e-12)
    assert (D.wasserstein1(d, r, x_pos, mask)[1] == n - 1).all()  # positions: W1_max = n - 1


def test_top1_agree_with_ties():
    mask = np.ones((3, 4), bool)
    d = np.array([[0.25] * 4, [0.7, 0.1, 0.1, 0.1], [0.4, 0.4, 0.1, 0.1]])
    r = np.array([[0.1, 0.6, 0.2, 0.1], [0.1, 0.6, 0.2, 0.1], [0.5, 0.5, 0.0, 0.0]])
    # uniform: chance 1/n; disagreement: 0; two tied maxima on both sides, both shared: 2 / (2 * 2)
    assert D.top1_agree(d, r, mask).tolist() == [0.25, 0.0, 0.5]


def test_leave_one_out_dataset_mean():
    d, r, mask, n = random_pairs(4, n_items=30, kmax=4)
    ok = np.ones(len(r), bool)
    ok[3] = False
    mean, defined = D.loo_group_mean(r, n, ok)
    for i in range(len(r)):
        others = [j for j in range(len(r)) if j != i and ok[j] and n[j] == n[i]]
        if not ok[i] or not others:
            assert not defined[i]
            continue
        assert defined[i] and np.allclose(mean[i], r[others].mean(axis=0), atol=1e-12)
        assert mean[i, : n[i]].sum() == pytest.approx(1.0)


def test_paired_bootstrap_p_value_on_a_known_difference():
    """Diffs with sample mean delta and sd sigma exactly: z = delta / (sigma / sqrt(N)) = 2, so the
    two-sided p-value should be close to the normal 2 (1 - Phi(2)) = 0.0455."""
    n_items, sigma, B = 400, 0.1, 4000
    rng = np.random.default_rng(5)
    e = rng.normal(size=n_items)
    e = (e - e.mean()) / e.std()
    delta = 2 * sigma / np.sqrt(n_items)
    base = rng.uniform(0.2, 0.4, n_items)
    model = base + delta + sigma * e
    vals = {"jsd": np.column_stack([model, base, model - 0.05])}
    cfg = AnalysisConfig(bootstrap=B)
    idx = np.arange(n_items)
    out = D._summaries(vals, idx, cfg, np.random.default_rng(7))
    cnt, dmean, lo, hi, p = out[("jsd", 1, "diff")]
    assert cnt == n_items and dmean == pytest.approx(delta, abs=1e-12)
    normal_p = 2 * stats.norm.sf(2.0)
    assert abs(p - normal_p) < 0.012  # Monte Carlo sd ~0.0033 at B = 4000, plus bootstrap-vs-normal error
    se = sigma / np.sqrt(n_items)
    assert lo == pytest.approx(delta - 1.96 * se, abs=0.2 * se) and hi == pytest.approx(delta + 1.96 * se, abs=0.2 * se)
    # shared resamples: a predictor equal to the model minus a constant gives a zero-width interval
    cnt, dmean, lo, hi, p = out[("jsd", 2, "diff")]
    assert dmean == pytest.approx(0.05) and hi - lo < 1e-9 and p == pytest.approx(1 / (B + 1))
    # no difference at all: p = 1
    same = D._summaries({"jsd": np.column_stack([base, base, base])}, idx, cfg, np.random.default_rng(7))
    assert same[("jsd", 1, "diff")][4] == 1.0


def test_weighted_bootstrap_equals_explicit_resampling():
    rng_vals = np.random.default_rng(8)
    v = rng_vals.uniform(size=(50, 3))
    v[4, 2] = np.nan  # an undefined baseline value
    B = 200
    out = D._summaries({"tvd": v}, np.arange(50), AnalysisConfig(bootstrap=B), np.random.default_rng(9))
    idx = np.random.default_rng(9).integers(0, 50, size=(B, 50))  # bootstrap.count_matrix's draws
    boot = np.array([np.nanmean(v[i, 0] - v[i, 2]) for i in idx])
    obs = np.nanmean(v[:, 0] - v[:, 2])
    lo, hi = np.quantile(boot, [0.025, 0.975])
    _, dmean, dlo, dhi, p = out[("tvd", 2, "diff")]
    assert dmean == pytest.approx(obs) and dlo == pytest.approx(lo) and dhi == pytest.approx(hi)
    assert p == pytest.approx((1 + np.sum(np.abs(boot - obs) >= abs(obs))) / (B + 1))


def make_table(n_items=40, seed=0, kvals=(2, 3, 4), model_is_human=False):
    rng = np.random.default_rng(seed)
    n = rng.choice(kvals, n_items)
    shares = [rng.dirichlet(np.ones(k)) for k in n]
    pdf = [np.log(s) if model_is_human else np.log(rng.dirichlet(np.ones(len(s)))) - 0.3 for s in shares]
    return pd.DataFrame({"dataset": "toy", "model": "M_1B", "model_type": "base", "model_size": 1.0,
                         "Answers": [["o"] * k for k in n], "Answer_Ratios": shares, "mc_choice-pdf": pdf})


def test_table_rows_per_n_and_a_perfect_model():
    out, items = D.distribution_table(make_table(model_is_human=True), AnalysisConfig(bootstrap=50))
    assert set(out["n_options"]) == {"all", "2", "3", "4"}
    assert set(out["metric"]) == {"jsd", "tvd", "kl_human_model", "hellinger", "top1_agree"}  # nothing ordinal
    m = out[(out["predictor"] == "model") & (out["n_options"] == "all")].set_index("metric")["mean"]
    assert m["jsd"] == pytest.approx(0, abs=1e-12) and m["tvd"] == pytest.approx(0, abs=1e-12)
    assert m["top1_agree"] == 1.0
    u = out[(out["predictor"] == "uniform") & (out["metric"] == "jsd") & (out["n_options"] == "all")].iloc[0]
    assert u["model_better"] and u["p_value"] < 0.05 and "depends on n" in u["note"]
    assert len(items) == 40 and np.allclose(items["model_entropy"], items["human_entropy"])
    constant_n = D.distribution_table(make_table(kvals=(4,)), AnalysisConfig(bootstrap=0))[0]
    assert set(constant_n["n_options"]) == {"all"} and constant_n["ci_low"].isna().all()


def test_bad_items_are_dropped_with_reasons_never_a_crash():
    df = make_table(20)
    df.at[0, "Answer_Ratios"] = [0.0] * len(df.at[0, "Answer_Ratios"])   # all zero
    df.at[1, "Answer_Ratios"] = [np.nan] * len(df.at[1, "Answer_Ratios"])  # NaN
    df.at[2, "Answer_Ratios"] = [0.5, 0.3, 0.1, 0.05, 0.05]                # more shares than options
    df.at[3, "mc_choice-pdf"] = [-0.1]                                     # n = 1
    df.at[3, "Answers"], df.at[3, "Answer_Ratios"] = ["o"], [1.0]
    df.at[4, "mc_choice-pdf"] = None
    df.at[5, "Answer_Ratios"] = None
    df.at[6, "mc_choice-pdf"] = [np.nan] * len(df.at[6, "Answer_Ratios"])
    out, items = D.distribution_table(df, AnalysisConfig(bootstrap=20))
    row = out[(out["n_options"] == "all")].iloc[0]
    assert row["n_dropped"] == 7 and row["n"] == 13 and len(items) == 13
    for reason in ("1 x shares all zero, NaN or negative", "2 x shares all zero", "shares length differs",
                   "1 x n = 1", "mc_choice-pdf missing", "no human shares", "mc_choice-pdf NaN"):
        assert reason.split(" x ")[-1] in row["dropped"], (reason, row["dropped"])
    assert "2 x shares all zero, NaN or negative" in row["dropped"]
    no_pdf = D.distribution_table(df.drop(columns=["mc_choice-pdf"]))[0]
    assert len(no_pdf) == 1 and "no 'mc_choice-pdf'" in no_pdf["note"].iloc[0]
    assert D.distribution_table(df.drop(columns=["Answer_Ratios"]))[0].empty  # no human shares at all
    all_bad = df.assign(**{"mc_choice-pdf": [[-1.0]] * len(df)})  # every item has n = 1
    rows = D.distribution_table(all_bad)[0]
    assert len(rows) == 1 and rows["n"].iloc[0] == 0 and "20 x n = 1" in rows["dropped"].iloc[0]


def test_dataset_mean_alone_in_its_group_is_reported():
    df = make_table(12, kvals=(3,))
    df.loc[len(df)] = dict(df.iloc[0], Answers=["a", "b"], Answer_Ratios=[0.3, 0.7], **{"mc_choice-pdf": [-1.0, -0.5]})
    out = D.distribution_table(df, AnalysisConfig(bootstrap=0))[0]
    dm = out[(out["predictor"] == "dataset_mean") & (out["n_options"] == "all") & (out["metric"] == "jsd")].iloc[0]
    assert dm["n"] == 12 and "1 items alone in their n group" in dm["note"]
    assert out[(out["predictor"] == "model") & (out["n_options"] == "all")]["n"].iloc[0] == 13


def test_several_targets_and_ordinal_items_in_source_order():
    df = make_table(30, kvals=(4,))
    rng = np.random.default_rng(1)
    df["human_shares:G1"] = [rng.dirichlet(np.ones(4)) for _ in range(30)]
    df["human_shares:G2"] = [None] * 10 + [rng.dirichlet(np.ones(4)) for _ in range(20)]
    df["ordinal"] = [True] * 20 + [False] * 10
    out = D.distribution_table(df, AnalysisConfig(bootstrap=0))[0]
    assert set(out["target"]) == {"Answer_Ratios", "human_shares:G1", "human_shares:G2"}
    g2 = out[(out["target"] == "human_shares:G2") & (out["metric"] == "jsd")].iloc[0]
    assert g2["n"] == 20 and "10 x no human shares for this target" in g2["dropped"]
    rep = out[(out["metric"] == "representativeness") & (out["target"] == "Answer_Ratios")]
    assert (rep["n"] == 20).all() and "20 items flagged ordinal" in rep["note"].iloc[0]
    # shuffled presentation with its permutation gives the same representativeness (source order)
    perm = [list(rng.permutation(4)) for _ in range(30)]
    shuffled = df.copy()
    for c in ("Answer_Ratios", "human_shares:G1", "human_shares:G2", "mc_choice-pdf"):
        shuffled[c] = [None if v is None else np.asarray(v)[p] for v, p in zip(df[c], perm)]
    shuffled["option_permutation"] = perm
    rep2 = D.distribution_table(shuffled, AnalysisConfig(bootstrap=0))[0]
    key = ["target", "metric", "predictor", "n_options"]
    a = out[out["predictor"] != "dataset_mean"].set_index(key)["mean"]
    b = rep2[rep2["predictor"] != "dataset_mean"].set_index(key)["mean"]
    assert np.allclose(a, b.reindex(a.index), atol=1e-12)  # every metric invariant to the presentation order
    # OpinionQA-style support values: W1 over the values, W1_max = their range
    df["ordinal_values"] = [[1.0, 2.0, 3.0, 2.5]] * 30
    rep3 = D.distribution_table(df, AnalysisConfig(bootstrap=0))[0]
    r3 = rep3[(rep3["metric"] == "representativeness") & (rep3["predictor"] == "model")
              & (rep3["target"] == "Answer_Ratios")]["mean"].iloc[0]
    q = np.array([np.exp(v) / np.exp(v).sum() for v in df["mc_choice-pdf"][:20]])
    x = np.array([1.0, 2.0, 3.0, 2.5])
    ref = np.mean([1 - stats.wasserstein_distance(x, x, qi, ri) / 2.0 for qi, ri in zip(q, df["Answer_Ratios"][:20])])
    assert r3 == pytest.approx(ref, abs=1e-12)
