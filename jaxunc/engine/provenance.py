"""What a per-item result depends on, so that a result is reused only when all of it is unchanged.

Three layers, checked in this order:

- settings: the config fields that enter a task's prompts or measures (`task_settings`). They are
  known before anything is loaded; a stored result computed with other settings is never mixed in
  or overwritten (`settings_conflicts` lists the differences for a one-line error).
- content (`RunContent`): the identities of what the run reads, known once the model is loaded:
  the checkpoint's content key (the parameter cache's, over the checkpoint files' sha256), the
  tokenizer's serialised form, the source of the code that computes per-item values. Their digest
  is stored with every row (`content_key`); a change recomputes every row.
- the item itself (`item_keys`): question, options, human shares, correct label and the exact
  prompt token ids. A row whose item changed is recomputed, the others are reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

import jaxunc

# Sources of the code that computes per-item values (relative to the package). A change to any of
# them invalidates stored rows; the statistics (stats/, report/) and the CLI do not.
VALUE_CODE = ("measures.py", "columns.py", "labels.py", "prompts.py", "models", "engine", "checkpoints", "data")
ITEM_FIELDS = ("Question", "Answers", "Answer_Ratios", "Correct_Answer", "n_options")


def digest(value: Any) -> str:
    """sha256 (first 16 hex digits) of the canonical JSON of `value`."""
    text = json.dumps(value, sort_keys=True, default=_jsonable, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


@lru_cache(maxsize=1)
def code_version() -> str:
    """`<jaxunc version>+<sha256 of the VALUE_CODE sources>`: changes whenever that code changes."""
    root = Path(jaxunc.__file__).parent
    h = hashlib.sha256()
    for name in VALUE_CODE:
        path = root / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes() + b"\0")
    return f"{jaxunc.__version__}+{h.hexdigest()[:12]}"


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Digest of everything of a tokenizer that changes token ids or decoded text."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    parts = {
        "class": type(tokenizer).__name__,
        "chat_template": getattr(tokenizer, "chat_template", None),
        "special": {k: str(v) for k, v in sorted((getattr(tokenizer, "special_tokens_map", None) or {}).items())},
    }
    if backend is not None:
        parts["backend"] = backend.to_str()
    else:
        parts["vocab"] = sorted(tokenizer.get_vocab().items())
    return digest(parts)


@dataclasses.dataclass(frozen=True)
class RunContent:
    """Identities of the model, tokenizer and code a run computes with (one digest for every row)."""

    checkpoint: str
    tokenizer: str
    code: str

    @property
    def key(self) -> str:
        return digest(dataclasses.asdict(self))

    def as_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def run_content(loaded) -> RunContent:
    """RunContent of a `jaxunc.checkpoints.LoadedModel`."""
    return RunContent(checkpoint=loaded.content_key, tokenizer=tokenizer_fingerprint(loaded.tokenizer),
                      code=code_version())


def item_keys(items: pd.DataFrame, token_lists: Sequence[Sequence[int]], extra: Any = None) -> list[str]:
    """Per-item digest of the item's own content and its exact prompt token ids (and `extra`)."""
    records = items[[c for c in ITEM_FIELDS if c in items]].to_dict("records")
    return [digest([rec, list(map(int, tokens)), extra]) for rec, tokens in zip(records, token_lists)]


def task_settings(config, dataset_spec: str, shuffled: bool, task: str) -> dict[str, Any]:
    """The config fields that determine a task's per-item values, named as on the command line.

    data.limit is not one (rows are reusable across limits) and neither are batch size, buckets,
    chunk size or the device layout (they do not change results beyond the documented float
    tolerance).
    """
    settings = {
        "task": task,
        "data.datasets": dataset_spec,
        "data.path": config.data.path,
        "data.shuffle_options": bool(shuffled),
        "model.checkpoint": config.model.checkpoint,
        "model.dtype": config.model.dtype,
        "model.prompt_format": config.model.prompt_format,
        "model.system_message": config.model.system_message,
        "engine.nucleus": config.engine.nucleus,
        "engine.batch_invariant": bool(config.engine.batch_invariant),
    }
    if shuffled:
        settings["data.seed"] = int(config.data.seed)
    if task == "fr":
        settings["engine.max_new_tokens"] = int(config.engine.max_new_tokens)
    if task == "mcqa" and config.get("analysis", {}).get("probes", False):
        # rows then carry hidden states: rows without them are never reused for a probes run (the key
        # is absent without probes, so results stored before it existed stay reusable)
        settings["analysis.probes"] = True
    return settings


def settings_conflicts(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'field: stored -> current' for every setting that differs."""
    return [f"{k}: {stored.get(k)!r} -> {current.get(k)!r}"
            for k in sorted(set(stored) | set(current)) if stored.get(k) != current.get(k)]
