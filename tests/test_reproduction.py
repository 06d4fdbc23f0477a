"""Reproduce the reference study's Coane multiple-choice heatmaps (analyses.md section 6).

Masking rule, established against the blank cells of authors_figures_coane_mcqa.csv:
- a correlation cell is printed iff its uncorrected Spearman p-value < 0.05 / 2040 (Bonferroni over
  2040 tests = 30 models x 17 measures x 4); measured: largest printed p = 2.403e-5, smallest blank
  p = 2.473e-5, so any threshold in between separates them; p < 0.05 uncorrected, BH at 0.05 and
  Bonferroni over 510 (one figure) or 1530 (three figures) all fail;
- a Wilcoxon cell (rank-biserial over 15 base/instruct pairs of the unmasked coefficients) is
  printed iff its exact two-sided p < 0.05 / 17 (Bonferroni over the 17 measures of a figure);
  measured: largest printed p = 0.00201, smallest blank p = 0.00336.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jaxunc.stats import alignment as A
from jaxunc.stats import compare as X
from jaxunc.stats import tables as T
from jaxunc.stats.config import AnalysisConfig

SHARED = Path(__file__).resolve().parents[2] / "shared"
REF = SHARED / "reference"
pytestmark = pytest.mark.skipif(not (REF / "authors_figures_coane_mcqa.csv").exists(),
                                reason=f"reference study files not found under {REF}")
CORR_THRESHOLD = 0.05 / 2040
WILCOXON_THRESHOLD = 0.05 / 17
FIG = "corr_heatmap_Coane (MCQA)_"


@pytest.fixture(scope="module")
def computed():
    figs = pd.read_csv(REF / "authors_figures_coane_mcqa.csv")
    measures = tuple(m for m in figs["row"].unique())
    frames = []
    for f in sorted((REF / "authors_results" / "coane").glob("coane_*.parquet")):
        df = T.read_table(f)
        frames.append(df[df["fr_correct?"] != "?"].reset_index(drop=True))
    cfg = AnalysisConfig(bootstrap=0, kendall=False, measures=measures)
    al = A.alignment_tables(frames, cfg)
    al = al[(al["method"] == "spearman") & al["target"].isin(["MC_Human_Prop_Correct", "MC_Human_RT_Combined", "human-ent"])]
    return figs, al


def test_coefficients_and_blanks(computed):
    figs, al = computed
    assert len(al) == 30 * 17 * 3
    assert set(al["n"]) == {419, 418}  # 419 graded items; one NaN reaction time dropped and counted
    assert set(al.loc[al["n"] == 418, "n_dropped"]) == {1}
    al = al.assign(figure=FIG + al["target"])
    m = al.merge(figs, left_on=["figure", "model", "measure"], right_on=["figure", "column", "row"], how="left")
    printed = m["value"].notna()
    assert printed.sum() == (figs["column"] != "Wilcoxonr(IFTPairs)").sum() == 703
    # every printed value within 0.005 of coef_oriented (confidence measures negated); measured max 0.004998
    assert np.abs(m.loc[printed, "coef_oriented"] - m.loc[printed, "value"]).max() <= 0.005
    shown = m["p_value"] < CORR_THRESHOLD
    assert (shown == printed).all(), m.loc[shown != printed, ["figure", "model", "measure", "p_value"]]


def test_wilcoxon_column(computed):
    figs, al = computed
    wil = figs[figs["column"] == "Wilcoxonr(IFTPairs)"]
    n_checked = 0
    cmp_ = X.compare_models(al, pd.DataFrame())
    cmp_ = cmp_[cmp_["comparison"] == "base_vs_instruct"]
    assert len(cmp_) == 17 * 3
    for _, res in cmp_.iterrows():
        target, measure = res["target"], res["measure"]
        assert res["n_pairs"] == 15
        ref = wil[(wil["figure"] == FIG + target) & (wil["row"] == measure)]["value"]
        if res["p_value"] < WILCOXON_THRESHOLD:
            assert len(ref) == 1, (target, measure, res)
            assert abs(res["effect_size"] - ref.iloc[0]) <= 0.005  # printed with 3 decimals
            n_checked += 1
        else:
            assert ref.empty, (target, measure, res)
    assert n_checked == len(wil) == 39
