"""Token ids of the option labels' surface variants (docs/measures.md section 3).

For label X the variants are `X`, `X.`, `X `, `X)`, `X,`, `X:`, ` X`, `(X)` and the same with
lower-case x. Each is tokenized without special tokens; the ones that are exactly one (known) token
are kept, duplicate ids removed. The choice log-probability of X is logsumexp of log p over its ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from jaxunc.data.schema import LETTERS

PATTERNS: tuple[str, ...] = ("{}", "{}.", "{} ", "{})", "{},", "{}:", " {}", "({})")


def variant_strings(label: str) -> list[str]:
    """The 16 surface variants of a label: the patterns with X, then with lower-case x."""
    return [p.format(label) for p in PATTERNS] + [p.format(label.lower()) for p in PATTERNS]


@dataclass(frozen=True)
class LabelVariants:
    """ids: int32 [n_labels, max_variants], -1 padded; table: label -> [{"variant", "id"}] kept."""

    ids: np.ndarray
    table: dict[str, list[dict[str, Any]]]
    tokenizer_name: str

    @property
    def labels(self) -> list[str]:
        return list(self.table)

    @property
    def n_labels(self) -> int:
        return self.ids.shape[0]


def _tokenizer_name(tokenizer: Any) -> str:
    return str(getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__)


def label_variant_ids(tokenizer: Any, n_labels: int) -> LabelVariants:
    """Single-token variant ids of labels A.. (n_labels of them).

    Raises ValueError when a label has no single-token variant or when two labels share an id.
    A variant that encodes to the unknown token is not kept.
    """
    if not 1 <= n_labels <= len(LETTERS):
        raise ValueError(f"n_labels must be in 1..{len(LETTERS)}, got {n_labels}")
    name = _tokenizer_name(tokenizer)
    unk = getattr(tokenizer, "unk_token_id", None)
    table: dict[str, list[dict[str, Any]]] = {}
    owner: dict[int, tuple[str, str]] = {}
    for label in LETTERS[:n_labels]:
        kept: list[dict[str, Any]] = []
        for variant in variant_strings(label):
            ids = tokenizer(variant, add_special_tokens=False)["input_ids"]
            if len(ids) != 1 or ids[0] == unk or any(k["id"] == ids[0] for k in kept):
                continue
            token = int(ids[0])
            if token in owner:
                other, other_variant = owner[token]
                raise ValueError(
                    f"tokenizer {name!r}: labels {other!r} ({other_variant!r}) and {label!r} "
                    f"({variant!r}) share token id {token}"
                )
            owner[token] = (label, variant)
            kept.append({"variant": variant, "id": token})
        if not kept:
            raise ValueError(
                f"tokenizer {name!r}: label {label!r} has no single-token variant among "
                f"{variant_strings(label)}"
            )
        table[label] = kept
    width = max(len(v) for v in table.values())
    ids = np.full((n_labels, width), -1, dtype=np.int32)
    for row, kept in enumerate(table.values()):
        ids[row, : len(kept)] = [k["id"] for k in kept]
    return LabelVariants(ids=ids, table=table, tokenizer_name=name)


def choice_id_array(
    label_variants: LabelVariants, n_options: np.ndarray, max_options: int
) -> np.ndarray:
    """int32 [B, max_options, K]: row b holds the variant ids of labels A.. for its n_options[b]
    options and -1 beyond (the `choice_ids` argument of the measures)."""
    n = np.asarray(n_options)
    if n.ndim != 1 or not np.issubdtype(n.dtype, np.integer):
        raise ValueError(
            f"n_options must be a 1-d integer array, got shape {n.shape} dtype {n.dtype}"
        )
    limit = min(max_options, label_variants.n_labels)
    if n.size and (n.min() < 1 or n.max() > limit):
        raise ValueError(
            f"n_options must be in 1..{limit} (max_options={max_options}, "
            f"{label_variants.n_labels} labels), got values in {n.min()}..{n.max()}"
        )
    ids = label_variants.ids
    out = np.full((n.size, max_options, ids.shape[1]), -1, dtype=np.int32)
    present = np.arange(limit)[None, :] < n[:, None]  # [B, limit]
    out[:, :limit] = np.where(present[:, :, None], ids[None, :limit], -1)
    return out
