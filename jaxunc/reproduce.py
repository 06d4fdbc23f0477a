"""jaxunc.reproduce: recompute the reference study's published numbers from the extract shipped in the
package (jaxunc/data/reference/: the study's per-item measures, no prompts), with no model and no
download.

    python -m jaxunc.reproduce --study=coane   [--output_dir=results/reproduce/coane]
    python -m jaxunc.reproduce --study=protoqa [--output_dir=results/reproduce/protoqa] [--bootstrap=0]

coane: the study's three Coane multiple-choice heatmaps (Spearman of 17 measures with
MC_Human_Prop_Correct, MC_Human_RT_Combined and human-ent for 30 models over the 419 graded items,
confidence measures negated) and their base-vs-instruct Wilcoxon column; prints how many of the 703
printed cells and 39 Wilcoxon cells are within 0.005 and the masking rule that decides which cells
are printed; writes cells.csv, wilcoxon.csv and, per human signal, the printed and the recomputed
heatmap side by side (figures/).
protoqa: alignment with human-ent on the 4 published ProtoQA models, whose number of options varies
(2-9): the 2025 study's Pearson(measure x ln n, H(r)), which n confounds, beside the Spearman and the
partial Spearman controlling for n (docs/analyses.md section 1); writes alignment.csv and the three
heatmaps side by side.
Exit status 1 when a check fails (a printed cell not reproduced), 2 for a usage error.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from jaxunc import cli
from jaxunc.data import reference_study as R

TOLERANCE = 0.005  # the heatmaps print 2 decimals (Wilcoxon: 3)
COANE_TARGETS = ("MC_Human_Prop_Correct", "MC_Human_RT_Combined", "human-ent")
FIGURE = "corr_heatmap_Coane (MCQA)_"
WILCOXON = "Wilcoxonr(IFTPairs)"
# The masking rule, established against the blank cells: Bonferroni over 30 models x 17 measures x 4
# human signals (the study's four Coane heatmaps) for correlations, over 17 measures for Wilcoxon.
N_CORRELATION_TESTS = 30 * 17 * 4
N_WILCOXON_TESTS = 17
CORR_THRESHOLD = 0.05 / N_CORRELATION_TESTS
WILCOXON_THRESHOLD = 0.05 / N_WILCOXON_TESTS


@dataclass
class Reproduction:
    """What a study's reproduction found: its tables, the summary lines and whether every check held."""

    tables: dict[str, pd.DataFrame]
    lines: list[str]
    ok: bool
    figures: list[Path] = field(default_factory=list)
    numbers: dict[str, float] = field(default_factory=dict)


def coane_alignment() -> pd.DataFrame:
    """Spearman rows of the 17 figure measures x 3 signals x 30 models over the 419 graded items."""
    from jaxunc.stats import alignment as A
    from jaxunc.stats.config import AnalysisConfig

    measures = tuple(R.printed_values()["row"].unique())
    frames = [t[t[R.GRADING_COLUMN] != "?"].reset_index(drop=True) for t in R.reference_tables("coane")]
    al = A.alignment_tables(frames, AnalysisConfig(bootstrap=0, kendall=False, measures=measures))
    return al[(al["method"] == "spearman") & al["target"].isin(COANE_TARGETS)].reset_index(drop=True)


def coane_cells(al: pd.DataFrame, printed: pd.DataFrame) -> pd.DataFrame:
    """One row per model x measure x signal: recomputed (oriented), printed (NaN = blank), p, shown."""
    corr = printed[printed["column"] != WILCOXON].rename(columns={"column": "model", "row": "measure",
                                                                   "value": "printed"})
    cells = al.assign(figure=FIGURE + al["target"])[["figure", "target", "model", "measure", "n", "coef",
                                                      "coef_oriented", "p_value"]]
    cells = cells.merge(corr, on=["figure", "model", "measure"], how="left")
    missing = corr.merge(cells[["figure", "model", "measure"]], how="left", indicator=True)
    if (missing["_merge"] == "left_only").any():
        raise ValueError(f"{R.COANE_FIGURES}: printed cells with no recomputed counterpart, e.g. "
                         f"{missing[missing['_merge'] == 'left_only'].iloc[0].to_dict()}")
    cells["shown_by_rule"] = cells["p_value"] < CORR_THRESHOLD
    cells["difference"] = cells["coef_oriented"] - cells["printed"]
    return cells


