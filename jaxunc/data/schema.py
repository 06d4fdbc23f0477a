"""The item table: one row per question, its validation and the human quantities (docs/measures.md 4).

Loaders turn their source rows into `RawItem`s; `build_items` validates them, computes the human
quantities, applies the (optional) seeded option permutation and returns the table.

Columns (names follow the reference study's files, so the statistics read both):
`item_id`, `dataset`, `Question`, `Answers` (presentation order), `Answer_Ratios` (human shares r_j,
renormalised to sum 1, presentation order, or None), `Correct_Answer` (letter or None),
`Correct_Answer_Text`, `n_options`, `human-ent` = H(r) / ln n (0 when n = 1, NaN without shares),
`human_plurality` (letter of argmax_j r_j, ties -> lowest index), `human_plurality_tie`,
`option_permutation` (presentation position i shows original option perm[i]), then the dataset's
human signals and any extra columns, unchanged.
"""

from __future__ import annotations

import math
import numbers
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
from scipy.special import entr

LETTERS = string.ascii_uppercase
MIN_OPTIONS = 2
MAX_OPTIONS = len(LETTERS)  # 26: one letter per option
MAX_FIELD_CHARS = 50_000  # longest question / option text accepted (config data.max_field_chars)

CORE_COLUMNS: tuple[str, ...] = (
    "item_id",
    "dataset",
    "Question",
    "Answers",
    "Answer_Ratios",
    "Correct_Answer",
    "Correct_Answer_Text",
    "n_options",
    "human-ent",
    "human_plurality",
    "human_plurality_tie",
    "option_permutation",
)

OPTIONAL_TEXT = ("Correct_Answer", "Correct_Answer_Text", "human_plurality")
ON_ERROR = ("raise", "skip")
BAD_LABEL = "correct label invalid or outside the options"
BAD_HUMAN = "human counts/shares not a list of numbers"
BAD_OPTIONS = "options invalid"
PERMUTATION_METHOD = "numpy.random.default_rng([seed, row]).permutation(n_options)"


