"""GlobalOpinionQA (Durmus et al. 2023, "Towards Measuring the Representation of Subjective Global
Opinions in Language Models"; Hugging Face Anthropic/llm_global_opinions) from a local copy.

Not shipped (CC-BY-NC-SA-4.0, see docs/datasets.md). `path` is the published CSV
(`data/global_opinions.csv`), the parquet conversion of it, or a folder holding either. Columns:
`question`; `options`, a Python list literal of the answer options; `selections`, the per-country
shares as the text of a Python `defaultdict(<class 'list'>, {country: [share per option], ...})`
(or a plain dict literal), parsed with ast.literal_eval after the wrapper is stripped (never
eval); `source` (GAS / WVS), kept.

Items: refusal / don't-know options ('DK/Refused', "Don't know/ No answer", ...; survey.REFUSAL)
are dropped from the options and every country's shares, their share kept per country in
`refusal_share:<country>`; every country becomes a target `human_shares:<country>` (None where the
country was not asked); `Answer_Ratios` (the default target, named in `default_target`) is the
unweighted mean of the countries' renormalised shares, `refusal_share` the mean refusal share.
Options are not shuffled by default (they are a survey scale).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jaxunc.data.schema import RawItem, head
from jaxunc.data.survey import is_refusal, literal, split_shares, target_extras

DEFAULT_SHUFFLE = False
REQUIRED = ("question", "selections", "options")
_WRAPPER = re.compile(r"^\s*defaultdict\(\s*<class\s+'[A-Za-z_][A-Za-z_0-9]*'>\s*,\s*(.*)\)\s*$", re.S)


def parse_selections(text: Any, what: str) -> dict[str, list[float]]:
    """{country: shares} from the `selections` text (a defaultdict repr or a dict literal)."""
    if isinstance(text, dict):
        body = text
    else:
        if not isinstance(text, str):
            raise ValueError(f"{what} is missing or not text (got {text!r})")
        m = _WRAPPER.match(text)
        body = literal(m.group(1) if m else text, dict, what)
    out = {}
    for country, shares in body.items():
        if not isinstance(shares, (list, tuple)):
            raise ValueError(f"{what}: country {country!r}: shares {shares!r} are not a list")
        try:
            out[str(country)] = [float(v) for v in shares]
        except (TypeError, ValueError):
            raise ValueError(f"{what}: country {country!r}: shares {shares!r} are not all numbers") from None
    return out


def _source_file(path: Path) -> Path:
    if path.is_file():
        return path
    for cand in ("global_opinions.csv", "data/global_opinions.csv"):
        if (path / cand).is_file():
            return path / cand
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else []
    if files:
        return files[0]
    raise ValueError(f"globalopinionqa: {path} is not a file and holds no global_opinions.csv or parquet file")


def read_globalopinionqa(path: str | Path | None, limit: int | None = None) -> tuple[list[RawItem], str, int]:
    """GlobalOpinionQA rows as RawItems; returns (raws, source, rows read)."""
    if path is None:
        raise ValueError("globalopinionqa is not shipped: give path= (config data.path) to a local copy "
                         "of global_opinions.csv (Hugging Face Anthropic/llm_global_opinions)")
    source = _source_file(Path(path))
    if source.suffix == ".parquet":
        frame = pd.read_parquet(source)
    else:  # text exactly as written: options such as "None" must stay text
        frame = pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""])
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"{source}: missing columns {missing}; the GlobalOpinionQA layout has "
                         f"{list(REQUIRED)} and source")
    frame = head(frame, limit)
    kept_cols = [c for c in frame.columns if c not in REQUIRED]
    raws = []
    for row, rec in enumerate(frame.to_dict("records")):
        raw = RawItem(row=row, question=rec["question"], options=None, locator=f"data row {row}",
                      extra={c: rec[c] for c in kept_cols})
        try:
            _fill(raw, rec, f"{source}: data row {row}")
        except ValueError as err:
            raw.error = str(err)
        raws.append(raw)
    return raws, str(source), len(frame)


def _fill(raw: RawItem, rec: dict[str, Any], where: str) -> None:
    options = [str(o) for o in literal(rec["options"], list, f"{where} field 'options'")]
    selections = parse_selections(rec["selections"], f"{where} field 'selections'")
    keep = np.array([not is_refusal(o) for o in options])
    targets = {}
    for country, shares in selections.items():
        if len(shares) != len(options):
            raise ValueError(f"{where} field 'selections': country {country!r} has {len(shares)} shares "
                             f"for {len(options)} options")
        v = np.asarray(shares, float)
        if not np.isfinite(v).all() or (v < 0).any():
            raise ValueError(f"{where} field 'selections': country {country!r} shares {shares} are NaN or negative")
        targets[country] = split_shares(v, keep)
    usable = [s for s, _ in targets.values() if s is not None]
    if not usable:
        raise ValueError(f"{where}: no country has answers to the non-refusal options")
    mean = np.mean(np.asarray(usable, float), axis=0)
    raw.options = [o for o, k in zip(options, keep) if k]
    raw.shares = mean.tolist()
    refusals = [r for _, r in targets.values() if np.isfinite(r)]
    raw.extra.update({"refused_options": [o for o, k in zip(options, keep) if not k],
                      "refusal_share": float(np.mean(refusals)) if refusals else float("nan"),
                      "default_target": f"mean over {len(usable)} countries (unweighted)",
                      **target_extras(targets)})
