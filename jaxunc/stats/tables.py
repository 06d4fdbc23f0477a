"""Reading and validating per-item tables (jaxunc's own and the reference study's).

Both use the same column names (DESIGN.md, Outputs). A table is one dataset x one model.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from jaxunc import columns as C

MEASURE_PREFIXES = ("mc_", "fr_", "bfr_", "fr_tok1_")
NON_MEASURE = {"mc_choice-pdf", "fr_model_answer", "fr_gen_length", "fr_hit_cap",
               "fr_bracket_found", "fr_bracket_inferred", "fr_correct?"}
# Human signals: (column, kind). 'uncertainty' = larger means humans found the item harder.
HUMAN_TARGETS: dict[str, str] = {
    "human-ent": C.UNCERTAINTY,
    "MC_Human_Prop_Correct": C.CONFIDENCE,
    "MC_Human_RT_Combined": C.UNCERTAINTY,
    "FR_Human_Prop_Correct": C.CONFIDENCE,
    "FR_Human_RT_ANS": C.UNCERTAINTY,
    "Response_Count": C.UNCERTAINTY,
}
REQUIRED = ("Answers",)
# Group columns of every statistics table (stats/groups.py): the pooled rows are group_by='none', group='all'.
GROUP_BY, GROUP = "group_by", "group"
POOLED_BY, POOLED_GROUP = "none", "all"


def is_pooled(frame: pd.DataFrame) -> np.ndarray:
    """Rows of a statistics table computed on all items (no group_by column: every row)."""
    if GROUP_BY not in frame.columns:
        return np.ones(len(frame), bool)
    by = frame[GROUP_BY].astype(object)
    return (by.isna() | (by == POOLED_BY)).to_numpy()


def pooled(frame: pd.DataFrame) -> pd.DataFrame:
    """The pooled rows (group_by 'none') of a statistics table."""
    return frame[is_pooled(frame)] if len(frame) else frame


def dataset_name(df: pd.DataFrame, path: str | Path | None = None) -> str:
    """The `dataset` column if present, else the file-name prefix before `_`/`__`."""
    if "dataset" in df.columns and df["dataset"].notna().any():
        values = df["dataset"].dropna().unique()
        if len(values) > 1:
            raise ValueError(f"table {path or '<frame>'}: column 'dataset' holds several values "
                             f"{list(values)[:5]}; expected one dataset per table")
        return str(values[0])
    if path is None:
        raise ValueError("table without a 'dataset' column and without a file name to infer it from")
    return re.split(r"__|_", Path(path).stem, maxsplit=1)[0]


def model_name(df: pd.DataFrame, path: str | Path | None = None) -> str:
    """The `model` column if present, else the file-name part after the dataset prefix."""
    if "model" in df.columns and df["model"].notna().any():
        return str(df["model"].dropna().iloc[0])
    if path is None:
        raise ValueError("table without a 'model' column and without a file name to infer it from")
    parts = re.split(r"__|_", Path(path).stem, maxsplit=1)
    return parts[1] if len(parts) > 1 else parts[0]


def measure_columns(df: pd.DataFrame) -> list[str]:
    """Numeric scalar measure columns (`mc_*`, `fr_*`, `bfr_*`, `fr_tok1_*`) present in df."""
    out = []
    for col in df.columns:
        if col in NON_MEASURE or not col.startswith(MEASURE_PREFIXES):
            continue
        if pd.api.types.is_numeric_dtype(df[col]) and not pd.api.types.is_bool_dtype(df[col]):
            out.append(col)
    return out


def target_columns(df: pd.DataFrame) -> list[str]:
    """Human-signal columns present in df, in HUMAN_TARGETS order."""
    return [c for c in HUMAN_TARGETS if c in df.columns]


def n_options(df: pd.DataFrame) -> np.ndarray:
    """Number of options per item: `n_options` if present, else len(Answers)."""
    if "n_options" in df.columns:
        return df["n_options"].to_numpy(dtype=float)
    if "Answers" not in df.columns:
        raise ValueError("table needs 'n_options' or 'Answers' to know the number of options")
    return df["Answers"].map(lambda a: np.nan if a is None else len(a)).to_numpy(dtype=float)


def label_index(label: object) -> int:
    """'A' -> 0, 'B' -> 1, ...; -1 for missing or non-letter labels."""
    if isinstance(label, str) and len(label.strip()) == 1 and label.strip().isalpha():
        return ord(label.strip().upper()) - ord("A")
    return -1


def correct_mc(df: pd.DataFrame) -> np.ndarray:
    """Multiple-choice correctness: 1.0, 0.0, or NaN where no correct label / prediction.

    `cloze_pred == Correct_Answer`; a jaxunc `correct` column is used when Correct_Answer is absent.
    """
    if "Correct_Answer" in df.columns and "cloze_pred" in df.columns:
        gold = df["Correct_Answer"].map(label_index).to_numpy()
        pred = df["cloze_pred"].map(label_index).to_numpy()
        out = (gold == pred).astype(float)
        out[(gold < 0) | (pred < 0)] = np.nan
        return out
    if "correct" in df.columns:
        return pd.to_numeric(df["correct"].astype("object"), errors="coerce").to_numpy(dtype=float)
    return np.full(len(df), np.nan)


def _normalise_answer(text: object) -> str:
    if not isinstance(text, str):
        return ""
    m = re.search(r"\{([^{}]*)\}", text)
    if m:
        text = m.group(1)
    elif "}" in text:  # prompt ended with '{': the answer runs up to the first '}'
        text = text.split("}", 1)[0]
    else:
        text = text.split("\n", 1)[0]
    text = re.sub(r"[^\w\s]", " ", text.lower())
    words = [w for w in text.split() if w not in ("a", "an", "the")]
    return " ".join(words)


def correct_fr(df: pd.DataFrame) -> tuple[np.ndarray, str, int]:
    """Free-response correctness (1/0/NaN), its source name, and the number of '?' rows excluded.

    Source 'hand_graded' from `fr_correct?` (Y/N; '?' excluded and counted), else
    'normalised_exact_match' of the bracketed `fr_model_answer` against `Correct_Answer_Text`
    (lower-cased, punctuation and articles removed).
    """
    if "fr_correct?" in df.columns:
        g = df["fr_correct?"].astype("object").map(lambda v: str(v).strip().upper() if v is not None else "?")
        out = g.map({"Y": 1.0, "N": 0.0}).to_numpy(dtype=float)
        return out, "hand_graded", int((g == "?").sum())
    if "fr_model_answer" in df.columns and "Correct_Answer_Text" in df.columns:
        pred = df["fr_model_answer"].map(_normalise_answer)
        gold = df["Correct_Answer_Text"].map(_normalise_answer)
        out = (pred == gold).astype(float).to_numpy()
        out[(gold == "").to_numpy()] = np.nan
        return out, "normalised_exact_match", 0
    return np.full(len(df), np.nan), "none", 0


def read_table(path: str | Path) -> pd.DataFrame:
    """Read one parquet table and attach `dataset`/`model` (from the file name if absent)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"results table {path} does not exist")
    df = pd.read_parquet(path)
    return attach_names(df, path)


