"""Across models (docs/analyses.md section 4).

- base vs instruct: Wilcoxon signed-rank test (scipy.stats.wilcoxon) over matched pairs of a
  per-model statistic (oriented Spearman alignment coefficient, ECE, AUROC); pairs matched on the
  explicit pair key (`model_pair` column of the per-item tables: family + size from the config, e.g.
  'falcon3-1b'), or, for tables without it (the reference study's files), on the key derived from
  the model name (columns.pair_key_from_name: 'Falcon3_1B_Ins' -> 'falcon3-1b'); a key with several
  base or several instruct models is ambiguous, its first model is used and the note says so;
  effect size = matched-pairs rank-biserial
  r = (W+ - W-) / (W+ + W-) on d = base - instruct (zero differences dropped), positive = base larger;
- size trend: Spearman between model_size and the statistic, per measure;
- combination: k-fold cross-validated ridge regression from all measures of one model to a human
  signal (columns standardised on the training folds; closed-form ridge; alpha chosen per outer
  fold by inner CV on the training folds unless fixed); out-of-fold Spearman rho and
  R^2 = 1 - SS_res / SS_tot over the concatenated out-of-fold predictions.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy import stats

from jaxunc import columns as C
from jaxunc.stats import tables as T
from jaxunc.stats.config import AnalysisConfig

_INS_SUFFIX = re.compile(r"([_-](ins|instruct|chat|it))$", re.I)
COLUMNS = ["dataset", "comparison", "statistic", "measure", "target", "method", "n_pairs", "coef",
           "p_value", "effect_size", "effect_size_name", "test", "pairs", "unpaired", "note"]


def family_key(model: str) -> str:
    """The old name-suffix key ('Falcon3_1B_Ins' -> 'Falcon3_1B'); pairing uses pair keys instead."""
    return _INS_SUFFIX.sub("", str(model))


def table_pair_key(df: pd.DataFrame) -> str:
    """A table's pair key: its `model_pair` column if filled, else derived from its model name."""
    if C.PAIR_COLUMN in df.columns and df[C.PAIR_COLUMN].notna().any():
        return str(df[C.PAIR_COLUMN].dropna().iloc[0])
    return C.pair_key_from_name(df["model"].iloc[0] if len(df) else "")


def with_pair_key(df: pd.DataFrame) -> pd.DataFrame:
    """df with a filled `model_pair` column (derived from the model name where it is missing)."""
    if C.PAIR_COLUMN in df.columns and df[C.PAIR_COLUMN].notna().all():
        return df
    return df.assign(**{C.PAIR_COLUMN: table_pair_key(df)})


