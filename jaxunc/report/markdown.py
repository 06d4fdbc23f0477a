"""report.md: a short human-readable summary of the analysis tables, with figure links."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

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
