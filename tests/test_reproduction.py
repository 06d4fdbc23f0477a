"""Reproduce the reference study's Coane multiple-choice heatmaps and our ProtoQA alignment numbers from
the extract shipped in jaxunc/data/reference/ (runs in any clone; docs/analyses.md section 6).

Masking rule, established against the blank cells of the printed values:
- a correlation cell is printed iff its uncorrected Spearman p-value < 0.05 / 2040 (Bonferroni over
  2040 tests = 30 models x 17 measures x 4); measured: largest printed p = 2.403e-5, smallest blank
  p = 2.473e-5, so any threshold in between separates them; p < 0.05 uncorrected, BH at 0.05 and
  Bonferroni over 510 (one figure) or 1530 (three figures) all fail;
- a Wilcoxon cell (rank-biserial over 15 base/instruct pairs of the unmasked coefficients) is
  printed iff its exact two-sided p < 0.05 / 17 (Bonferroni over the 17 measures of a figure);
  measured: largest printed p = 0.00201, smallest blank p = 0.00336.
Independent references: every recomputed coefficient is checked against numpy ranks + np.corrcoef,
the partial Spearman against residuals of a least-squares fit on ranked n, the Wilcoxon effect sizes
against a rank-biserial written here from scipy's ranks and scipy.stats.wilcoxon.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from jaxunc import reproduce as RP
from jaxunc.data import reference_study as R

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "reference"


def ranks_corr(x, y) -> float:
    """Spearman as the Pearson correlation of average ranks (independent of jaxunc.stats)."""
    return float(np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1])


@pytest.fixture(scope="module")
def coane(tmp_path_factory):
    return RP.reproduce_coane(tmp_path_factory.mktemp("coane"), figures=False)


@pytest.fixture(scope="module")
def coane_tables():
    return {t["model"].iloc[0]: t[t["fr_correct?"] != "?"].reset_index(drop=True) for t in R.reference_tables("coane")}


def test_the_extract_is_small_and_has_no_prompts():
    sizes = {p.name: p.stat().st_size for p in R.HERE.iterdir() if p.is_file()}
    assert sum(sizes.values()) < 2.5e6, sizes  # measured 2,236,159 bytes in all
    for study in R.STUDIES:
        extract = R.read_extract(study)
        assert not [c for c in extract.columns if "formatted" in c or c in ("Question", "Answers")]
        assert all(c.startswith("mc_") or c in ("row", *R.MODEL_COLUMNS, R.GRADING_COLUMN, "cloze_pred")
                   for c in extract.columns)
    assert R.read_extract("coane")["model"].nunique() == 30 and len(R.read_extract("protoqa")) == 4 * 8724


def test_coefficients_and_blanks(coane, coane_tables):
    cells = coane.tables["cells"]
    assert len(cells) == 30 * 17 * 3
    assert set(cells["n"]) == {419, 418}  # 419 graded items; one NaN reaction time dropped
    printed = cells["printed"].notna()
    assert printed.sum() == 703 and coane.numbers["within"] == 703
    # every printed value within 0.005 of coef_oriented (confidence measures negated); measured max 0.004998
    assert np.abs(cells.loc[printed, "difference"]).max() <= 0.005
    assert (cells["shown_by_rule"] == printed).all()
    assert coane.ok
    for r in cells.itertuples():  # the independent reference, every cell
        t = coane_tables[r.model]
        keep = t[r.target].notna().to_numpy()
        ref = ranks_corr(t[r.measure].to_numpy(float)[keep], t[r.target].to_numpy(float)[keep])
        assert abs(r.coef - ref) <= 1e-12, (r.model, r.measure, r.target)


def rank_biserial(d: np.ndarray) -> float:
    """Matched-pairs rank-biserial: (sum of ranks of positive d - of negative d) / all ranks, zeros dropped."""
    d = d[d != 0]
    ranks = stats.rankdata(np.abs(d))
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


def test_wilcoxon_column(coane):
    wil, cells = coane.tables["wilcoxon"], coane.tables["cells"]
    assert len(wil) == 17 * 3 and set(wil["n_pairs"]) == {15}
    shown = wil["printed"].notna()
    assert shown.sum() == 39 and coane.numbers["wilcoxon_within"] == 39
    assert np.abs(wil.loc[shown, "difference"]).max() <= 0.005  # printed with 3 decimals
    assert (wil["shown_by_rule"] == shown).all()
    instruct = {"_Ins": "", "_Chat": ""}
    for r in wil.itertuples():
        c = cells[(cells["target"] == r.target) & (cells["measure"] == r.measure)].set_index("model")["coef_oriented"]
        base = [m for m in c.index if not m.endswith(tuple(instruct))]
        partner = {m: next(o for o in c.index if o != m and o.startswith(m) and o.endswith(tuple(instruct)))
                   for m in base}
        d = np.array([c[m] - c[partner[m]] for m in base])
        assert len(d) == 15
        assert abs(r.effect_size - rank_biserial(d)) <= 1e-12
        assert abs(r.p_value - stats.wilcoxon(d, method="exact").pvalue) <= 1e-12


def test_protoqa_alignment_and_partial_numbers(tmp_path):
    result = RP.reproduce_protoqa(tmp_path, figures=False)
    wide = result.tables["alignment"]
    assert len(wide) == 4 * 17 and result.ok
    tables = {t["model"].iloc[0]: t for t in R.reference_tables("protoqa")}
    for r in wide.itertuples():
        t = tables[r.model]
        x, h, n = (t[c].to_numpy(float) for c in (r.measure, "human-ent", "n_options"))
        sign = -1.0 if r.measure in ("mc_choice-prob", "mc_top-1-prob") else 1.0  # confidence: negated
        assert abs(r.spearman - sign * ranks_corr(x, h)) <= 1e-10
        design = np.c_[np.ones_like(n), stats.rankdata(n)]  # residuals of the ranks on ranked n
        rx, rh = (v - design @ np.linalg.lstsq(design, v, rcond=None)[0] for v in (stats.rankdata(x), stats.rankdata(h)))
        assert abs(r.partial_spearman - sign * np.corrcoef(rx, rh)[0, 1]) <= 1e-10
        assert abs(r.pearson_2025 - sign * np.corrcoef(x * np.log(n), h * np.log(n))[0, 1]) <= 1e-10
    # the confound: the 2025 coefficient is far above the n-controlled one (measured means 0.604 vs 0.057)
    assert wide["pearson_2025"].mean() > 0.5 > 0.1 > wide["partial_spearman"].mean() > 0


def test_cli_prints_the_counts_and_the_rule_and_writes_the_figures(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "jaxunc.reproduce", "--study=coane", f"--output_dir={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "703 of 703 printed cells within 0.005" in proc.stdout
    assert "masking rule: a cell is printed iff its uncorrected Spearman p < 0.05/2040" in proc.stdout
    assert "39 of 39 printed cells within 0.005" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "figures").glob("*.png")) == [
        f"coane_{t}_printed_vs_recomputed.png" for t in sorted(RP.COANE_TARGETS)]
    assert len(pd.read_csv(tmp_path / "cells.csv")) == 1530
    proc = subprocess.run([sys.executable, "-m", "jaxunc.reproduce", "--study=protoqa", f"--output_dir={tmp_path / 'p'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "partial Spearman controlling for n" in proc.stdout
    assert (tmp_path / "p" / "figures" / "protoqa_human-ent_2025_vs_spearman_vs_partial.png").exists()


@pytest.mark.skipif(not (SHARED / "authors_results").is_dir(), reason=f"published files not found under {SHARED}")
def test_the_extract_equals_the_published_files():
    """Only where the published files sit beside the repository: the shipped extract is a faithful copy
    and the human columns joined from the shipped datasets equal the published ones."""
    for study in R.STUDIES:
        pd.testing.assert_frame_equal(R.read_extract(study), R.build_extract(SHARED / "authors_results", study))
        for table in R.reference_tables(study):
            name = table["model"].iloc[0]
            published = pd.read_parquet(SHARED / "authors_results" / study / f"{study}_{name}.parquet")
            for col in ("human-ent", "MC_Human_Prop_Correct", "MC_Human_RT_Combined", "Correct_Answer"):
                if col in published:
                    a, b = table[col], published[col]
                    if a.dtype.kind == "f":
                        np.testing.assert_allclose(a, b, rtol=0, atol=1e-15, err_msg=f"{study}/{name}/{col}")
                    else:
                        assert (a.astype(str) == b.astype(str)).all(), (study, name, col)
    assert (R.printed_values() == pd.read_csv(SHARED / "authors_figures_coane_mcqa.csv")).all().all()
