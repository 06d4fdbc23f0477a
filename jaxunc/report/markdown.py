"""report.md: a short human-readable summary of the analysis tables, with figure links."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from jaxunc.stats import distribution as DI
from jaxunc.stats.alignment import CONFOUNDED_NOTE


def _table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    if df.empty:
        return "_(none)_\n"
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = [floatfmt.format(v) if isinstance(v, float) else str(v) for v in r]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt_ci(mean: float, lo: float, hi: float) -> str:
    if not pd.notna(mean):
        return ""
    return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]" if pd.notna(lo) else f"{mean:.3f}"


def _distribution_section(dist: pd.DataFrame, cfg) -> list[str]:
    """Model vs trivial baselines on the whole option distribution (distribution.csv)."""
    s = ["## Distributional alignment (whole option distribution vs human shares)\n",
         "Per item, q = softmax over the item's options of `mc_choice-pdf` and r = the human shares "
         "renormalised; metrics: `jsd` (Jensen-Shannon divergence, base 2, in [0, 1]), `tvd` "
         "(0.5 sum |q - r|), `kl_human_model` (KL(r || q) in nats; **smoothing: q floored at "
         f"{DI.KL_EPS:g} and renormalised**, the same for every predictor), `hellinger`, `top1_agree` "
         "(same most likely option; ties share credit, so uniform scores 1/n) and, for items flagged "
         "ordinal, `representativeness` = 1 - W1(q, r) / W1_max (OpinionQA). Baselines: `uniform` (1/n) and "
         "`dataset_mean` (mean human distribution, in presentation order, of the other items with the "
         "same n: leave-one-out; in presentation order, so on options that were not shuffled and are sorted by "
         "popularity, such as the reference study's ProtoQA files, it learns that order: a position leak, "
         "not alignment). Means over items with 95% percentile bootstrap intervals (items "
         "resampled, shared by all metrics and predictors); p-values: paired bootstrap of the "
         "model-minus-baseline mean difference D, two-sided, p = (1 + #{|D*_b - D| >= |D|}) / (B + 1).\n"]
    pooled = dist[(dist["n_options"].astype(str) == "all") & dist["metric"].notna()]
    main = pooled[pooled["target"] == DI.DEFAULT_TARGET]
    if main.empty:
        main = pooled[pooled["target"] == sorted(pooled["target"])[0]]
    base = main[main["predictor"] != "model"].assign(
        beats=lambda d: d["model_better"].eq(True) & (d["p_value"] < cfg.alpha),
        loses=lambda d: d["model_better"].eq(False) & (d["p_value"] < cfg.alpha))
    summary = (base.groupby(["dataset", "metric", "predictor"])
               .agg(models=("model", "nunique"), model_better_significant=("beats", "sum"),
                    model_worse_significant=("loses", "sum")).reset_index())
    s.append(f"Models whose mean beats / loses to each baseline (paired bootstrap p < {cfg.alpha}), "
             "pooled over items:\n")
    s.append(_table(summary))
    wide = []
    for (ds, model, metric), g in main.groupby(["dataset", "model", "metric"], sort=False):
        g = g.set_index("predictor")
        row = dict(dataset=ds, model=model, metric=metric, better=g["better"].iloc[0], n=int(g.loc["model", "n"]))
        for p in DI.PREDICTORS:
            if p in g.index:
                row["model_mean" if p == "model" else p] = _fmt_ci(g.loc[p, "mean"], g.loc[p, "ci_low"], g.loc[p, "ci_high"])
                if p != "model":
                    row[f"p vs {p}"] = g.loc[p, "p_value"]
        wide.append(row)
    wide = pd.DataFrame(wide)
    if not wide.empty:
        s.append("JSD and top-1 agreement per model (mean [95% CI]):\n")
        s.append(_table(wide[wide["metric"].isin(["jsd", "top1_agree"])].head(80), "{:.2g}"))
    per_n = dist[(dist["n_options"].astype(str) != "all") & (dist["metric"] == "jsd")
                 & (dist["predictor"] == "uniform") & (dist["target"].isin(main["target"].unique()))]
    if not per_n.empty:
        s.append("**The number of options n varies**, and the uniform baseline's divergence from the "
                 "human shares (and so the model-vs-uniform gap) depends on n; compare within n. JSD "
                 "model minus uniform by n (mean over models; rows `n_options` = k in distribution.csv):\n")
        t = (per_n.groupby(["dataset", "n_options"])
             .agg(items=("n", "max"), uniform_jsd=("mean", "mean"), model_minus_uniform=("diff_model_minus_predictor", "mean"))
             .reset_index())
        t["n_sort"] = pd.to_numeric(t["n_options"], errors="coerce")
        s.append(_table(t.sort_values(["dataset", "n_sort"]).drop(columns="n_sort")))
    several = pooled.groupby("dataset")["target"].nunique()
    for ds in several[several > 1].index:
        g = pooled[(pooled["dataset"] == ds) & (pooled["metric"] == "jsd") & (pooled["predictor"] == "model")]
        t = g.groupby("target").agg(models=("model", "nunique"), items=("n", "max"), model_jsd=("mean", "mean"))
        t = t.sort_values("model_jsd").reset_index()
        s.append(f"{ds}: {len(t)} human targets (groups / countries), model JSD mean over models; "
                 "closest and farthest 5:\n")
        s.append(_table(pd.concat([t.head(5), t.tail(5)]).drop_duplicates()))
    drop = main.drop_duplicates(["dataset", "model", "target"])
    drop = drop[drop["n_dropped"] > 0]
    if not drop.empty:
        s.append("Items dropped from the distribution metrics (per table, with reasons):\n")
        s.append(_table(drop[["dataset", "model", "target", "n_dropped", "dropped"]].head(40)))
    return s


def write_report(out_dir: Path, results: dict[str, pd.DataFrame], figures: list[Path], problems: list[str],
                 cfg) -> Path:
    al, cal, pref, cmp_ = (results.get(k, pd.DataFrame()) for k in ("alignment", "calibration", "preference", "compare"))
    s = ["# jaxunc analysis report\n",
         f"Bootstrap B = {cfg.bootstrap} (percentile intervals, seed {cfg.seed}); multiple comparisons: "
         f"{'Benjamini-Hochberg' if cfg.correction == 'bh' else 'Bonferroni'} q-values per family "
         "(dataset x method: all models, measures and human signals). Confidence measures are negated in "
         "`coef_oriented` (measures.md section 5); raw `coef` is never negated. "
         "Partial Spearman controls for the number of options n (rank both, regress out ranked n, "
         "correlate residuals) and is reported with n-stratified Spearman for datasets whose n varies.\n"]
    if problems:
        s.append("## Problems in the input\n")
        s += [f"- {p}" for p in problems]
        s.append("")
    if not al.empty:
        s.append("## Human alignment (oriented Spearman, mean over models)\n")
        sp = al[al["method"] == "spearman"]
        top = (sp.groupby(["dataset", "target", "measure"])["coef_oriented"].mean().reset_index()
               .sort_values("coef_oriented", ascending=False).groupby(["dataset", "target"]).head(5))
        s.append(_table(top))
        sig = sp.assign(sig=sp["q_value"] < cfg.alpha).groupby(["dataset", "target"])["sig"].agg(["sum", "size"])
        s.append("Significant cells (q < alpha) / all:\n")
        s.append(_table(sig.reset_index().rename(columns={"sum": "significant", "size": "tests"})))
        if (al["method"] == "partial_spearman").any():
            s.append("### Confound control (number of options)\n")
            pv = al[al["method"].isin(["spearman", "partial_spearman"])].pivot_table(
                index=["dataset", "target", "measure"], columns="method", values="coef_oriented", aggfunc="mean")
            s.append(_table(pv.reset_index().head(40)))
        if al["method"].eq("pearson_2025_confounded").any():
            s.append(f"### 2025 reproduction mode\n\n**{CONFOUNDED_NOTE}.** These rows (method "
                     "`pearson_2025_confounded`, target `H(r)`) are confounded by the number of options "
                     "and are not evidence of alignment.\n")
    if not cal.empty:
        s.append("## Calibration (multiple choice)\n")
        mc = cal[cal["task"] == "mc"]
        acc = mc.groupby(["dataset", "model"])[["accuracy", "accuracy_ci_low", "accuracy_ci_high"]].first().reset_index()
        s.append(_table(acc))
        best = (mc.groupby(["dataset", "measure"])[["auroc", "ece_width10", "aurc"]].mean().reset_index()
                .sort_values("auroc", ascending=False).head(10))
        s.append("Mean over models, by AUROC of the oriented measure for predicting a wrong answer:\n")
        s.append(_table(best))
    if not pref.empty:
        s.append("## Answer preference\n")
        cols = [c for c in ("dataset", "model", "n", "plurality_agreement", "chance", "binom_p_value",
                            "kendall_distance_mean", "positional_p_value") if c in pref]
        s.append(_table(pref[cols]))
    dist = results.get("distribution", pd.DataFrame())
    if not dist.empty and dist["metric"].notna().any():
        s += _distribution_section(dist, cfg)
    if not cmp_.empty:
        s.append("## Base vs instruct (Wilcoxon signed-rank, rank-biserial: positive = base larger)\n")
        b = cmp_[(cmp_["comparison"] == "base_vs_instruct") & (cmp_["statistic"] == "alignment_coef_oriented(spearman)")]
        s.append(_table(b[["dataset", "measure", "target", "n_pairs", "p_value", "effect_size"]].head(60)))
    if figures:
        s.append("## Figures\n")
        s += [f"- [{p.name}](figures/{p.name})" for p in figures]
        s.append("")
    s.append("## Notes\n\n- Reference-study files (if analysed): instruct prompts end with a stray `{`, "
             "values come from bfloat16 logits (ties, log-probabilities slightly above 0), ProtoQA options "
             "were not shuffled (option A is always the human plurality).\n- NaN rows are dropped per test and "
             "counted in `n_dropped`; constant columns give NaN with the reason in `note`.\n"
             "- The reference study's Coane heatmaps print a cell iff its uncorrected Spearman p < 0.05/2040 "
             "(Bonferroni over 30 models x 17 measures x 4) and a Wilcoxon cell iff p < 0.05/17; its values "
             "are reproduced from the published per-item files within 0.005 (tests/test_reproduction.py).\n")
    if "timings" in results:
        s.append("Stage times (s): " + ", ".join(f"{r.stage} {r.seconds:.1f}" for r in results["timings"].itertuples()) + "\n")
    path = out_dir / "report.md"
    path.write_text("\n".join(s))
    return path
