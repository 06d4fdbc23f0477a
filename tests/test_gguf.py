"""Tests for jaxunc.checkpoints.gguf_io on the embedded SmolLM2 GGUF and on tiny synthetic GGUF files.

References: transformers' own GGUF loader (load_gguf_checkpoint, AutoTokenizer gguf_file=...), an
independent numpy decoder of the Q4_1 / Q8_0 block formats written here, and llama.cpp's pre-tokenizer
regex for `smollm` evaluated with the `regex` module.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from jaxunc.checkpoints.gguf_io import llama3_rope_divisors, read_gguf, read_gguf_header, unpermute_rope_rows  # noqa: E402
from jaxunc.embedded import smollm2_gguf_path  # noqa: E402

SMOLLM2 = smollm2_gguf_path()


@pytest.fixture(scope="module")
def ours():
    return read_gguf(SMOLLM2)


@pytest.fixture(scope="module")
def hf_checkpoint():
    """transformers' GGUF reading of the same file: config and torch tensors (HF names, HF layout)."""
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    with torch.device("meta"):  # only its parameter names are used (30 layers, tied)
        skeleton = LlamaForCausalLM(LlamaConfig(num_hidden_layers=30, tie_word_embeddings=True))
    parsed = load_gguf_checkpoint(str(SMOLLM2), return_tensors=True, model_to_load=skeleton)
    return parsed["config"], {name: t.numpy() for name, t in parsed["tensors"].items()}


@pytest.fixture(scope="module")
def reader():
    return gguf.GGUFReader(SMOLLM2)


@pytest.fixture(scope="module")
def hf_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(SMOLLM2.parent), gguf_file=SMOLLM2.name)


# ---------------------------------------------------------------- config


def test_config_matches_design(ours):
    c = ours.config
    assert c["model_type"] == "llama"
    assert c["num_hidden_layers"] == 30
    assert c["hidden_size"] == 576
    assert c["intermediate_size"] == 1536
    assert c["num_attention_heads"] == 9
    assert c["num_key_value_heads"] == 3
    assert c["head_dim"] == 64
    assert c["vocab_size"] == 49152
    assert c["rope_theta"] == 1e5
    assert c["tie_word_embeddings"] is True
    assert c["max_position_embeddings"] == 8192
    assert c["rms_norm_eps"] == pytest.approx(1e-5, rel=1e-6)
    assert (c["bos_token_id"], c["eos_token_id"], c["pad_token_id"]) == (1, 2, 2)


def test_config_matches_transformers(ours, hf_checkpoint):
    hf_config, _ = hf_checkpoint
    for key, value in hf_config.items():
        if key in ours.config:
            assert ours.config[key] == value, key


# ---------------------------------------------------------------- tensors


def test_tensor_names_and_shapes(ours):
    c = ours.config
    t = ours.tensors
    assert "lm_head.weight" not in t  # tied
    assert len(t) == 2 + 9 * c["num_hidden_layers"]
    assert t["model.embed_tokens.weight"].shape == (49152, 576)
    assert t["model.layers.0.self_attn.q_proj.weight"].shape == (576, 576)
    assert t["model.layers.29.self_attn.k_proj.weight"].shape == (192, 576)
    assert t["model.layers.3.mlp.down_proj.weight"].shape == (576, 1536)
    assert t["model.layers.3.mlp.gate_proj.weight"].shape == (1536, 576)
    assert all(a.dtype == np.float32 and a.flags.c_contiguous for a in t.values())


def test_tensors_equal_transformers(ours, hf_checkpoint):
    # transformers dequantizes with the same `gguf` package but undoes the Q/K permutation and maps
    # the names with its own code. Measured max |diff| = 0.0 over all 272 tensors.
    _, hf = hf_checkpoint
    assert set(hf) == set(ours.tensors)
    for name, ref in hf.items():
        np.testing.assert_allclose(ours.tensors[name], ref, rtol=0, atol=1e-7, err_msg=name)


