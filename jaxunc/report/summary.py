"""The short block the main job prints when it is done, read back from the analysis CSVs it wrote.

Where the tables, report and figures are; per dataset x model: accuracy with its Wilson interval, ECE
of the renormalised option probability, and per human signal the `top` best-aligned measures
(oriented Spearman with its bootstrap interval and q-value) with the partial Spearman controlling for
the number of options beside it (docs/analyses.md, sections 1 and 3).

"Aligned" (docs/measures.md section 5): `coef_oriented` negates confidence measures, so with an
uncertainty-type signal (human-ent, reaction times) positive = aligned; with a confidence-type
signal (share of correct answers) the sign is flipped once more here, so that every value printed is
larger when the model is unsure where people are unsure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from jaxunc import columns as C
from jaxunc.stats import tables as T

ECE_MEASURE = "mc_choice-prob-renorm"


def _read(path: Path) -> pd.DataFrame:
    try:
        return T.pooled(pd.read_csv(path))
    except (OSError, pd.errors.EmptyDataError):
        return pd.DataFrame()


def _num(value: float, digits: int = 3) -> str:
    return "nan" if not np.isfinite(value) else f"{value:.{digits}f}"


def _interval(lo: float, hi: float) -> str:
    return f" [{_num(lo)}, {_num(hi)}]" if np.isfinite(lo) and np.isfinite(hi) else ""


def target_sign(row: pd.Series) -> float:
    """-1 for a confidence-type human signal (aligned = negative coef_oriented), else +1."""
    return -1.0 if str(row.get("target_kind", "")) == C.CONFIDENCE else 1.0


def aligned_interval(row: pd.Series, sign: float) -> tuple[float, float]:
    """The bootstrap interval of `coef` turned like the alignment value sign * coef_oriented."""
    lo, hi = float(row["ci_low"]), float(row["ci_high"])
    turn = sign * C.orientation(str(row["measure"]))
    return (lo, hi) if turn > 0 else (-hi, -lo)


def best_aligned(alignment: pd.DataFrame, dataset: str, model: str, top: int = 3) -> pd.DataFrame:
    """Per human signal, the `top` best-aligned measures: alignment = coef_oriented (sign-flipped for a
    confidence-type signal), its bootstrap interval, q-value and the partial Spearman turned the same way
    (NaN where it was not computed: n constant)."""
    al = alignment[(alignment["dataset"] == dataset) & (alignment["model"] == model)]
    sp = al[(al["method"] == "spearman") & al["coef_oriented"].notna()]
    partial = al[al["method"] == "partial_spearman"].set_index(["target", "measure"])["coef_oriented"]
    rows = []
    for target, g in sp.groupby("target", sort=True):
        sign = target_sign(g.iloc[0])
        g = g.assign(alignment=sign * g["coef_oriented"])
        for _, r in g.sort_values("alignment", ascending=False).head(top).iterrows():
            lo, hi = aligned_interval(r, sign)
            rows.append(dict(target=target, measure=r["measure"], alignment=float(r["alignment"]),
                             ci_low=lo, ci_high=hi, q_value=float(r["q_value"]),
                             partial=sign * float(partial.get((target, r["measure"]), np.nan))))
    return pd.DataFrame(rows, columns=["target", "measure", "alignment", "ci_low", "ci_high", "q_value", "partial"])


def summary_block(out_dir: str | Path, models: Sequence[str] | None = None,
                  tables: Sequence[str | Path] = (), top: int = 3) -> str:
    """The summary text of the run in `out_dir` (only `models` when given)."""
    out = Path(out_dir)
    al, cal = _read(out / "analysis" / "alignment.csv"), _read(out / "analysis" / "calibration.csv")
    figures = sorted((out / "figures").glob("*.png")) if (out / "figures").is_dir() else []
    lines = ["", "== jaxunc summary =="]
    lines += [f"table    {t}" for t in tables]
    if (out / "report.md").exists():
        lines.append(f"report   {out / 'report.md'}")
    if figures:
        lines.append(f"figures  {out / 'figures'}/ ({len(figures)} PNG)")
    if al.empty and cal.empty:
        lines.append("(no analysis: config.analysis.run=False, or it wrote no tables)")
        return "\n".join(lines)
    pairs = pd.concat([f[["dataset", "model"]] for f in (al, cal) if not f.empty]).drop_duplicates()
    if models is not None:
        pairs = pairs[pairs["model"].isin(list(models))]
    for ds, model in pairs.itertuples(index=False):
        lines.append(f"{ds} / {model}")
        c = cal[(cal["dataset"] == ds) & (cal["model"] == model) & (cal["task"] == "mc")] if not cal.empty else cal
        if not c.empty and np.isfinite(c["accuracy"].iloc[0]):
            r = c.iloc[0]
            text = (f"  accuracy {_num(r['accuracy'])}{_interval(r['accuracy_ci_low'], r['accuracy_ci_high'])} "
                    f"({r['accuracy_ci_method']} 95%, n = {int(r['n'])})")
            ece = c[c["measure"] == ECE_MEASURE]
            if not ece.empty and np.isfinite(ece["ece_width10"].iloc[0]):
                text += f"; ECE {_num(ece['ece_width10'].iloc[0])} ({ECE_MEASURE}, 10 equal-width bins)"
            lines.append(text)
        if al.empty:
            continue
        best = best_aligned(al, ds, model, top)
        if best.empty:
            continue
        q_method = str(al["q_method"].dropna().iloc[0]) if al["q_method"].notna().any() else "q"
        controlled = best["partial"].notna().any()
        lines.append(f"  best-aligned measures per human signal: oriented Spearman (positive = aligned; "
                     f"flipped for share-correct signals) [95% bootstrap CI], q ({q_method}), "
                     + ("partial Spearman controlling for the number of options" if controlled else
                        "no partial Spearman (the number of options is constant)"))
        width = max(len(m) for m in best["measure"])
        for target, g in best.groupby("target", sort=False):
            lines.append(f"    {target}")
            for r in g.itertuples():
                part = f"  partial {_num(r.partial)}" if controlled else ""
                lines.append(f"      {r.measure:<{width}}  {_num(r.alignment)}{_interval(r.ci_low, r.ci_high)}"
                             f"  q = {r.q_value:.2g}{part}")
    return "\n".join(lines)
