"""SentencePiece-style GGUF tokenizers (``tokenizer.ggml.model == "llama"``: Llama 1/2, Mistral, Gemma,
Phi-3, ...) rebuilt as a `tokenizers` BPE from the file's metadata, without torch or a ``.model`` file.

What the file holds and how it is read (llama.cpp's SPM tokenizer is the behaviour matched):
- ``tokenizer.ggml.tokens`` / ``scores`` / ``token_type`` (1 normal, 2 unknown, 3 control,
  4 user-defined, 5 unused, 6 byte ``<0xXX>``). Words are spelled with U+2581 "▁" for a space.
- SentencePiece BPE segments a text by repeatedly merging the adjacent pair whose concatenation is the
  normal token of highest score. That is a BPE whose merge list holds every split (l, r) of every normal
  token t = l + r with l and r normal tokens, ranked by score(t) (higher first; ties by token id).
  Characters outside the vocabulary fall back to their UTF-8 byte tokens (``byte_fallback``).
- Before segmenting, spaces become "▁" and, when ``tokenizer.ggml.add_space_prefix`` is true (default;
  Gemma files say false), one "▁" is prepended to each run of text at the start or after a special or
  user-defined token, as llama.cpp (and sentencepiece for a single text) does. transformers' own GGUF
  tokenizer prepends only at the very start and not before a leading space, which differs from both.
- Control and unknown tokens are special tokens, user-defined ones (Gemma's whitespace runs, stored with
  real spaces by llama.cpp's converter) plain added tokens, all matched whole in the raw text.
"""

from __future__ import annotations

import pathlib
from typing import Any

SPACE = "\u2581"
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def spm_merges(tokens: list[str], scores: list[float], types: list[int]) -> list[tuple[str, str]]:
    """BPE merges equivalent to SentencePiece's score-greedy merging: for each normal token t (best score
    first, then lower id), every split t = l + r into two normal tokens."""
    normal = {t: i for i, (t, k) in enumerate(zip(tokens, types)) if k == NORMAL}
    order = sorted((i for i in normal.values() if len(tokens[i]) > 1), key=lambda i: (-scores[i], i))
    merges = []
    for i in order:
        t = tokens[i]
        merges += [(t[:j], t[j:]) for j in range(1, len(t)) if t[:j] in normal and t[j:] in normal]
    return merges


def sentencepiece_backend(meta: dict[str, Any], path: pathlib.Path, require):
    """`tokenizers.Tokenizer` (model, normalizer, decoder) for a "llama" GGUF vocabulary; the caller adds
    the special tokens and the BOS/EOS post-processor. `require(meta, key, path)` reads a required key."""
    from tokenizers import Tokenizer, decoders, models, normalizers

    tokens: list[str] = require(meta, "tokenizer.ggml.tokens", path)
    scores: list[float] = require(meta, "tokenizer.ggml.scores", path)
    types: list[int] = meta.get("tokenizer.ggml.token_type") or [NORMAL] * len(tokens)
    if not len(tokens) == len(scores) == len(types):
        raise ValueError(
            f"{path}: tokenizer.ggml.tokens ({len(tokens)}), scores ({len(scores)}) and token_type ({len(types)}) "
            "must have the same length"
        )
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"{path}: tokenizer.ggml.tokens has duplicate entries")
    bytes_present = sum(k == BYTE for k in types)
    if bytes_present not in (0, 256):
        raise ValueError(f"{path}: expected 256 byte tokens <0x00>..<0xFF> (token_type 6), found {bytes_present}")
    unk_id = meta.get("tokenizer.ggml.unknown_token_id")
    vocab = {t: i for i, t in enumerate(tokens)}
    model = models.BPE(
        vocab=vocab,
        merges=spm_merges(tokens, scores, types),
        unk_token=tokens[unk_id] if unk_id is not None else None,
        fuse_unk=True,
        byte_fallback=bytes_present == 256,
    )
    backend = Tokenizer(model)
    prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
    steps = [normalizers.Prepend(SPACE)] if prefix else []
    backend.normalizer = normalizers.Sequence([*steps, normalizers.Replace(" ", SPACE)])
    backend.pre_tokenizer = None
    decode = [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    backend.decoder = decoders.Sequence(decode + ([decoders.Strip(" ", 1, 0)] if prefix else []))
    return backend
