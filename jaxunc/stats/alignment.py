"""Human alignment (docs/analyses.md section 1): correlations of measures with human signals.

Per table (one dataset x one model) and per (measure, human signal):
- `spearman`, `pearson`, `kendall` (tau-b) with scipy p-values;
- `partial_spearman`: Spearman controlling for the number of options n, computed from the three
  pairwise Spearman coefficients, (r_xy - r_xn r_yn) / sqrt((1 - r_xn^2)(1 - r_yn^2)), which equals
  the correlation of the residuals of rank(x) and rank(y) after regressing each on rank(n);
  p-value from t = r sqrt((N - 3) / (1 - r^2)) with N - 3 degrees of freedom;
- `stratified_spearman_n=K`: Spearman within the items having n = K options;
- `pearson_2025_confounded` (only with reproduce_2025): Pearson r of (measure x ln n) with the
  unnormalised human entropy H(r) = human-ent x ln n; confounded by n, labelled so in `note`.
Only datasets whose n varies get the partial and stratified rows.
Rows with NaN in either column are dropped per test and counted in `n_dropped`; constant columns
and fewer than 3 items give NaN with the reason in `note`. Intervals: Spearman, Pearson and partial
Spearman get percentile bootstrap intervals (bootstrap.py); Kendall and strata get none by default
(`ci_method` = 'none'). The reference study's heatmaps print a cell iff its uncorrected Spearman
p < 0.05 / 2040 (established in tests/test_reproduction.py).
"""

from __future__ import annotations

import warnings
import zlib

import numpy as np
import pandas as pd
from scipy import stats

from jaxunc import columns as C
from jaxunc.stats import bootstrap as bs
from jaxunc.stats import tables as T
from jaxunc.stats.config import AnalysisConfig
from jaxunc.stats.multitest import family_qvalues

CONFOUNDED_NOTE = "CONFOUNDED BY n (2025 reproduction mode): Pearson(measure*ln n, H(r))"
COLUMNS = ["dataset", "model", "model_type", "model_size", "group_by", "group", "measure", "measure_kind",
           "target", "target_kind", "n", "n_dropped", "method", "coef", "p_value", "ci_low", "ci_high",
           "ci_method", "q_value", "q_method", "q_family", "coef_oriented", "note"]


def _rng(cfg: AnalysisConfig, *keys: object) -> np.random.Generator:
    """Generator seeded by the config seed and a stable hash of the keys (reproducible)."""
    return np.random.default_rng([cfg.seed, zlib.crc32("|".join(map(str, keys)).encode())])


def _reason(x: np.ndarray, y: np.ndarray) -> str:
    if len(x) < 3:
        return f"fewer than 3 items ({len(x)})"
    if np.ptp(x) == 0:
        return "constant measure"
    if np.ptp(y) == 0:
        return "constant target"
    return ""


