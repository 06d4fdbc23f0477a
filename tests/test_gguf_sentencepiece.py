"""SentencePiece-style GGUF tokenizers (tokenizer.ggml.model "llama": Llama 2, Mistral, Gemma) built by
jaxunc.checkpoints.gguf_spm from the file alone.

The GGUF files are written here the way llama.cpp's converter writes them (pieces, scores and piece types
of a real SentencePiece BPE model trained here with byte fallback and split digits; user-defined pieces
respelled with real spaces; add_space_prefix false for Gemma). References:
- transformers' GGUF tokenizer (AutoTokenizer.from_pretrained(dir, gguf_file=...)), on every battery string
  where it follows SentencePiece;
- the `sentencepiece` library on the trained model itself, applied per run of text between special tokens
  the way llama.cpp does. This is where transformers differs (and so do we, from it): for the Llama style
  it adds the "▁" word-start prefix only at the very start of the input and not before a leading space,
  so " x" and text right after "<s>" lose a "▁" that SentencePiece, llama.cpp and the checkpoints' own
  tokenizer.json files (Prepend normalizer) keep.
"""

from __future__ import annotations

import io
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
spm = pytest.importorskip("sentencepiece")

from jaxunc.checkpoints.gguf_io import build_tokenizer, read_gguf, read_gguf_header  # noqa: E402
from jaxunc.checkpoints.gguf_spm import spm_merges  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
GEMMA_USER = ["<start_of_turn>", "<end_of_turn>", "▁▁", "▁▁▁", "▁▁▁▁", "\n\n"]

BATTERY = [
    "Hello world",
    "What is the capital of France? Answer: B",
    "naïve café résumé — Über straße",
    "東京 大阪 日本語のテキスト",
    "emoji 🙂🚀 and ✓ marks",
    "In 1969, 3 astronauts flew 384400 km; π ≈ 3.14159",
    "0123456789",
    "multiple   spaces    inside",
    "trailing spaces   ",
    " leading space",
    "   three leading",
    " ",
    "",
    "line1\nline2\n\nline3\n\n\n",
    "\ttab\tseparated\t",
    "Ünïcödé ÀÉÎ ĳ ﬁ",  # no NFKC: compatibility characters stay (or fall back to bytes)
    "<s>Question: x</s>",
    "a</s> b<s>  c",
    "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
    "a  b   c    d",
]


def _corpus() -> list[str]:
    from jaxunc.data import load_dataset

    items = load_dataset("coane").items
    text = list(items["Question"]) + [a for answers in items["Answers"] for a in answers]
    return text + ["naïve café résumé Über straße", "東京 大阪 日本語", "3.14159 and 2024", "  indented\n\tlines\n\n"]


def _train(style: str):
    """A SentencePiece BPE model (Llama settings: byte fallback, split digits, identity normalisation)."""
    buf = io.BytesIO()
    kwargs = dict(
        model_type="bpe", vocab_size=700, byte_fallback=True, character_coverage=0.9995,
        normalization_rule_name="identity", remove_extra_whitespaces=False, split_digits=True,
        allow_whitespace_only_pieces=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        add_dummy_prefix=style == "llama", minloglevel=2,
    )
    if style == "gemma":
        kwargs["user_defined_symbols"] = GEMMA_USER
    spm.SentencePieceTrainer.train(sentence_iterator=iter(_corpus()), model_writer=buf, **kwargs)
    return buf.getvalue()


