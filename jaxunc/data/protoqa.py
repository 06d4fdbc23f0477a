"""ProtoQA (Boratko et al. 2020), shipped as `protoqa/protoqa_data.parquet`.

8,724 questions whose options are answer clusters (2-9 of them), with the share of human answers
per cluster. The file stores options by popularity (option A is always the human favourite), so
the loader shuffles them with a seeded permutation by default. There is no correct answer: the
human plurality is the target. `Response_Count` (human answers per question) is kept.
Licence CC-BY-4.0, see ../ATTRIBUTION.md.
"""

from __future__ import annotations

from pathlib import Path

from jaxunc.data.schema import RawItem, read_parquet_layout

SHIPPED = Path(__file__).parent / "protoqa" / "protoqa_data.parquet"
READ = ("Question", "Answers", "Answer_Ratios")
RECOMPUTED = ("human-ent",)
DEFAULT_SHUFFLE = True


def read_protoqa(
    path: str | Path | None = None, limit: int | None = None
) -> tuple[list[RawItem], str, int]:
    """Rows of the ProtoQA parquet as RawItems (no correct label); returns (raws, source, rows)."""
    source = Path(path) if path is not None else SHIPPED
    frame, kept = read_parquet_layout(source, limit, READ, RECOMPUTED, "ProtoQA")
    raws = [
        RawItem(
            row=row,
            question=rec["Question"],
            options=rec["Answers"],
            shares=rec["Answer_Ratios"],
            extra={c: rec[c] for c in kept},
        )
        for row, rec in enumerate(frame.to_dict("records"))
    ]
    return raws, str(source), len(frame)
