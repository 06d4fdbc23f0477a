"""Preference statistics vs brute force and scipy."""

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from jaxunc.stats import preference as P


def brute_distance(a, b):
    d = 0.0
    pairs = list(itertools.combinations(range(len(a)), 2))
    for i, j in pairs:
        sa, sb = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
        if sa * sb < 0:
            d += 1
        elif (sa == 0) != (sb == 0):
            d += 0.5
    return d / len(pairs)


def test_kendall_distance_vs_tau_and_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.normal(size=6), rng.normal(size=6)
        # without ties the distance is (1 - tau) / 2
        assert P.kendall_tau_distance(a, b) == pytest.approx((1 - stats.kendalltau(a, b).statistic) / 2, abs=1e-12)
        a2, b2 = np.round(a), np.round(b)
        assert P.kendall_tau_distance(a2, b2) == pytest.approx(brute_distance(a2, b2), abs=1e-12)
    assert P.kendall_tau_distance([1, 2, 3], [3, 2, 1]) == 1.0
    assert P.kendall_tau_distance([0.5, 0.5], [0.2, 0.8]) == 0.5


def test_preference_table():
    rng = np.random.default_rng(1)
    n = 200
    k = rng.integers(2, 6, n)
    shares = [rng.dirichlet(np.ones(j)) for j in k]
    pdf = [np.log(s + 0.05 * rng.uniform(size=len(s))) for s in shares]
    pred = [chr(65 + int(np.argmax(p))) for p in pdf]
    df = pd.DataFrame({"Answers": [["x"] * j for j in k], "Answer_Ratios": shares, "mc_choice-pdf": pdf,
                       "cloze_pred": pred, "dataset": "toy", "model": "m", "model_type": "base", "model_size": 1})
    row = P.preference_tables([df]).iloc[0]
    agree = np.mean([np.argmax(s) == np.argmax(p) for s, p in zip(shares, pdf)])
    assert row["plurality_agreement"] == pytest.approx(agree)
    assert row["chance"] == pytest.approx(np.mean(1 / k))
    assert row["binom_p_value"] == pytest.approx(stats.binomtest(int(agree * n), n, np.mean(1 / k)).pvalue)
    d = [brute_distance(s, np.exp(p) / np.exp(p).sum()) for s, p in zip(shares, pdf)]
    assert row["kendall_distance_mean"] == pytest.approx(np.mean(d)) and row["kendall_distance_mean"] < 0.3
    assert row["positional_reference"] == "plurality_label"
    assert row["positional_p_value"] > 0.001  # predictions follow the plurality: no positional bias


def test_missing_shares_gives_note_not_crash():
    df = pd.DataFrame({"Answers": [["a", "b"]] * 5, "cloze_pred": list("ABABA"), "Correct_Answer": list("AABBA"),
                       "dataset": "toy", "model": "m", "model_type": "base", "model_size": 1})
    row = P.preference_tables([df]).iloc[0]
    assert "no human shares" in row["note"] and np.isfinite(row["positional_p_value"])
