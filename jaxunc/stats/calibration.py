"""Calibration (docs/analyses.md section 3): does a measure predict the model's own correctness?

u = orientation(measure) * x is the oriented measure (high = uncertain).
- accuracy with a Wilson interval (scipy binomtest.proportion_ci);
- point-biserial r and Spearman rho between correctness (1 = right) and u (negative = informative),
  AUROC of u for predicting a wrong answer: P(u_wrong > u_right) + 0.5 P(tie) (> 0.5 = informative);
  percentile bootstrap intervals (shared count matrix, bootstrap.py); p-values: AUROC by the two-sided
  Mann-Whitney U test (H0: AUROC = 0.5), point-biserial and Spearman by scipy's tests; `auroc_q_value`
  per family (add_qvalues: dataset x task over models and measures; group rows per dataset x model x
  group_by x task over groups and measures);
- AURC: area under the risk-coverage curve, items kept from least to most uncertain (ties in u are
  kept together): mean over coverages k/N of the error rate among the k kept items (lower = better);
- ECE on the confidence of docs/measures.md section 6 (columns.confidence_map):
  ece_width10 (10 equal-width bins on [0, 1]), ece_mass10 (10 equal-mass bins), ece_sweep (equal-mass
  bins, the largest bin count reached before bin accuracies stop being monotone non-decreasing),
  ECE = sum_b n_b / N |acc_b - conf_b|; MCE = max_b |acc_b - conf_b| and RMS = sqrt(sum_b n_b/N
  (acc_b - conf_b)^2) on the 10 equal-width bins; Brier = mean (conf - correct)^2;
- JSD shift (2025 study): z-score u, high = z > 0; T = JSD(pred letters, gold letters | high) -
  JSD(... | low), Jensen-Shannon distance base 2; two-sided permutation p-value from relabellings of
  high/low: (1 + #{|T_perm| >= |T|}) / (1 + P).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from jaxunc import columns as C
from jaxunc.stats import bootstrap as bs
from jaxunc.stats import tables as T
from jaxunc.stats.config import AnalysisConfig
from jaxunc.stats.multitest import family_qvalues

N_BINS = 10


def to_confidence(x: np.ndarray, mapping: str | None) -> np.ndarray:
    """Confidence in [0, 1] from a raw column by a columns.confidence_map name (clipped)."""
    x = np.asarray(x, float)
    if mapping == "identity":
        c = x
    elif mapping == "exp":
        c = np.exp(x)
    elif mapping == "one_minus":
        c = 1.0 - x
    elif mapping == "inverse":
        with np.errstate(divide="ignore"):
            c = 1.0 / x
    else:
        raise ValueError(f"no confidence map {mapping!r}")
    return np.clip(c, 0.0, 1.0)


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def _bins_stats(conf, correct, bin_idx, n_bins):
    cnt = np.bincount(bin_idx, minlength=n_bins).astype(float)
    sc = np.bincount(bin_idx, weights=conf, minlength=n_bins)
    sa = np.bincount(bin_idx, weights=correct, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        return cnt, sc / cnt, sa / cnt


def width_bins(conf: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Equal-width bin index on [0, 1]; 1.0 goes in the last bin."""
    return np.minimum((np.asarray(conf) * n_bins).astype(int), n_bins - 1)


