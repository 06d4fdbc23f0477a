"""Helpers shared by the survey loaders (opinionqa.py, globalopinionqa.py).

Several human targets per item (survey groups, countries) are stored in the item table as one
column per target, `human_shares:<target>` (shares over the kept options in presentation order,
or None when the target has no answers for the item), next to `Answer_Ratios` (the default
target, named in `default_target`). Refusal / "don't know" options are dropped from the options
and every target's shares; the dropped share of the answers is kept in `refusal_share` (default
target) and `refusal_share:<target>`, the dropped option texts in `refused_options`.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import numpy as np

SHARES_PREFIX = "human_shares:"
REFUSAL_PREFIX = "refusal_share:"
# Option texts that are not an opinion (matched anywhere, any case): 'Refused', 'DK/Refused',
# "Don't know", "Don't know/ No answer", 'No answer', 'Declined to answer'. Words that can be a
# substantive answer ('refuse', 'decline', 'not sure') are deliberately not matched.
REFUSAL = re.compile(r"\b(refused|dk|don'?t know|do not know|no answer|declined? to answer)\b", re.I)


def is_refusal(option: str) -> bool:
    """Whether an option text is a refusal / don't-know / no-answer option."""
    return bool(REFUSAL.search(str(option).replace("\u2019", "'")))


def literal(value: Any, kind: type, what: str) -> Any:
    """A Python literal stored as text (list or dict), parsed with ast.literal_eval (never eval).

    Raises ValueError naming `what` when the text is not such a literal."""
    if isinstance(value, kind):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{what} is missing or not text (got {value!r})")
    try:
        out = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ValueError(f"{what} {_short(value)} is not a Python {kind.__name__} literal") from None
    if not isinstance(out, kind):
        raise ValueError(f"{what} {_short(value)} is a {type(out).__name__}, expected a {kind.__name__}")
    return out


def _short(text: str, limit: int = 80) -> str:
    text = repr(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def split_shares(weights: np.ndarray, keep: np.ndarray) -> tuple[list[float] | None, float]:
    """(shares over the kept options renormalised, or None if they sum to 0; refusal share).

    weights: answer counts / weights / proportions over all options; keep: bool mask of kept options."""
    weights = np.asarray(weights, float)
    total = weights.sum()
    kept = weights[keep].sum()
    refusal = float(weights[~keep].sum() / total) if total > 0 else float("nan")
    if kept <= 0:
        return None, refusal
    return (weights[keep] / kept).tolist(), refusal


def target_extras(targets: dict[str, tuple[list[float] | None, float]]) -> dict[str, Any]:
    """Item-table columns for several targets: human_shares:<t> and refusal_share:<t>."""
    out: dict[str, Any] = {}
    for name, (shares, refusal) in targets.items():
        out[SHARES_PREFIX + name] = shares
        out[REFUSAL_PREFIX + name] = refusal
    return out
