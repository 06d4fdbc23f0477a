"""Prompt formats for multiple-choice (task "mcqa") and free-response (task "fr") items.

Formats:
- `icl2`: completion prompt for base models, two worked examples then the item. Its wording is the
  2025 reference study's base-model prompt ("Question: ...", options "A. ...", "Answer:"), so the
  multiple-choice prompt ends right where the answer letter goes ("Answer:").
- `zero_shot_2025`: the same wording with no worked examples.
- `chat`: the tokenizer's chat template (system message, the two examples as earlier turns, the item
  as the last user turn) with `add_generation_prompt=True`; nothing follows the generation prompt
  (the reference study's instruct prompts ended with a stray "{" there).
Free response asks for the answer's key part inside `{...}`, the span the `bfr_` measures read;
unlike the reference study, no "{" is pre-filled after the prompt.

The prompt string is tokenized WITHOUT special tokens (`tokenize_prompts`), so a BOS belongs in the
string: completion formats start with `tokenizer.bos_token` when `tokenizer("x")` adds it; chat
relies on its template.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jinja2

from jaxunc.data.schema import LETTERS

FORMATS = ("icl2", "zero_shot_2025", "chat")
TASKS = ("mcqa", "fr")

MCQA_SYSTEM = "Answer each multiple choice question with only the letter of the correct answer."
FR_SYSTEM = (
    "Answer each question concisely. Wrap the key part of your answer in {} brackets. "
    "Do not explain or elaborate beyond the bracketed answer."
)
FR_INSTRUCTION = "Answer in as few words as possible, wrapping the key part in {} brackets:"

# The two worked examples of the reference study (question, options, correct letter, free answer).
EXAMPLES: tuple[dict[str, Any], ...] = (
    {
        "Question": "What is the chemical symbol for gold?",
        "Answers": ["Ag", "Mo", "Au", "Gd"],
        "Correct_Answer": "C",
        "fr_answer": "The chemical symbol for gold is {Au}.",
    },
    {
        "Question": "In what year did the First World War end?",
        "Answers": ["1939", "1918", "1914", "1945"],
        "Correct_Answer": "B",
        "fr_answer": "{1918}.",
    },
)


def _question(item: Mapping[str, Any]) -> str:
    question = item["Question"]
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"item Question must be a non-empty string, got {question!r}")
    return question


def _options(item: Mapping[str, Any]) -> list[str]:
    options = list(item["Answers"])
    if not 1 <= len(options) <= len(LETTERS):
        raise ValueError(f"item Answers must hold 1 to {len(LETTERS)} options, got {len(options)}")
    return [str(o) for o in options]


def mcqa_block(item: Mapping[str, Any]) -> str:
    """'Question: q\\nA. o1\\nB. o2\\n...\\nAnswer:' (no trailing space: the letter comes next)."""
    lines = [f"Question: {_question(item)}"]
    lines += [f"{LETTERS[j]}. {option}" for j, option in enumerate(_options(item))]
    return "\n".join(lines + ["Answer:"])


def fr_block(item: Mapping[str, Any]) -> str:
    """'q\\nAnswer in as few words as possible, wrapping the key part in {} brackets:'."""
    return f"{_question(item)}\n{FR_INSTRUCTION}"


def _adds_bos(tokenizer: Any) -> bool:
    """Whether encoding with special tokens puts the BOS first (checked on "x")."""
    if tokenizer is None or tokenizer.bos_token is None or tokenizer.bos_token_id is None:
        return False
    with_special = tokenizer("x")["input_ids"]
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    return with_special[:1] == [tokenizer.bos_token_id] and plain[:1] != [tokenizer.bos_token_id]


def _adds_only_bos(tokenizer: Any) -> bool:
    """Whether encoding with special tokens gives exactly [BOS] + the plain encoding (on "x")."""
    if not _adds_bos(tokenizer):
        return False
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    return list(tokenizer("x")["input_ids"]) == [tokenizer.bos_token_id, *plain]


def bos_prefix(tokenizer: Any) -> str:
    """The tokenizer's BOS text if encoding with special tokens puts it first, else ''."""
    return tokenizer.bos_token if _adds_bos(tokenizer) else ""


