"""The free-response task: greedy answers, their end-of-sequence and bracket masks, `fr_*` rows.

m_t (end mask) is 1 up to and including the first EOS. The bracket mask marks the steps whose
decoded text overlaps the content of the first `{...}` span of the answer (braces excluded); when
no such span exists every `bfr_*` value is NaN and `fr_bracket_found` is False.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from jaxunc import measures
from jaxunc.engine.batching import make_batches
from jaxunc.engine.decode import Generation, Generator
from jaxunc.engine.prefix import PrefixGroup, groups_to_run, padded_width, prefix_groups, prefix_summary


def step_char_spans(tokenizer, tokens: list[int]) -> tuple[str, list[tuple[int, int]]]:
    """Decoded text (special tokens removed) and the [start, end) characters each step added."""
    spans, text = [], ""
    for t in range(len(tokens)):
        longer = tokenizer.decode(tokens[: t + 1], skip_special_tokens=True)
        spans.append((len(text), len(longer)))
        text = longer
    return text, spans


def bracket_content(text: str) -> tuple[int, int] | None:
    """[start, end) of the content of the first `{...}` span, or None when there is none."""
    open_at = text.find("{")
    close_at = text.find("}", open_at + 1) if open_at >= 0 else -1
    if open_at < 0 or close_at < 0 or close_at == open_at + 1:
        return None
    return open_at + 1, close_at


def answer_masks(tokenizer, tokens: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(end mask, bracket mask, answer text) of one row; `steps` counts steps up to the first EOS."""
    n = len(tokens)
    end_mask = (np.arange(n) < steps).astype(np.float32)
    text, spans = step_char_spans(tokenizer, [int(t) for t in tokens[:steps]])
    bracket_mask = np.zeros(n, np.float32)
    content = bracket_content(text)
    if content is not None:
        lo, hi = content
        for t, (s, e) in enumerate(spans):
            bracket_mask[t] = float(s < hi and e > lo)
    return end_mask, bracket_mask, text


@dataclass(frozen=True)
class FrPlan:
    groups: list[PrefixGroup]
    prefix_width: int
    batch_size: int
    buckets: tuple[int, ...]

    def record(self, token_lists) -> dict:
        return {**prefix_summary(self.groups, token_lists), "prefix_width": self.prefix_width}


def plan_fr(token_lists: list[list[int]], *, batch_size: int, buckets: tuple[int, ...], min_prefix: int = 16,
            reuse_prefix: bool = True) -> FrPlan:
    """Prefix groups for the free-response prompts; suffixes go into left-padded length buckets."""
    groups = prefix_groups(token_lists, min_prefix) if reuse_prefix else [PrefixGroup((), tuple(range(len(token_lists))))]
    return FrPlan(groups, padded_width(groups), batch_size, buckets)


def fr_batches(generate: Generator, plan: FrPlan, token_lists, todo: list[int], pad_id: int):
    """(item indices, generation tracks of those items) per batch, over the `todo` items only."""
    for group, items in groups_to_run(plan.groups, todo):
        prefix = generate.prefix(list(group.prefix), plan.prefix_width)
        suffixes = [token_lists[i][len(group.prefix):] for i in items]
        for batch in make_batches(suffixes, plan.batch_size, plan.buckets, pad_id):
            gen: Generation = generate(batch.input_ids, batch.attention_mask, prefix)
            n = batch.n_real
            out = {"tokens": gen.tokens[:n], "steps": gen.steps[:n], "hit_cap": gen.hit_cap[:n]}
            out.update({f"track:{k}": v[:n] for k, v in gen.stats.items()})
            out.update({k: v[:n] for k, v in gen.first.items()})
            yield np.asarray(items)[batch.rows], out


def rows_fn(tokenizer):
    """Turn generation tracks into `fr_*`, `bfr_*` and `fr_tok1_*` rows (masks built on the host)."""

    def rows(items: pd.DataFrame, out: dict[str, np.ndarray]) -> pd.DataFrame:
        masks = [answer_masks(tokenizer, toks, int(s)) for toks, s in zip(out["tokens"], out["steps"])]
        end_mask = np.stack([m[0] for m in masks])
        bracket_mask = np.stack([m[1] for m in masks])
        tracks = {k.split(":", 1)[1]: v for k, v in out.items() if k.startswith("track:")}
        table = pd.DataFrame({"item_id": items["item_id"].to_numpy()})
        for prefix, mask in (("fr_", end_mask), ("bfr_", bracket_mask)):
            reduced = measures.reduce_step_statistics(tracks, mask, prefix=prefix)
            for name, values in reduced.items():
                table[name] = np.asarray(values)
        for name, values in out.items():
            if name.startswith("fr_tok1_"):
                table[name] = values
        table["fr_model_answer"] = [m[2] for m in masks]
        table["fr_gen_length"] = out["steps"].astype(np.int64)
        table["fr_hit_cap"] = out["hit_cap"].astype(bool)
        table["fr_bracket_found"] = bracket_mask.any(axis=1)
        return table

    return rows
