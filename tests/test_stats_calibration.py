"""Calibration metrics vs float64 brute force, scipy identities and explicit resampling."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from jaxunc.stats import bootstrap as bs
from jaxunc.stats import calibration as K
from jaxunc.stats.config import AnalysisConfig


def brute_ece(conf, correct, edges):
    """Loop over bins [e_k, e_{k+1}) (last bin closed)."""
    total, gaps, sq = 0.0, [], 0.0
    for k in range(len(edges) - 1):
        last = k == len(edges) - 2
        sel = [(edges[k] <= c < edges[k + 1]) or (last and c == edges[-1]) for c in conf]
        sel = np.array(sel)
        if sel.sum():
            g = abs(correct[sel].mean() - conf[sel].mean())
            total += sel.sum() / len(conf) * g
            sq += sel.sum() / len(conf) * g * g
            gaps.append(g)
    return total, max(gaps), np.sqrt(sq)


def test_ece_width_mass_mce_rms_brier_vs_brute_force():
    rng = np.random.default_rng(0)
    conf = np.r_[rng.uniform(size=300), 1.0, 0.0]
    correct = (rng.uniform(size=302) < conf).astype(float)
    got = K.calibration_errors(conf, correct)
    e, mce, rms = brute_ece(conf, correct, np.linspace(0, 1, 11))
    assert got["ece_width10"] == pytest.approx(e, abs=1e-12)
    assert got["mce"] == pytest.approx(mce, abs=1e-12)
    assert got["rms"] == pytest.approx(rms, abs=1e-12)
    assert got["brier"] == pytest.approx(np.mean((conf - correct) ** 2), abs=1e-12)
    order = np.argsort(conf, kind="stable")
    mass = sum(len(p) / 302 * abs(correct[p].mean() - conf[p].mean()) for p in np.array_split(order, 10))
    assert got["ece_mass10"] == pytest.approx(mass, abs=1e-12)
    # sweep: bin accuracies monotone at the chosen count, not at the next
    b = got["ece_sweep_bins"]
    accs = lambda k: [correct[p].mean() for p in np.array_split(order, k)]  # noqa: E731
    assert np.all(np.diff(accs(b)) >= 0) and (b == 302 or np.any(np.diff(accs(b + 1)) < 0))


def test_perfectly_calibrated_large_sample_has_small_ece():
    rng = np.random.default_rng(1)
    conf = rng.uniform(size=200000)
    correct = (rng.uniform(size=conf.size) < conf).astype(float)
    assert K.calibration_errors(conf, correct)["ece_width10"] < 0.01  # measured ~0.002


def test_auroc_mann_whitney_identity_and_aurc():
    rng = np.random.default_rng(2)
    u = np.round(rng.normal(size=200), 1)
    wrong = rng.uniform(size=200) < 1 / (1 + np.exp(-u))
    U = stats.mannwhitneyu(u[wrong], u[~wrong]).statistic
    assert K.auroc(u, wrong) == pytest.approx(U / (wrong.sum() * (~wrong).sum()), abs=1e-12)
    v = rng.normal(size=50)
    c = (rng.uniform(size=50) < 0.6).astype(float)
    order = np.argsort(v)
    brute = np.mean([1 - c[order[:k]].mean() for k in range(1, 51)])
    assert K.aurc(v, c) == pytest.approx(brute, abs=1e-12)


def test_bootstrap_correctness_equals_explicit_resampling():
    rng = np.random.default_rng(4)
    u = np.round(rng.normal(size=(30, 2)), 1)
    c = (rng.uniform(size=30) < 0.5).astype(float)
    out = K.bootstrap_correctness(u, c, 4, np.random.default_rng(7))
    counts = bs.count_matrix(30, 4, np.random.default_rng(7))
    for b in range(4):
        i = np.repeat(np.arange(30), counts[b].astype(int))
        for m in range(2):
            assert out["auroc"][b, m] == pytest.approx(K.auroc(u[i, m], c[i] == 0), abs=1e-12)
            assert out["pointbiserial_r"][b, m] == pytest.approx(stats.pointbiserialr(c[i], u[i, m]).statistic, abs=1e-12)
            assert out["spearman_r"][b, m] == pytest.approx(stats.spearmanr(c[i], u[i, m]).statistic, abs=1e-12)


def test_wilson_interval_formula():
    k, n, z = 30, 50, stats.norm.ppf(0.975)
    p = k / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert K.wilson_interval(k, n) == pytest.approx((centre - half, centre + half), abs=1e-9)


def test_jsd_shift_statistic_and_seeded_pvalue():
    rng = np.random.default_rng(3)
    u = rng.normal(size=400)
    gold = rng.integers(0, 4, 400)
    pred = np.where(u > 0, np.where(rng.uniform(size=400) < 0.5, 0, gold), gold)  # uncertain half drifts to A  # uncertain half answers at random
    t, p = K.jsd_shift_test(u, pred, gold, 200, np.random.default_rng(0))
    hi = (u - u.mean()) / u.std() > 0
    cnt = lambda a, s: np.bincount(a[s], minlength=4)  # noqa: E731
    ref = distance.jensenshannon(cnt(pred, hi), cnt(gold, hi), base=2) - distance.jensenshannon(
        cnt(pred, ~hi), cnt(gold, ~hi), base=2)
    assert t == pytest.approx(ref, abs=1e-12)
    assert p < 0.05
    assert (t, p) == K.jsd_shift_test(u, pred, gold, 200, np.random.default_rng(0))


def test_calibration_table_columns_and_maps():
    rng = np.random.default_rng(0)
    n = 60
    logits = rng.normal(size=(n, 4))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    df = pd.DataFrame({"Answers": [["a"] * 4] * n, "Correct_Answer": list("ABCD" * 15),
                       "cloze_pred": [chr(65 + i) for i in probs.argmax(1)],
                       "mc_choice-prob-renorm": probs.max(1), "mc_top-p-len-0.9": rng.integers(1, 5, n),
                       "fr_ppl": rng.uniform(1, 3, n), "fr_correct?": ["Y", "N", "?"] * 20,
                       "dataset": "toy", "model": "m", "model_type": "base", "model_size": 1})
    cal, rel = K.calibration_table(df, AnalysisConfig(bootstrap=30, permutations=50))
    r = cal.set_index("measure")
    assert r.loc["mc_choice-prob-renorm", "confidence_map"] == "identity"
    assert np.isnan(r.loc["mc_top-p-len-0.9", "ece_width10"]) and "no ECE" in r.loc["mc_top-p-len-0.9", "note"]
    assert r.loc["fr_ppl", "confidence_map"] == "inverse" and r.loc["fr_ppl", "n_ungraded"] == 20
    assert r.loc["fr_ppl", "n"] == 40 and r.loc["fr_ppl", "correctness_source"] == "hand_graded"
    assert rel[rel["measure"] == "mc_choice-prob-renorm"]["count"].sum() == n
    assert rel[rel["measure"] == "fr_ppl"]["count"].sum() == 40
