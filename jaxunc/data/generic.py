"""A user's own items from a JSONL (or JSON array), CSV or parquet file (format: docs/datasets.md).

Recognised columns (any other column is kept unchanged, e.g. extra human signals):
- question: `question` or `Question` (required);
- options: `options`, `choices` or `Answers` (a list; in CSV a JSON list string), or one column per
  option `option_A`, `option_B`, ... (empty trailing cells mean fewer options);
- correct label (optional): `correct`, `answer` or `Correct_Answer`: a letter A-Z or a 0-based
  index;
- human data (optional): counts `human_counts` / `counts`, or shares `human_shares` / `shares` /
  `Answer_Ratios` (a list per row, in option order; renormalised to sum 1);
- `item_id` (optional, unique); `Correct_Answer_Text` (optional, checked against the correct
  option);
- `ordinal` (optional flag per row: true/false, 1/0, yes/no; empty = false): the options are an
  ordered scale in the order given, which enables the ordinal representativeness metric.
Columns the item table computes (`human-ent`, `n_options`, ...) are recomputed, not read.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jaxunc.data import files
from jaxunc.data.schema import CORE_COLUMNS, LETTERS, RawItem, head, is_missing

DEFAULT_SHUFFLE = False
SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
ALIASES: dict[str, tuple[str, ...]] = {
    "question": ("question", "Question"),
    "options": ("options", "choices", "Answers"),
    "correct": ("correct", "answer", "Correct_Answer"),
    "counts": ("human_counts", "counts"),
    "shares": ("human_shares", "shares", "Answer_Ratios"),
    "item_id": ("item_id",),
    "correct_text": ("Correct_Answer_Text",),
    "ordinal": ("ordinal",),
}
OPTION_COLUMN = re.compile(r"^option_([A-Za-z])$")
LIST_FIELDS = ("options", "counts", "shares")


def is_generic_path(name: str) -> bool:
    """Whether a dataset name is a path to a file of a supported format."""
    return Path(name).suffix.lower() in SUFFIXES


def _read_jsonl(path: Path) -> tuple[pd.DataFrame, dict[int, str]]:
    records, errors = files.read_jsonl(path)
    return pd.DataFrame.from_records(records), errors


def _read_csv(path: Path) -> tuple[pd.DataFrame, dict[int, str]]:
    """CSV with a header; recognised text columns are read verbatim ("None", "NA" stay text)."""
    frame, errors = files.read_csv(path)
    text = [c for c in frame.columns if _role(c) in ("question", "options", "correct", "option")]
    if text:
        verbatim, _ = files.read_csv(path, usecols=text, dtype=str, keep_default_na=False, na_values=[""])
        frame[text] = verbatim[text].astype(object).where(verbatim[text].notna(), None)
    return frame, errors


def _read_json(path: Path) -> tuple[pd.DataFrame, dict[int, str]]:
    """A .json file holding one array of objects; otherwise it is read as JSON lines."""
    try:
        records = json.loads(path.read_bytes().decode("utf-8-sig"))
    except ValueError:  # not one JSON document (or not UTF-8): JSON lines, each line on its own
        return _read_jsonl(path)
    if not isinstance(records, list):
        return _read_jsonl(path)
    errors, rows = {}, []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            errors[i] = f"element {i} is a JSON {type(record).__name__}, not an object"
            record = {}
        rows.append({**record, "_locator": f"element {i}"})
    return pd.DataFrame.from_records(rows), errors


def read_table(path: Path) -> tuple[pd.DataFrame, dict[int, str]]:
    """The file as a DataFrame, plus rows that could not be read ({row: reason})."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".parquet":
        return files.read_parquet(path), {}
    raise ValueError(f"{path}: unsupported file type {suffix!r}; expected one of {SUFFIXES}")


def _role(column: str) -> str | None:
    for role, names in ALIASES.items():
        if column in names:
            return role
    return "option" if OPTION_COLUMN.match(column) else None