def _decode_blocks(raw: np.ndarray, kind) -> np.ndarray:
    """Independent decoder of ggml blocks (32 values each) from raw bytes [rows, bytes_per_row].

    Q8_0: fp16 scale d, 32 x int8 q; x = d * q.
    Q4_1: fp16 scale d, fp16 min m, 16 bytes; x[j] = d * (b[j] & 15) + m, x[j + 16] = d * (b[j] >> 4) + m.
    """
    rows = raw.shape[0]
    if kind == gguf.GGMLQuantizationType.Q8_0:
        blocks = raw.reshape(rows, -1, 34)
        d = blocks[..., :2].copy().view(np.float16).astype(np.float64)
        q = blocks[..., 2:].copy().view(np.int8).astype(np.float64)
        return (d * q).reshape(rows, -1)
    if kind == gguf.GGMLQuantizationType.Q4_1:
        blocks = raw.reshape(rows, -1, 20)
        d = blocks[..., 0:2].copy().view(np.float16).astype(np.float64)
        m = blocks[..., 2:4].copy().view(np.float16).astype(np.float64)
        b = blocks[..., 4:].astype(np.int64)
        q = np.concatenate([b & 15, b >> 4], axis=-1).astype(np.float64)
        return (d * q + m).reshape(rows, -1)
    if kind == gguf.GGMLQuantizationType.F32:
        return np.asarray(raw, dtype=np.float64)
    raise AssertionError(f"no reference decoder for {kind}")


def _reference_unpermute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """HF row h*d + j*d/2 + i comes from GGUF row h*d + 2*i + j (llama.cpp RoPE layout)."""
    d = w.shape[0] // n_heads
    out = np.empty_like(w)
    for h in range(n_heads):
        for i in range(d // 2):
            for j in range(2):
                out[h * d + j * d // 2 + i] = w[h * d + 2 * i + j]
    return out


def test_header_matches_gguf_reader(reader):
    meta, infos = read_gguf_header(SMOLLM2)
    fields = {k: f for k, f in reader.fields.items() if not k.startswith("GGUF.")}  # reader's pseudo-keys
    assert set(meta) == set(fields)
    for key, field in fields.items():
        value = field.contents()
        assert meta[key] == (value.tolist() if isinstance(value, np.ndarray) else value), key
    assert [(t.name, t.dims, t.ggml_type, t.offset) for t in infos] == [
        (t.name, tuple(int(d) for d in t.shape), int(t.tensor_type), int(t.data_offset)) for t in reader.tensors
    ]


def test_dequantization_against_independent_decoder(ours, reader):
    # float64 reference vs our float32 values: measured max |diff| 0.0 for Q8_0, Q4_1 and F32 (checked
    # on all 272 tensors once; the test covers layers 0, 17, 29 and the embedding to stay fast).
    seen = set()
    layer_map = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "ffn_down": "mlp.down_proj",
                 "attn_norm": "input_layernorm"}
    for tensor in reader.tensors:
        parts = tensor.name.split(".")
        if tensor.name == "token_embd.weight":
            name, heads = "model.embed_tokens.weight", None
        elif parts[0] == "blk" and parts[1] in {"0", "17", "29"} and parts[2] in layer_map:
            name = f"model.layers.{parts[1]}.{layer_map[parts[2]]}.weight"
            heads = {"attn_q": 9, "attn_k": 3}.get(parts[2])
        else:
            continue
        ref = _decode_blocks(np.asarray(tensor.data), tensor.tensor_type)
        if heads is not None:
            ref = _reference_unpermute(ref, heads)
        np.testing.assert_allclose(ours.tensors[name], ref, rtol=0, atol=1e-6, err_msg=name)
        seen.add(tensor.tensor_type.name)
    assert seen == {"Q8_0", "Q4_1", "F32"}


def test_unpermute_inverts_llama_cpp_permute():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3 * 8, 5))
    # llama.cpp's forward permute (convert_hf_to_gguf.py: reshape(n_head, 2, d/2, ...).swapaxes(1, 2)).
    permuted = w.reshape(3, 2, 4, 5).swapaxes(1, 2).reshape(w.shape)
    np.testing.assert_array_equal(unpermute_rope_rows(permuted, 3), w)
    np.testing.assert_array_equal(_reference_unpermute(permuted, 3), w)
    with pytest.raises(ValueError, match="heads"):
        unpermute_rope_rows(np.zeros((10, 2)), 3)


# ---------------------------------------------------------------- tokenizer

TEXTS = [
    "Hello world!",
    "The capital of France is Paris. Answer: B",
    "In 1969, 3 astronauts flew 384400 km.",
    "naïve café — 東京 🙂 <b>tags</b>\ttab\nnewline",
    "<|im_start|>user\nhi<|im_end|>",
]


def test_tokenizer_ids_match_transformers(ours, hf_tokenizer):
    for text in TEXTS:
        assert ours.tokenizer(text)["input_ids"] == hf_tokenizer(text)["input_ids"], text
        assert ours.tokenizer.decode(ours.tokenizer(text)["input_ids"]) == text


