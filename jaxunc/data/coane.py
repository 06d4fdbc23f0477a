"""Coane & Umanath (2021) general-knowledge norms, shipped as `coane/coane_data.parquet`.

421 questions with 4 options (already shuffled by the norming study), human multiple-choice shares,
the correct letter, and free-recall / multiple-choice human signals (`FR_Human_*`, `MC_Human_*`,
including the misspelled `MC_Human_Proc_Wrong`), which are kept under their names. The file's
`human-ent` is not read: it is recomputed from the renormalised shares (docs/measures.md 4).
Licence CC-BY-4.0, see ../ATTRIBUTION.md.
"""

from __future__ import annotations

from pathlib import Path

from jaxunc.data.schema import RawItem, read_parquet_layout

SHIPPED = Path(__file__).parent / "coane" / "coane_data.parquet"
READ = ("Question", "Answers", "Answer_Ratios", "Correct_Answer", "Correct_Answer_Text")
RECOMPUTED = ("human-ent",)
DEFAULT_SHUFFLE = False


def read_coane(
    path: str | Path | None = None, limit: int | None = None
) -> tuple[list[RawItem], str, int]:
    """Rows of the Coane parquet as RawItems; returns (raws, source path, rows read)."""
    source = Path(path) if path is not None else SHIPPED
    frame, kept = read_parquet_layout(source, limit, READ, RECOMPUTED, "Coane")
    raws = [
        RawItem(
            row=row,
            question=rec["Question"],
            options=rec["Answers"],
            correct=rec["Correct_Answer"],
            shares=rec["Answer_Ratios"],
            correct_text=rec["Correct_Answer_Text"],
            extra={c: rec[c] for c in kept},
        )
        for row, rec in enumerate(frame.to_dict("records"))
    ]
    return raws, str(source), len(frame)