def coane_wilcoxon(al: pd.DataFrame, printed: pd.DataFrame) -> pd.DataFrame:
    """Base-vs-instruct rank-biserial per measure x signal over the 15 pairs, beside the printed value."""
    from jaxunc.stats import compare as X

    cmp_ = X.compare_models(al, pd.DataFrame())
    cmp_ = cmp_[cmp_["comparison"] == "base_vs_instruct"]
    wil = printed[printed["column"] == WILCOXON].rename(columns={"row": "measure", "value": "printed"})
    out = cmp_.assign(figure=FIGURE + cmp_["target"])[["figure", "target", "measure", "n_pairs", "effect_size",
                                                        "p_value"]]
    out = out.merge(wil[["figure", "measure", "printed"]], on=["figure", "measure"], how="left")
    out["shown_by_rule"] = out["p_value"] < WILCOXON_THRESHOLD
    out["difference"] = out["effect_size"] - out["printed"]
    return out.reset_index(drop=True)


def reproduce_coane(out: Path, figures: bool = True) -> Reproduction:
    printed = R.printed_values()
    al = coane_alignment()
    cells, wil = coane_cells(al, printed), coane_wilcoxon(al, printed)
    shown = cells["printed"].notna()
    n_printed, n_close = int(shown.sum()), int((cells.loc[shown, "difference"].abs() <= TOLERANCE).sum())
    rule_ok = int((cells["shown_by_rule"] == shown).sum())
    w_shown = wil["printed"].notna()
    w_close = int((wil.loc[w_shown, "difference"].abs() <= TOLERANCE).sum())
    w_rule = int((wil["shown_by_rule"] == w_shown).sum())
    worst = float(cells.loc[shown, "difference"].abs().max())
    models, n_items = cells["model"].nunique(), int(cells["n"].max())
    lines = [
        f"Coane multiple choice, reference study: {models} models x {cells['measure'].nunique()} measures x "
        f"{len(COANE_TARGETS)} human signals, Spearman over the {n_items} graded items "
        "(fr_correct? = '?' dropped), confidence measures (mc_choice-prob, mc_top-1-prob) negated",
        f"{n_close} of {n_printed} printed cells within {TOLERANCE} (max |recomputed - printed| = {worst:.6f}; "
        "printed with 2 decimals)",
        f"masking rule: a cell is printed iff its uncorrected Spearman p < 0.05/{N_CORRELATION_TESTS} = "
        f"{CORR_THRESHOLD:.3g} (Bonferroni over 30 models x 17 measures x 4 human signals); {rule_ok} of "
        f"{len(cells)} cells follow it ({n_printed} printed, {len(cells) - n_printed} blank; largest printed p "
        f"{cells.loc[shown, 'p_value'].max():.3g}, smallest blank p {cells.loc[~shown, 'p_value'].min():.3g})",
        f"Wilcoxon column (base vs instruct, {int(wil['n_pairs'].max())} pairs, matched-pairs rank-biserial): "
        f"{w_close} of {int(w_shown.sum())} printed cells within {TOLERANCE}; printed iff the exact two-sided "
        f"p < 0.05/{N_WILCOXON_TESTS}: {w_rule} of {len(wil)} cells follow it",
    ]
    ok = n_close == n_printed and rule_ok == len(cells) and w_close == int(w_shown.sum()) and w_rule == len(wil)
    result = Reproduction({"cells": cells, "wilcoxon": wil}, lines, ok,
                          numbers=dict(printed=n_printed, within=n_close, max_difference=worst,
                                       rule_agrees=rule_ok, cells=len(cells), wilcoxon_printed=int(w_shown.sum()),
                                       wilcoxon_within=w_close, wilcoxon_rule_agrees=w_rule))
    _write(out, result)
    if figures:
        result.figures = coane_figures(cells, wil, out / "figures")
    return result


def protoqa_alignment(bootstrap: int = 0, seed: int = 0) -> pd.DataFrame:
    """Alignment with human-ent of the 4 ProtoQA models: Spearman, partial Spearman (n), the 2025 Pearson
    and n-stratified Spearman, oriented (docs/analyses.md section 1)."""
    from jaxunc.stats import alignment as A
    from jaxunc.stats.config import AnalysisConfig

    cfg = AnalysisConfig(bootstrap=bootstrap, seed=seed, kendall=False, reproduce_2025=True)
    al = A.alignment_tables(R.reference_tables("protoqa"), cfg)
    return al[al["target"].isin(["human-ent", "H(r)"]) & (al["method"] != "pearson")].reset_index(drop=True)


