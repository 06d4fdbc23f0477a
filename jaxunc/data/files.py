"""Reading data files with errors that name the file and the line: the one place for CSV, JSON lines
and parquet I/O of the dataset loaders.

Bytes that are not UTF-8 make only their own row unreadable (reported as `{row: reason}`), so that
`data.on_error=skip` leaves that row out and keeps the rest of the file.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd

_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of a byte that is not UTF-8
BAD_BYTE = "\uffff"


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise ValueError(f"{path}: not a readable parquet file ({_one_line(err)})") from None


def read_csv(path: Path, **kwargs) -> tuple[pd.DataFrame, dict[int, str]]:
    """A CSV file (pandas.read_csv keyword arguments) and its rows holding bytes that are not UTF-8.

    Each byte that is not UTF-8 is read as the noncharacter U+FFFF (which no text holds), so the
    file parses and the rows holding one are found afterwards.
    """
    text = _NOT_UTF8.sub(BAD_BYTE, path.read_bytes().decode("utf-8-sig", errors="surrogateescape"))
    try:
        frame = pd.read_csv(io.StringIO(text), **kwargs)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the file is empty (expected a header row, then one row per item)") from None
    except (pd.errors.ParserError, ValueError) as err:
        raise ValueError(f"{path}: not a readable CSV file ({_one_line(err)})") from None
    if any(BAD_BYTE in str(c) for c in frame.columns):
        raise ValueError(f"{path}: the header row is not valid UTF-8 text; save the file as UTF-8")
    errors = {}
    for column in frame.columns[[not pd.api.types.is_numeric_dtype(t) for t in frame.dtypes]]:
        bad = frame[column].map(lambda v: isinstance(v, str) and BAD_BYTE in v)
        for row in bad[bad].index:
            errors.setdefault(int(row), f"column {column!r} holds bytes that are not UTF-8")
    return frame, errors


def read_jsonl(path: Path) -> tuple[list[dict], dict[int, str]]:
    """Records of a JSON-lines file (blank lines ignored, each record tagged with `_locator`), and
    the records that could not be read: {record index: reason naming the line}."""
    records, errors = [], {}
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                errors[len(records)] = (f"line {number} is not valid UTF-8 "
                                        f"(byte 0x{raw[err.start]:02x} at byte {err.start + 1})")
                records.append({"_locator": f"line {number}"})
                continue
            if not text.strip():
                continue
            try:
                record = json.loads(text)
                if not isinstance(record, dict):
                    raise ValueError(f"line {number} is a JSON {type(record).__name__}, not an object")
            except ValueError as err:
                errors[len(records)] = f"line {number} is not a JSON object: {_one_line(err)[:200]}"
                record = {}
            record["_locator"] = f"line {number}"
            records.append(record)
    return records, errors
