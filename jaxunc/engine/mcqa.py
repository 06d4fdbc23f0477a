"""The multiple-choice task: prefix groups, packed suffix batches, measures per item as table rows.

plan_mcqa(token_lists, ...) decides, once per dataset: the prefix groups (engine.prefix), the width
every prefix is padded to (one compiled prefix shape), and the packed row shape (one compiled
scoring shape). mcqa_batches(...) then yields, batch after batch, the items it scored and their
measures; engine.chunked stores them chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from jaxunc.data.schema import letter
from jaxunc.engine.packing import pack, pack_shape
from jaxunc.engine.prefix import PrefixGroup, groups_to_run, padded_width, prefix_groups, prefix_summary
from jaxunc.engine.scoring import Scorer

# Chunk-row column carrying each item's hidden states (probes): the float32 bytes of [layers + 1,
# hidden]; stored in the task's chunks (so they resume and are reused with the rows), dropped from the
# merged item table; pipeline writes hidden/<dataset>__<model>.safetensors from it.
HIDDEN_COLUMN = "_hidden"

@dataclass(frozen=True)
class McqaPlan:
    groups: list[PrefixGroup]
    prefix_width: int  # columns every prefix is padded to
    rows: int
    length: int  # packed row length
    segments: int  # suffixes per row at most

    def record(self, token_lists) -> dict:
        """run.json's account of the prefix reuse and the packing (real vs padded suffix tokens)."""
        summary = prefix_summary(self.groups, token_lists)
        batches = [b for g in self.groups for b in _pack_group(self, g, token_lists, list(g.items))]
        padded = len(batches) * self.rows * self.length
        return {**summary, "prefix_width": self.prefix_width,
                "packing": {"rows": self.rows, "length": self.length, "segments": self.segments,
                            "batches": len(batches), "real_suffix_tokens": summary["suffix_tokens"],
                            "padded_suffix_tokens": padded,
                            "padded_over_real": padded / max(1, summary["suffix_tokens"])}}


def plan_mcqa(token_lists: list[list[int]], *, rows: int, length: int = 0, min_prefix: int = 16,
              reuse_prefix: bool = True, row_mode: bool = False, max_context: int | None = None) -> McqaPlan:
    """Prefix groups and packed shapes for these prompts (see the module docstring).

    row_mode packs one suffix per row (engine.batch_invariant). A prefix wider than `max_context`
    (the model's) is refused with a message, never silently dropped.
    """
    groups = prefix_groups(token_lists, min_prefix) if reuse_prefix else [PrefixGroup((), tuple(range(len(token_lists))))]
    longest = max(len(g.prefix) for g in groups)
    width = padded_width(groups)
    if max_context is not None and longest > max_context:
        raise ValueError(f"the shared prompt prefix has {longest} tokens, more than the model's context of "
                         f"{max_context}")
    suffix_lengths = [len(token_lists[i]) - len(g.prefix) for g in groups for i in g.items]
    row_length, segments = pack_shape(suffix_lengths, rows=rows, length=length)
    if row_mode:
        segments = 1
        row_length = length or -(-max(suffix_lengths) // 16) * 16
    return McqaPlan(groups, width, rows, row_length, segments)


def _pack_group(plan: McqaPlan, group: PrefixGroup, token_lists, items: list[int]):
    suffixes = [token_lists[i][len(group.prefix):] for i in items]
    return pack(suffixes, items, rows=plan.rows, length=plan.length, segments=plan.segments, pad_id=0,
                prefix_length=len(group.prefix))


def mcqa_batches(scorer: Scorer, plan: McqaPlan, token_lists, todo: list[int], choice_ids: np.ndarray,
                 n_choices: np.ndarray) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """(item indices, measures of those items) per packed batch, over the `todo` items only.

    choice_ids [n_items, O, K] / n_choices [n_items] hold every item's option token ids and counts.
    """
    for group, items in groups_to_run(plan.groups, todo):
        prefix = scorer.prefix(list(group.prefix), plan.prefix_width)
        for batch in _pack_group(plan, group, token_lists, items):
            slots = batch.items.reshape(-1)
            filler = np.where(slots >= 0, slots, slots[0])  # empty slots repeat the first item; dropped below
            out = scorer(batch, prefix, choice_ids[filler].reshape(*batch.items.shape, *choice_ids.shape[1:]),
                         n_choices[filler].reshape(batch.items.shape))
            real = slots >= 0
            yield slots[real], {k: v[real] for k, v in out.items()}


def rows_from_measures(items: pd.DataFrame, out: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per-item rows: option log-probs trimmed to each item's options, prediction as a letter, hidden
    states (probes) as float32 bytes in HIDDEN_COLUMN."""
    n_opts = items["n_options"].to_numpy()
    rows = pd.DataFrame({"item_id": items["item_id"].to_numpy()})
    for name, values in out.items():
        if name == "hidden":
            rows[HIDDEN_COLUMN] = [np.ascontiguousarray(v, np.float32).tobytes() for v in values]
        elif name == "mc_choice-pdf":
            rows[name] = [v[:n].astype(float).tolist() for v, n in zip(values, n_opts)]
        elif name == "cloze_pred":
            rows[name] = [letter(int(i)) for i in values]
        else:
            rows[name] = values
    gold = items["Correct_Answer"] if "Correct_Answer" in items else pd.Series([None] * len(items))
    rows["correct"] = [None if not isinstance(g, str) else bool(p == g)
                       for p, g in zip(rows["cloze_pred"], gold)]
    return rows
