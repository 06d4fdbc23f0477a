"""Distributional alignment: the model's whole option distribution against the human one, per item.

Per item and human target: q = softmax over the item's n options of `mc_choice-pdf` (that column
holds l_j = log of the summed probability of option label j's variants over the whole vocabulary,
docs/measures.md 1, so softmax(l) is exactly the distribution renormalised over the options), and
r = the target's human shares renormalised to sum 1. Each predictor d (the model's q, `uniform`
1/n, `dataset_mean`) is scored against r with:

- `jsd`: Jensen-Shannon divergence, base 2: 0.5 sum d log2(d/m) + 0.5 sum r log2(r/m), m = (d+r)/2,
  in [0, 1] (0 log 0 = 0); scipy's jensenshannon is its square root;
- `tvd`: total variation 0.5 sum_j |d_j - r_j|, in [0, 1];
- `kl_human_model`: KL(r || d~) = sum_j r_j ln(r_j / d~_j) in nats, with the SMOOTHING d~ = max(d, 1e-6)
  renormalised to sum 1, applied to every predictor (an option humans chose that d gives 0 would
  make KL infinite; the floor caps a per-item value near ln(1e6) = 13.8);
- `hellinger`: sqrt(0.5 sum_j (sqrt d_j - sqrt r_j)^2), in [0, 1];
- `top1_agree`: agreement of the most likely options, |A_d & A_r| / (|A_d| |A_r|) with A the set of
  tied maxima: 1/0 without ties, the expected agreement under random tie-breaking with ties (so the
  uniform predictor scores 1/n);
- `representativeness` (items flagged `ordinal` only): OpinionQA's 1 - W1(d, r) / W1_max, W1 the
  Wasserstein-1 distance over the option positions x = 0..n-1 in the source's option order (undoing
  `option_permutation`), or over the item's `ordinal_values` when the table has them (OpinionQA's
  option_ordinal); W1 = sum_k |F_d(x_k) - F_r(x_k)| (x_{k+1} - x_k) over the sorted support,
  W1_max = max x - min x (= n - 1 for positions).

Predictors: `model` (q); `uniform` (1/n); `dataset_mean`: the mean human distribution, in
presentation order, of the OTHER valid items with the same n and target, (S_n - r_i) / (c_n - 1)
(leave-one-out; an item alone in its n group has none, counted in `note`).

Summaries (distribution.csv, long format): per dataset, model, target (`Answer_Ratios` and every
`human_shares:<group>` column), metric, predictor and `n_options` ('all' = pooled; with varying n
also one row per n = k, since the uniform-vs-model gap depends on n): mean over items; 95%
percentile bootstrap interval over items; all metrics and predictors share the resamples of a
table x target x n-stratum (bootstrap.count_matrix; strata resampled within themselves). For each
baseline, the paired difference D = mean(model) - mean(baseline) over items where both are defined,
its interval and a two-sided paired bootstrap p-value from the resampled differences D*_b shifted
to the null: p = (1 + #{b : |D*_b - D| >= |D|}) / (B + 1).

Bad items are dropped per target with a count and a reason (`n_dropped`, `dropped`): missing or
NaN `mc_choice-pdf`, n = 1, no shares for the target, shares whose length differs from the options,
shares all zero, NaN or negative. A table without `mc_choice-pdf`, and a target column without
any shares, give one row saying so (n = 0, `note`).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
from scipy.special import entr

from jaxunc import columns as C
from jaxunc.stats import bootstrap as bs
from jaxunc.stats import tables as T
from jaxunc.stats.config import AnalysisConfig
from jaxunc.stats.multitest import family_qvalues

KL_EPS = 1e-6
DEFAULT_TARGET = "Answer_Ratios"
TARGET_PREFIX = "human_shares:"
METRICS: dict[str, str] = {  # metric -> which direction is better
    "jsd": "lower", "tvd": "lower", "kl_human_model": "lower", "hellinger": "lower",
    "top1_agree": "higher", "representativeness": "higher",
}
PREDICTORS = ("model", "uniform", "dataset_mean")
KL_NOTE = f"KL(r || d~) in nats, d~ = max(d, {KL_EPS:g}) renormalised (every predictor)"
P_METHOD = "paired bootstrap, two-sided: p = (1 + #{|D*_b - D| >= |D|}) / (B + 1), D = model - predictor"
COLUMNS = ["dataset", "model", "model_type", "model_size", C.PAIR_COLUMN, "group_by", "group", "target", "metric",
           "better",
           "predictor", "n_options", "n", "mean", "ci_low", "ci_high", "ci_method", "n_paired",
           "diff_model_minus_predictor", "diff_ci_low", "diff_ci_high", "p_value", "p_method", "q_value",
           "q_method", "q_family",
           "model_better", "n_dropped", "dropped", "note"]
ITEM_COLUMNS = ["dataset", "model", "target", "item", "n_options", "model_entropy", "human_entropy",
                "jsd_model", "jsd_uniform", "jsd_dataset_mean"]

# ---------------------------------------------------------------------------------------------
# metrics on padded arrays: d, r [N, K] distributions (zeros beyond each item's n), mask [N, K]


def jsd(d: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence base 2 per row, in [0, 1]."""
    m = (d + r) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d > 0, d * np.log2(d / m), 0.0) + np.where(r > 0, r * np.log2(r / m), 0.0)
    return np.clip(0.5 * t.sum(axis=-1), 0.0, 1.0)