def _completion(item: Mapping[str, Any], task: str, n_examples: int) -> str:
    if task == "mcqa":
        shots = [f"{mcqa_block(ex)} {ex['Correct_Answer']}" for ex in EXAMPLES[:n_examples]]
        return "\n\n".join(shots + [mcqa_block(item)])
    shots = [f"{fr_block(ex)} {ex['fr_answer']}" for ex in EXAMPLES[:n_examples]]
    return "\n\n".join(shots + [fr_block(item)])


def chat_messages(
    item: Mapping[str, Any], task: str, system_message: str | None
) -> list[dict[str, str]]:
    """System message, the two examples as user/assistant turns, then the item as a user turn.
    `system_message` None = the study's instruction for the task; "" = no system turn."""
    default = MCQA_SYSTEM if task == "mcqa" else FR_SYSTEM
    system = default if system_message is None else system_message
    messages = [{"role": "system", "content": system}] if system else []
    for ex in EXAMPLES:
        if task == "mcqa":
            messages += [
                {"role": "user", "content": mcqa_block(ex)},
                {"role": "assistant", "content": ex["Correct_Answer"]},
            ]
        else:
            messages += [
                {"role": "user", "content": ex["Question"]},
                {"role": "assistant", "content": ex["fr_answer"]},
            ]
    last = mcqa_block(item) if task == "mcqa" else fr_block(item)
    return messages + [{"role": "user", "content": last}]


def apply_chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The chat template with the generation prompt. Templates without a system role (Gemma) get
    the system message prepended to the first user turn, separated by a blank line."""
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", None)
        raise ValueError(f"fmt='chat' needs a tokenizer with a chat template (tokenizer {name!r})")
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except jinja2.TemplateError:
        if messages[0]["role"] != "system":
            raise
        system, first, *rest = messages
        merged = {"role": first["role"], "content": f"{system['content']}\n\n{first['content']}"}
        text = tokenizer.apply_chat_template(
            [merged, *rest], tokenize=False, add_generation_prompt=True
        )
    if not isinstance(text, str):
        raise TypeError(f"apply_chat_template returned {type(text).__name__}, expected str")
    return text


def build_prompt(
    item: Mapping[str, Any],
    *,
    fmt: str,
    task: str = "mcqa",
    tokenizer: Any = None,
    system_message: str | None = None,
) -> str:
    """The prompt text for one item row (needs `Question`, and `Answers` for mcqa).

    Options are labelled A, B, C, ... in presentation order. See the module docstring for formats.
    system_message (chat only; completion formats have no system turn and ignore it): None = the
    study's instruction for the task (MCQA_SYSTEM / FR_SYSTEM), "" = no system turn.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if fmt == "chat":
        return apply_chat(tokenizer, chat_messages(item, task, system_message))
    n_examples = 2 if fmt == "icl2" else 0
    return bos_prefix(tokenizer) + _completion(item, task, n_examples)


def tokenize_prompts(tokenizer: Any, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of each prompt without adding special tokens: a BOS is already in the text.

    One refinement: when the tokenizer's own special tokens are exactly a leading BOS and the prompt
    starts with the BOS text, the rest is encoded the way the tokenizer encodes text after its own
    BOS (`tokenizer(rest)`). Both ways agree for byte-level BPE; they differ for SentencePiece-style
    tokenizers that mark a word start only at the beginning of the text (Metaspace
    prepend_scheme="first", e.g. Llama 2 / Mistral), where text after a literal "<s>" would lose
    the first word's leading "▁".
    """
    prompts = list(prompts)
    if not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be strings")
    if not prompts:
        return []
    bos = tokenizer.bos_token if _adds_only_bos(tokenizer) else None
    after_bos = [bool(bos) and p.startswith(bos) and not p.startswith(bos + bos) for p in prompts]
    encoded: list[list[int] | None] = [None] * len(prompts)
    for flag in (True, False):
        rows = [i for i, f in enumerate(after_bos) if f == flag]
        if not rows:
            continue
        texts = [prompts[i][len(bos):] if flag else prompts[i] for i in rows]
        for i, ids in zip(rows, tokenizer(texts, add_special_tokens=flag)["input_ids"]):
            encoded[i] = [int(t) for t in ids]
    return encoded  # type: ignore[return-value]