def test_chat_template_matches_transformers(ours, hf_tokenizer):
    messages = [{"role": "user", "content": "Which is larger, 9.11 or 9.9? Answer A or B."}]
    ours_text = ours.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    hf_text = hf_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert ours_text == hf_text
    assert ours_text.startswith("<|im_start|>system\n") and ours_text.endswith("<|im_start|>assistant\n")
    ours_ids = ours.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
    hf_ids = hf_tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
    assert ours_ids == hf_ids
    assert ours_ids[0] == 1 and ours_ids.count(2) == 2  # <|im_start|> ... two <|im_end|>


def test_special_tokens(ours, hf_tokenizer):
    tok = ours.tokenizer
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|im_start|>", "<|im_end|>", "<|im_end|>")
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 2)
    assert tok.all_special_ids == hf_tokenizer.all_special_ids
    assert len(tok) == 49152
    assert tok("hi")["input_ids"] == [6004]  # no BOS added: tokenizer.ggml.add_bos_token is false


def test_pre_tokenizer_is_llama_cpp_smollm(ours):
    # llama.cpp's `smollm` pre-tokenizer: split "\p{N}" first, then the GPT-2 regex. transformers' GGUF
    # tokenizer omits the digit split, which differs on whitespace before a digit ("a  1": we give
    # a|ĠĠ|1 like llama.cpp and the original SmolLM2 tokenizer.json, transformers a|Ġ|Ġ1).
    regex = pytest.importorskip("regex")
    gpt2 = regex.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")

    def reference(text: str) -> list[str]:
        pieces = [p for p in regex.split(r"(\p{N})", text) if p]
        return [m for piece in pieces for m in gpt2.findall(piece)]

    pre = ours.tokenizer.backend_tokenizer.pre_tokenizer
    for text in TEXTS + ["a  1", "x   22 y", "it's 3pm", " 2024\n\n 5"]:
        got = [piece for piece, _ in pre.pre_tokenize_str(text)]
        want = ["".join(_BYTE_TO_UNICODE[b] for b in piece.encode()) for piece in reference(text)]
        assert got == want, text


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


_BYTE_TO_UNICODE = _bytes_to_unicode()


# ---------------------------------------------------------------- synthetic files and errors


def _write_tiny_llama(
    path: pathlib.Path, arch: str = "llama", tied: bool = False, rope_freqs: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """A 1-layer llama GGUF (float32) with known HF-layout weights; returns those weights."""
    rng = np.random.default_rng(1)
    hidden, heads, kv, ffn = 8, 2, 1, 12
    tokens = ["<s>", "</s>", "a", "b", "c", "Ġ", "ab", "Ġa"]
    hf = {
        "model.embed_tokens.weight": rng.standard_normal((len(tokens), hidden)),
        "model.layers.0.input_layernorm.weight": rng.standard_normal(hidden),
        "model.layers.0.self_attn.q_proj.weight": rng.standard_normal((heads * 4, hidden)),
        "model.layers.0.self_attn.k_proj.weight": rng.standard_normal((kv * 4, hidden)),
        "model.layers.0.self_attn.v_proj.weight": rng.standard_normal((kv * 4, hidden)),
        "model.layers.0.self_attn.o_proj.weight": rng.standard_normal((hidden, heads * 4)),
        "model.layers.0.post_attention_layernorm.weight": rng.standard_normal(hidden),
        "model.layers.0.mlp.gate_proj.weight": rng.standard_normal((ffn, hidden)),
        "model.layers.0.mlp.up_proj.weight": rng.standard_normal((ffn, hidden)),
        "model.layers.0.mlp.down_proj.weight": rng.standard_normal((hidden, ffn)),
        "model.norm.weight": rng.standard_normal(hidden),
    }
    if not tied:
        hf["lm_head.weight"] = rng.standard_normal((len(tokens), hidden))
    hf = {k: v.astype(np.float32) for k, v in hf.items()}

    def llama_cpp_permute(w, n):
        return w.reshape(n, 2, w.shape[0] // n // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    names = {
        "token_embd.weight": "model.embed_tokens.weight",
        "blk.0.attn_norm.weight": "model.layers.0.input_layernorm.weight",
        "blk.0.attn_q.weight": "model.layers.0.self_attn.q_proj.weight",
        "blk.0.attn_k.weight": "model.layers.0.self_attn.k_proj.weight",
        "blk.0.attn_v.weight": "model.layers.0.self_attn.v_proj.weight",
        "blk.0.attn_output.weight": "model.layers.0.self_attn.o_proj.weight",
        "blk.0.ffn_norm.weight": "model.layers.0.post_attention_layernorm.weight",
        "blk.0.ffn_gate.weight": "model.layers.0.mlp.gate_proj.weight",
        "blk.0.ffn_up.weight": "model.layers.0.mlp.up_proj.weight",
        "blk.0.ffn_down.weight": "model.layers.0.mlp.down_proj.weight",
        "output_norm.weight": "model.norm.weight",
    }
    if not tied:
        names["output.weight"] = "lm_head.weight"
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv)
    writer.add_rope_freq_base(5e5)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types([3, 3, 1, 1, 1, 1, 1, 1])
    writer.add_token_merges(["a b", "Ġ a"])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)
    writer.add_add_bos_token(True)
    for gguf_name, hf_name in names.items():
        w = hf[hf_name]
        if gguf_name == "blk.0.attn_q.weight":
            w = llama_cpp_permute(w, heads)
        elif gguf_name == "blk.0.attn_k.weight":
            w = llama_cpp_permute(w, kv)
        writer.add_tensor(gguf_name, np.ascontiguousarray(w))
    if rope_freqs is not None:
        writer.add_tensor("rope_freqs.weight", rope_freqs.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return hf


@pytest.mark.parametrize("tied", [False, True])
def test_tiny_llama_round_trip(tmp_path, tied):
    path = tmp_path / "tiny.gguf"
    hf = _write_tiny_llama(path, tied=tied)
    ck = read_gguf(path)
    assert set(ck.tensors) == set(hf)
    for name, ref in hf.items():
        np.testing.assert_array_equal(ck.tensors[name], ref, err_msg=name)
    c = ck.config
    assert (c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]) == (8, 2, 1, 4)
    assert c["tie_word_embeddings"] is tied and c["rope_theta"] == 5e5 and c["vocab_size"] == 8
    # BOS added (add_bos_token); merge rank 0 "a b" wins over rank 1 "Ġ a": Ġab -> Ġ|ab
    assert ck.tokenizer(" ab")["input_ids"] == [0, 5, 6]
    assert ck.tokenizer(" a")["input_ids"] == [0, 7]
    meta_only = read_gguf(path, with_tensors=False)
    assert meta_only.tensors == {} and meta_only.config == c


