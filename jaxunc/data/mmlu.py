"""MMLU (Hendrycks et al. 2021, MIT) from a user-given local path; nothing is downloaded.

Two layouts are read:
- per-subject CSV, no header, columns question, A, B, C, D, answer letter, in files named
  `<subject>_test.csv` (a folder is searched recursively, so the original `data/` folder works and
  only its test split is read; a single CSV file is read as is);
- parquet with columns question, subject, choices (list), answer (0-based index), as one file or a
  folder of files (those whose name starts with `test` when there are any).
The subject is kept in a `subject` column. Options are not shuffled by default.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from jaxunc.data.files import read_csv, read_parquet
from jaxunc.data.schema import RawItem, head

DEFAULT_SHUFFLE = False
CSV_COLUMNS = ("question", "A", "B", "C", "D", "answer")
PARQUET_COLUMNS = ("question", "subject", "choices", "answer")


def _csv_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(path.rglob("*_test.csv"), key=lambda f: (f.name, str(f)))
    return files or sorted(path.rglob("*.csv"), key=lambda f: (f.name, str(f)))


def _parquet_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(path.rglob("*.parquet"))
    tests = [f for f in files if f.name.startswith("test")]
    return tests or files


def _subject(file: Path) -> str:
    return file.name[: -len("_test.csv")] if file.name.endswith("_test.csv") else file.stem


def _read_csv_layout(files: list[Path]) -> pd.DataFrame:
    frames = []
    for file in files:
        # every cell is text: options such as "None" or "NA" must not become missing values
        frame, unreadable = read_csv(file, header=None, dtype=str, keep_default_na=False, na_values=[""])
        if frame.shape[1] != len(CSV_COLUMNS):
            raise ValueError(
                f"{file}: {frame.shape[1]} columns; the MMLU CSV layout has {len(CSV_COLUMNS)} "
                f"without a header: {', '.join(CSV_COLUMNS)}"
            )
        frame.columns = list(CSV_COLUMNS)
        frame["choices"] = frame[["A", "B", "C", "D"]].to_numpy().tolist()
        frame["subject"] = _subject(file)
        frame["_file"] = str(file)
        frame["_line"] = range(len(frame))
        frame["_error"] = [unreadable.get(i) for i in range(len(frame))]
        frames.append(frame.drop(columns=["A", "B", "C", "D"]))
    return pd.concat(frames, ignore_index=True)


def _read_parquet_layout(files: list[Path]) -> pd.DataFrame:
    frames = []
    for file in files:
        frame = read_parquet(file)
        missing = [c for c in PARQUET_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(
                f"{file}: missing columns {missing}; "
                f"the MMLU parquet layout has {list(PARQUET_COLUMNS)}"
            )
        frame = frame[list(PARQUET_COLUMNS)].copy()
        frame["_file"] = str(file)
        frame["_line"] = range(len(frame))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def read_mmlu(path: str | Path | None, limit: int | None = None) -> tuple[list[RawItem], str, int]:
    """MMLU rows as RawItems (subject kept); returns (raws, source path, rows read)."""
    if path is None:
        raise ValueError("mmlu: give path= to a local copy (per-subject CSV folder or parquet)")
    source = Path(path)
    if not source.exists():
        raise ValueError(f"mmlu: path {source} does not exist")
    parquet = _parquet_files(source) if source.is_dir() or source.suffix == ".parquet" else []
    csv = [] if parquet and source.is_file() else _csv_files(source)
    if csv:
        frame = _read_csv_layout(csv)
    elif parquet:
        frame = _read_parquet_layout(parquet)
    else:
        raise ValueError(f"mmlu: no *_test.csv, *.csv or *.parquet files under {source}")
    frame = head(frame, limit)
    raws = [
        RawItem(
            row=row,
            question=rec["question"],
            options=rec["choices"],
            correct=rec["answer"],
            extra={"subject": rec["subject"]},
            error=rec.get("_error"),
            file=rec["_file"] if source.is_dir() else None,
            locator=f"row {rec['_line']} of this file" if source.is_dir() else None,
        )
        for row, rec in enumerate(frame.to_dict("records"))
    ]
    return raws, str(source), len(frame)
