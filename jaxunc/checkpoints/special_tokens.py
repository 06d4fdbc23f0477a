"""End-of-turn ids and BOS behaviour as a checkpoint declares them (no hard-coded token list).

Stop ids, the union of every declaration found:
- HF folder: generation_config.json `eos_token_id` (int or list), config.json `eos_token_id` (also under
  `text_config`), the tokenizer's EOS, and the chat template's end-of-turn token;
- GGUF: `tokenizer.ggml.eos_token_id`, `eot_token_id`, `eom_token_id`, and the chat template's token.
The chat template's end-of-turn token is found by rendering a user turn and an assistant turn and taking
the declared (special or added) token that follows the assistant's text, only whitespace in between:
`<|im_end|>` (ChatML, Qwen), `<end_of_turn>` (Gemma), `<|eot_id|>` (Llama 3), `<|end|>` (Phi-3),
`</s>` (Llama 2, Mistral).

add_bos: tokenizer_config.json `add_bos_token` or GGUF `tokenizer.ggml.add_bos_token` when declared
(GGUF "llama" vocabularies default to true, as in llama.cpp), else whether the tokenizer puts its BOS
first when encoding "x" with special tokens. transformers 5 does not apply a tokenizer_config.json
`add_bos_token` to a tokenizer.json whose post-processor says otherwise; `honour_add_bos` makes the
loaded tokenizer follow the declared flag, so prompts.py (which asks the tokenizer) agrees with it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from typing import Any

log = logging.getLogger(__name__)

_USER, _REPLY = "jaxunc user turn 7Q", "jaxunc assistant turn 9Z"


@dataclasses.dataclass(frozen=True)
class SpecialTokens:
    """stop_ids: sorted ids that end a generation; bos_id / add_bos: the BOS and whether text starts with it;
    sources: (where it was declared, ids) for each declaration found."""

    stop_ids: tuple[int, ...]
    bos_id: int | None
    add_bos: bool
    sources: tuple[tuple[str, tuple[int, ...]], ...] = ()


def _ids(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value if v is not None)
    return (int(value),)


def template_end_of_turn(tokenizer: Any) -> int | None:
    """Id of the declared token the chat template writes right after an assistant turn (None if the
    tokenizer has no template, the template refuses a user + assistant conversation, or no declared token
    follows the assistant's text)."""
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return None
    messages = [{"role": "user", "content": _USER}, {"role": "assistant", "content": _REPLY}]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception:  # noqa: BLE001 (jinja2 errors, templates raising on unexpected roles)
        return None
    if not isinstance(text, str) or _REPLY not in text:
        return None
    rest = text[text.rfind(_REPLY) + len(_REPLY):]
    stripped = rest.lstrip()
    declared = {str(t): i for i, t in tokenizer.added_tokens_decoder.items()}
    hits = [t for t in declared if t and stripped.startswith(t)]
    return declared[max(hits, key=len)] if hits else None


def _probe_add_bos(tokenizer: Any) -> bool:
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    return tokenizer("x")["input_ids"][:1] == [bos] and tokenizer("x", add_special_tokens=False)["input_ids"][:1] != [bos]


def _adds_eos(tokenizer: Any) -> bool:
    eos = getattr(tokenizer, "eos_token_id", None)
    return eos is not None and tokenizer("x")["input_ids"][-1:] == [eos] and tokenizer(
        "x", add_special_tokens=False)["input_ids"][-1:] != [eos]


def honour_add_bos(tokenizer: Any, add_bos: bool | None) -> bool:
    """Make `tokenizer` add its BOS iff the declared `add_bos` says so (None: leave it); True if changed.

    The post-processor is rebuilt as [BOS] $A [EOS] with the EOS kept as the tokenizer had it."""
    if add_bos is None or tokenizer is None or _probe_add_bos(tokenizer) == bool(add_bos):
        return False
    if add_bos and getattr(tokenizer, "bos_token_id", None) is None:
        raise ValueError("tokenizer_config.json declares add_bos_token=true but the tokenizer has no bos_token")
    add_eos = _adds_eos(tokenizer)
    tokenizer.add_bos_token = bool(add_bos)
    tokenizer.add_eos_token = add_eos
    tokenizer.update_post_processor()
    return True


def _build(declared: list[tuple[str, tuple[int, ...]]], tokenizer: Any, add_bos: bool | None) -> SpecialTokens:
    eot = template_end_of_turn(tokenizer)
    declared = [*declared, ("tokenizer eos_token", _ids(getattr(tokenizer, "eos_token_id", None)))]
    declared.append(("chat template end of turn", _ids(eot)))
    sources = tuple((where, ids) for where, ids in declared if ids)
    stop = tuple(sorted({i for _, ids in sources for i in ids}))
    bos = getattr(tokenizer, "bos_token_id", None)
    return SpecialTokens(
        stop_ids=stop, bos_id=bos, add_bos=_probe_add_bos(tokenizer) if add_bos is None else bool(add_bos),
        sources=sources,
    )


def _read_json(path: pathlib.Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON: {err}") from err
    return data if isinstance(data, dict) else {}


def from_hf_dir(directory: pathlib.Path, tokenizer: Any, config: dict[str, Any]) -> SpecialTokens:
    """SpecialTokens of an HF checkpoint folder (`config` is its config.json)."""
    generation = _read_json(directory / "generation_config.json")
    tok_config = _read_json(directory / "tokenizer_config.json")
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    declared = [
        ("generation_config.json eos_token_id", _ids(generation.get("eos_token_id"))),
        ("config.json eos_token_id", _ids(config.get("eos_token_id"))),
        ("config.json text_config.eos_token_id", _ids(text.get("eos_token_id"))),
    ]
    add_bos = tok_config.get("add_bos_token")
    add_bos = add_bos if isinstance(add_bos, bool) else None
    if honour_add_bos(tokenizer, add_bos):
        log.warning("%s: tokenizer made to %s its BOS, as tokenizer_config.json add_bos_token=%s declares",
                    directory, "add" if add_bos else "omit", add_bos)
    return _build(declared, tokenizer, add_bos)


def from_gguf(meta: dict[str, Any], tokenizer: Any) -> SpecialTokens:
    """SpecialTokens of a GGUF file from its metadata."""
    declared = [(f"GGUF tokenizer.ggml.{k}_token_id", _ids(meta.get(f"tokenizer.ggml.{k}_token_id")))
                for k in ("eos", "eot", "eom")]
    add_bos = meta.get("tokenizer.ggml.add_bos_token")
    if add_bos is None and meta.get("tokenizer.ggml.model") == "llama":
        add_bos = True
    return _build(declared, tokenizer, add_bos)
