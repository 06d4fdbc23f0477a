"""GGUF files of the 2026 families (llama.cpp architectures qwen3, gemma3, phi3, olmo2) read by gguf_io.

Each tiny transformers model of tests/tiny_checkpoints.py is written as llama.cpp's converter writes it:
tensor names from the gguf package's own TensorNameMap for the architecture, `{arch}.*` metadata through
GGUFWriter's add_* methods, Gemma norm weights stored as 1 + w, Phi-3's fused attn_qkv / ffn_up
(gate_up) and its longrope factors as rope_factors_long / rope_factors_short tensors. The reference is the
PyTorch model itself: load_model(file) must give its logits within 1e-4 (float32; measured <= 1e-5).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

from jaxunc.checkpoints import load_model  # noqa: E402
from jaxunc.checkpoints.gguf_io import read_gguf  # noqa: E402
from tiny_checkpoints import build_torch_model  # noqa: E402

ATOL = 1e-4
# variant -> llama.cpp architecture
ARCHS = {"qwen3": "QWEN3", "gemma3": "GEMMA3", "phi3": "PHI3", "phi3_longrope": "PHI3", "olmo2": "OLMO2"}
# The tiny Gemma 3 with the query scale llama.cpp assumes for it (head_dim^-0.5): GGUF has no field for
# query_pre_attn_scalar on non-27B models.
OVERRIDES = {"gemma3": {"query_pre_attn_scalar": 16}}


pytestmark = pytest.mark.usefixtures("fast_compile")  # tests/conftest.py


def write_llama_cpp_gguf(model, arch_name: str, path, extra: dict | None = None) -> None:
    """`model` (a tiny transformers model) as a float32 GGUF in llama.cpp's conventions (plus `extra`
    tensors under their GGUF names)."""
    cfg = model.config
    arch = gguf.MODEL_ARCH[arch_name]
    name = gguf.MODEL_ARCH_NAMES[arch]
    names = gguf.get_tensor_name_map(arch, cfg.num_hidden_layers)
    writer = gguf.GGUFWriter(str(path), name)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    rope = cfg.rope_parameters
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    if arch_name == "GEMMA3":
        full, local = rope["full_attention"], rope["sliding_attention"]
        writer.add_rope_freq_base(full["rope_theta"])
        writer.add_rope_freq_base_swa(local["rope_theta"])
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(full["factor"])
        writer.add_sliding_window(cfg.sliding_window)
    else:
        writer.add_rope_freq_base(rope["rope_theta"])
    if arch_name == "PHI3":
        writer.add_rope_dimension_count(int(head_dim * rope.get("partial_rotary_factor", 1.0)))
        if cfg.sliding_window:
            writer.add_sliding_window(cfg.sliding_window)
        if rope.get("rope_type") == "longrope":
            writer.add_rope_scaling_orig_ctx_len(rope["original_max_position_embeddings"])
            writer.add_tensor("rope_factors_long.weight", np.asarray(rope["long_factor"], np.float32))
            writer.add_tensor("rope_factors_short.weight", np.asarray(rope["short_factor"], np.float32))
    tokens = ["<unk>", "<pad>", "<s>", "</s>", "a", "b", "ab", *[f"w{i}" for i in range(7, cfg.vocab_size)]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2" if arch_name == "QWEN3" else "gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types([3, 3, 3, 3] + [1] * (len(tokens) - 4))
    writer.add_token_merges(["a b"])
    writer.add_bos_token_id(2)
    writer.add_eos_token_id(3)
    tied = cfg.tie_word_embeddings
    for hf_name, tensor in model.state_dict().items():
        if (tied and hf_name == "lm_head.weight") or "rotary_emb" in hf_name:
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        assert gguf_name is not None, hf_name
        w = tensor.detach().numpy().astype(np.float32)
        if arch_name == "GEMMA3" and hf_name.endswith("norm.weight"):
            w = w + np.float32(1.0)  # llama.cpp's Gemma converter stores 1 + w
        writer.add_tensor(gguf_name, np.ascontiguousarray(w))
    for gguf_name, w in (extra or {}).items():
        writer.add_tensor(gguf_name, w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module", params=sorted(ARCHS))
def family(request, tmp_path_factory):
    model = build_torch_model(request.param, **OVERRIDES.get(request.param, {}))
    path = tmp_path_factory.mktemp(request.param) / f"{request.param}.gguf"
    write_llama_cpp_gguf(model, ARCHS[request.param], path)
    return request.param, model, path


def test_gguf_logits_match_torch(family):
    variant, model, path = family
    loaded = load_model(path, cache_dir=path.parent / "cache")
    rng = np.random.default_rng(0)
    worst = 0.0
    for n in (12, 7, 9):
        seq = rng.integers(4, 160, size=n)
        with torch.no_grad():
            ref = model(input_ids=torch.tensor(seq[None])).logits[0].numpy()
        ids = jnp.asarray(seq[None].astype(np.int32))
        ours = np.asarray(loaded.model(ids, jnp.ones_like(ids), jnp.arange(n, dtype=jnp.int32)[None]))[0]
        worst = max(worst, float(np.abs(ours - ref).max()))
    print(f"gguf {variant}: max |ours - torch| = {worst:.3g}")
    assert worst <= ATOL, f"{variant}: {worst:.3g}"


def test_gguf_config_reads_the_family_fields(family):
    variant, model, path = family
    cfg = load_model(path, cache_dir=path.parent / "cache").config
    ref = model.config
    assert cfg.model_type == {"QWEN3": "qwen3", "GEMMA3": "gemma3_text", "PHI3": "phi3", "OLMO2": "olmo2"}[ARCHS[variant]]
    assert (cfg.num_layers, cfg.num_heads, cfg.num_kv_heads) == (ref.num_hidden_layers, ref.num_attention_heads,
                                                                 ref.num_key_value_heads)
    assert cfg.tie_word_embeddings == ref.tie_word_embeddings
    if variant == "gemma3":
        assert cfg.layer_types == tuple("full" if t == "full_attention" else "sliding" for t in ref.layer_types)
        assert (cfg.sliding_rope_theta, cfg.rope_type, cfg.rope_factor) == (10.0, "linear", 4.0)
        assert cfg.qk_norm == "per_head" and cfg.query_pre_attn_scalar == 16
    if variant == "phi3_longrope":
        assert cfg.rope_type == "longrope" and cfg.rotary_dim == 6 and cfg.rope_original_max_position == 8
        np.testing.assert_allclose(cfg.rope_long_factor, ref.rope_parameters["long_factor"], rtol=1e-6)
    if variant == "olmo2":
        assert cfg.post_norms_only and cfg.qk_norm == "full_width"


def test_gemma3_query_scale_rule_without_a_scale_key(tmp_path):
    """llama.cpp: head_dim^-0.5, except on the 27B (hidden 5376) (hidden / heads)^-0.5."""
    from jaxunc.checkpoints.gguf_io import _gemma3_fields

    base = {"num_hidden_layers": 12, "hidden_size": 2560, "num_attention_heads": 8, "head_dim": 256}
    meta = {"gemma3.attention.sliding_window": 1024}
    fields = _gemma3_fields(meta, base, tmp_path)
    assert fields["query_pre_attn_scalar"] == 256 and fields["rope_local_base_freq"] == 10000.0
    assert fields["layer_types"][:6] == ["sliding_attention"] * 5 + ["full_attention"]
    big = dict(base, hidden_size=5376, num_attention_heads=32, head_dim=128)
    assert _gemma3_fields(meta, big, tmp_path)["query_pre_attn_scalar"] == 168
    scaled = _gemma3_fields({**meta, "gemma3.attention.scale": 0.125}, base, tmp_path)
    assert scaled["query_pre_attn_scalar"] == pytest.approx(64.0)


def test_tensor_foreign_to_the_architecture_names_file_and_tensor(tmp_path):
    """An OLMo 2 file has no input norms: a blk.0.attn_norm tensor is an error naming the file and tensor."""
    model = build_torch_model("olmo2")
    bad = tmp_path / "bad.gguf"
    write_llama_cpp_gguf(model, "OLMO2", bad, extra={"blk.0.attn_norm.weight": np.ones(32, np.float32)})
    with pytest.raises(ValueError, match=r"bad.gguf: unknown olmo2 GGUF tensor 'blk.0.attn_norm.weight'"):
        read_gguf(bad)
    assert read_gguf(bad, with_tensors=False).config["model_type"] == "olmo2"