def tvd(d: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Total variation distance 0.5 sum |d - r| per row."""
    return 0.5 * np.abs(d - r).sum(axis=-1)


def kl_human_model(r: np.ndarray, d: np.ndarray, mask: np.ndarray, eps: float = KL_EPS) -> np.ndarray:
    """KL(r || d~) in nats, d~ = max(d, eps) on the item's options, renormalised."""
    ds = np.where(mask, np.maximum(d, eps), 0.0)
    ds /= ds.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r > 0, r * np.log(r / np.where(mask, ds, 1.0)), 0.0).sum(axis=-1)


def hellinger(d: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Hellinger distance sqrt(0.5 sum (sqrt d - sqrt r)^2) per row, in [0, 1]."""
    return np.clip(np.sqrt(0.5 * np.square(np.sqrt(d) - np.sqrt(r)).sum(axis=-1)), 0.0, 1.0)


def top1_agree(d: np.ndarray, r: np.ndarray, mask: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """|A_d & A_r| / (|A_d| |A_r|), A = options within tol of the row maximum (ties share credit)."""
    dm = np.where(mask, d, -np.inf)
    rm = np.where(mask, r, -np.inf)
    ad = dm >= dm.max(axis=-1, keepdims=True) - tol
    ar = rm >= rm.max(axis=-1, keepdims=True) - tol
    return (ad & ar).sum(axis=-1) / (ad.sum(axis=-1) * ar.sum(axis=-1))


def wasserstein1(d: np.ndarray, r: np.ndarray, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(W1(d, r) over support points x, W1_max = max x - min x) per row; padding is ignored."""
    xs = np.where(mask, x, np.inf)
    order = np.argsort(xs, axis=-1, kind="stable")
    xs = np.take_along_axis(xs, order, -1)
    fd = np.cumsum(np.take_along_axis(np.where(mask, d, 0.0), order, -1), axis=-1)
    fr = np.cumsum(np.take_along_axis(np.where(mask, r, 0.0), order, -1), axis=-1)
    with np.errstate(invalid="ignore"):
        gaps = np.diff(xs, axis=-1)
    gaps = np.where(np.isfinite(gaps), gaps, 0.0)
    w1 = (np.abs(fd - fr)[:, :-1] * gaps).sum(axis=-1)
    n = mask.sum(axis=-1)
    last = np.take_along_axis(xs, np.maximum(n - 1, 0)[:, None], -1)[:, 0]
    return w1, last - xs[:, 0]


def representativeness(d: np.ndarray, r: np.ndarray, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """1 - W1(d, r) / W1_max; NaN where all support points coincide."""
    w1, wmax = wasserstein1(d, r, x, mask)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(wmax > 0, 1.0 - w1 / wmax, np.nan)


def softmax_padded(l: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """softmax over each row's valid entries (padding -> 0; rows without any -> NaN)."""
    z = np.where(mask, l, -np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = z - z.max(axis=-1, keepdims=True)
        e = np.where(mask, np.exp(z), 0.0)
        return e / e.sum(axis=-1, keepdims=True)


def loo_group_mean(r: np.ndarray, n: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out mean of r over the other ok rows with the same n: (S_n - r_i) / (c_n - 1).

    Returns (means [N, K], defined [N]); rows alone in their n group (or not ok) are undefined."""
    out = np.zeros_like(r)
    defined = np.zeros(len(r), bool)
    for k in np.unique(n[ok]):
        g = ok & (n == k)
        c = int(g.sum())
        if c < 2:
            continue
        s = r[g].sum(axis=0)
        out[g] = (s[None, :] - r[g]) / (c - 1)
        defined[g] = True
    return out, defined


# ---------------------------------------------------------------------------------------------
# reading one table


def _vector(value) -> np.ndarray | None:
    """A list / array cell as float64, None for missing or non-list cells."""
    if value is None or isinstance(value, (str, bytes, dict)):
        return None
    if np.ndim(value) == 0:
        return None
    try:
        return np.asarray(value, dtype=float).ravel()
    except (TypeError, ValueError):
        return None


def _pad(cells: list, k: int) -> tuple[np.ndarray, np.ndarray]:
    """[N, k] float array (NaN padding) and lengths (-1 for unreadable cells)."""
    out = np.full((len(cells), k), np.nan)
    lengths = np.full(len(cells), -1, int)
    for i, v in enumerate(cells):
        if v is not None and 0 < len(v) <= k:
            out[i, : len(v)] = v
            lengths[i] = len(v)
    return out, lengths


def target_columns(df: pd.DataFrame) -> list[str]:
    """Human share columns: `Answer_Ratios` (the default target) and every `human_shares:<group>`."""
    cols = [DEFAULT_TARGET] if DEFAULT_TARGET in df.columns else []
    return cols + sorted(c for c in df.columns if str(c).startswith(TARGET_PREFIX))


def _model_side(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """q [N, K], mask [N, K], n [N] (0 where unusable) and a reason per item ('' = fine)."""
    pdf = [_vector(v) for v in df["mc_choice-pdf"]]
    k = max([len(v) for v in pdf if v is not None] + [1])
    l, n = _pad(pdf, k)
    reasons = [""] * len(df)
    answers = df["Answers"].tolist() if "Answers" in df.columns else None
    for i, v in enumerate(pdf):
        if v is None or len(v) == 0:
            reasons[i] = "mc_choice-pdf missing or not a list"
        elif np.isnan(v).any() or np.isposinf(v).any() or np.isneginf(v).all():
            reasons[i] = "mc_choice-pdf NaN, +inf or all -inf"
        elif len(v) == 1:
            reasons[i] = "n = 1"
        elif answers is not None and _vector_len(answers[i]) not in (None, len(v)):
            reasons[i] = "Answers length differs from mc_choice-pdf"
    bad = np.array([bool(x) for x in reasons])
    n = np.where(bad, 0, n)
    mask = np.arange(k)[None, :] < n[:, None]
    q = softmax_padded(np.nan_to_num(l, nan=-np.inf), mask)
    q[bad] = 0.0
    return q, mask, n, reasons


def _vector_len(value) -> int | None:
    try:
        return None if value is None or np.ndim(value) == 0 else len(value)
    except TypeError:
        return None


def _human_side(df: pd.DataFrame, col: str, n: np.ndarray, model_reasons: list[str], k: int
                ) -> tuple[np.ndarray, list[str]]:
    """r [N, k] renormalised shares of one target and a reason per item ('' = usable)."""
    cells = [_vector(v) for v in df[col]]
    reasons = list(model_reasons)
    r = np.zeros((len(df), k))
    for i, v in enumerate(cells):
        if reasons[i]:
            continue
        if v is None:
            reasons[i] = "no human shares for this target"
        elif len(v) != n[i]:
            reasons[i] = "shares length differs from the options (mc_choice-pdf)"
        elif not np.isfinite(v).all() or (v < 0).any() or v.sum() <= 0:
            reasons[i] = "shares all zero, NaN or negative"
        else:
            r[i, : len(v)] = v / v.sum()
    return r, reasons


def _support(df: pd.DataFrame, n: np.ndarray, k: int) -> tuple[np.ndarray, list[str]]:
    """Ordinal support points x [N, k] and a reason per item where they are unusable."""
    x = np.tile(np.arange(k, dtype=float), (len(df), 1))
    reasons = [""] * len(df)
    perms = df["option_permutation"].tolist() if "option_permutation" in df.columns else [None] * len(df)
    values = df["ordinal_values"].tolist() if "ordinal_values" in df.columns else [None] * len(df)
    for i in range(len(df)):
        v, p = _vector(values[i]), _vector(perms[i])
        if v is not None:
            if len(v) != n[i] or not np.isfinite(v).all():
                reasons[i] = "ordinal_values length differs from the options or NaN"
            else:
                x[i, : n[i]] = v
        elif p is not None and len(p) == n[i]:
            x[i, : n[i]] = p  # presentation position j shows source option p[j]
    return x, reasons


def _ordinal_flags(df: pd.DataFrame) -> np.ndarray:
    """The per-item `ordinal` flag (True / 1); missing or absent -> False."""
    if "ordinal" not in df.columns:
        return np.zeros(len(df), bool)

    def flag(v) -> bool:
        if v is None or (np.ndim(v) == 0 and pd.isna(v)) or isinstance(v, str):
            return False
        return bool(v == 1)

    return np.array([flag(v) for v in df["ordinal"].astype(object)], bool)


def item_metrics(df: pd.DataFrame, col: str, q: np.ndarray, mask: np.ndarray, n: np.ndarray,
                 model_reasons: list[str]) -> dict:
    """Per-item metric values [N, P] (P = PREDICTORS, NaN where undefined) for one target."""
    k = q.shape[1]
    r, reasons = _human_side(df, col, n, model_reasons, k)
    ok = np.array([not x for x in reasons], bool)
    u = np.where(mask, 1.0 / np.maximum(n, 1)[:, None], 0.0)
    dm, has_mean = loo_group_mean(r, n, ok)
    preds = {"model": q, "uniform": u, "dataset_mean": dm}
    defined = {"model": ok, "uniform": ok, "dataset_mean": ok & has_mean}
    ordinal = _ordinal_flags(df) & ok
    x, xreasons = _support(df, n, k) if ordinal.any() else (None, [""] * len(df))
    ord_ok = ordinal & np.array([not s for s in xreasons])
    vals = {m: np.full((len(df), len(PREDICTORS)), np.nan) for m in METRICS}
    for j, p in enumerate(PREDICTORS):
        d, use = preds[p], defined[p]
        if not use.any():
            continue
        vals["jsd"][use, j] = jsd(d[use], r[use])
        vals["tvd"][use, j] = tvd(d[use], r[use])
        vals["kl_human_model"][use, j] = kl_human_model(r[use], d[use], mask[use])
        vals["hellinger"][use, j] = hellinger(d[use], r[use])
        vals["top1_agree"][use, j] = top1_agree(d[use], r[use], mask[use])
        uo = use & ord_ok
        if uo.any():
            vals["representativeness"][uo, j] = representativeness(d[uo], r[uo], x[uo], mask[uo])
    if not ordinal.any():
        del vals["representativeness"]
    return dict(values=vals, ok=ok, reasons=reasons, r=r, n_no_baseline=int((ok & ~has_mean).sum()),
                n_ordinal=int(ordinal.sum()), n_bad_ordinal=int((ordinal & ~ord_ok).sum()))


# ---------------------------------------------------------------------------------------------
# summaries


def _rng(cfg: AnalysisConfig, *keys):
    from jaxunc.stats.alignment import _rng as rng
    return rng(cfg, *keys)


def _summaries(vals: dict[str, np.ndarray], idx: np.ndarray, cfg: AnalysisConfig, rng) -> dict:
    """Means, intervals, paired differences and p-values over the items idx, shared resamples."""
    metrics = list(vals)
    P = len(PREDICTORS)
    cols, kinds = [], []  # value columns then difference columns
    for m in metrics:
        v = vals[m][idx]
        for j in range(P):
            cols.append(v[:, j])
            kinds.append((m, j, "value"))
        for j in range(1, P):
            cols.append(v[:, 0] - v[:, j])  # NaN where either is undefined
            kinds.append((m, j, "diff"))
    V = np.column_stack(cols) if cols else np.zeros((len(idx), 0))
    W = np.isfinite(V)
    V0 = np.where(W, V, 0.0)
    cnt = W.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = V0.sum(axis=0) / cnt
    lo = hi = pval = np.full(V.shape[1], np.nan)
    if cfg.bootstrap > 0 and len(idx) >= 2:
        c = bs.count_matrix(len(idx), cfg.bootstrap, rng)
        sums = c @ np.hstack([V0, W.astype(float)])  # one product for the sums and the counts
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = sums[:, : V.shape[1]] / sums[:, V.shape[1]:]  # [B, columns]: resampled means
        lo, hi = bs.percentile_ci(boot, cfg.ci_level)
        dev = np.abs(boot - mean[None, :]) >= np.abs(mean)[None, :] - 1e-15
        pval = (1.0 + np.nansum(dev & np.isfinite(boot), axis=0)) / (np.isfinite(boot).sum(axis=0) + 1.0)
        pval = np.where(cnt > 0, pval, np.nan)
    out = {}
    for i, (m, j, kind) in enumerate(kinds):
        out[(m, j, kind)] = (int(cnt[i]), float(mean[i]), float(lo[i]), float(hi[i]), float(pval[i]))
    return out


def _dropped_text(reasons: list[str]) -> str:
    return "; ".join(f"{c} x {r}" for r, c in Counter(x for x in reasons if x).most_common())


def distribution_table(df: pd.DataFrame, cfg: AnalysisConfig | None = None,
                       groups: list[tuple[str, str, np.ndarray]] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(distribution rows, per-item rows of the default target) for one table (dataset x model).

    groups: (group_by column, label, row positions) per group (stats/groups.py): each adds rows
    (n_options 'all') summarising the group's per-item values, with the pooled table's leave-one-out
    dataset_mean baseline and resamples drawn within the group."""
    cfg = AnalysisConfig.from_any(cfg)
    meta = dict(dataset=str(df["dataset"].iloc[0]), model=str(df["model"].iloc[0]),
                model_type=df["model_type"].iloc[0] if "model_type" in df else None,
                model_size=df["model_size"].iloc[0] if "model_size" in df else np.nan,
                **{C.PAIR_COLUMN: df[C.PAIR_COLUMN].iloc[0] if C.PAIR_COLUMN in df else None},
                group_by=T.POOLED_BY, group=T.POOLED_GROUP)
    has = {t: df[t].map(lambda v: _vector(v) is not None).any() for t in target_columns(df)}
    targets = [t for t, h in has.items() if h]
    if not targets:  # no human shares: nothing to compare (e.g. MMLU)
        return pd.DataFrame(columns=COLUMNS), pd.DataFrame(columns=ITEM_COLUMNS)
    if "mc_choice-pdf" not in df.columns:
        rows = [dict(meta, target=t, n=0, n_dropped=len(df), note="no 'mc_choice-pdf' column: no model distribution")
                for t in targets]
        return pd.DataFrame(rows, columns=COLUMNS), pd.DataFrame(columns=ITEM_COLUMNS)
    q, mask, n, model_reasons = _model_side(df)
    rows = [dict(meta, target=t, n=0, n_dropped=len(df), note="no item has shares for this target")
            for t, h in has.items() if not h]
    items = pd.DataFrame(columns=ITEM_COLUMNS)
    for t in targets:
        res = item_metrics(df, t, q, mask, n, model_reasons)
        ok = res["ok"]
        dropped = _dropped_text(res["reasons"])
        if not ok.any():
            rows.append(dict(meta, target=t, n=0, n_dropped=len(df), dropped=dropped, note="no usable item"))
            continue
        n_drop = int(len(df) - ok.sum())
        strata = [(meta, "all", np.flatnonzero(ok), n_drop, dropped)]  # (meta, n_options, rows, n_dropped, why)
        nk = np.unique(n[ok])
        if len(nk) > 1:
            strata += [(meta, str(int(k)), np.flatnonzero(ok & (n == k)), n_drop, dropped) for k in nk]
        for by, label, where in groups or []:
            where = np.asarray(where)
            sel = where[ok[where]]
            gmeta = dict(meta, group_by=by, group=label)
            why = _dropped_text([res["reasons"][i] for i in where])
            if len(sel):
                strata.append((gmeta, "all", sel, len(where) - len(sel), why))
            else:
                rows.append(dict(gmeta, target=t, n=0, n_dropped=len(where), n_options="all", dropped=why,
                                 note="no usable item in this group"))
        for smeta, label, idx, n_dropped, why in strata:
            grouped = smeta["group_by"] != T.POOLED_BY
            key = (t, "group", smeta["group_by"], smeta["group"]) if grouped else (t, label)
            summ = _summaries(res["values"], idx, cfg, _rng(cfg, meta["dataset"], meta["model"], *key, "distribution"))
            rows += _summary_rows(smeta, t, label, summ, res, cfg, pooled=not grouped,
                                  n_varies=len(nk) > 1 and not grouped, n_dropped=n_dropped, dropped=why)
        if t == DEFAULT_TARGET:
            items = _item_rows(meta, t, q, res, n)
    out = pd.DataFrame(rows, columns=COLUMNS)
    return out, items


def _summary_rows(meta: dict, t: str, label: str, summ: dict, res: dict, cfg: AnalysisConfig, pooled: bool,
                  n_varies: bool, n_dropped: int, dropped: str) -> list[dict]:
    """Rows of one summary (target x stratum or group): every metric x predictor."""
    ci_method = f"bootstrap_{bs.CI_METHOD}_B={cfg.bootstrap}" if cfg.bootstrap > 0 else "none"
    rows = []
    for m in res["values"]:
        for j, p in enumerate(PREDICTORS):
            cnt, mean, lo, hi, _ = summ[(m, j, "value")]
            notes = []
            if m == "kl_human_model":
                notes.append(KL_NOTE)
            if m == "representativeness":
                notes.append(f"{res['n_ordinal']} items flagged ordinal"
                             + (f"; {res['n_bad_ordinal']} with unusable ordinal_values" if res["n_bad_ordinal"] else ""))
            if p == "dataset_mean" and res["n_no_baseline"] and label == "all" and pooled:
                notes.append(f"{res['n_no_baseline']} items alone in their n group: no dataset_mean")
            if p == "uniform" and label == "all" and n_varies:
                notes.append("n varies: the model-vs-uniform gap depends on n, see the n_options rows")
            row = dict(meta, target=t, metric=m, better=METRICS[m], predictor=p, n_options=label,
                       n=cnt, mean=mean, ci_low=lo, ci_high=hi, ci_method=ci_method,
                       n_dropped=n_dropped, dropped=dropped, note="; ".join(notes))
            if j > 0:
                npair, dmean, dlo, dhi, pv = summ[(m, j, "diff")]
                better = (dmean < 0) if METRICS[m] == "lower" else (dmean > 0)
                row.update(n_paired=npair, diff_model_minus_predictor=dmean, diff_ci_low=dlo,
                           diff_ci_high=dhi, p_value=pv if cfg.bootstrap > 0 else np.nan,
                           p_method=P_METHOD if cfg.bootstrap > 0 else "none",
                           model_better=bool(better) if np.isfinite(dmean) and dmean != 0 else None)
            rows.append(row)
    return rows


def _item_rows(meta: dict, target: str, q: np.ndarray, res: dict, n: np.ndarray) -> pd.DataFrame:
    """Per-item model and human entropies (H / ln n) and JSD per predictor, for figures."""
    ok = res["ok"]
    idx = np.flatnonzero(ok)
    ln = np.log(n[idx].astype(float))
    jv = res["values"]["jsd"][idx]
    return pd.DataFrame({"dataset": meta["dataset"], "model": meta["model"], "target": target, "item": idx,
                         "n_options": n[idx], "model_entropy": entr(q[idx]).sum(axis=1) / ln,
                         "human_entropy": entr(res["r"][idx]).sum(axis=1) / ln,
                         "jsd_model": jv[:, 0], "jsd_uniform": jv[:, 1], "jsd_dataset_mean": jv[:, 2]},
                        columns=ITEM_COLUMNS)


def add_qvalues(dist: pd.DataFrame, correction: str = "bh") -> pd.DataFrame:
    """q_value of the model-vs-baseline p-values per family, named in `q_family`: pooled rows per
    dataset x target x metric (all models, baselines and n strata), group rows per dataset x model x
    group_by x target x metric (all groups and baselines)."""
    return family_qvalues(dist, {"p_value": "q_value"}, correction, ["dataset", "target", "metric"],
                          ["dataset", "model", T.GROUP_BY, "target", "metric"],
                          "all models, baselines and n strata", "all groups and baselines")[COLUMNS]


def distribution_tables(tables: list[pd.DataFrame], cfg: AnalysisConfig | None = None
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """distribution.csv rows (with q-values) and per-item rows of all tables."""
    cfg = AnalysisConfig.from_any(cfg)
    parts = [distribution_table(t, cfg) for t in tables]
    summ = [p[0] for p in parts if not p[0].empty]
    items = [p[1] for p in parts if not p[1].empty]
    return (add_qvalues(pd.concat(summ, ignore_index=True) if summ else pd.DataFrame(columns=COLUMNS),
                        cfg.correction),
            pd.concat(items, ignore_index=True) if items else pd.DataFrame(columns=ITEM_COLUMNS))
