"""The multiple-choice task: measures per item from the scoring step, as table rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from jaxunc.data.schema import letter
from jaxunc.engine.batching import Batch
from jaxunc.engine.scoring import ScoreStep


def batch_fn(step: ScoreStep, choice_ids: np.ndarray, n_choices: np.ndarray):
    """Bind the per-item option ids [n_items, O, K] and option counts [n_items] to the step."""

    def run(batch: Batch, rows: np.ndarray) -> dict[str, np.ndarray]:
        return step(batch, choice_ids[rows], n_choices[rows])

    return run


def rows_from_measures(items: pd.DataFrame, out: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per-item rows: option log-probs trimmed to each item's options, prediction as a letter."""
    n_opts = items["n_options"].to_numpy()
    rows = pd.DataFrame({"item_id": items["item_id"].to_numpy()})
    for name, values in out.items():
        if name == "mc_choice-pdf":
            rows[name] = [v[:n].astype(float).tolist() for v, n in zip(values, n_opts)]
        elif name == "cloze_pred":
            rows[name] = [letter(int(i)) for i in values]
        else:
            rows[name] = values
    gold = items["Correct_Answer"] if "Correct_Answer" in items else pd.Series([None] * len(items))
    rows["correct"] = [None if not isinstance(g, str) else bool(p == g)
                       for p, g in zip(rows["cloze_pred"], gold)]
    return rows
