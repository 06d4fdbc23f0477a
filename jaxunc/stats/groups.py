"""Statistics by group: the pooled analyses repeated per group of a label column, and tests of whether
the groups differ (e.g. the 2025 study's per-subject MMLU calibration).

`analysis.group_by` names columns of the item table (comma-separated; each column is its own
grouping, not crossed). Per column, the items with a label are split by label (sorted); a group with
fewer than `analysis.min_group` items gets one row per output table saying so and is not computed;
items without a label (None, NaN, empty text) are left out of every group and counted in `note`.
Every statistics table gets `group_by` and `group` columns: the pooled rows are exactly the ungrouped
analysis (`group_by` = 'none', `group` = 'all').

Per group the existing per-table functions run on the group's items (alignment_table,
calibration_table, preference_table; distribution_table summarises the group's per-item values, whose
leave-one-out dataset_mean baseline stays the pooled table's). Bootstrap resamples are drawn within
the group and shared by all its measures (bootstrap.py), seeded by the config seed, column and label.

Multiple comparisons: group rows form their own families, one per dataset x model x group_by x
statistic over all groups (and measures, targets); pooled rows keep theirs. `q_family` names the
family of every q-value (BH by default, Bonferroni with correction='bonferroni').

Heterogeneity (heterogeneity.csv), H0: the statistic is equal in every computed group:
- alignment_<method> (Spearman, Pearson, Kendall rows of the groups): Cochran's Q on Fisher's
  z = atanh(r): Q = sum_g w_g (z_g - z_w)^2, w_g = 1 / Var(z_g), z_w = sum w z / sum w, df = k - 1,
  p = chi2.sf(Q, df); Var(z) = 1/(n-3) (Pearson), 1.06/(n-3) (Spearman) and 0.437/(n-4) (Kendall)
  (Fieller, Hartley & Pearson 1957, Biometrika 44:470); I^2 = max(0, (Q - df) / Q) (Higgins &
  Thompson 2002);
- auroc: the same Q on the AUROCs A_g of the oriented measure with Var(A_g) from DeLong et al.
  (1988): placements V10_i = P(u_right < u_i) + 0.5 P(=) for wrong items i, V01_j = P(u_wrong > u_j) +
  0.5 P(=) for right items j, Var = s^2(V10) / n_wrong + s^2(V01) / n_right (groups independent);
- ece_width10: permutation test of the group labels (group sizes kept): T = sum_g n_g (ECE_g - E_w)^2,
  E_w = sum n_g ECE_g / N, ECE_g on 10 equal-width bins; p = (1 + #{T* >= T}) / (1 + P);
- accuracy and plurality_agreement: Pearson chi-square test of homogeneity of the k x 2 table of
  right / wrong (agree / disagree) counts, no continuity correction;
- distribution_jsd: Kruskal-Wallis H test (tie-corrected, chi-square df = k - 1) of the per-item
  JSD between the model's option distribution and the human shares (distribution_items).
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from jaxunc import columns as C
from jaxunc.stats import alignment as A
from jaxunc.stats import calibration as K
from jaxunc.stats import distribution as DI
from jaxunc.stats import preference as P
from jaxunc.stats import tables as T
from jaxunc.stats.config import AnalysisConfig
from jaxunc.stats.multitest import family_qvalues

HET_COLUMNS = ["dataset", "model", "group_by", "statistic", "measure", "target", "k_groups", "n_items", "Q", "df",
               "p_value", "i2", "q_value", "q_method", "q_family", "test", "note"]
# Var(atanh r) = a / (n - c) per method (Fieller, Hartley & Pearson 1957)
FISHER_VAR = {"pearson": (1.0, 3), "spearman": (1.06, 3), "kendall": (0.437, 4)}
TESTS = {
    "alignment": "Cochran's Q on Fisher z = atanh(r), Var(z) = {a}/(n-{c}) (Fieller, Hartley & Pearson 1957), "
                 "chi-square df = k-1",
    "auroc": "chi-square test of equal AUROCs across independent groups: Q = sum w_g (A_g - A_w)^2, "
             "w_g = 1/Var_DeLong(A_g) (DeLong et al. 1988), df = k-1",
    "ece_width10": "permutation test of group labels (sizes kept): T = sum_g n_g (ECE_g - mean_w ECE)^2, "
                   "{P} seeded relabellings, p = (1 + #{{T* >= T}}) / (1 + P)",
    "accuracy": "Pearson chi-square test of homogeneity, k groups x (right, wrong), no continuity correction",
    "plurality_agreement": "Pearson chi-square test of homogeneity, k groups x (agree, disagree), "
                           "no continuity correction",
    "distribution_jsd": "Kruskal-Wallis H test (tie-corrected) of the per-item JSD(model, human shares), df = k-1",
}


@dataclasses.dataclass
class Grouping:
    """One group_by column of one table: computed groups, groups below min_group, unlabelled items."""

    column: str
    groups: list[tuple[str, np.ndarray]]   # (label, row positions) of the computed groups
    small: list[tuple[str, int]]           # (label, size) of the groups below min_group
    n_missing: int                         # items without a label
    min_group: int
    order: list[str] = dataclasses.field(default_factory=list)  # every label, sorted

    @property
    def note(self) -> str:
        return (f"{self.n_missing} items with no '{self.column}' label left out of the groups"
                if self.n_missing else "")

    @property
    def labels(self) -> dict[str, int]:
        """Every label (computed and small) -> group size, in label order."""
        sizes = {lab: len(idx) for lab, idx in self.groups} | dict(self.small)
        return {lab: sizes[lab] for lab in self.order if lab in sizes}


def missing_column_message(column: str, available, where: str) -> str:
    """One line: the column is absent, and the columns there are."""
    return f"{where}: group_by column '{column}' not found; available columns: {', '.join(map(str, available))}"


def _label(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def split_groups(df: pd.DataFrame, column: str, min_group: int, where: str = "<table>") -> Grouping:
    """Split the rows of df by the labels of `column` (ValueError, one line, for an unusable column)."""
    if column not in df.columns:
        raise ValueError(missing_column_message(column, df.columns, where))
    values = df[column].astype(object)
    if values.map(lambda v: isinstance(v, (list, tuple, np.ndarray, dict, set))).any():
        raise ValueError(f"{where}: group_by column '{column}' holds lists; expected one label per item")
    if pd.api.types.is_float_dtype(df[column]):
        frac = df[column].dropna()
        frac = frac[~np.isclose(frac, np.round(frac))]
        if len(frac):
            raise ValueError(f"{where}: group_by column '{column}' holds non-integer numbers (e.g. {frac.iloc[0]!r}); "
                             "expected category labels")
    missing = (values.isna() | values.map(lambda v: isinstance(v, str) and not v.strip())).to_numpy()
    keep = np.flatnonzero(~missing)
    raw = values.iloc[keep]
    try:
        codes, uniques = pd.factorize(raw, sort=True)
    except TypeError:  # mixed types: order by text
        codes, uniques = pd.factorize(raw.map(str), sort=True)
    labels = [_label(u) for u in uniques]
    order = list(dict.fromkeys(labels))  # a label may come from several raw values (1 and 1.0)
    position = {lab: i for i, lab in enumerate(order)}
    item_codes = np.array([position[lab] for lab in labels], int)[codes] if len(codes) else np.zeros(0, int)
    members = np.split(keep[np.argsort(item_codes, kind="stable")],
                       np.cumsum(np.bincount(item_codes, minlength=len(order)))[:-1])
    groups, small = [], []
    for lab, idx in zip(order, members):
        if len(idx) >= min_group:
            groups.append((lab, idx))
        else:
            small.append((lab, len(idx)))
    return Grouping(column, groups, small, int(missing.sum()), min_group, order)


def groupings_of(df: pd.DataFrame, cfg: AnalysisConfig, where: str, problems: list[str]) -> list[Grouping]:
    """The groupings of cfg.group_by for one table; unusable columns and oddities go to problems."""
    out = []
    for column in cfg.group_by:
        try:
            g = split_groups(df, column, cfg.min_group, where)
        except ValueError as e:
            problems.append(f"{e}: no group rows for this column")
            continue
        k = len(g.labels)
        if not g.groups and len(g.small) > 100:  # e.g. an item id: nothing to compute, thousands of rows
            problems.append(f"{where}: group_by column '{column}' has {k} labels and none with min_group="
                            f"{cfg.min_group} items (is it a category column?): no group rows for this column")
            continue
        if g.n_missing:
            problems.append(f"{where}: group_by={column}: {g.n_missing} items with a missing label dropped from the groups")
        if k == 0:
            problems.append(f"{where}: group_by={column}: no item has a label: no group rows")
        elif k == 1:
            problems.append(f"{where}: group_by={column}: one group only ({next(iter(g.labels))!r}): "
                            "its rows are computed, no heterogeneity test")
        if g.small:
            problems.append(f"{where}: group_by={column}: {len(g.small)} of {k} groups have fewer than "
                            f"min_group={cfg.min_group} items: reported, not computed")
        out.append(g)
    return out


SUMMARY_COLUMNS = ["dataset", "model", "group_by", "group", "n", "computed", "note"]


def grouping_summary(frames: list[pd.DataFrame], groupings: list[list[Grouping]]) -> pd.DataFrame:
    """groups.csv: every group of every table (size, computed or why not) and the unlabelled items."""
    rows = []
    for df, gs in zip(frames, groupings):
        meta = dict(dataset=str(df["dataset"].iloc[0]), model=str(df["model"].iloc[0]))
        for g in gs:
            computed = {lab for lab, _ in g.groups}
            for lab, n in g.labels.items():
                rows.append(dict(meta, group_by=g.column, group=lab, n=n, computed=lab in computed,
                                 note="" if lab in computed else f"fewer than min_group={g.min_group} items"))
            if g.n_missing:
                rows.append(dict(meta, group_by=g.column, group="(missing label)", n=g.n_missing, computed=False,
                                 note="items without a label: left out of every group (in the pooled rows)"))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def group_cfg(cfg: AnalysisConfig, column: str, label: str) -> AnalysisConfig:
    """cfg with a seed derived from (seed, column, label): every group gets its own resamples."""
    seq = np.random.SeedSequence([cfg.seed, zlib.crc32(column.encode()), zlib.crc32(label.encode())])
    return dataclasses.replace(cfg, seed=int(seq.generate_state(1)[0]))


def _subset(df: pd.DataFrame, idx: np.ndarray) -> pd.DataFrame:
    return df.iloc[idx].reset_index(drop=True)


def _join(*notes) -> str:
    return "; ".join(str(n) for n in notes if isinstance(n, str) and n)


def _with_group(frame: pd.DataFrame, g: Grouping, label: str) -> pd.DataFrame:
    frame = frame.copy()
    frame[T.GROUP_BY], frame[T.GROUP] = g.column, label
    if g.note and "note" in frame:
        frame["note"] = [_join(n, g.note) for n in frame["note"]]
    return frame


def _small_rows(df: pd.DataFrame, g: Grouping, columns: list[str]) -> pd.DataFrame:
    """One row per group below min_group: its size and why it is not computed."""
    meta = {c: df[c].iloc[0] for c in ("dataset", "model", "model_type", "model_size", C.PAIR_COLUMN)
            if c in df.columns and c in columns}
    rows = [dict(meta, group_by=g.column, group=lab, n=k,
                 note=_join(f"group of {k} items < min_group={g.min_group}: not computed", g.note))
            for lab, k in g.small]
    return pd.DataFrame(rows, columns=columns)


def _concat(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    parts = [p for p in parts if p is not None and not p.empty]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def _per_group(fn: Callable[[pd.DataFrame, AnalysisConfig], pd.DataFrame], df: pd.DataFrame,
               groupings: list[Grouping], cfg: AnalysisConfig, columns: list[str]) -> list[pd.DataFrame]:
    parts = []
    for g in groupings:
        for label, idx in g.groups:
            try:
                part = fn(_subset(df, idx), group_cfg(cfg, g.column, label))
            except Exception as e:  # one bad group must not stop the others: a row saying why
                meta = {c: df[c].iloc[0] for c in ("dataset", "model", "model_type", "model_size") if c in df}
                part = pd.DataFrame([dict(meta, n=len(idx), note=f"group failed: {type(e).__name__}: {e}")],
                                    columns=columns)
            parts.append(_with_group(part, g, label))
        parts.append(_small_rows(df, g, columns))
    return parts


# ---------------------------------------------------------------------------------------------
# the four grouped tables (pooled rows first, then per grouping: computed groups and small groups)


def alignment_rows(df: pd.DataFrame, groupings: list[Grouping], cfg: AnalysisConfig) -> pd.DataFrame:
    """alignment_table of the whole table and of every group (q-values: alignment.add_qvalues)."""
    return _concat([A.alignment_table(df, cfg)] + _per_group(A.alignment_table, df, groupings, cfg, A.COLUMNS),
                   A.COLUMNS)


def calibration_rows(df: pd.DataFrame, groupings: list[Grouping], cfg: AnalysisConfig
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(calibration rows of the table and of every group, reliability rows of the pooled table only)."""
    cal, rel = K.calibration_table(df, cfg)
    groups = _per_group(lambda d, c: K.calibration_table(d, c)[0], df, groupings, cfg, K.CAL_COLUMNS)
    return _concat([cal] + groups, K.CAL_COLUMNS), rel


