"""Answer-preference alignment (docs/analyses.md section 2).

- plurality agreement: share of items with cloze_pred == argmax_j r_j (ties: lowest index, counted);
  chance = mean over items of 1/n; exact two-sided binomial test (scipy.stats.binomtest);
- ordering agreement: per item, normalised Kendall tau distance between r and softmax(mc_choice-pdf)
  = (discordant pairs + 0.5 * pairs tied in exactly one of the two) / all pairs; 0.5 = chance;
- positional bias: chi-square test of homogeneity (scipy.stats.chi2_contingency) between the
  counts of predicted labels and of reference labels (correct label if known, else plurality).
Plurality agreement has an exact (Clopper-Pearson) interval; `binom_q_value` and `positional_q_value`
per family (add_qvalues: dataset over models; group rows dataset x model x group_by over groups).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from jaxunc.stats import tables as T
from jaxunc.stats.multitest import family_qvalues

COLUMNS = ["dataset", "model", "model_type", "model_size", "group_by", "group", "n", "n_dropped",
           "plurality_agreement", "plurality_ci_low", "plurality_ci_high", "plurality_ci_method",
           "chance", "binom_p_value", "binom_test", "binom_q_value", "n_plurality_ties", "kendall_distance_mean",
           "kendall_distance_sd", "kendall_n", "positional_chi2", "positional_dof", "positional_p_value",
           "positional_reference", "positional_test", "pred_label_counts", "reference_label_counts", "positional_q_value", "q_method", "q_family", "note"]


def kendall_tau_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised Kendall tau distance of two score vectors (ties in one of them count 1/2).

    Pairs tied in both are concordant. Returns NaN for fewer than 2 entries.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    k = len(a)
    if k < 2:
        return np.nan
    i, j = np.triu_indices(k, 1)
    sa, sb = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    disc = (sa * sb < 0).sum() + 0.5 * ((sa == 0) ^ (sb == 0)).sum()
    return float(disc / len(i))


def _softmax(l: np.ndarray) -> np.ndarray:
    l = np.asarray(l, float)
    e = np.exp(l - np.max(l))
    return e / e.sum()


def preference_table(df: pd.DataFrame) -> dict:
    """One row (dict) of preference statistics for one table."""
    row = dict(dataset=df["dataset"].iloc[0], model=df["model"].iloc[0], model_type=df["model_type"].iloc[0],
               model_size=df["model_size"].iloc[0], group_by=T.POOLED_BY, group=T.POOLED_GROUP, note="")
    notes = []
    if "cloze_pred" not in df.columns:
        row["note"] = "missing column 'cloze_pred'"
        return row
    pred = df["cloze_pred"].map(T.label_index).to_numpy()
    nopt = T.n_options(df)
    has_shares = "Answer_Ratios" in df.columns and df["Answer_Ratios"].notna().any()
    if has_shares:
        shares = df["Answer_Ratios"].to_list()
        ok = np.array([s is not None and len(s) > 0 and np.all(np.isfinite(np.asarray(s, float)))
                       for s in shares]) & (pred >= 0)
        plural = np.array([int(np.argmax(s)) if o else -1 for s, o in zip(shares, ok)])
        ties = int(sum(o and np.sum(np.asarray(s) == np.max(s)) > 1 for s, o in zip(shares, ok)))
        agree = (pred[ok] == plural[ok])
        chance = float(np.mean(1.0 / nopt[ok]))
        k, n = int(agree.sum()), int(ok.sum())
        row.update(n=n, n_dropped=int(len(df) - n), plurality_agreement=k / n if n else np.nan,
                   chance=chance, n_plurality_ties=ties, binom_test="exact binomial vs chance, two-sided")
        if n:
            test = stats.binomtest(k, n, chance)
            ci = test.proportion_ci(confidence_level=0.95, method="exact")
            row.update(binom_p_value=float(test.pvalue), plurality_ci_low=float(ci.low),
                       plurality_ci_high=float(ci.high), plurality_ci_method="clopper_pearson_95")
        if "mc_choice-pdf" in df.columns:
            d = []
            for s, l, o in zip(shares, df["mc_choice-pdf"], ok):
                if o and l is not None and len(l) == len(s):
                    d.append(kendall_tau_distance(s, _softmax(l)))
            d = np.array([v for v in d if np.isfinite(v)])
            row.update(kendall_distance_mean=float(d.mean()) if len(d) else np.nan,
                       kendall_distance_sd=float(d.std(ddof=1)) if len(d) > 1 else np.nan, kendall_n=len(d))
        else:
            notes.append("no 'mc_choice-pdf': no ordering agreement")
    else:
        row.update(n=int((pred >= 0).sum()), n_dropped=int((pred < 0).sum()))
        notes.append("no human shares (Answer_Ratios): no plurality or ordering agreement")
        plural = np.full(len(df), -1)
    ref = df["Correct_Answer"].map(T.label_index).to_numpy() if "Correct_Answer" in df.columns else np.full(len(df), -1)
    ref_name = "correct_label"
    if (ref < 0).all():
        ref, ref_name = plural, "plurality_label"
    use = (pred >= 0) & (ref >= 0)
    if use.sum() >= 2:
        L = int(max(pred[use].max(), ref[use].max())) + 1
        tab = np.vstack([np.bincount(pred[use], minlength=L), np.bincount(ref[use], minlength=L)])
        tab = tab[:, tab.sum(axis=0) > 0]
        letters = [chr(65 + i) for i in range(L)]
        row.update(pred_label_counts=dict(zip(letters, np.bincount(pred[use], minlength=L).tolist())).__repr__(),
                   reference_label_counts=dict(zip(letters, np.bincount(ref[use], minlength=L).tolist())).__repr__(),
                   positional_reference=ref_name, positional_test="chi-square homogeneity (predicted vs reference labels)")
        if tab.shape[1] >= 2:
            res = stats.chi2_contingency(tab)
            row.update(positional_chi2=float(res.statistic), positional_dof=int(res.dof),
                       positional_p_value=float(res.pvalue))
        else:
            notes.append("one label only: no positional test")
    else:
        notes.append("no reference labels: no positional test")
    row["note"] = "; ".join(notes)
    return row


def add_qvalues(pref: pd.DataFrame, correction: str = "bh") -> pd.DataFrame:
    """binom_q_value and positional_q_value per family, named in `q_family`: pooled rows per dataset
    (all models), group rows per dataset x model x group_by (all groups)."""
    return family_qvalues(pref, {"binom_p_value": "binom_q_value", "positional_p_value": "positional_q_value"},
                          correction, ["dataset"], ["dataset", "model", T.GROUP_BY], "all models",
                          "all groups")[COLUMNS]


def preference_tables(tables: list[pd.DataFrame], correction: str = "bh") -> pd.DataFrame:
    """preference.csv: one row per table, with q-values."""
    return add_qvalues(pd.DataFrame([preference_table(t) for t in tables], columns=COLUMNS), correction)