def _scipy_corr(method: str, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "spearman":
            r = stats.spearmanr(x, y)
        elif method in ("pearson", "pearson_2025_confounded"):
            r = stats.pearsonr(x, y)
        elif method == "kendall":
            r = stats.kendalltau(x, y)
        else:
            raise ValueError(method)
    return float(r.statistic), float(r.pvalue)


def partial_spearman(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[float, float]:
    """Partial Spearman of x and y given z, and its t-test p-value (df = N - 3)."""
    rho = stats.spearmanr(np.column_stack([x, y, z])).statistic
    r = float(bs.partial_from_corr(rho[0, 1], rho[0, 2], rho[1, 2]))
    df = len(x) - 3
    if not np.isfinite(r) or df < 1:
        return r, np.nan
    tval = r * np.sqrt(df / max(1e-300, 1 - r * r))
    return r, float(2 * stats.t.sf(abs(tval), df))


def _mask_groups(df: pd.DataFrame, measures: list[str], targets: list[str], base: np.ndarray):
    """Group (measure, target) pairs by their valid-row mask: {mask bytes: (mask, measures, targets, pairs)}."""
    groups: dict[bytes, list] = {}
    valid = {c: df[c].notna().to_numpy() & np.isfinite(pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float))
             for c in measures + targets}
    for t in targets:
        for m in measures:
            mask = base & valid[m] & valid[t]
            g = groups.setdefault(mask.tobytes(), [mask, [], [], set()])
            if m not in g[1]:
                g[1].append(m)
            if t not in g[2]:
                g[2].append(t)
            g[3].add((m, t))
    return groups


def alignment_table(df: pd.DataFrame, cfg: AnalysisConfig | None = None) -> pd.DataFrame:
    """Long table of alignment statistics for one per-item table (one dataset x model)."""
    cfg = AnalysisConfig.from_any(cfg)
    measures = [m for m in T.measure_columns(df) if not cfg.measures or m in cfg.measures]
    targets = T.target_columns(df)
    dataset, model = str(df["dataset"].iloc[0]), str(df["model"].iloc[0])
    meta = dict(dataset=dataset, model=model, model_type=df["model_type"].iloc[0],
                model_size=df["model_size"].iloc[0], group_by=T.POOLED_BY, group=T.POOLED_GROUP)
    if not measures or not targets:
        return pd.DataFrame(columns=COLUMNS)
    nopt = T.n_options(df) if ("n_options" in df or "Answers" in df) else np.full(len(df), np.nan)
    n_varies = np.unique(nopt[np.isfinite(nopt)]).size > 1
    base = np.ones(len(df), bool)
    if n_varies:
        base &= np.isfinite(nopt)
    rows: list[dict] = []

    def add(m, t, method, n, n_dropped, coef, p, lo=np.nan, hi=np.nan, ci="none", note="", target=None):
        rows.append(dict(meta, measure=m, measure_kind=C.kind(m), target=target or t,
                         target_kind=T.HUMAN_TARGETS.get(t, C.UNCERTAINTY), n=n, n_dropped=n_dropped,
                         method=method, coef=coef, p_value=p, ci_low=lo, ci_high=hi, ci_method=ci,
                         coef_oriented=coef * C.orientation(m) if np.isfinite(coef) else np.nan, note=note))

    for key, (mask, ms, ts, pairs) in _mask_groups(df, measures, targets, base).items():
        x = df.loc[mask, ms].to_numpy(dtype=float)
        y = df.loc[mask, ts].to_numpy(dtype=float)
        z = nopt[mask] if n_varies else None
        n = int(mask.sum())
        ci_name = f"bootstrap_{bs.CI_METHOD}_B={cfg.bootstrap}"
        boot = None
        if cfg.bootstrap > 0 and n >= 3:
            boot = bs.bootstrap_corr(x, y, z, cfg.bootstrap, _rng(cfg, dataset, model, *ms, *ts))
            ci = {k: bs.percentile_ci(v, cfg.ci_level) for k, v in boot.items()}
        for i, m in enumerate(ms):
            for j, t in enumerate(ts):
                if (m, t) not in pairs:
                    continue
                dropped = int(base.sum() - n)
                xi, yj = x[:, i], y[:, j]
                why = _reason(xi, yj)
                methods = ["spearman", "pearson"] + (["kendall"] if cfg.kendall else [])
                methods += ["partial_spearman"] if n_varies else []
                for meth in methods:
                    if why:
                        add(m, t, meth, n, dropped, np.nan, np.nan, note=why)
                        continue
                    if meth == "partial_spearman":
                        coef, p = partial_spearman(xi, yj, z)
                    else:
                        coef, p = _scipy_corr(meth, xi, yj)
                    if boot is not None and meth in ci:
                        add(m, t, meth, n, dropped, coef, p, ci[meth][0][i, j], ci[meth][1][i, j], ci_name)
                    else:
                        add(m, t, meth, n, dropped, coef, p)
                if n_varies:
                    _stratified(add, m, t, xi, yj, z, dropped, cfg, dataset, model)
                if cfg.reproduce_2025 and t == "human-ent" and not why:
                    ln_n = np.log(nopt[mask])
                    xc, yc = xi * ln_n, yj * ln_n
                    coef, p = _scipy_corr("pearson", xc, yc)
                    lo = hi = np.nan
                    ci_c = "none"
                    if cfg.bootstrap > 0:
                        b = bs.bootstrap_corr(xc[:, None], yc, None, cfg.bootstrap,
                                              _rng(cfg, dataset, model, m, "2025"), rank=False)
                        lo, hi = bs.percentile_ci(b["pearson"][:, 0, 0], cfg.ci_level)
                        ci_c = ci_name
                    add(m, t, "pearson_2025_confounded", n, dropped, coef, p, float(lo), float(hi), ci_c,
                        note=CONFOUNDED_NOTE, target="H(r)")
    out = pd.DataFrame(rows, columns=COLUMNS)
    return out


def _stratified(add, m, t, x, y, z, dropped, cfg, dataset, model):
    """Spearman within each n-stratum with at least cfg.min_stratum items."""
    for k in np.unique(z):
        sel = z == k
        meth = f"stratified_spearman_n={int(k)}"
        if sel.sum() < max(3, cfg.min_stratum):
            continue
        why = _reason(x[sel], y[sel])
        if why:
            add(m, t, meth, int(sel.sum()), dropped, np.nan, np.nan, note=why)
            continue
        coef, p = _scipy_corr("spearman", x[sel], y[sel])
        lo = hi = np.nan
        ci_name = "none"
        if cfg.bootstrap_strata and cfg.bootstrap > 0:
            b = bs.bootstrap_corr(x[sel][:, None], y[sel], None, cfg.bootstrap,
                                  _rng(cfg, dataset, model, m, t, k))
            lo, hi = bs.percentile_ci(b["spearman"][:, 0, 0], cfg.ci_level)
            ci_name = f"bootstrap_{bs.CI_METHOD}_B={cfg.bootstrap}"
        add(m, t, meth, int(sel.sum()), dropped, coef, p, float(lo), float(hi), ci_name)


def method_family(method: str) -> str:
    """'stratified_spearman_n=3' -> 'stratified_spearman'; other names unchanged."""
    return method.split("_n=")[0] if method.startswith("stratified_") else method


def add_qvalues(table: pd.DataFrame, correction: str = "bh") -> pd.DataFrame:
    """q_value per family, named in `q_family`.

    Pooled rows: family = (dataset, method family): all models, measures and targets (as the
    reference study's masks). Group rows (stats/groups.py): family = (dataset, model, group_by,
    method family): all groups, measures and targets of one model.
    """
    table = table.copy()
    for col, value in ((T.GROUP_BY, T.POOLED_BY), (T.GROUP, T.POOLED_GROUP)):
        if col not in table.columns:
            table[col] = value
    table["_method_family"] = table["method"].map(method_family, na_action="ignore") if len(table) else []
    table = family_qvalues(table, {"p_value": "q_value"}, correction, ["dataset", "_method_family"],
                           ["dataset", "model", T.GROUP_BY, "_method_family"],
                           "all models, measures and targets", "all groups, measures and targets",
                           labels={"_method_family": "method"})
    return table.drop(columns="_method_family")


def alignment_tables(tables: list[pd.DataFrame], cfg: AnalysisConfig | None = None) -> pd.DataFrame:
    """Alignment rows of all tables with q-values."""
    cfg = AnalysisConfig.from_any(cfg)
    parts = [alignment_table(t, cfg) for t in tables]
    parts = [p for p in parts if not p.empty]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    return add_qvalues(out, cfg.correction)[COLUMNS]
