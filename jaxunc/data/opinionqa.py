"""OpinionQA (Santurkar et al. 2023, "Whose Opinions Do Language Models Reflect?") from a local copy.

Not shipped (see docs/datasets.md for the licence situation). `path` is the dataset's `human_resp`
folder (one sub-folder per Pew American Trends Panel survey, `American_Trends_Panel_W<wave>`) or
one survey folder. A survey folder holds, in the published layout:

- `info.csv`: one row per question: `key` (e.g. CARS1_W27), `question`, `references` (the answer
  options, a Python list literal), `option_mapping` (answer code -> text, a Python dict literal)
  and `option_ordinal` (one ordinal value per opinion option, a Python list literal; the
  references after those are refusals such as 'Refused');
- the human responses, either `responses.csv` (one row per respondent: a column per question key
  holding the answer text, or its code from option_mapping; the survey weight `WEIGHT_W<wave>`;
  one column per demographic attribute) with `metadata.csv` (`key` = attribute, `options` = its
  groups, a Python list literal); or per-attribute files `<ATTRIBUTE>_data.json`
  ({question key: {"MC_options": [...], "question_text": ..., "<group>": {answer text: count}}}).

Items: the opinion options (refusals dropped, their share kept in `refusal_share`), human shares
`Answer_Ratios` = the weighted answers of all respondents ('Overall', as OpinionQA) from
responses.csv, or, with only the JSON files, the pooled unweighted counts of the attribute with the
most answers to the question (named in `default_target`); every group becomes a target
`human_shares:<ATTRIBUTE>:<group>` (survey.py). `ordinal` is True when the question's
option_ordinal values are not all equal, and `ordinal_values` keeps them (the representativeness
metric uses them as the support of W1, as OpinionQA does). Options are not shuffled by default:
their order is the survey's scale.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jaxunc.data.schema import RawItem
from jaxunc.data.survey import is_refusal, literal, split_shares, target_extras

DEFAULT_SHUFFLE = False
INFO_COLUMNS = ("key", "question", "references", "option_ordinal")


def survey_folders(path: Path) -> list[Path]:
    """The survey folders under path (path itself if it holds info.csv)."""
    if (path / "info.csv").is_file():
        return [path]
    folders = sorted(d for d in path.iterdir() if d.is_dir() and (d / "info.csv").is_file()) if path.is_dir() else []
    if not folders:
        raise ValueError(f"opinionqa: {path} holds no info.csv and no survey folders with one "
                         "(expected the human_resp folder or one American_Trends_Panel_W<wave> folder)")
    return folders


def _weight_column(frame: pd.DataFrame, folder: Path, file: Path) -> str:
    wave = re.search(r"W(\d+)$", folder.name)
    if wave and f"WEIGHT_W{wave.group(1)}" in frame.columns:
        return f"WEIGHT_W{wave.group(1)}"
    cands = [c for c in frame.columns if str(c).upper().startswith("WEIGHT")]
    if len(cands) != 1:
        raise ValueError(f"{file}: expected one survey weight column WEIGHT_W<wave>, found {cands or 'none'}")
    return cands[0]


class _Responses:
    """Weighted answer totals per question, overall and per demographic group (responses.csv)."""

    def __init__(self, folder: Path):
        self.file = folder / "responses.csv"
        self.frame = pd.read_csv(self.file, dtype=str, keep_default_na=False, na_values=[""])
        wcol = _weight_column(self.frame, folder, self.file)
        self.weights = pd.to_numeric(self.frame[wcol], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(self.weights) | (self.weights < 0)
        if bad.any():
            raise ValueError(f"{self.file}: column {wcol} has {int(bad.sum())} missing, non-numeric or "
                             f"negative weights (first at data row {int(np.flatnonzero(bad)[0])})")
        self.groups: dict[str, np.ndarray] = {}  # 'ATTR:group' -> membership mask
        meta = folder / "metadata.csv"
        if meta.is_file():
            md = pd.read_csv(meta)
            for col in ("key", "options"):
                if col not in md.columns:
                    raise ValueError(f"{meta}: missing column {col!r}; the OpinionQA layout has key, options")
            for i, rec in md.iterrows():
                attr = str(rec["key"])
                if attr not in self.frame.columns:
                    continue  # attributes of other waves
                for group in literal(rec["options"], list, f"{meta}: row {i} field 'options'"):
                    self.groups[f"{attr}:{group}"] = (self.frame[attr] == str(group)).to_numpy()

    def totals(self, key: str, references: list[str], mapping: dict) -> tuple[dict[str, np.ndarray], str]:
        """{'Overall' and each group: weighted totals over references}, default-target name."""
        if key not in self.frame.columns:
            raise ValueError(f"{self.file} has no column for question {key!r}")
        answers = self.frame[key]
        index = {r: j for j, r in enumerate(references)}
        by_code = {str(c): t for c, t in mapping.items()}  # answers stored as codes ('1', '1.0', '99')
        by_code.update({f"{float(c):g}": t for c, t in mapping.items() if isinstance(c, (int, float))})
        codes = answers.map(index).astype(float)
        unknown = codes.isna() & answers.notna()
        if unknown.any():
            codes[unknown] = answers[unknown].map(lambda a: index.get(by_code.get(_code(a)), np.nan)).astype(float)
            still = codes.isna() & answers.notna()
            if still.any():
                i = int(np.flatnonzero(still.to_numpy())[0])
                raise ValueError(f"{self.file}: data row {i} field {key!r}: answer {answers.iloc[i]!r} is "
                                 f"not one of the references {references}")
        codes = codes.fillna(-1).to_numpy(int)  # -1: not asked / skipped
        onehot = np.zeros((len(codes), len(references)))
        asked = codes >= 0
        onehot[np.flatnonzero(asked), codes[asked]] = 1.0
        weighted = onehot * self.weights[:, None]
        out = {"Overall": weighted.sum(axis=0)}
        for name, member in self.groups.items():
            out[name] = weighted[member].sum(axis=0)
        return out, "Overall (weighted by the survey weight, responses.csv)"


def _code(text: str) -> str:
    """'1', '1.0' -> '1' (the option_mapping key as text); other text unchanged."""
    try:
        return f"{float(text):g}"
    except ValueError:
        return str(text)


class _GroupFiles:
    """Per-group answer counts from <ATTRIBUTE>_data.json files."""

    def __init__(self, folder: Path):
        self.files = sorted(folder.glob("*_data.json"))
        self.data: dict[str, dict] = {}
        for f in self.files:
            try:
                self.data[f.name[: -len("_data.json")]] = json.loads(f.read_text(encoding="utf-8"))
            except ValueError as err:
                raise ValueError(f"{f}: not valid JSON: {err}") from None

    def totals(self, key: str, references: list[str], mapping: dict) -> tuple[dict[str, np.ndarray], str]:
        index = {r: j for j, r in enumerate(references)}
        out: dict[str, np.ndarray] = {}
        pooled: dict[str, np.ndarray] = {}
        for attr, data in self.data.items():
            entry = data.get(key)
            if not isinstance(entry, dict):
                continue
            pool = np.zeros(len(references))
            for group, counts in entry.items():
                if group in ("MC_options", "question_text"):
                    continue
                if not isinstance(counts, dict):
                    raise ValueError(f"{attr}_data.json: question {key!r} group {group!r}: counts are not an object")
                vec = np.zeros(len(references))
                for answer, c in counts.items():
                    j = index.get(answer)
                    if j is None:
                        raise ValueError(f"{attr}_data.json: question {key!r} group {group!r}: answer "
                                         f"{answer!r} is not one of the references {references}")
                    vec[j] += float(c)
                out[f"{attr}:{group}"] = vec
                pool += vec
            pooled[attr] = pool
        if not pooled:
            raise ValueError(f"no <ATTRIBUTE>_data.json file has question {key!r}")
        best = max(pooled, key=lambda a: pooled[a].sum())
        out["Overall"] = pooled[best]
        return out, f"pooled unweighted counts of the {best} groups ({best}_data.json; no responses.csv)"


def read_opinionqa(path: str | Path | None, limit: int | None = None) -> tuple[list[RawItem], str, int]:
    """OpinionQA questions as RawItems; returns (raws, source, rows read)."""
    if path is None:
        raise ValueError("opinionqa is not shipped: give path= (config data.path) to the human_resp folder "
                         "of a local OpinionQA copy, or to one survey folder")
    root = Path(path)
    raws: list[RawItem] = []
    row = 0
    for folder in survey_folders(root):
        info_file = folder / "info.csv"
        info = pd.read_csv(info_file)
        missing = [c for c in INFO_COLUMNS if c not in info.columns]
        if missing:
            raise ValueError(f"{info_file}: missing columns {missing}; the OpinionQA layout has "
                             f"{list(INFO_COLUMNS)} (and option_mapping)")
        if (folder / "responses.csv").is_file():
            human = _Responses(folder)
        elif list(folder.glob("*_data.json")):
            human = _GroupFiles(folder)
        else:
            raise ValueError(f"{folder}: no human responses: expected responses.csv (with metadata.csv) "
                             "or <ATTRIBUTE>_data.json files")
        for i, rec in enumerate(info.to_dict("records")):
            if limit is not None and row >= limit:
                return raws, str(root), row
            key = str(rec["key"])
            raw = RawItem(row=row, question=rec["question"], options=None, item_id=key, file=str(info_file),
                          locator=f"data row {i}, key {key}")
            row += 1
            raws.append(raw)
            try:
                _fill(raw, rec, human, folder, info_file, i)
            except ValueError as err:
                raw.error = str(err)
    return raws, str(root), row


def _fill(raw: RawItem, rec: dict[str, Any], human, folder: Path, info_file: Path, i: int) -> None:
    where = f"{info_file}: data row {i}"
    refs = [str(r) for r in literal(rec["references"], list, f"{where} field 'references'")]
    ordinal = literal(rec["option_ordinal"], list, f"{where} field 'option_ordinal'")
    mapping = literal(rec["option_mapping"], dict, f"{where} field 'option_mapping'") \
        if isinstance(rec.get("option_mapping"), str) else {}
    if len(ordinal) > len(refs):
        raise ValueError(f"{where}: option_ordinal has {len(ordinal)} values for {len(refs)} references")
    keep = np.array([j < len(ordinal) and not is_refusal(r) for j, r in enumerate(refs)])
    try:
        values = [float(v) for v, k in zip(ordinal, keep) if k]
    except (TypeError, ValueError):
        raise ValueError(f"{where} field 'option_ordinal': {ordinal!r} are not all numbers") from None
    totals, default = human.totals(str(rec["key"]), refs, mapping)
    targets = {name: split_shares(w, keep) for name, w in totals.items()}
    overall, refusal = targets.pop("Overall")
    if overall is None:
        raise ValueError(f"{where}: no human answers to the opinion options of {rec['key']!r}")
    raw.options = [r for r, k in zip(refs, keep) if k]
    raw.shares = overall
    raw.extra = {"survey": folder.name, "ordinal": len(set(values)) > 1, "ordinal_values": values,
                 "refused_options": [r for r, k in zip(refs, keep) if not k], "refusal_share": refusal,
                 "default_target": default, **target_extras(targets)}
