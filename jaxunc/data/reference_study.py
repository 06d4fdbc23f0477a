"""The reference study's published per-item results, as a trimmed extract shipped in jaxunc/data/reference/.

Moore, Roberts, Watson et al. published one parquet file per dataset and model (repository
KyleAMoore/LLM-UQ-Align-and-Calibrate, MIT; attribution in reference/ATTRIBUTION.md). The extract
keeps, per study, one long table: `row` (the item's position in the dataset file), the model
columns (`model`, `model_type`, `model_size`), the grading column `fr_correct?` (Coane only), the
prediction `cloze_pred` and the 17 scalar `mc_*` measures, values unchanged (float64). No prompts,
no human columns: those come from the shipped Coane / ProtoQA data files, joined on position (row i
of a result file is row i of the dataset file; the question text was unicode-cleaned there, so
text is not a key). `reference_tables(study)` rebuilds one per-item table per model with the
column names jaxunc's statistics read.

Sizes: coane_mcqa_results.parquet 30 models x 421 rows (~0.5 MB), protoqa_mcqa_results.parquet
4 models x 8,724 rows (~1.7 MB); coane_mcqa_figures.csv is every value printed in the study's three
Coane multiple-choice heatmaps (742 rows).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent / "reference"
STUDIES = ("coane", "protoqa")
RESULTS = {s: HERE / f"{s}_mcqa_results.parquet" for s in STUDIES}
COANE_FIGURES = HERE / "coane_mcqa_figures.csv"
MODEL_COLUMNS = ("model", "model_type", "model_size")
GRADING_COLUMN = "fr_correct?"
# Item columns joined from the shipped dataset file (human signals, options, the correct label).
ITEM_COLUMNS = ("Question", "Answers", "Answer_Ratios", "Correct_Answer", "n_options", "human-ent",
                "MC_Human_Prop_Correct", "MC_Human_RT_Combined", "FR_Human_Prop_Correct", "FR_Human_RT_ANS",
                "Response_Count")


def extract_columns(frame: pd.DataFrame) -> list[str]:
    """The columns an extract keeps of one published result file."""
    measures = [c for c in frame.columns if c.startswith("mc_") and c != "mc_choice-pdf"]
    grading = [GRADING_COLUMN] if GRADING_COLUMN in frame else []
    return [*MODEL_COLUMNS, *grading, "cloze_pred", *measures]


def build_extract(source: str | Path, study: str) -> pd.DataFrame:
    """The extract of the published files `<source>/<study>/<study>_*.parquet` (how the shipped file was
    made: `write_extract(build_extract('../shared/reference/authors_results', 'coane'), path)`)."""
    files = sorted(Path(source, study).glob(f"{study}_*.parquet"))
    if not files:
        raise FileNotFoundError(f"{Path(source, study)}: no {study}_*.parquet result files")
    frames = []
    for f in files:
        d = pd.read_parquet(f)
        part = d[extract_columns(d)].copy()
        part.insert(0, "row", np.arange(len(d), dtype=np.int32))
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


def write_extract(frame: pd.DataFrame, path: str | Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, compression="zstd",
                   compression_level=19)
    return Path(path)


def read_extract(study: str) -> pd.DataFrame:
    if study not in RESULTS:
        raise ValueError(f"study {study!r}: expected one of {STUDIES}")
    return pd.read_parquet(RESULTS[study])


def reference_tables(study: str) -> list[pd.DataFrame]:
    """One per-item table per model (dataset order), the extract joined with the shipped items."""
    from jaxunc.data import load_dataset

    extract = read_extract(study)
    items = load_dataset(study, shuffle_options=False).items  # the published files did not shuffle
    items = items[[c for c in ITEM_COLUMNS if c in items]].reset_index(drop=True)
    tables = []
    for model, part in extract.groupby("model", sort=True):
        part = part.sort_values("row")
        if part["row"].tolist() != list(range(len(items))):
            raise ValueError(f"{RESULTS[study]}: model {model} has rows {part['row'].min()}..{part['row'].max()} "
                             f"({len(part)}); expected 0..{len(items) - 1}")
        table = pd.concat([items, part.drop(columns="row").reset_index(drop=True)], axis=1)
        table.insert(0, "dataset", study)
        tables.append(table)
    return tables


def printed_values() -> pd.DataFrame:
    """figure, column (model or 'Wilcoxonr(IFTPairs)'), row (measure), value: the printed heatmap cells."""
    return pd.read_csv(COANE_FIGURES)