def _llama_cpp_rope_factors(base: float, dim: int, factor: float, low: float, high: float, orig: int) -> np.ndarray:
    """rope_freqs as llama.cpp's converter writes them for Llama 3.1 (branch per wavelength)."""
    out = []
    for freq in 1.0 / base ** (np.arange(0, dim, 2) / dim):
        wavelength = 2 * np.pi / freq
        if wavelength < orig / high:
            out.append(1.0)
        elif wavelength > orig / low:
            out.append(factor)
        else:
            smooth = (orig / wavelength - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(out)


def test_llama3_rope_divisors_formula():
    inv = 5e5 ** (-np.arange(0, 128, 2) / 128)
    ref = _llama_cpp_rope_factors(5e5, 128, 8.0, 1.0, 4.0, 8192)
    assert {1.0, 8.0} <= set(ref.round(6)) and ((ref > 1) & (ref < 8)).any()  # all three branches
    np.testing.assert_allclose(llama3_rope_divisors(inv, 8.0, 1.0, 4.0, 8192), ref, rtol=1e-12)


def test_rope_freqs_tensor_becomes_llama3_scaling(tmp_path):
    path = tmp_path / "llama31.gguf"
    _write_tiny_llama(path, rope_freqs=_llama_cpp_rope_factors(5e5, 4, 32.0, 1.0, 4.0, 8192))
    ck = read_gguf(path)
    assert ck.config["rope_scaling"] == {
        "rope_type": "llama3", "factor": pytest.approx(32.0), "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192,
    }
    assert "rope_freqs.weight" not in ck.tensors
    bad = tmp_path / "odd_rope.gguf"
    _write_tiny_llama(bad, rope_freqs=np.array([2.0, 3.0]))  # high-frequency divisor must be 1
    with pytest.raises(ValueError, match="rope_freqs.weight"):
        read_gguf(bad, with_tensors=False)


def test_non_llama_architecture_is_rejected(tmp_path):
    path = tmp_path / "other.gguf"
    _write_tiny_llama(path, arch="gpt2")
    with pytest.raises(ValueError, match="architecture 'gpt2' is not supported"):
        read_gguf(path)


def test_garbage_and_truncated_files_name_the_file(tmp_path):
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"this is not a gguf file" * 100)
    with pytest.raises(ValueError, match="garbage.gguf"):
        read_gguf(garbage)
    truncated = tmp_path / "truncated.gguf"
    with open(SMOLLM2, "rb") as handle:
        truncated.write_bytes(handle.read(1 << 20))  # cut inside the tokenizer metadata
    with pytest.raises(ValueError, match="truncated.gguf"):
        read_gguf(truncated)
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        read_gguf(tmp_path / "missing.gguf")