def attach_names(df: pd.DataFrame, path: str | Path | None = None) -> pd.DataFrame:
    """Copy of df with `dataset`, `model` and `model_type` filled in."""
    df = df.copy()
    df["dataset"] = dataset_name(df, path)
    df["model"] = model_name(df, path)
    if "model_type" not in df.columns:
        m = df["model"].iloc[0] if len(df) else ""
        df["model_type"] = "ins" if re.search(r"(_|-)(ins|instruct|chat|it)$", str(m), re.I) else "base"
    if "model_size" not in df.columns:
        df["model_size"] = np.nan
    return df


def validate_table(df: pd.DataFrame, where: str = "<table>") -> list[str]:
    """Problems that stop part of the analysis (returned as messages, never raised)."""
    problems = []
    for col in REQUIRED:
        if col not in df.columns and "n_options" not in df.columns:
            problems.append(f"{where}: missing column '{col}' (needed for the number of options)")
    if not measure_columns(df):
        problems.append(f"{where}: no measure columns (mc_*, fr_*, bfr_*, fr_tok1_*)")
    if not target_columns(df):
        problems.append(f"{where}: no human-signal column (one of {list(HUMAN_TARGETS)})")
    if len(df) < 3:
        problems.append(f"{where}: only {len(df)} items; correlations need at least 3")
    return problems


def expand_paths(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """Parquet files from a directory, a run directory (items/), a file, or a comma-separated list."""
    if isinstance(spec, (str, Path)):
        parts: Iterable = [p for p in str(spec).split(",") if p.strip()]
    else:
        parts = spec
    out: list[Path] = []
    for part in parts:
        p = Path(str(part).strip())
        if not p.exists():
            raise FileNotFoundError(f"--results: {p} does not exist")
        if p.is_dir():
            sub = p / "items" if (p / "items").is_dir() else p
            files = sorted(sub.glob("*.parquet"))
            if not files:
                raise ValueError(f"--results: directory {sub} holds no per-item tables (*.parquet)")
            out += files
        elif p.suffix == ".parquet":
            out.append(p)
        else:
            raise ValueError(f"--results: {p} is a {p.suffix or 'suffix-less'} file; per-item tables are "
                             ".parquet files (a jaxunc run's items/*.parquet, or the reference study's)")
    return out


def load_tables(tables: Sequence[pd.DataFrame | str | Path] | str | Path) -> list[pd.DataFrame]:
    """DataFrames (with `dataset`/`model`) from frames, paths, or a directory / comma list."""
    if isinstance(tables, (str, Path)):
        tables = expand_paths(tables)
    out = []
    for i, t in enumerate(tables):
        if isinstance(t, pd.DataFrame):
            out.append(attach_names(t))
        else:
            for p in expand_paths([t]):
                out.append(read_table(p))
    return out
