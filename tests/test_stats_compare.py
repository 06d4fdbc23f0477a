"""Across-model comparisons, ridge CV and temperature scaling vs independent computations."""

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from jaxunc.stats import compare as X
from jaxunc.stats import temperature as TS


def test_rank_biserial_and_wilcoxon():
    rng = np.random.default_rng(0)
    d = rng.normal(0.3, 1, 12)
    wplus = stats.wilcoxon(d, alternative="greater").statistic  # W+ (sum of ranks of positive d)
    total = 12 * 13 / 2
    assert X.rank_biserial(d) == pytest.approx((wplus - (total - wplus)) / total, abs=1e-12)
    models = [f"M{i}" for i in range(12)]
    vals = pd.DataFrame({"model": models + [m + "_Ins" for m in models], "model_type": ["base"] * 12 + ["ins"] * 12,
                         "value": np.r_[d, np.zeros(12)], "model_size": 1})
    res = X.base_vs_instruct(vals)
    assert res["n_pairs"] == 12 and res["p_value"] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert res["effect_size"] == pytest.approx(X.rank_biserial(d))
    assert X.family_key("Llama_2_7B_Chat") == "Llama_2_7B" and X.family_key("gemma-2b-it") == "gemma-2b"


def test_ridge_cv_predicts_signal_and_not_noise():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 5))
    y = x @ np.array([1.0, -0.5, 0, 0, 0]) + 0.5 * rng.normal(size=300)
    pred, _ = X.cv_ridge(x, y, 5, 1.0, np.random.default_rng(0))
    r2 = 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)
    assert r2 > 0.7  # measured ~0.82
    noise = rng.normal(size=300)
    pred, alphas = X.cv_ridge(x, noise, 5, None, np.random.default_rng(0))
    assert 1 - np.sum((noise - pred) ** 2) / np.sum((noise - noise.mean()) ** 2) < 0.02  # out of fold: no fit to noise
    assert min(alphas) >= 10  # inner CV shrinks hard on pure noise
    w, b = X.ridge_fit(x, y, 0.0)
    ref = np.linalg.lstsq(np.column_stack([x, np.ones(300)]), y, rcond=None)[0]
    assert np.allclose(np.r_[w, b], ref)
    # SVD path == closed form on standardised columns, for every alpha
    xs = (x - x.mean(0)) / x.std(0)
    for j, a in enumerate((0.5, 50.0)):
        w, b = X.ridge_fit(xs, y, a)
        assert np.allclose(X.ridge_path(x, y, (0.5, 50.0))(x[:7])[:, j], xs[:7] @ w + b)


def test_temperature_fit_matches_scipy_minimiser():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(400, 4)) * 3
    logits[:100, 3] = -np.inf  # padding of 3-option items
    p = np.exp(logits / 3.0 - np.max(logits / 3.0, axis=1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = np.array([rng.choice(4, p=q) for q in p])  # true temperature 3
    t = TS.fit_temperature(logits, y)
    ref = optimize.minimize_scalar(lambda lt: TS.nll(logits, y, np.exp(lt)), bounds=(-3, 3), method="bounded").x
    assert t == pytest.approx(np.exp(ref), rel=1e-2)  # float32 Adam vs float64 minimiser
    assert 2.0 < t < 4.5