def _write_gguf(
    path: pathlib.Path, proto: bytes, style: str, add_bos: bool | None = True, tensors: dict | None = None
) -> None:
    """Tokenizer metadata as llama.cpp's converter writes it (types from the model's piece types); with
    `tensors`, also the metadata of a 1-layer llama (hidden 8, 2 heads, 1 KV head, FFN 12)."""
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(proto)
    types = [int(p.type) for p in model.pieces]
    tokens = [p.piece.replace("▁", " ") if t == 4 else p.piece for p, t in zip(model.pieces, types)]
    writer = gguf.GGUFWriter(str(path), "gemma3" if style == "gemma" else "llama")
    writer.add_block_count(1)
    if tensors is not None:
        writer.add_context_length(64)
        writer.add_embedding_length(8)
        writer.add_feed_forward_length(12)
        writer.add_head_count(2)
        writer.add_head_count_kv(1)
        writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([p.score for p in model.pieces])
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    if add_bos is not None:
        writer.add_add_bos_token(add_bos)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(style == "llama")
    for name, value in (tensors or {"token_embd.weight": np.zeros((len(tokens), 4), np.float32)}).items():
        writer.add_tensor(name, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module", params=["llama", "gemma"])
def style(request, tmp_path_factory):
    """(style, our tokenizer, transformers' tokenizer, sentencepiece processor)."""
    from transformers import AutoTokenizer

    proto = _train(request.param)
    directory = tmp_path_factory.mktemp(request.param)
    _write_gguf(directory / "tok.gguf", proto, request.param)
    meta, _ = read_gguf_header(directory / "tok.gguf")
    ours = build_tokenizer(meta, directory / "tok.gguf")
    hf = AutoTokenizer.from_pretrained(str(directory), gguf_file="tok.gguf")
    return request.param, ours, hf, spm.SentencePieceProcessor(model_proto=proto), directory


def _llama_cpp_reference(text: str, sp, special: dict[str, int], bos: int | None) -> list[int]:
    """llama.cpp's SPM rule: split the raw text on special / user-defined tokens (longest first), encode
    each run of text on its own with SentencePiece (which adds the word-start prefix per run when the model
    has add_dummy_prefix), keep the tokens' ids."""
    pattern = "|".join(re.escape(t) for t in sorted(special, key=len, reverse=True))
    out = [] if bos is None else [bos]
    for piece in re.split(f"({pattern})", text) if pattern else [text]:
        if piece in special:
            out.append(special[piece])
        elif piece:
            out.extend(sp.encode(piece))
    return out


def _specials(sp, style: str) -> dict[str, int]:
    special = {"<s>": 1, "</s>": 2, "<unk>": 0}
    if style == "gemma":
        special.update({t.replace("▁", " "): sp.piece_to_id(t) for t in GEMMA_USER})
    return special


def _transformers_follows_sentencepiece(text: str, style: str) -> bool:
    """transformers' Metaspace(prepend_scheme="first") drops the prefix before a leading space and after a
    special token (Llama style only; Gemma files have no prefix)."""
    if style != "llama":
        return True
    return not text.startswith(" ") and not re.search(r"</?s>[^<]", text)


def test_battery_matches_sentencepiece_per_text_run(style):
    kind, ours, _, sp, _ = style
    special = _specials(sp, kind)
    for text in BATTERY:
        assert ours(text)["input_ids"] == _llama_cpp_reference(text, sp, special, bos=1), repr(text)
        assert ours(text, add_special_tokens=False)["input_ids"] == _llama_cpp_reference(text, sp, special, None)


def test_battery_matches_transformers_gguf_tokenizer(style):
    kind, ours, hf, _, _ = style
    compared = 0
    for text in BATTERY:
        if _transformers_follows_sentencepiece(text, kind):
            assert ours(text)["input_ids"] == hf(text)["input_ids"], repr(text)
            compared += 1
    assert compared >= len(BATTERY) - (5 if kind == "llama" else 0)


@pytest.mark.parametrize("style", ["llama"], indirect=True)  # Gemma files have no word-start prefix
def test_the_documented_difference_from_transformers(style):
    """Llama style: transformers encodes " leading space" as if it were "leading space" (one "▁" lost)."""
    kind, ours, hf, sp, _ = style
    text = " leading space"
    assert ours(text)["input_ids"] == [1, *sp.encode(text)]
    assert hf(text)["input_ids"] == [1, *sp.encode(text.lstrip())] != ours(text)["input_ids"]


def test_decode_round_trips(style):
    _, ours, hf, _, _ = style
    for text in BATTERY:
        if re.search(r"</?s>|<unk>", text):
            continue
        ids = ours(text)["input_ids"]
        assert ours.decode(ids, skip_special_tokens=True) == text, repr(text)


def test_special_tokens_and_bos_flag(style, tmp_path):
    kind, ours, hf, sp, _ = style
    assert (ours.bos_token, ours.eos_token, ours.unk_token) == ("<s>", "</s>", "<unk>")
    assert (ours.bos_token_id, ours.eos_token_id, ours.unk_token_id) == (1, 2, 0)
    assert set(ours.all_special_ids) >= {0, 1, 2} and len(ours) == sp.get_piece_size()
    # add_bos_token false: no BOS; absent: llama.cpp's default for "llama" vocabularies adds one.
    for flag, first in ((False, []), (None, [1])):
        path = tmp_path / f"bos_{flag}.gguf"
        _write_gguf(path, sp.serialized_model_proto(), kind, add_bos=flag)
        tok = build_tokenizer(read_gguf_header(path)[0], path)
        assert tok("Hello")["input_ids"] == first + sp.encode("Hello")


def test_merges_follow_scores():
    tokens = ["<unk>", "a", "b", "c", "ab", "bc", "abc"]
    scores = [0.0, -10, -11, -12, -1.0, -2.0, -0.5]
    types = [2, 1, 1, 1, 1, 1, 1]
    # abc (best score) first with both splits, then ab, then bc; single characters and <unk> never.
    assert spm_merges(tokens, scores, types) == [("a", "bc"), ("ab", "c"), ("a", "b"), ("b", "c")]


def test_built_without_torch_or_sentencepiece(style):
    """The builder needs neither torch nor sentencepiece: a fresh interpreter where both are unimportable
    (None in sys.modules, which transformers also reads as "not installed") builds the same tokenizer."""
    _, ours, _, _, directory = style
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['sentencepiece'] = None; "
        "from jaxunc.checkpoints.gguf_io import read_gguf_header, build_tokenizer; "
        f"p = {str(directory / 'tok.gguf')!r}; t = build_tokenizer(read_gguf_header(p)[0], p); "
        f"print(t({BATTERY[4]!r})['input_ids'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == str(ours(BATTERY[4])["input_ids"])


def test_llama2_style_gguf_reads_end_to_end(tmp_path):
    """read_gguf on a 1-layer llama GGUF whose vocabulary is SentencePiece (a Llama 2 / Mistral file)."""
    proto = _train("llama")
    sp = spm.SentencePieceProcessor(model_proto=proto)
    path = tmp_path / "llama2.gguf"
    _write_gguf(path, proto, "llama", tensors=_tiny_llama_tensors(sp.get_piece_size()))
    ck = read_gguf(path)
    assert (ck.config["vocab_size"], ck.config["hidden_size"], ck.config["num_hidden_layers"]) == (700, 8, 1)
    assert ck.tokenizer("Hello world")["input_ids"] == [1, *sp.encode("Hello world")]
    assert len(ck.tensors) == 12
    from jaxunc.checkpoints import load_model

    loaded = load_model(path, cache_dir=tmp_path / "cache")
    assert loaded.tokenizer("Hello world")["input_ids"] == [1, *sp.encode("Hello world")]
    assert loaded.n_params == sum(t.size for t in ck.tensors.values())


def _tiny_llama_tensors(vocab: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = {
        "token_embd.weight": (vocab, 8), "output.weight": (vocab, 8), "output_norm.weight": (8,),
        "blk.0.attn_norm.weight": (8,), "blk.0.ffn_norm.weight": (8,), "blk.0.attn_q.weight": (8, 8),
        "blk.0.attn_k.weight": (4, 8), "blk.0.attn_v.weight": (4, 8), "blk.0.attn_output.weight": (8, 8),
        "blk.0.ffn_gate.weight": (12, 8), "blk.0.ffn_up.weight": (12, 8), "blk.0.ffn_down.weight": (8, 12),
    }
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}


def test_unsupported_tokenizer_model_names_the_field(tmp_path, style):
    _, _, _, _, directory = style
    meta, _ = read_gguf_header(directory / "tok.gguf")
    with pytest.raises(ValueError, match=r"tokenizer.ggml.model='bert' is not supported; supported: \['gpt2', 'llama'\]"):
        build_tokenizer({**meta, "tokenizer.ggml.model": "bert"}, directory / "tok.gguf")
    with pytest.raises(ValueError, match="tokenizer.ggml.scores"):
        build_tokenizer({k: v for k, v in meta.items() if k != "tokenizer.ggml.scores"}, directory / "tok.gguf")
