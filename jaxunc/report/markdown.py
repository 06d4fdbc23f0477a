"""report.md: a short human-readable summary of the analysis tables, with figure links."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from jaxunc.stats import distribution as DI
from jaxunc.stats import groups as G
from jaxunc.stats import tables as T
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


def _extremes(rows: pd.DataFrame, key: str, cols: list[str], k: int = 5) -> pd.DataFrame:
    """The k rows with the largest and the k with the smallest `key` (a row once)."""
    rows = rows[rows[key].notna()].sort_values(key, ascending=False)
    n_top = min(k, (len(rows) + 1) // 2)
    top = rows.head(n_top).assign(rank=[f"strongest {i + 1}" for i in range(n_top)])
    n_bottom = min(k, len(rows) - n_top)
    bottom = rows.tail(n_bottom).iloc[::-1].assign(rank=[f"weakest {i + 1}" for i in range(n_bottom)])
    return pd.concat([top, bottom])[["rank"] + cols]


def _groups_section(results: dict[str, pd.DataFrame], cfg) -> list[str]:
    """Statistics by group: which groups, the families, strongest / weakest groups, heterogeneity."""
    cal, al = results.get("calibration", pd.DataFrame()), results.get("alignment", pd.DataFrame())
    het, summ = results.get("heterogeneity", pd.DataFrame()), results.get("groups", pd.DataFrame())
    corr = "Benjamini-Hochberg" if cfg.correction == "bh" else "Bonferroni"
    s = [f"## Statistics by group (group_by = {', '.join(cfg.group_by)})\n",
         "Every pooled row of alignment.csv, calibration.csv, preference.csv and distribution.csv is "
         "repeated for each group of each group_by column (`group_by`, `group` columns; pooled rows: "
         "`group_by` = none, `group` = all), on the group's items, with bootstrap resamples drawn within "
         f"the group and shared by all its measures. Groups with fewer than min_group = {cfg.min_group} "
         "items are listed with their size and not computed. **Multiple comparisons of the group rows:** "
         f"{corr} q-values within each family dataset x model x group_by x statistic, over all groups and "
         "measures (and human targets); the pooled rows keep their own families. Every row names its "
         "family in `q_family`.\n"]
    if not summ.empty:
        rows = []
        for (ds, model, by), d in summ.groupby(["dataset", "model", "group_by"], sort=False):
            missing = d["group"] == "(missing label)"
            small = d[~d["computed"].astype(bool) & ~missing]
            rows.append(dict(dataset=ds, model=model, group_by=by, groups_computed=int(d["computed"].sum()),
                             not_computed=", ".join(f"{r.group} (n={r.n})" for r in small.itertuples())[:300] or "-",
                             items_missing_label=int(d.loc[missing, "n"].sum())))
        t = pd.DataFrame(rows)
        s.append("Groups per table (items without a label are left out of every group and counted):\n")
        s.append(_table(t.head(60)))
    gcal = cal[~T.is_pooled(cal) & cal["measure"].notna() & (cal["task"] == "mc")] if not cal.empty else cal
    if not gcal.empty:
        pcal = T.pooled(cal)
        s.append("### Calibration by group\n")
        s.append("AUROC of the oriented measure for predicting a wrong answer (0.5 = chance), 95% percentile "
                 "bootstrap interval, Mann-Whitney p and its q (group family). Per table and group_by, the "
                 "measure with the highest pooled AUROC; its strongest and weakest groups:\n")
        for (ds, model, by), g in gcal.groupby(["dataset", "model", "group_by"], sort=False):
            pc = pcal[(pcal["dataset"] == ds) & (pcal["model"] == model) & (pcal["task"] == "mc")]
            pc = pc[pc["auroc"].notna()]
            if pc.empty:
                continue
            best = pc.sort_values("auroc", ascending=False).iloc[0]
            rows = g[g["measure"] == best["measure"]].assign(
                accuracy_ci=lambda d: [_fmt_ci(a, lo, hi) for a, lo, hi in
                                       zip(d["accuracy"], d["accuracy_ci_low"], d["accuracy_ci_high"])],
                auroc_ci=lambda d: [_fmt_ci(a, lo, hi) for a, lo, hi in
                                    zip(d["auroc"], d["auroc_ci_low"], d["auroc_ci_high"])])
            n_sig = int((g["auroc_q_value"] < cfg.alpha).sum())
            s.append(f"{ds} / {model} by {by}: `{best['measure']}` (pooled AUROC "
                     f"{_fmt_ci(best['auroc'], best['auroc_ci_low'], best['auroc_ci_high'])}); "
                     f"group x measure cells with q < {cfg.alpha}: {n_sig} of {int(g['auroc_q_value'].notna().sum())}\n")
            s.append(_table(_extremes(rows, "auroc", ["group", "n", "accuracy_ci", "auroc_ci", "auroc_p_value",
                                                     "auroc_q_value"]), "{:.3g}"))
    gal = al[~T.is_pooled(al) & (al["method"] == "spearman") & al["measure"].notna()] if not al.empty else al
    if not gal.empty:
        pal = T.pooled(al)
        s.append("### Human alignment by group\n")
        s.append("Oriented Spearman with the human signal, 95% bootstrap interval and q (group family). Per "
                 "table, group_by and signal, the measure with the highest pooled oriented Spearman:\n")
        for (ds, model, by, tgt), g in gal.groupby(["dataset", "model", "group_by", "target"], sort=False):
            pa = pal[(pal["dataset"] == ds) & (pal["model"] == model) & (pal["target"] == tgt)
                     & (pal["method"] == "spearman") & pal["coef_oriented"].notna()]
            if pa.empty:
                continue
            best = pa.sort_values("coef_oriented", ascending=False).iloc[0]
            sign = -1 if best["coef_oriented"] != best["coef"] else 1
            rows = g[g["measure"] == best["measure"]].assign(
                oriented_ci=lambda d: [_fmt_ci(c, *sorted((sign * lo, sign * hi))) for c, lo, hi in
                                       zip(d["coef_oriented"], d["ci_low"], d["ci_high"])])
            s.append(f"{ds} / {model} by {by}, {tgt}: `{best['measure']}` (pooled {best['coef_oriented']:.3f})\n")
            s.append(_table(_extremes(rows, "coef_oriented", ["group", "n", "oriented_ci", "p_value", "q_value"]),
                            "{:.3g}"))
    if not het.empty:
        s.append("### Do the groups differ? (heterogeneity.csv)\n")
        s.append("H0: the statistic is equal in every computed group. Tests: "
                 + "; ".join(f"`{k}`: {v.format(P=cfg.permutations)}" for k, v in G.TESTS.items() if k != "alignment")
                 + "; `alignment_<method>`: Cochran's Q on Fisher z, Var(z) = 1/(n-3) (Pearson), 1.06/(n-3) "
                 "(Spearman), 0.437/(n-4) (Kendall) (Fieller, Hartley & Pearson 1957). "
                 f"q-values: {corr} within dataset x model x group_by x statistic (all measures and targets).\n")
        t = (het.assign(sig=het["q_value"] < cfg.alpha)
             .groupby(["dataset", "model", "group_by", "statistic"], sort=False)
             .agg(tests=("p_value", lambda p: int(p.notna().sum())), heterogeneous=("sig", "sum")).reset_index())
        s.append(f"Tests with q < {cfg.alpha} (the groups differ by more than noise) / tests:\n")
        s.append(_table(t))
        top = het[het["p_value"].notna()].sort_values("p_value").head(15)
        s.append("Most heterogeneous (smallest p):\n")
        s.append(_table(top[["dataset", "model", "group_by", "statistic", "measure", "target", "k_groups", "Q",
                             "df", "p_value", "q_value"]], "{:.3g}"))
    return s


def base_vs_instruct_rows(cmp_: pd.DataFrame) -> pd.DataFrame:
    """The base-vs-instruct alignment rows of compare.csv that have at least one matched pair."""
    if cmp_.empty or "comparison" not in cmp_:
        return cmp_
    b = cmp_[(cmp_["comparison"] == "base_vs_instruct") & (cmp_["statistic"] == "alignment_coef_oriented(spearman)")]
    return b[pd.to_numeric(b["n_pairs"], errors="coerce").fillna(0) > 0]


def _probes_section(probes: pd.DataFrame) -> list[str]:
    """Activation probes: per table and target, the nested best layer and the test-chosen maximum."""
    s = ["## Activation probes (analysis/probes.csv)\n",
         "Per layer (0 = embedding output, the last = after the final norm) and target: ridge from the "
         "last-token hidden state, K-fold CV with features standardised on the training folds, the "
         "penalty chosen by exact leave-one-out on the training folds only; `r_oof`, `rho_oof`, `r2_oof` "
         "over the out-of-fold predictions (`auroc_oof` for correctness, ridge on 0/1). **Best layer:** "
         "chosen in each outer fold by the training folds' leave-one-out error, never by the test folds; "
         "`nested r` is the outer-fold score of that procedure (kind `nested_best`). `max r (test-chosen)` "
         "is the largest per-layer r_oof, the reference study's choice: optimistic, shown for comparison "
         "only. `perm_r95`: 95th percentile of the same procedure on shuffled targets.\n"]
    rows = []
    for (ds, model, target), g in probes.groupby(["dataset", "model", "target"], sort=False):
        nested = g[g["kind"] == "nested_best"]
        layers = g[(g["kind"] == "layer") & g["r_oof"].notna()]
        if nested.empty or layers.empty:
            note = g["note"].dropna().astype(str)
            rows.append(dict(dataset=ds, model=model, target=target, n=g["n"].iloc[0],
                             note=note.iloc[0] if len(note) else "not probed"))
            continue
        b, top = nested.iloc[0], layers.loc[layers["r_oof"].idxmax()]
        row = dict(dataset=ds, model=model, target=target, n=int(b["n"]), layers_chosen=b["layers_chosen"],
                   **{"nested r": b["r_oof"], "nested R2": b["r2_oof"], "nested perm_r95": b["perm_r95"],
                      "p_perm": b["p_perm"], "max r (test-chosen)": top["r_oof"], "at layer": int(top["layer"])})
        if pd.notna(b.get("auroc_oof")):
            row["nested AUROC"] = b["auroc_oof"]
        rows.append(row)
    s.append(_table(pd.DataFrame(rows).head(200)))
    return s


def write_report(out_dir: Path, results: dict[str, pd.DataFrame], figures: list[Path], problems: list[str],
                 cfg) -> Path:
    al, cal, pref, cmp_ = (T.pooled(results.get(k, pd.DataFrame()))
                           for k in ("alignment", "calibration", "preference", "compare"))
    s = ["# jaxunc analysis report\n",
         f"Bootstrap B = {cfg.bootstrap} (percentile intervals, seed {cfg.seed}); multiple comparisons: "
         f"{'Benjamini-Hochberg' if cfg.correction == 'bh' else 'Bonferroni'} q-values per family "
         "(dataset x method: all models, measures and human signals). Confidence measures are negated in "
         "`coef_oriented` (docs/measures.md section 5); raw `coef` is never negated. "
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
    dist = T.pooled(results.get("distribution", pd.DataFrame()))
    if not dist.empty and dist["metric"].notna().any():
        s += _distribution_section(dist, cfg)
    if getattr(cfg, "group_by", ()):
        s += _groups_section(results, cfg)
    probes = results.get("probes", pd.DataFrame())
    if not probes.empty:
        s += _probes_section(probes)
        skipped = probes.attrs.get("skipped") or []
        if skipped:
            s.append(f"Tables without a hidden-state file (not probed): {', '.join(skipped)}\n")
    b = base_vs_instruct_rows(cmp_)
    if not b.empty:  # only with at least one matched base/instruct pair
        s.append("## Base vs instruct (Wilcoxon signed-rank, rank-biserial: positive = base larger)\n")
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
    if probes.empty:
        s.append("- Activation probes: skipped (no hidden/<dataset>__<model>.safetensors next to the tables; "
                 "--config.analysis.probes=True writes them).\n")
    if "timings" in results:
        s.append("Stage times (s): " + ", ".join(f"{r.stage} {r.seconds:.1f}" for r in results["timings"].itertuples()) + "\n")
    path = out_dir / "report.md"
    path.write_text("\n".join(s))
    return path