def protoqa_wide(al: pd.DataFrame) -> pd.DataFrame:
    """model x measure: the 2025 Pearson, Spearman and partial Spearman (oriented) with their p-values."""
    keep = {"pearson_2025_confounded": "pearson_2025", "spearman": "spearman", "partial_spearman": "partial_spearman"}
    rows = al[al["method"].isin(keep)].assign(method=lambda d: d["method"].map(keep))
    wide = rows.pivot_table(index=["model", "measure", "n"], columns="method", values=["coef_oriented", "p_value"])
    wide.columns = [f"{m}" if v == "coef_oriented" else f"{m}_p" for v, m in wide.columns]
    wide = wide.reset_index()
    order = ["model", "measure", "n", "pearson_2025", "pearson_2025_p", "spearman", "spearman_p", "partial_spearman",
             "partial_spearman_p"]
    return wide[order]


def reproduce_protoqa(out: Path, figures: bool = True, bootstrap: int = 0) -> Reproduction:
    al = protoqa_alignment(bootstrap)
    wide = protoqa_wide(al)
    n_tests = len(wide)
    threshold = 0.05 / n_tests
    n_options = np.concatenate([t["n_options"].to_numpy() for t in R.reference_tables("protoqa")[:1]])
    inflated = wide["pearson_2025"] - wide["partial_spearman"]
    lost = int(((wide["spearman_p"] < threshold) & (wide["partial_spearman_p"] >= threshold)).sum())
    flipped = int((np.sign(wide["spearman"]) != np.sign(wide["partial_spearman"])).sum())
    best = wide.loc[wide.groupby("model")["partial_spearman"].idxmax()]
    lines = [
        f"ProtoQA, reference study's 4 models x {wide['measure'].nunique()} measures, alignment with human-ent "
        f"over {int(wide['n'].max())} items whose number of options n varies (n = {n_options.min()}-"
        f"{n_options.max()}); oriented: confidence measures negated",
        f"mean over the {n_tests} cells: 2025 study's Pearson(measure x ln n, H(r)) {wide['pearson_2025'].mean():.3f} "
        f"(confounded by n), Spearman {wide['spearman'].mean():.3f}, partial Spearman controlling for n "
        f"{wide['partial_spearman'].mean():.3f}",
        f"the 2025 coefficient exceeds the partial one by {inflated.mean():.3f} on average (max {inflated.max():.3f}); "
        f"after controlling for n, {lost} of {n_tests} cells lose significance (Bonferroni p < 0.05/{n_tests}) and "
        f"{flipped} change sign",
        "best measure per model by partial Spearman: " + "; ".join(
            f"{r.model} {r.measure} {r.partial_spearman:.3f} (Spearman {r.spearman:.3f}, 2025 {r.pearson_2025:.3f})"
            for r in best.itertuples()),
    ]
    ok = bool(np.isfinite(wide[["pearson_2025", "spearman", "partial_spearman"]].to_numpy()).all())
    result = Reproduction({"alignment": wide, "alignment_long": al}, lines, ok,
                          numbers=dict(cells=n_tests, mean_pearson_2025=float(wide["pearson_2025"].mean()),
                                       mean_spearman=float(wide["spearman"].mean()),
                                       mean_partial=float(wide["partial_spearman"].mean()), lost=lost,
                                       flipped=flipped))
    _write(out, result)
    if figures:
        result.figures = protoqa_figures(wide, out / "figures")
    return result


def _write(out: Path, result: Reproduction) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, table in result.tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    (out / "summary.txt").write_text("\n".join(result.lines) + "\n")


def _panel(ax, mat: pd.DataFrame, title: str, fmt: str = "{:.2f}", vmax: float = 1.0, fontsize: float = 4):
    values = mat.to_numpy(float)
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
    ax.set_xticks(range(mat.shape[1]), mat.columns, rotation=90, fontsize=6)
    ax.set_yticks(range(mat.shape[0]), mat.index, fontsize=6)
    ax.set_title(title, fontsize=8)
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=fontsize)
    return image