def preference_rows(df: pd.DataFrame, groupings: list[Grouping], cfg: AnalysisConfig) -> pd.DataFrame:
    """preference_table of the table and of every group."""
    def one(d, _cfg):
        return pd.DataFrame([P.preference_table(d)], columns=P.COLUMNS)
    return _concat([one(df, cfg)] + _per_group(one, df, groupings, cfg, P.COLUMNS), P.COLUMNS)


def distribution_rows(df: pd.DataFrame, groupings: list[Grouping], cfg: AnalysisConfig
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """distribution_table with every computed group's summaries, and rows for the small groups."""
    groups = [(g.column, lab, idx) for g in groupings for lab, idx in g.groups]
    dist, items = DI.distribution_table(df, cfg, groups=groups)
    if dist.empty or not dist["metric"].notna().any():  # no shares at all: no group rows either
        return dist, items
    for g in groupings:
        if g.note:
            sel = dist[T.GROUP_BY] == g.column
            dist.loc[sel, "note"] = [_join(n, g.note) for n in dist.loc[sel, "note"]]
    return _concat([dist] + [_small_rows(df, g, DI.COLUMNS) for g in groupings], DI.COLUMNS), items


# ---------------------------------------------------------------------------------------------
# heterogeneity


def cochran_q(est: np.ndarray, var: np.ndarray) -> tuple[float, int, float, float]:
    """(Q, df, p, I^2) of Cochran's test that k independent estimates with variances var are equal."""
    est, w = np.asarray(est, float), 1.0 / np.asarray(var, float)
    k = len(est)
    if k < 2:
        return np.nan, max(k - 1, 0), np.nan, np.nan
    mean = np.sum(w * est) / np.sum(w)
    q = float(np.sum(w * (est - mean) ** 2))
    df = k - 1
    return q, df, float(stats.chi2.sf(q, df)), float(max(0.0, (q - df) / q)) if q > 0 else 0.0


def delong_variance(u: np.ndarray, wrong: np.ndarray) -> float:
    """DeLong variance of AUROC = P(u_wrong > u_right) + 0.5 P(tie), from midrank placements.

    V10_i = (R_i - R^w_i) / n0 for wrong items (R: midrank among all, R^w among the wrong items),
    V01_j = (n1 - R_j + R^r_j) / n1 for right items; Var = s^2(V10) / n1 + s^2(V01) / n0 (ddof 1)."""
    u, wrong = np.asarray(u, float), np.asarray(wrong, bool)
    n1, n0 = int(wrong.sum()), int((~wrong).sum())
    if n1 < 2 or n0 < 2:
        return np.nan
    r = stats.rankdata(u)
    v10 = (r[wrong] - stats.rankdata(u[wrong])) / n0
    v01 = (n1 - r[~wrong] + stats.rankdata(u[~wrong])) / n1
    return float(np.var(v10, ddof=1) / n1 + np.var(v01, ddof=1) / n0)


def _het_row(meta: dict, statistic: str, measure: str, target: str, k: int, n_items: int, q: float, df,
             p: float, test: str, note: str = "", i2: float = np.nan) -> dict:
    return dict(meta, statistic=statistic, measure=measure, target=target, k_groups=k, n_items=n_items, Q=q,
                df=df, p_value=p, i2=i2, test=test, note=note)


def _excluded(n_out: int, why: str) -> str:
    return f"{n_out} groups left out: {why}" if n_out else ""


def alignment_heterogeneity(al: pd.DataFrame) -> list[dict]:
    """Cochran's Q on Fisher z of the group rows of alignment.csv, per dataset x model x group_by x
    method x measure x target."""
    rows: list[dict] = []
    if al.empty:
        return rows
    g = al[~T.is_pooled(al) & al["method"].isin(list(FISHER_VAR)) & al["measure"].notna()]
    for (ds, model, by, method, measure, target), part in g.groupby(
            ["dataset", "model", T.GROUP_BY, "method", "measure", "target"], sort=False):
        a, c = FISHER_VAR[method]
        r, n = part["coef"].to_numpy(float), part["n"].to_numpy(float)
        ok = np.isfinite(r) & (n > c) & (np.abs(r) < 1)
        q, df, p, i2 = cochran_q(np.arctanh(r[ok]), a / (n[ok] - c))
        why = _excluded(int((~ok).sum()), f"coefficient undefined, |r| = 1 or n <= {c}")
        if ok.sum() < 2:
            why = _join("fewer than 2 groups with a defined coefficient: no test", why)
        rows.append(_het_row(dict(dataset=ds, model=model, group_by=by), f"alignment_{method}", measure, target,
                             int(ok.sum()), int(n[ok].sum()), q, df, p, TESTS["alignment"].format(a=a, c=c), why, i2))
    return rows


def _chi2_homogeneity(counts: np.ndarray) -> tuple[float, float, float, str]:
    """(chi2, df, p, note) of a k x 2 table of counts (rows with no item removed)."""
    counts = counts[counts.sum(axis=1) > 0]
    if len(counts) < 2:
        return np.nan, np.nan, np.nan, "fewer than 2 groups with items: no test"
    if (counts.sum(axis=0) == 0).any():
        return np.nan, np.nan, np.nan, "one outcome only in every group: no test"
    res = stats.chi2_contingency(counts, correction=False)
    small = int((res.expected_freq < 5).sum())
    note = f"{small} cells with expected count < 5: the chi-square p-value is approximate" if small else ""
    return float(res.statistic), float(res.dof), float(res.pvalue), note


def preference_heterogeneity(pref: pd.DataFrame) -> list[dict]:
    """Chi-square homogeneity of plurality agreement across the groups of preference.csv."""
    rows: list[dict] = []
    if pref.empty or "plurality_agreement" not in pref:
        return rows
    g = pref[~T.is_pooled(pref) & pref["plurality_agreement"].notna()]
    for (ds, model, by), part in g.groupby(["dataset", "model", T.GROUP_BY], sort=False):
        n = part["n"].to_numpy(float)
        agree = np.rint(part["plurality_agreement"].to_numpy(float) * n)
        q, df, p, note = _chi2_homogeneity(np.column_stack([agree, n - agree]))
        rows.append(_het_row(dict(dataset=ds, model=model, group_by=by), "plurality_agreement", "cloze_pred",
                             "human plurality", len(part), int(n.sum()), q, df, p, TESTS["plurality_agreement"], note))
    return rows


def _permutation_ece(conf: np.ndarray, correct: np.ndarray, codes: np.ndarray, perms: np.ndarray
                     ) -> tuple[float, np.ndarray, np.ndarray]:
    """(T observed, T per permutation [P], ECE per group [G]) of the n-weighted spread of group ECEs.

    ECE_g = sum_b |sum_{i in g, b} (correct_i - conf_i)| / n_g on 10 equal-width bins."""
    n_bins = K.N_BINS
    G = int(codes.max()) + 1
    b = K.width_bins(conf)
    d = correct - conf
    n_g = np.bincount(codes, minlength=G).astype(float)

    def spread(lab):  # lab [R, N] -> T [R]
        R = lab.shape[0]
        flat = (np.arange(R)[:, None] * G + lab) * n_bins + b[None, :]
        s = np.bincount(flat.ravel(), weights=np.broadcast_to(d, lab.shape).ravel(), minlength=R * G * n_bins)
        e = np.abs(s.reshape(R, G, n_bins)).sum(axis=2) / n_g[None, :]
        mean = (e * n_g).sum(axis=1, keepdims=True) / n_g.sum()
        return (n_g * (e - mean) ** 2).sum(axis=1), e

    t_obs, e_obs = spread(codes[None, :])
    t_perm = np.concatenate([spread(perms[i:i + 200])[0] for i in range(0, len(perms), 200)]) if len(perms) \
        else np.array([])
    return float(t_obs[0]), t_perm, e_obs[0]


def item_heterogeneity(df: pd.DataFrame, g: Grouping, cfg: AnalysisConfig,
                       dist_items: pd.DataFrame | None = None) -> list[dict]:
    """Item-level tests over the computed groups of one grouping: AUROC (DeLong Q), ECE (permutation),
    accuracy (chi-square) per task and measure, and the Kruskal-Wallis test of per-item JSD."""
    meta = dict(dataset=str(df["dataset"].iloc[0]), model=str(df["model"].iloc[0]), group_by=g.column)
    rows: list[dict] = []
    if not g.groups:
        return rows
    codes = np.full(len(df), -1)
    for c, (_, idx) in enumerate(g.groups):
        codes[idx] = c
    perm_cache: dict[bytes, np.ndarray] = {}
    for task, corr, _source, _n_ung, ms in K.task_columns(df, cfg):
        target = f"correct_{task}"
        has = np.isfinite(corr) & (codes >= 0)
        counts = np.array([[np.sum(corr[idx][np.isfinite(corr[idx])] == 1),
                            np.sum(corr[idx][np.isfinite(corr[idx])] == 0)] for _, idx in g.groups], float)
        q, dof, p, note = _chi2_homogeneity(counts)
        rows.append(_het_row(meta, "accuracy", "", target, int((counts.sum(axis=1) > 0).sum()), int(has.sum()),
                             q, dof, p, TESTS["accuracy"], note))
        vals = df[ms].to_numpy(dtype=float)
        for j, m in enumerate(ms):
            u = vals[:, j] * C.orientation(m)
            est, var, n_used, out = [], [], 0, 0
            for _, idx in g.groups:
                sel = idx[np.isfinite(u[idx]) & np.isfinite(corr[idx])]
                wrong = corr[sel] == 0
                v = delong_variance(u[sel], wrong)
                if not np.isfinite(v) or v <= 0:
                    out += 1
                    continue
                est.append(K.auroc(u[sel], wrong))
                var.append(v)
                n_used += len(sel)
            q, dof, p, i2 = cochran_q(np.array(est), np.array(var))
            why = _excluded(out, "fewer than 2 right or 2 wrong items, or zero DeLong variance (perfect separation)")
            if len(est) < 2:
                why = _join("fewer than 2 groups with a defined AUROC variance: no test", why)
            rows.append(_het_row(meta, "auroc", m, target, len(est), n_used, q, dof, p, TESTS["auroc"], why, i2))
            cmap = C.confidence_map(m)
            if cmap is None:
                continue
            conf = K.to_confidence(vals[:, j], cmap)
            sel = np.flatnonzero(np.isfinite(vals[:, j]) & np.isfinite(corr) & (codes >= 0))
            present = np.unique(codes[sel])
            test = TESTS["ece_width10"].format(P=cfg.permutations)
            if len(present) < 2 or cfg.permutations == 0:
                rows.append(_het_row(meta, "ece_width10", m, target, len(present), len(sel), np.nan, np.nan, np.nan,
                                     test, "fewer than 2 groups or permutations = 0: no test"))
                continue
            lab = np.searchsorted(present, codes[sel])  # 0..G'-1
            key = sel.tobytes()
            if key not in perm_cache:
                rng = A._rng(cfg, meta["dataset"], meta["model"], g.column, task, "ece_permutation")
                perm_cache[key] = rng.permuted(np.tile(lab, (cfg.permutations, 1)), axis=1)
            t, t_perm, _ = _permutation_ece(conf[sel], corr[sel], lab, perm_cache[key])
            p = float((1 + np.sum(t_perm >= t - 1e-12)) / (1 + len(t_perm)))
            rows.append(_het_row(meta, "ece_width10", m, target, len(present), len(sel), t, np.nan, p, test))
    if dist_items is not None and not dist_items.empty:
        it = dist_items[(dist_items["dataset"].astype(str) == meta["dataset"])
                        & (dist_items["model"].astype(str) == meta["model"])]
        if not it.empty:
            c = codes[it["item"].to_numpy(int)]
            jsd = it["jsd_model"].to_numpy(float)
            samples = [jsd[(c == k) & np.isfinite(jsd)] for k in range(len(g.groups))]
            samples = [s for s in samples if len(s)]
            h, p, note = np.nan, np.nan, ""
            if len(samples) >= 2 and np.ptp(np.concatenate(samples)) > 0:
                res = stats.kruskal(*samples)
                h, p = float(res.statistic), float(res.pvalue)
            else:
                note = "fewer than 2 groups with items, or every JSD equal: no test"
            rows.append(_het_row(meta, "distribution_jsd", "mc_choice-pdf", str(it["target"].iloc[0]), len(samples),
                                 int(sum(len(s) for s in samples)), h, len(samples) - 1 if samples else np.nan, p,
                                 TESTS["distribution_jsd"], note))
    return rows


def heterogeneity_table(rows: list[dict], correction: str = "bh") -> pd.DataFrame:
    """heterogeneity.csv from rows, with q-values per dataset x model x group_by x statistic (all
    measures and targets)."""
    het = pd.DataFrame(rows, columns=HET_COLUMNS)
    if het.empty:
        return het
    het = family_qvalues(het, {"p_value": "q_value"}, correction, ["dataset", "statistic"],
                         ["dataset", "model", T.GROUP_BY, "statistic"], "", "all measures and targets")
    return het[HET_COLUMNS]