class RowError(ValueError):
    """A row-level problem; `kind` is the reason without row-specific values (for summaries)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class ItemValidationError(ValueError):
    """A source row that is not a valid item; the message names the file and the row."""

    def __init__(self, source: str, row: int, reason: str, locator: str | None = None):
        self.source, self.row, self.reason = source, row, reason
        where = f"row {row}" + (f" ({locator})" if locator else "")
        super().__init__(f"{source}: {where}: {reason}")

    @classmethod
    def none_valid(cls, source: str, n_rows: int, skipped: list[tuple[int, str]]) -> ValueError:
        """The error for a file without a single valid item (empty, or every row skipped)."""
        if not n_rows:
            return ValueError(f"{source}: no rows (expected one item per row)")
        reasons = Counter(reason for _, reason in skipped)
        listed = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common())
        return ValueError(f"{source}: none of the {n_rows} rows is a valid item ({listed})")


@dataclass
class RawItem:
    """One source row before validation. `correct` is a letter ('A'..), a 0-based index or None;
    give human `counts` or `shares` (or neither); `extra` holds columns kept unchanged."""

    row: int
    question: Any
    options: Any
    correct: Any = None
    counts: Any = None
    shares: Any = None
    correct_text: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    item_id: Any = None
    error: str | None = None  # set by a loader that could not read the row
    file: str | None = None  # the file holding the row, when a dataset spans several files
    locator: str | None = None  # where the row is in its file, e.g. "line 7"


@dataclass
class LoadedDataset:
    """A loaded dataset: the item table plus what was skipped and how options were permuted."""

    items: pd.DataFrame
    name: str
    source: str
    skipped: list[tuple[int, str]]  # (source row, reason) of each row left out
    permutation: dict[str, Any]  # shuffled, seed, method
    n_rows: int  # source rows read (after `limit`)

    def summary(self) -> str:
        """One line for the log: items kept, rows skipped and why."""
        text = f"{self.name}: {len(self.items)} items from {self.n_rows} rows of {self.source}"
        if self.skipped:
            reasons = Counter(reason for _, reason in self.skipped)
            text += f"; skipped {len(self.skipped)}: " + "; ".join(
                f"{n} x {reason}" for reason, n in reasons.most_common()
            )
        return text


def is_missing(value: Any) -> bool:
    """None, NaN, pd.NA (scalars only)."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _short(value: Any, limit: int = 80) -> str:
    """repr(value), cut to `limit` characters (error messages stay one readable line)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def letter(index: int) -> str:
    """0 -> 'A', 1 -> 'B', ..."""
    return LETTERS[index]


def parse_correct(value: Any, n_options: int) -> int | None:
    """Correct label as a 0-based option index: a letter ('A'..), or an integer index (0-based);
    missing or empty -> None. Raises ValueError when it is outside the options."""
    if is_missing(value) or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (bool, np.bool_)):
        raise RowError(BAD_LABEL, f"correct label {value!r} is a boolean, not a letter or index")
    if isinstance(value, numbers.Integral) or (
        isinstance(value, numbers.Real) and float(value).is_integer()
    ):
        index = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        index = int(value.strip())
    elif isinstance(value, str) and len(value.strip()) == 1 and value.strip().upper() in LETTERS:
        index = LETTERS.index(value.strip().upper())
    else:
        raise RowError(BAD_LABEL, f"correct label {value!r} is neither a letter A-Z nor an index")
    if not 0 <= index < n_options:
        allowed = f"A-{letter(n_options - 1)} or 0-{n_options - 1}"
        raise RowError(
            BAD_LABEL, f"correct label {value!r} is outside the {n_options} options ({allowed})"
        )
    return index


def as_float_vector(value: Any, what: str) -> np.ndarray:
    """A list/array of numbers as float64; raises ValueError for non-numeric entries."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        kind = type(value).__name__
        raise RowError(BAD_HUMAN, f"human {what} must be a list of numbers, got {kind}")
    try:
        return np.asarray([np.nan if is_missing(v) else float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        raise RowError(BAD_HUMAN, f"human {what} {list(value)!r} are not all numbers") from None


def human_shares(counts: Any, shares: Any, n_options: int) -> np.ndarray | None:
    """Shares r_j from counts or proportions, renormalised to sum 1 (docs/measures.md 4); None if
    neither is given. Raises ValueError for a wrong length, NaN, negative values or a zero sum."""
    if counts is not None and shares is not None:
        raise RowError(BAD_HUMAN, "both human counts and human shares are given; give one")
    what, value = ("counts", counts) if counts is not None else ("shares", shares)
    if value is None or (np.ndim(value) == 0 and is_missing(value)):
        return None
    vector = as_float_vector(value, what)
    if len(vector) != n_options:
        raise RowError(
            "human counts/shares length differs from the options",
            f"human {what} have {len(vector)} entries but there are {n_options} options",
        )
    if np.isnan(vector).any() or np.isinf(vector).any():
        raise RowError(
            "human counts/shares NaN or infinite",
            f"human {what} {vector.tolist()} contain NaN or infinite values",
        )
    if (vector < 0).any():
        raise RowError(
            "human counts/shares negative",
            f"human {what} {vector.tolist()} contain negative values",
        )
    total = vector.sum()
    if total <= 0:
        raise RowError("human counts/shares sum to 0", f"human {what} {vector.tolist()} sum to 0")
    return vector / total


def human_entropy(shares: np.ndarray | None) -> float:
    """H(r) / ln n with H(r) = -sum_j r_j ln r_j (0 ln 0 = 0); 0 when n = 1, NaN without shares."""
    if shares is None:
        return math.nan
    n = len(shares)
    return 0.0 if n == 1 else float(entr(shares).sum() / math.log(n))


def human_plurality(shares: np.ndarray | None) -> tuple[str | None, bool | None]:
    """(letter of argmax_j r_j with ties -> lowest index, whether the maximum is tied)."""
    if shares is None:
        return None, None
    top = np.flatnonzero(shares >= shares.max() * (1.0 - 1e-12))  # ties up to rounding
    return letter(int(top[0])), bool(len(top) > 1)


def option_permutation(row: int, n_options: int, seed: int, shuffle: bool) -> np.ndarray:
    """Presentation position i shows original option perm[i]; depends only on (seed, row)."""
    if not shuffle:
        return np.arange(n_options)
    return np.random.default_rng([seed, row]).permutation(n_options)


def _options(value: Any) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        kind = type(value).__name__
        raise RowError(BAD_OPTIONS, f"options must be a list, got {kind}: {_short(value)}")
    options = list(value)
    for j, option in enumerate(options):
        if is_missing(option):
            raise RowError(BAD_OPTIONS, f"option {letter(j) if j < MAX_OPTIONS else j} is missing")
        if isinstance(option, (bool, np.bool_)) or not isinstance(option, (str, numbers.Number)):
            raise RowError(BAD_OPTIONS, f"option {j} {_short(option)} is not text")
    if not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        raise RowError(
            f"number of options not in {MIN_OPTIONS}..{MAX_OPTIONS}",
            f"{len(options)} options; expected between {MIN_OPTIONS} and {MAX_OPTIONS} (A-Z)",
        )
    return [str(o) for o in options]


def check_length(text: str, what: str, max_chars: int) -> None:
    if len(text) > max_chars:
        raise RowError("text longer than data.max_field_chars",
                       f"{what} has {len(text):,} characters; the limit is {max_chars:,} (data.max_field_chars)")


def validate(raw: RawItem, max_chars: int = MAX_FIELD_CHARS) -> tuple[str, list[str], int | None, np.ndarray | None]:
    """Checks one row; returns (question, options, correct index, shares). Raises ValueError."""
    if raw.error is not None:
        raise RowError("unreadable row", raw.error)
    question = raw.question
    if is_missing(question) or not isinstance(question, str):
        raise RowError("question missing", f"question is missing (got {_short(question)})")
    if not question.strip():
        raise RowError("question empty", "question is empty")
    check_length(question, "the question", max_chars)
    options = _options(raw.options)
    for j, option in enumerate(options):
        check_length(option, f"option {letter(j)}", max_chars)
    correct = parse_correct(raw.correct, len(options))
    shares = human_shares(raw.counts, raw.shares, len(options))
    if raw.correct_text is not None and correct is not None:
        if str(raw.correct_text) != options[correct]:
            raise RowError(
                "correct answer text differs from the correct option",
                f"correct answer text {_short(raw.correct_text)} differs from option "
                f"{letter(correct)} {_short(options[correct])}"
            )
    return question, options, correct, shares


def build_items(
    raws: Iterable[RawItem],
    *,
    dataset: str,
    source: str,
    on_error: str = "raise",
    shuffle: bool = False,
    seed: int = 0,
    max_field_chars: int = MAX_FIELD_CHARS,
) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """Validates rows and builds the item table. Returns (items, [(row, reason) skipped]).

    on_error='raise' raises ItemValidationError (file and row in the message) at the first bad
    row; 'skip' leaves bad rows out and lists them with their reason.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    records, skipped, extra_columns, seen_ids = [], [], {}, set()
    for raw in raws:
        try:
            question, options, correct, shares = validate(raw, max_field_chars)
            default_id = f"{dataset}-{raw.row:04d}"  # at least 4 digits, the source row
            item_id = default_id if raw.item_id is None else str(raw.item_id)
            if item_id in seen_ids:
                raise RowError("duplicate item id", f"item id {item_id!r} is not unique")
        except RowError as err:
            if on_error == "raise":
                where = raw.file or source
                raise ItemValidationError(where, raw.row, str(err), raw.locator) from None
            skipped.append((raw.row, err.kind))
            continue
        seen_ids.add(item_id)
        n = len(options)
        perm = option_permutation(raw.row, n, seed, shuffle)
        shown = None if shares is None else shares[perm]
        plurality, tie = human_plurality(shown)
        position = None if correct is None else int(np.flatnonzero(perm == correct)[0])
        records.append(
            {
                "item_id": item_id,
                "dataset": dataset,
                "Question": question,
                "Answers": [options[p] for p in perm],
                "Answer_Ratios": None if shown is None else shown.tolist(),
                "Correct_Answer": None if position is None else letter(position),
                "Correct_Answer_Text": None if correct is None else options[correct],
                "n_options": n,
                "human-ent": human_entropy(shown),
                "human_plurality": plurality,
                "human_plurality_tie": tie,
                "option_permutation": perm.tolist(),
                **raw.extra,
            }
        )
        extra_columns.update(dict.fromkeys(raw.extra))
    clash = set(extra_columns) & set(CORE_COLUMNS)
    if clash:
        raise ValueError(f"{source}: extra columns {sorted(clash)} clash with item table columns")
    items = pd.DataFrame.from_records(records, columns=[*CORE_COLUMNS, *extra_columns])
    for column in OPTIONAL_TEXT:  # None where absent (pandas would store NaN in a str column)
        items[column] = pd.Series([r[column] for r in records], index=items.index, dtype=object)
    items["n_options"] = items["n_options"].astype("int64")
    items["human-ent"] = items["human-ent"].astype("float64")
    items["human_plurality_tie"] = items["human_plurality_tie"].astype("boolean")
    return items, skipped


def head(frame: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """The first `limit` source rows (all when None)."""
    if limit is None:
        return frame
    if isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1:
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    return frame.iloc[: int(limit)]


def read_parquet_layout(
    path: Any, limit: int | None, required: Sequence[str], dropped: Sequence[str], layout: str
) -> tuple[pd.DataFrame, list[str]]:
    """A parquet file's first `limit` rows, checked for `required` columns; also returns the
    columns kept unchanged (all but `required` and `dropped`)."""
    from jaxunc.data.files import read_parquet

    frame = head(read_parquet(path), limit)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: missing columns {missing}; the {layout} layout has {list(required)}"
        )
    return frame, [c for c in frame.columns if c not in (*required, *dropped)]