def rank_biserial(d: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of differences d (zeros dropped)."""
    d = np.asarray(d, float)
    d = d[np.isfinite(d) & (d != 0)]
    if len(d) == 0:
        return np.nan
    r = stats.rankdata(np.abs(d))
    wp, wm = r[d > 0].sum(), r[d < 0].sum()
    return float((wp - wm) / (wp + wm))


def pair_indices(models: list[str], types: list[str], keys: list[str] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Indices of matched (base, instruct) models: the same pair key (derived from the names when
    `keys` is None). Returns (base indices, instruct indices, pair keys)."""
    info = pair_report(models, types, keys)
    return info["base"], info["ins"], info["keys"]


def pair_report(models: list[str], types: list[str], keys: list[str] | None = None) -> dict:
    """Pairs and what did not pair: base/ins index arrays, keys, unpaired models, ambiguous keys."""
    keys = [C.pair_key_from_name(m) for m in models] if keys is None else [str(k) for k in keys]
    base: dict[str, int] = {}
    ins: dict[str, int] = {}
    ambiguous = set()
    for i, (k, t) in enumerate(zip(keys, types)):
        side = base if t == "base" else ins
        if k in side:
            ambiguous.add(k)
        side.setdefault(k, i)
    paired = [k for k in base if k in ins]
    unpaired = [models[i] for k, i in list(base.items()) + list(ins.items()) if k not in paired]
    return dict(base=np.array([base[k] for k in paired], int), ins=np.array([ins[k] for k in paired], int),
                keys=paired, unpaired=unpaired, ambiguous=sorted(ambiguous))


def _pair_note(info: dict) -> str:
    return (f"ambiguous pair keys (first model used): {', '.join(info['ambiguous'])}"
            if info["ambiguous"] else "")


def wilcoxon_pairs(b: np.ndarray, i: np.ndarray, names: list[str]) -> dict:
    """Wilcoxon signed-rank and rank-biserial of d = b - i over finite pairs."""
    ok = np.isfinite(b) & np.isfinite(i)
    d = (b - i)[ok]
    out = dict(n_pairs=int(ok.sum()), effect_size=rank_biserial(d),
               effect_size_name="rank_biserial (base - instruct)", test="wilcoxon signed-rank (scipy, two-sided)",
               pairs=";".join(n for n, o in zip(names, ok) if o), note="")
    if len(d) < 2 or np.all(d == 0):
        out.update(coef=np.nan, p_value=np.nan, note=f"{len(d)} usable pairs")
        return out
    res = stats.wilcoxon(d)
    out.update(coef=float(res.statistic), p_value=float(res.pvalue))
    return out


def base_vs_instruct(values: pd.DataFrame) -> dict:
    """Wilcoxon signed-rank and rank-biserial for one statistic (frame: model, model_type, value,
    optionally model_pair; without it the keys are derived from the model names)."""
    keys = list(values[C.PAIR_COLUMN]) if C.PAIR_COLUMN in values.columns else None
    info = pair_report(list(values["model"]), list(values["model_type"]), keys)
    v = values["value"].to_numpy(float)
    out = wilcoxon_pairs(v[info["base"]], v[info["ins"]], info["keys"])
    out["unpaired"] = ";".join(info["unpaired"])
    out["note"] = "; ".join(x for x in (out["note"], _pair_note(info)) if x)
    return out


def size_trend(sizes: np.ndarray, values: np.ndarray) -> dict:
    """Spearman of model_size with the statistic over models with both finite."""
    sizes, values = np.asarray(sizes, float), np.asarray(values, float)
    ok = np.isfinite(sizes) & np.isfinite(values)
    out = dict(n_pairs=int(ok.sum()), test="spearman (scipy)", note="", effect_size=np.nan, effect_size_name="", pairs="")
    if ok.sum() < 3 or np.ptp(sizes[ok]) == 0 or np.ptp(values[ok]) == 0:
        out.update(coef=np.nan, p_value=np.nan, note="fewer than 3 models or constant size/statistic")
        return out
    r = stats.spearmanr(sizes[ok], values[ok])
    out.update(coef=float(r.statistic), p_value=float(r.pvalue))
    return out


def _stat_frame(alignment: pd.DataFrame, calibration: pd.DataFrame) -> pd.DataFrame:
    """Long frame: dataset, statistic, measure, target, model, model_type, model_size, value."""
    keep = ["dataset", "measure", "target", "model", "model_type", "model_size"]
    parts = []
    if not alignment.empty:
        al = alignment[alignment["method"] == "spearman"]
        parts.append(al[keep].assign(statistic="alignment_coef_oriented(spearman)", value=al["coef_oriented"]))
    if not calibration.empty:
        cal = calibration.assign(target="correctness")
        for stat in ("ece_width10", "auroc"):
            sub = cal[cal.groupby(["dataset", "measure"])[stat].transform(lambda v: v.notna().any())]
            parts.append(sub[keep].assign(statistic=stat, value=sub[stat]))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=keep + ["statistic", "value"])


def compare_models(alignment: pd.DataFrame, calibration: pd.DataFrame,
                   pairs: dict[str, str] | None = None) -> pd.DataFrame:
    """compare.csv: base-vs-instruct and size-trend rows per dataset, statistic, measure and target.

    pairs: model name -> pair key (from the tables' `model_pair` columns); models missing from it
    get the key derived from their name.
    """
    pairs = pairs or {}
    long = _stat_frame(alignment, calibration)
    rows = []
    key = ["statistic", "measure", "target"]
    for ds, g in long.groupby("dataset"):
        wide = g.groupby(key + ["model"])["value"].first().unstack("model")
        info = g.drop_duplicates("model").set_index("model")
        models = list(wide.columns)
        keys = [pairs.get(m) or C.pair_key_from_name(m) for m in models]
        pinfo = pair_report(models, list(info.loc[models, "model_type"]), keys)
        bi, ii, names = pinfo["base"], pinfo["ins"], pinfo["keys"]
        unpaired, pnote = ";".join(pinfo["unpaired"]), _pair_note(pinfo)
        sizes = pd.to_numeric(info.loc[models, "model_size"], errors="coerce").to_numpy(float)
        for idx, vals in zip(wide.index, wide.to_numpy(float)):
            base = dict(zip(key, idx), dataset=ds)
            res = wilcoxon_pairs(vals[bi], vals[ii], names)
            res.update(unpaired=unpaired, note="; ".join(x for x in (res["note"], pnote) if x))
            rows.append(dict(base, comparison="base_vs_instruct", method="wilcoxon", **res))
            rows.append(dict(base, comparison="size_trend", method="spearman", **size_trend(sizes, vals)))
    return pd.DataFrame(rows, columns=COLUMNS)


def ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Closed-form ridge on centred data: w = (X'X + alpha I)^-1 X'y, intercept = mean(y) - mean(x) w."""
    mx, my = x.mean(axis=0), y.mean()
    xc = x - mx
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - my))
    return w, float(my - mx @ w)


ALPHAS: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)


def ridge_path(x: np.ndarray, y: np.ndarray, alphas: tuple[float, ...]):
    """Ridge fits for several alphas from one SVD of the standardised training data.

    w_a = V diag(s / (s^2 + a)) U' (y - mean y); returns predict(x_new) -> [n_new, len(alphas)].
    """
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    xc = (x - mu) / sd
    my = y.mean()
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    uy = u.T @ (y - my)
    w = vt.T @ (s[:, None] / (s[:, None] ** 2 + np.asarray(alphas)[None, :]) * uy[:, None])  # [p, A]
    return lambda xn: ((xn - mu) / sd) @ w + my


def cv_ridge(x: np.ndarray, y: np.ndarray, folds: int, alpha: float | None, rng: np.random.Generator,
             alphas: tuple[float, ...] = ALPHAS) -> tuple[np.ndarray, list[float]]:
    """Out-of-fold ridge predictions and the alpha used per fold.

    Columns are standardised on the training folds only; alpha is fixed if given, else chosen per
    outer fold by an inner k-fold split of the training folds (lowest inner squared error).
    """
    n = len(y)
    fold = rng.permutation(np.arange(n) % folds)
    pred = np.empty(n)
    chosen = []
    for k in range(folds):
        tr, te = fold != k, fold == k
        if alpha is None:
            xt, yt = x[tr], y[tr]
            inner = rng.permutation(np.arange(len(yt)) % folds)
            err = np.zeros(len(alphas))
            for j in range(folds):
                fit = ridge_path(xt[inner != j], yt[inner != j], alphas)
                err += np.sum((yt[inner == j][:, None] - fit(xt[inner == j])) ** 2, axis=0)
            a = alphas[int(np.argmin(err))]
        else:
            a = alpha
        chosen.append(a)
        pred[te] = ridge_path(x[tr], y[tr], (a,))(x[te])[:, 0]
    return pred, chosen


COMB_COLUMNS = ["dataset", "model", "model_type", "model_size", "target", "n", "n_dropped", "n_measures",
                "folds", "ridge_alpha", "oof_spearman", "oof_spearman_p", "oof_r2", "method", "note"]


def combination(tables: list[pd.DataFrame], cfg: AnalysisConfig | None = None) -> pd.DataFrame:
    """combination.csv: k-fold CV ridge from all measures of a model to each human signal."""
    from jaxunc.stats.alignment import _rng
    cfg = AnalysisConfig.from_any(cfg)
    rows = []
    for df in tables:
        ms = [m for m in T.measure_columns(df) if not cfg.measures or m in cfg.measures]
        meta = dict(dataset=df["dataset"].iloc[0], model=df["model"].iloc[0], model_type=df["model_type"].iloc[0],
                    model_size=df["model_size"].iloc[0])
        for t in T.target_columns(df):
            sub = df[ms + [t]].apply(pd.to_numeric, errors="coerce")
            keep = [m for m in ms if sub[m].notna().mean() > 0.9]  # measures mostly NaN would empty the set
            sub = sub[keep + [t]].replace([np.inf, -np.inf], np.nan).dropna()
            row = dict(meta, target=t, n=len(sub), n_dropped=len(df) - len(sub), n_measures=len(keep),
                       folds=cfg.cv_folds, method="k-fold CV ridge (closed form), standardised on training folds, "
                       + ("alpha fixed" if cfg.ridge_alpha is not None else "alpha per fold by inner CV"), note="")
            if len(sub) < 2 * cfg.cv_folds or not keep or sub[t].nunique() < 2:
                row["note"] = "too few complete items or constant target"
                rows.append(row)
                continue
            x, y = sub[keep].to_numpy(float), sub[t].to_numpy(float)
            pred, alphas = cv_ridge(x, y, cfg.cv_folds, cfg.ridge_alpha, _rng(cfg, meta["dataset"], meta["model"], t, "cv"))
            row["ridge_alpha"] = ";".join(f"{a:g}" for a in alphas)
            r = stats.spearmanr(pred, y)
            row.update(oof_spearman=float(r.statistic), oof_spearman_p=float(r.pvalue),
                       oof_r2=float(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)))
            rows.append(row)
    return pd.DataFrame(rows, columns=COMB_COLUMNS)