def mass_bins(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-mass bin index: sorted items split into n_bins nearly equal runs (np.array_split)."""
    order = np.argsort(conf, kind="stable")
    idx = np.empty(len(conf), int)
    for b, part in enumerate(np.array_split(order, n_bins)):
        idx[part] = b
    return idx


def ece(conf: np.ndarray, correct: np.ndarray, bin_idx: np.ndarray, n_bins: int) -> float:
    cnt, mc, ma = _bins_stats(conf, correct, bin_idx, n_bins)
    ok = cnt > 0
    return float(np.sum(cnt[ok] / cnt.sum() * np.abs(ma[ok] - mc[ok])))


def ece_sweep(conf: np.ndarray, correct: np.ndarray) -> tuple[float, int]:
    """Monotonic-sweep ECE and its bin count."""
    order = np.argsort(conf, kind="stable")
    cs, cc = np.r_[0, np.cumsum(correct[order])], np.r_[0, np.cumsum(conf[order])]
    n = len(conf)
    best = 1
    for b in range(2, n + 1):
        edges = np.array([len(p) for p in np.array_split(np.arange(n), b)]).cumsum()
        edges = np.r_[0, edges]
        acc = np.diff(cs[edges]) / np.diff(edges)
        if np.any(np.diff(acc) < 0):
            break
        best = b
    return ece(conf, correct, mass_bins(conf, best), best), best


def reliability(conf: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> pd.DataFrame:
    """Equal-width reliability-diagram data: bin edges, count, mean confidence, accuracy."""
    cnt, mc, ma = _bins_stats(conf, correct, width_bins(conf, n_bins), n_bins)
    return pd.DataFrame(dict(bin=np.arange(n_bins), bin_low=np.arange(n_bins) / n_bins,
                             bin_high=np.arange(1, n_bins + 1) / n_bins, count=cnt.astype(int),
                             mean_confidence=mc, accuracy=ma))


def calibration_errors(conf: np.ndarray, correct: np.ndarray) -> dict:
    """ece_width10, ece_mass10, ece_sweep (+ bins), mce, rms, brier."""
    conf, correct = np.asarray(conf, float), np.asarray(correct, float)
    wb = width_bins(conf)
    cnt, mc, ma = _bins_stats(conf, correct, wb, N_BINS)
    ok = cnt > 0
    gap = np.abs(ma[ok] - mc[ok])
    sweep, nb = ece_sweep(conf, correct)
    return dict(ece_width10=ece(conf, correct, wb, N_BINS),
                ece_mass10=ece(conf, correct, mass_bins(conf, N_BINS), N_BINS),
                ece_sweep=sweep, ece_sweep_bins=nb, mce=float(gap.max()),
                rms=float(np.sqrt(np.sum(cnt[ok] / cnt.sum() * gap**2))),
                brier=float(np.mean((conf - correct) ** 2)))


def auroc(u: np.ndarray, wrong: np.ndarray) -> float:
    """P(u_wrong > u_right) + 0.5 P(tie), from average ranks (Mann-Whitney U / (n1 n0))."""
    wrong = np.asarray(wrong, bool)
    n1, n0 = wrong.sum(), (~wrong).sum()
    if n1 == 0 or n0 == 0:
        return np.nan
    r = stats.rankdata(u)
    return float((r[wrong].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def aurc(u: np.ndarray, correct: np.ndarray) -> float:
    """Area under the risk-coverage curve (items kept by increasing u; tied items enter together)."""
    u, err = np.asarray(u, float), 1.0 - np.asarray(correct, float)
    order = np.argsort(u, kind="stable")
    us, es = u[order], err[order]
    cum = np.cumsum(es)
    k = np.arange(1, len(u) + 1)
    # a tie group enters at once: use the risk at the end of each group for all its members
    last = np.r_[us[1:] != us[:-1], True]
    end = np.flatnonzero(last)
    grp_end = end[np.searchsorted(end, np.arange(len(u)))]
    return float(np.mean(cum[grp_end] / k[grp_end]))


def bootstrap_correctness(u: np.ndarray, correct: np.ndarray, n_boot: int, rng: np.random.Generator,
                          chunk: int | None = None) -> dict[str, np.ndarray]:
    """Bootstrap samples [B, m] of point-biserial r, Spearman and AUROC for u [n, m], correct [n]."""
    n, m = u.shape
    sd = u.std(axis=0)
    cols = np.column_stack([(u - u.mean(axis=0)) / np.where(sd > 0, sd, 1.0), correct])
    wrong = 1.0 - correct
    out = {k: np.empty((n_boot, m)) for k in ("pointbiserial_r", "spearman_r", "auroc")}
    plans = [bs.rank_plan(cols[:, k]) for k in range(m + 1)]
    chunk = chunk or bs.chunk_size(n, m + 1, n_boot)
    for start in range(0, n_boot, chunk):
        c = bs.count_matrix(n, min(chunk, n_boot - start), rng)
        sl = slice(start, start + c.shape[0])
        out["pointbiserial_r"][sl] = bs.weighted_cross_corr(cols[:, :m], cols[:, m:], c)[:, :, 0]
        ranks = bs.centred_ranks(plans, c)  # [B, m + 1, n], rank - (n + 1) / 2
        out["spearman_r"][sl] = bs.centred_corr(ranks, [m], c)[:, :m, 0]
        n1 = c @ wrong
        n0 = c.sum(axis=1) - n1
        with np.errstate(invalid="ignore", divide="ignore"):
            s1 = np.matmul(ranks[:, :m, :], (c * wrong)[:, :, None])[:, :, 0] + (n1 * (n + 1) / 2)[:, None]
            out["auroc"][sl] = (s1 - (n1 * (n1 + 1) / 2)[:, None]) / (n1 * n0)[:, None]
    return out


def jsd_shift_test(u: np.ndarray, pred: np.ndarray, gold: np.ndarray, n_perm: int,
                   rng: np.random.Generator) -> tuple[float, float]:
    """T = JSD(pred, gold | z(u) > 0) - JSD(pred, gold | z(u) <= 0) and its permutation p-value."""
    L = int(max(pred.max(), gold.max())) + 1
    P, G = np.eye(L)[pred], np.eye(L)[gold]
    z = (u - u.mean()) / u.std() if u.std() > 0 else np.zeros_like(u)
    high = (z > 0).astype(float)
    if high.sum() == 0 or high.sum() == len(u):
        return np.nan, np.nan
    masks = np.vstack([high[None], rng.permuted(np.tile(high, (n_perm, 1)), axis=1)])  # [1+P, n]

    def t_stat(mk):
        out = []
        for w in (mk, 1 - mk):
            p, g = w @ P, w @ G
            out.append(distance.jensenshannon(p, g, base=2, axis=1))
        return out[0] - out[1]

    t = t_stat(masks)
    return float(t[0]), float((1 + np.sum(np.abs(t[1:]) >= abs(t[0]) - 1e-12)) / (1 + n_perm))


CAL_COLUMNS = ["dataset", "model", "model_type", "model_size", "group_by", "group", "measure", "task",
               "correctness_source", "n", "n_dropped", "n_ungraded", "accuracy", "accuracy_ci_low",
               "accuracy_ci_high", "accuracy_ci_method", "auroc", "auroc_ci_low", "auroc_ci_high", "auroc_p_value",
               "auroc_test", "auroc_q_value", "q_method", "q_family", "pointbiserial_r", "pointbiserial_ci_low",
               "pointbiserial_ci_high", "pointbiserial_p_value", "spearman_r", "spearman_ci_low", "spearman_ci_high",
               "spearman_p_value", "ci_method", "aurc", "confidence_map", "ece_width10", "ece_mass10",
               "ece_sweep", "ece_sweep_bins", "mce", "rms", "brier", "jsd_shift_T", "jsd_shift_p",
               "jsd_shift_test", "note"]
AUROC_TEST = "Mann-Whitney U, two-sided (H0: AUROC = 0.5; scipy.stats.mannwhitneyu, method auto)"


def task_columns(df: pd.DataFrame, cfg: AnalysisConfig) -> list[tuple[str, np.ndarray, str, int, list[str]]]:
    """(task, correctness [N], correctness source, n ungraded, measure columns) per task with a correctness.

    'mc': `mc_*` measures against cloze_pred == Correct_Answer; 'fr': the other measures against the
    free-response correctness (tables.correct_fr)."""
    measures = [m for m in T.measure_columns(df) if not cfg.measures or m in cfg.measures]
    correct_fr, fr_source, n_ungraded = T.correct_fr(df)
    out = []
    for task, corr, source, n_ung in (("mc", T.correct_mc(df), "cloze_pred==Correct_Answer", 0),
                                      ("fr", correct_fr, fr_source, n_ungraded)):
        ms = [m for m in measures if (m.startswith("mc_") if task == "mc" else not m.startswith("mc_"))]
        if ms and np.isfinite(corr).any():
            out.append((task, corr, source, n_ung, ms))
    return out


def calibration_table(df: pd.DataFrame, cfg: AnalysisConfig | None = None
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(calibration rows, reliability rows) for one per-item table."""
    from jaxunc.stats.alignment import _rng  # seeded generator shared with alignment
    cfg = AnalysisConfig.from_any(cfg)
    meta = dict(dataset=df["dataset"].iloc[0], model=df["model"].iloc[0],
                model_type=df["model_type"].iloc[0], model_size=df["model_size"].iloc[0],
                group_by=T.POOLED_BY, group=T.POOLED_GROUP)
    rows, rel = [], []
    letters = ((df["cloze_pred"].map(T.label_index).to_numpy(), df["Correct_Answer"].map(T.label_index).to_numpy())
               if "cloze_pred" in df and "Correct_Answer" in df else None)  # for the JSD-shift test
    for task, corr, source, n_ung, ms in task_columns(df, cfg):
        vals = df[ms].to_numpy(dtype=float)
        groups: dict[bytes, tuple] = {}
        for i, m in enumerate(ms):
            mask = np.isfinite(vals[:, i]) & np.isfinite(corr)
            groups.setdefault(mask.tobytes(), (mask, []))[1].append(i)
        for mask, idx in groups.values():
            n = int(mask.sum())
            cor = corr[mask]
            u = vals[mask][:, idx] * np.array([C.orientation(ms[i]) for i in idx])
            k = int(cor.sum())
            boot, ci = None, {}
            lo_acc, hi_acc = wilson_interval(k, n, cfg.ci_level) if n else (np.nan, np.nan)
            both = 0 < k < n
            if cfg.bootstrap > 0 and both and n >= 3:
                boot = bootstrap_correctness(u, cor, cfg.bootstrap, _rng(cfg, meta["dataset"], meta["model"], task, *idx))
                ci = {key: bs.percentile_ci(v, cfg.ci_level) for key, v in boot.items()}
            for j, i in enumerate(idx):
                m = ms[i]
                row = dict(meta, measure=m, task=task, correctness_source=source, n=n,
                           n_dropped=int(len(df) - n - (n_ung if task == "fr" else 0)), n_ungraded=n_ung,
                           accuracy=k / n if n else np.nan, accuracy_ci_low=lo_acc, accuracy_ci_high=hi_acc,
                           accuracy_ci_method="wilson", confidence_map=C.confidence_map(m) or "none",
                           ci_method=f"bootstrap_{bs.CI_METHOD}_B={cfg.bootstrap}" if ci else "none")
                notes = []
                uj = u[:, j]
                if not both or n < 3:
                    notes.append("all items right or all wrong: no correctness correlation" if n >= 3 else f"fewer than 3 items ({n})")
                elif np.ptp(uj) == 0:
                    notes.append("constant measure")
                else:
                    row["auroc"] = auroc(uj, cor == 0)
                    row["auroc_p_value"] = float(stats.mannwhitneyu(uj[cor == 0], uj[cor == 1]).pvalue)
                    row["auroc_test"] = AUROC_TEST
                    pb, sp = stats.pointbiserialr(cor, uj), stats.spearmanr(cor, uj)
                    row["pointbiserial_r"], row["pointbiserial_p_value"] = float(pb.statistic), float(pb.pvalue)
                    row["spearman_r"], row["spearman_p_value"] = float(sp.statistic), float(sp.pvalue)
                    row["aurc"] = aurc(uj, cor)
                    for key, pre in (("auroc", "auroc"), ("pointbiserial_r", "pointbiserial"), ("spearman_r", "spearman")):
                        if key in ci:
                            row[f"{pre}_ci_low"], row[f"{pre}_ci_high"] = ci[key][0][j], ci[key][1][j]
                    if task == "mc" and cfg.permutations > 0 and letters is not None:
                        pred, gold = letters[0][mask], letters[1][mask]
                        if (pred >= 0).all() and (gold >= 0).all():
                            tt, pp = jsd_shift_test(uj, pred, gold, cfg.permutations,
                                                    _rng(cfg, meta["dataset"], meta["model"], m, "jsd"))
                            row.update(jsd_shift_T=tt, jsd_shift_p=pp, jsd_shift_test=
                                       f"JSD distance base 2, high-low split at z=0, {cfg.permutations} seeded relabellings, two-sided")
                cmap = C.confidence_map(m)
                if cmap is not None and n > 0:
                    conf = to_confidence(vals[mask][:, i], cmap)
                    row.update(calibration_errors(conf, cor))
                    r = reliability(conf, cor)
                    rel.append(r.assign(**meta, measure=m, task=task, confidence_map=cmap))
                elif cmap is None:
                    notes.append("no confidence map: no ECE")
                row["note"] = "; ".join(notes)
                rows.append(row)
    cal = pd.DataFrame(rows, columns=CAL_COLUMNS)
    rel_df = pd.concat(rel, ignore_index=True) if rel else pd.DataFrame()
    return cal, rel_df


def add_qvalues(cal: pd.DataFrame, correction: str = "bh") -> pd.DataFrame:
    """auroc_q_value over the AUROC tests of each family, named in `q_family`.

    Pooled rows: dataset x task (all models and measures); group rows: dataset x model x group_by x
    task (all groups and measures of one model)."""
    return family_qvalues(cal, {"auroc_p_value": "auroc_q_value"}, correction, ["dataset", "task"],
                          ["dataset", "model", T.GROUP_BY, "task"], "AUROC tests of all models and measures",
                          "AUROC tests of all groups and measures")[CAL_COLUMNS]