def _columns(frame: pd.DataFrame, source: Path) -> tuple[dict[str, str], list[str]]:
    """Map role -> column; the option_X columns in letter order."""
    roles: dict[str, str] = {}
    for column in frame.columns:
        role = _role(column)
        if role in (None, "option"):
            continue
        if role in roles:
            raise ValueError(
                f"{source}: columns {roles[role]!r} and {column!r} both give the {role}"
            )
        roles[role] = column
    option_columns = sorted(
        (c for c in frame.columns if _role(c) == "option"), key=lambda c: c[-1].upper()
    )
    letters = "".join(c[-1].upper() for c in option_columns)
    if option_columns and letters != LETTERS[: len(letters)]:
        raise ValueError(
            f"{source}: option columns {option_columns} must be option_A, option_B, ... "
            "without gaps"
        )
    if "question" not in roles:
        raise ValueError(f"{source}: no question column (expected one of {ALIASES['question']})")
    if ("options" in roles) == bool(option_columns):
        raise ValueError(
            f"{source}: give the options either as one list column {ALIASES['options']} "
            "or as columns option_A, option_B, ... (not both, not neither)"
        )
    if "counts" in roles and "shares" in roles:
        raise ValueError(
            f"{source}: both human counts ({roles['counts']}) and shares ({roles['shares']}); "
            "give one"
        )
    return roles, option_columns


def _parse_list(value: Any, what: str) -> Any:
    """A list stored as a JSON string (CSV) becomes a list; other values pass through."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"{what} {value!r} is not a JSON list") from None
        if not isinstance(value, list):
            raise ValueError(f"{what} {value!r} is not a JSON list")
    return value


def _options_from_columns(record: dict[str, Any], option_columns: list[str]) -> list[Any]:
    """option_A.. cells; empty trailing cells mean the item has fewer options."""
    cells = [record[c] for c in option_columns]
    while cells and (is_missing(cells[-1]) or cells[-1] == ""):
        cells.pop()
    return cells


def read_generic(
    path: str | Path | None, limit: int | None = None
) -> tuple[list[RawItem], str, int]:
    """A user's file as RawItems; returns (raws, source path, rows read)."""
    if path is None:
        raise ValueError("generic: give path= to a .jsonl, .csv or .parquet file")
    source = Path(path)
    if not source.is_file():
        raise ValueError(f"generic: file {source} does not exist")
    frame, unreadable = read_table(source)
    frame = head(frame, limit)
    if frame.empty:
        return [], str(source), 0
    roles, option_columns = _columns(frame.drop(columns=["_locator"], errors="ignore"), source)
    used = set(roles.values()) | set(option_columns) | {"_locator"}
    kept = [c for c in frame.columns if c not in used and c not in CORE_COLUMNS]
    raws = []
    for row, record in enumerate(frame.to_dict("records")):
        raw = RawItem(row=row, question=None, options=None, locator=record.get("_locator"))
        try:
            if row in unreadable:
                raise ValueError(unreadable[row])
            raw.question = record[roles["question"]]
            raw.options = (
                _parse_list(record[roles["options"]], "options")
                if "options" in roles
                else _options_from_columns(record, option_columns)
            )
            for field in ("counts", "shares"):
                if field in roles:
                    value = record[roles[field]]
                    if not _scalar_missing(value):
                        setattr(raw, field, _parse_list(value, f"human {field}"))
            raw.correct = record.get(roles.get("correct"))
            raw.item_id = _optional(record.get(roles.get("item_id")))
            raw.correct_text = _optional(record.get(roles.get("correct_text")))
        except ValueError as err:
            raw.error = str(err)
        raw.extra = {c: record[c] for c in kept}
        if "ordinal" in roles:
            try:
                raw.extra["ordinal"] = parse_flag(record[roles["ordinal"]])
            except ValueError as err:
                raw.error = raw.error or str(err)
                raw.extra["ordinal"] = False
        raws.append(raw)
    return raws, str(source), len(frame)


_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


def parse_flag(value: Any) -> bool:
    """A per-row flag: bool, 0/1, or text true/false/yes/no (any case); missing -> False."""
    if _scalar_missing(value):
        return False
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"ordinal flag {value!r} is not true/false")


def _scalar_missing(value: Any) -> bool:
    return np.ndim(value) == 0 and (is_missing(value) or value == "")


def _optional(value: Any) -> Any:
    return None if _scalar_missing(value) else value