def coane_figures(cells: pd.DataFrame, wil: pd.DataFrame, fig_dir: Path) -> list[Path]:
    """Per human signal: the printed heatmap (blanks kept) and the recomputed one (masked by the rule)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for target in COANE_TARGETS:
        c = cells[cells["target"] == target]
        w = wil[wil["target"] == target].set_index("measure")
        printed = c.pivot(index="measure", columns="model", values="printed")
        ours = c.assign(v=c["coef_oriented"].where(c["shown_by_rule"])).pivot(index="measure", columns="model",
                                                                              values="v")
        printed[WILCOXON] = w["printed"].reindex(printed.index)
        ours[WILCOXON] = w["effect_size"].where(w["shown_by_rule"]).reindex(ours.index)
        fig, axes = plt.subplots(1, 2, figsize=(16, 6), sharey=True)
        _panel(axes[0], printed, f"printed by the study: Coane (MCQA), {target}")
        image = _panel(axes[1], ours, f"recomputed by jaxunc (p < 0.05/{N_CORRELATION_TESTS}; Wilcoxon "
                                      f"p < 0.05/{N_WILCOXON_TESTS})")
        fig.colorbar(image, ax=axes, shrink=0.6, label="oriented Spearman / rank-biserial")
        path = fig_dir / f"coane_{target}_printed_vs_recomputed.png"
        fig.savefig(path, dpi=130, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def protoqa_figures(wide: pd.DataFrame, fig_dir: Path) -> list[Path]:
    """The 2025 Pearson, the Spearman and the partial Spearman (measures x models) side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_dir.mkdir(parents=True, exist_ok=True)
    titles = {"pearson_2025": "2025 study: Pearson(measure x ln n, H(r)), confounded by n",
              "spearman": "Spearman with human-ent", "partial_spearman": "partial Spearman, controlling for n"}
    vmax = float(np.nanmax(np.abs(wide[list(titles)].to_numpy(float)))) or 1.0
    fig, axes = plt.subplots(1, 3, figsize=(14, 6), sharey=True)
    image = None
    for ax, (column, title) in zip(axes, titles.items()):
        image = _panel(ax, wide.pivot(index="measure", columns="model", values=column), title, vmax=vmax,
                       fontsize=6)
    fig.colorbar(image, ax=axes, shrink=0.6, label="oriented coefficient")
    path = fig_dir / "protoqa_human-ent_2025_vs_spearman_vs_partial.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return [path]


def reproduce(study: str, output_dir: str | Path | None = None, figures: bool = True,
              bootstrap: int = 0) -> Reproduction:
    """Run one study's reproduction and write its outputs under output_dir (default results/reproduce/<study>)."""
    if study not in R.STUDIES:
        raise cli.UsageError(f"--study={study}: expected one of {', '.join(R.STUDIES)}")
    out = Path(output_dir) if output_dir else Path("results") / "reproduce" / study
    if study == "coane":
        return reproduce_coane(out, figures)
    return reproduce_protoqa(out, figures, bootstrap)


def _define_flags() -> None:
    from absl import flags

    if "study" in flags.FLAGS:
        return
    flags.DEFINE_enum("study", None, list(R.STUDIES), "which published numbers to recompute")
    flags.DEFINE_string("output_dir", None, "output folder (default: results/reproduce/<study>)")
    flags.DEFINE_bool("figures", True, "write the figures")
    flags.DEFINE_integer("bootstrap", 0, "protoqa: bootstrap resamples for intervals (0 = none; coane needs none)")
    flags.mark_flag_as_required("study")


def _main(argv: list[str]) -> None:
    from absl import flags

    F = flags.FLAGS
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}")
    if F.bootstrap < 0:
        raise cli.UsageError(f"--bootstrap={F.bootstrap}: expected >= 0")
    result = reproduce(F.study, F.output_dir, F.figures, F.bootstrap)
    out = Path(F.output_dir) if F.output_dir else Path("results") / "reproduce" / F.study
    print("\n".join(result.lines))
    figures = f", {out}/figures/ ({len(result.figures)} PNG)" if result.figures else ""
    print(f"wrote {out}/*.csv, {out}/summary.txt{figures}")
    if not result.ok:
        cli.fail("jaxunc.reproduce", f"{F.study}: not every published number was reproduced (see above)", cli.DATA)


def run_main(argv=None) -> None:
    """The `jaxunc-reproduce` / `python -m jaxunc.reproduce` entry point."""
    _define_flags()
    cli.run("jaxunc.reproduce", _main, argv, doc=__doc__, module=sys.modules[__name__])


if __name__ == "__main__":
    run_main()
