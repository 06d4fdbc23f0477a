"""Column names, kinds and confidence maps of every measure (docs/measures.md sections 1, 2, 5, 6).

Pure Python: the statistics import this without importing jax. Every other module takes column
names from here, so a name is spelled once.
"""

from __future__ import annotations

import re

TOP_K: tuple[int, ...] = (5, 10, 25, 50, 100)
TOP_P: tuple[float, ...] = (0.95, 0.9, 0.75, 0.5)

UNCERTAINTY = "uncertainty"
CONFIDENCE = "confidence"


def vocabulary_names(top_k=TOP_K, top_p=TOP_P) -> list[str]:
    """Measure names computed from the vocabulary distribution alone (no option labels)."""
    names = ["total-ent", "var-ent"]
    names += [f"top-k-ent-{k}" for k in top_k]
    names += [f"top-p-len-{p}" for p in top_p]
    names += [f"top-p-ent-{p}" for p in top_p]
    names += ["top-1-prob"]
    return names


CHOICE_NAMES: tuple[str, ...] = (
    "choice-ent",
    "choice-prob",
    "choice-prob-renorm",
    "choice-mass",
    "choice-margin",
    "choice-margin-renorm",
)


def mc_columns(top_k=TOP_K, top_p=TOP_P) -> list[str]:
    """Scalar `mc_*` columns (section 1), without the list column `mc_choice-pdf`."""
    return [f"mc_{n}" for n in vocabulary_names(top_k, top_p)] + [f"mc_{n}" for n in CHOICE_NAMES]


def sequence_names(top_k=TOP_K, top_p=TOP_P) -> list[str]:
    """Measure names of section 2 (`fr_` / `bfr_` prefixes added by the caller)."""
    names = ["total-ent", "first-token-ent", "var-ent"]
    names += [f"top-k-ent-{k}" for k in top_k]
    names += [f"top-p-len-{p}" for p in top_p]
    names += [f"top-p-ent-{p}" for p in top_p]
    names += ["ppl"]
    return names


_CONFIDENCE_MEASURES = {
    "top-1-prob",
    "choice-prob",
    "choice-prob-renorm",
    "choice-mass",
    "choice-margin",
    "choice-margin-renorm",
}


def base_name(column: str) -> str:
    """'mc_top-k-ent-5' -> 'top-k-ent-5'; also strips 'fr_', 'bfr_', 'fr_tok1_'."""
    for prefix in ("fr_tok1_", "bfr_", "fr_", "mc_"):
        if column.startswith(prefix):
            return column[len(prefix):]
    return column


def kind(column: str) -> str:
    """'uncertainty' or 'confidence' (docs/measures.md section 5). `fr_ppl` is an uncertainty."""
    return CONFIDENCE if base_name(column) in _CONFIDENCE_MEASURES else UNCERTAINTY


def orientation(column: str) -> int:
    """+1 for uncertainty measures, -1 for confidence measures (negated when compared)."""
    return 1 if kind(column) == UNCERTAINTY else -1


def confidence_map(column: str) -> str | None:
    """Name of the map from the raw column to a confidence in [0, 1] (docs/measures.md section 6).

    'identity', 'exp', 'one_minus', 'inverse', or None where no ECE applies.
    """
    name = base_name(column)
    if name == "choice-prob-renorm":
        return "identity"
    if name in ("choice-prob", "top-1-prob", "choice-mass"):
        return "exp"
    if name == "ppl":
        return "inverse"
    if name.startswith("top-p-len") or name == "var-ent" or "margin" in name:
        return None  # margins are not a probability of the predicted option being right
    if name.endswith("-ent") or "-ent-" in name:
        return "one_minus"
    return None


def measure_order(top_k=TOP_K, top_p=TOP_P) -> list[str]:
    """Canonical order of the per-item measure columns in output tables."""
    seq = sequence_names(top_k, top_p)
    return (
        mc_columns(top_k, top_p) + ["mc_choice-pdf", "cloze_pred", "correct"]
        + [f"fr_tok1_{n}" for n in vocabulary_names(top_k, top_p)]
        + [f"fr_{n}" for n in seq] + [f"bfr_{n}" for n in seq]
        + ["fr_model_answer", "fr_gen_length", "fr_hit_cap", "fr_bracket_found"]
    )


# The base/instruct pair key of a model: family + size, the same for both members of a pair
# (configs/*.py set it from the family and size key, e.g. 'falcon3-1b'); compare.csv pairs on it.
PAIR_COLUMN = "model_pair"
MODEL_COLUMNS: tuple[str, ...] = ("model", "model_type", "model_size", PAIR_COLUMN)
# Name tokens that mark the variant or the file format rather than the model: dropped anywhere in
# the name ('Llama-2-7b-chat-hf', 'Mistral-7B-Instruct-v0.3'); version tokens such as v0.3 are kept.
_VARIANT_TOKENS = frozenset({"ins", "instruct", "chat", "it", "hf", "base", "sft", "pt"})


def pair_key_from_name(model: str) -> str:
    """Pair key derived from a model name, for tables without a `model_pair` column.

    Lower-cased tokens split at '-', '_' or spaces, variant tokens (ins, instruct, chat, it, hf,
    base, sft, pt) removed, joined with '-': 'Falcon3_1B_Ins' -> 'falcon3-1b',
    'Llama-2-7b-chat-hf' -> 'llama-2-7b', 'Mistral-7B-Instruct-v0.3' -> 'mistral-7b-v0.3'.
    """
    tokens = [t for t in re.split(r"[-_\s]+", str(model).strip().lower()) if t]
    kept = [t for t in tokens if t not in _VARIANT_TOKENS]
    return "-".join(kept or tokens)


def ordered(table_columns: list[str]) -> list[str]:
    """`table_columns` with the measure columns moved into canonical order after the others."""
    canonical = [c for c in measure_order() if c in table_columns]
    known = set(canonical)
    rest = [c for c in table_columns if c not in known]
    model_cols = [c for c in MODEL_COLUMNS if c in rest]
    rest = [c for c in rest if c not in model_cols]
    return rest + canonical + model_cols
