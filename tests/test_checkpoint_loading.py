"""load_model on HF safetensors directories: shards, half-precision files, key-map errors, refusals."""

from __future__ import annotations

import json
import math
import pathlib

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch
import transformers
from safetensors.numpy import load_file, save_file

from jaxunc.checkpoints import load_model
from jaxunc.models import ModelConfig, flat_params
from tiny_checkpoints import save_tiny_checkpoint

VARIANT = "llama_tied_bias"  # tied embeddings, biases, multi-query attention


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[pathlib.Path, transformers.PreTrainedModel, dict[str, np.ndarray]]:
    """A single-file float32 checkpoint, its torch model and our loaded flat params."""
    directory = tmp_path_factory.mktemp("single")
    model = save_tiny_checkpoint(VARIANT, directory)
    params = {k: np.asarray(v) for k, v in flat_params(load_model(directory, cache_dir=directory / "c").model).items()}
    return directory, model, params


def _rewrite(directory: pathlib.Path, edit) -> None:
    path = directory / "model.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


def test_key_map_places_torch_weights(reference):
    """Independent of the forward pass: our params are the torch tensors, Linear weights transposed."""
    _, model, params = reference
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    np.testing.assert_array_equal(params["embed.embedding"], sd["model.embed_tokens.weight"])
    np.testing.assert_array_equal(params["layers.2.attn.k_proj.kernel"], sd["model.layers.2.self_attn.k_proj.weight"].T)
    np.testing.assert_array_equal(params["layers.1.attn.o_proj.bias"], sd["model.layers.1.self_attn.o_proj.bias"])
    norm = sd["model.layers.0.post_attention_layernorm.weight"]
    np.testing.assert_array_equal(params["layers.0.mlp_norm.scale"], norm)
    assert "lm_head.kernel" not in params  # tied


def test_sharded_checkpoint_with_index(reference, tmp_path):
    _, _, single = reference
    save_tiny_checkpoint(VARIANT, tmp_path, max_shard_size="40KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    loaded = load_model(tmp_path, cache_dir=tmp_path / "c")
    sharded = flat_params(loaded.model)
    assert sharded.keys() == single.keys()
    for name in single:
        np.testing.assert_array_equal(np.asarray(sharded[name]), single[name], err_msg=name)
    assert loaded.n_params == sum(a.size for a in single.values())
    assert loaded.source.startswith("safetensors:")


@pytest.mark.parametrize("file_dtype", [torch.float16, torch.bfloat16])
def test_half_precision_files(file_dtype, tmp_path):
    """float16/bfloat16 files load exactly (upcast) and match the torch model read from the same file."""
    save_tiny_checkpoint(VARIANT, tmp_path, dtype=file_dtype)
    torch_model = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    loaded = load_model(tmp_path, cache_dir=tmp_path / "c")
    ids = np.random.default_rng(0).integers(4, 160, size=(1, 10)).astype(np.int32)
    with torch.no_grad():
        ref = torch_model(input_ids=torch.tensor(ids, dtype=torch.long)).logits.numpy()
    ours = np.asarray(loaded.model(jnp.asarray(ids), jnp.ones_like(ids), jnp.arange(10, dtype=jnp.int32)[None]))
    assert np.abs(ours - ref).max() <= 1e-4  # measured ~4e-6
    bf16 = load_model(tmp_path, dtype="bfloat16", cache_dir=tmp_path / "c")
    emb = np.asarray(bf16.model.embed.embedding[...])
    assert emb.dtype == ml_dtypes.bfloat16
    expected = torch_model.model.embed_tokens.weight.detach().to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(emb.astype(np.float32), expected)


def _copy_checkpoint(reference, tmp_path) -> pathlib.Path:
    src, _, _ = reference
    for f in src.iterdir():
        if f.is_file():
            (tmp_path / f.name).write_bytes(f.read_bytes())
    return tmp_path


def test_shape_mismatch_names_tensor_and_shapes(reference, tmp_path):
    d = _copy_checkpoint(reference, tmp_path)
    name = "model.layers.0.self_attn.q_proj.weight"
    _rewrite(d, lambda t: t.__setitem__(name, np.zeros((16, 32), np.float32)))
    with pytest.raises(ValueError) as err:
        load_model(d, cache_dir=d / "c")
    msg = str(err.value)
    assert name in msg and "(16, 32)" in msg and "(32, 32)" in msg and "layers.0.attn.q_proj.kernel" in msg


def test_unused_tensor_is_an_error(reference, tmp_path):
    d = _copy_checkpoint(reference, tmp_path)
    _rewrite(d, lambda t: t.__setitem__("model.layers.0.self_attn.extra.weight", np.zeros((4,), np.float32)))
    with pytest.raises(ValueError, match=r"unused checkpoint tensors.*model\.layers\.0\.self_attn\.extra\.weight"):
        load_model(d, cache_dir=d / "c")


def test_missing_tensor_is_an_error(reference, tmp_path):
    d = _copy_checkpoint(reference, tmp_path)
    _rewrite(d, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    pattern = r"missing.*layers\.1\.mlp\.up_proj\.kernel.*model\.layers\.1\.mlp\.up_proj\.weight"
    with pytest.raises(ValueError, match=pattern):
        load_model(d, cache_dir=d / "c")


def test_tied_checkpoint_with_differing_lm_head_is_an_error(reference, tmp_path):
    d = _copy_checkpoint(reference, tmp_path)
    _rewrite(d, lambda t: t.__setitem__("lm_head.weight", t["model.embed_tokens.weight"] + 1.0))
    with pytest.raises(ValueError, match="tie_word_embeddings"):
        load_model(d, cache_dir=d / "c")


def test_bias_the_config_lacks_is_an_error(tmp_path):
    save_tiny_checkpoint("llama3", tmp_path)  # llama3 variant has no biases
    _rewrite(tmp_path, lambda t: t.__setitem__("model.layers.0.self_attn.q_proj.bias", np.zeros(32, np.float32)))
    with pytest.raises(ValueError, match=r"q_proj\.bias.*no parameter"):
        load_model(tmp_path, cache_dir=tmp_path / "c")


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.pth", "x.ckpt"])
def test_pickle_files_refused(name, tmp_path):
    path = tmp_path / name
    path.write_bytes(b"not read")
    with pytest.raises(ValueError, match="arbitrary code.*safe_serialization=True"):
        load_model(path)


def test_directory_with_only_pickle_weights_refused(reference, tmp_path):
    d = _copy_checkpoint(reference, tmp_path)
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(ValueError, match="pytorch_model.bin.*arbitrary code"):
        load_model(d, cache_dir=d / "c")


def test_remote_code_refused(reference, tmp_path):
    d = _copy_checkpoint(reference, tmp_path)
    config = json.loads((d / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_custom.CustomLM"}
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_model(d, cache_dir=d / "c")


def test_unsupported_model_type_lists_supported(reference, tmp_path):
    d = _copy_checkpoint(reference, tmp_path)
    config = json.loads((d / "config.json").read_text())
    config["model_type"] = "bert"
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"unsupported model_type 'bert'.*gemma2.*gpt_neox.*llama.*mistral.*qwen2"):
        load_model(d, cache_dir=d / "c")


def test_bad_dtype_and_missing_path(reference, tmp_path):
    d, _, _ = reference
    with pytest.raises(ValueError, match="dtype"):
        load_model(d, dtype="float16")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nope")


def test_conversion_cache_reused(reference, tmp_path):
    d, _, single = reference
    cache = tmp_path / "cache"
    load_model(d, cache_dir=cache)
    files = list((cache / "params").glob("*/manifest.json"))
    assert len(files) == 1
    again = flat_params(load_model(d, cache_dir=cache).model)
    name = "layers.0.attn.q_proj.kernel"
    np.testing.assert_array_equal(np.asarray(again[name]), single[name])
    assert len(list((cache / "params").glob("*/manifest.json"))) == 1


def test_tokenizer_with_chat_template(reference):
    d, _, _ = reference
    tok = load_model(d, cache_dir=d / "c").tokenizer
    assert isinstance(tok, transformers.PreTrainedTokenizerFast)
    assert tok("w5 w6").input_ids == [5, 6]
    assert tok.apply_chat_template([{"role": "user", "content": "w7"}], tokenize=False) == "<s>user w7</s>"


def test_old_style_config_fields():
    """Published configs use rope_theta/rope_scaling (Llama 3.1) and rotary_pct/rotary_emb_base (Pythia)."""
    base = dict(vocab_size=10, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    scaling = dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192)
    old = ModelConfig.from_hf(
        dict(base, model_type="llama", rope_theta=500000.0, rope_scaling=dict(scaling, rope_type="llama3"))
    )
    new = ModelConfig.from_hf(
        dict(base, model_type="llama", rope_parameters=dict(scaling, rope_type="llama3", rope_theta=500000.0))
    )
    assert old == new and old.rope_type == "llama3" and old.rope_theta == 500000.0
    neox = ModelConfig.from_hf(dict(base, model_type="gpt_neox", rotary_pct=0.25, rotary_emb_base=10000))
    assert neox.rotary_dim == 2 and neox.parallel_residual and neox.norm_kind == "layer"
    with pytest.raises(ValueError, match="RoPE type 'yarn'"):
        ModelConfig.from_hf(dict(base, model_type="llama", rope_scaling=dict(rope_type="yarn", factor=2.0)))


# ---------------------------------------------------------------- 2026 families: layouts, configs, errors


def test_gemma3_multimodal_weights_load_in_both_layouts(tmp_path):
    """Gemma3ForConditionalGeneration files hold `language_model.model.*` (what save_pretrained writes) or
    `model.language_model.*` (the module names); both give the text model's parameters, the vision tower
    and projector are skipped, and the text config comes from `text_config`."""
    model = save_tiny_checkpoint("gemma3_multimodal", tmp_path)
    names = load_file(str(tmp_path / "model.safetensors")).keys()
    assert any(n.startswith("language_model.model.layers.") for n in names)
    assert any(n.startswith("vision_tower.") for n in names)
    first = load_model(tmp_path, cache_dir=tmp_path / "c")
    assert first.config.model_type == "gemma3" and first.config.num_layers == 7
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    params = {k: np.asarray(v) for k, v in flat_params(first.model).items()}
    np.testing.assert_array_equal(params["embed.embedding"], sd["model.language_model.embed_tokens.weight"])
    np.testing.assert_array_equal(params["layers.5.attn.k_norm.scale"], sd["model.language_model.layers.5.self_attn.k_norm.weight"])
    assert not any("vision" in k for k in params)

    def module_names(t):
        for name in list(t):
            t[name.replace("language_model.model.", "model.language_model.", 1)
              .replace("vision_tower.", "model.vision_tower.", 1)
              .replace("multi_modal_projector.", "model.multi_modal_projector.", 1)] = t.pop(name)
        t["lm_head.weight"] = t["model.language_model.embed_tokens.weight"].copy()  # tied copy

    _rewrite(tmp_path, module_names)
    second = load_model(tmp_path, cache_dir=tmp_path / "c2")
    again = {k: np.asarray(v) for k, v in flat_params(second.model).items()}
    assert again.keys() == params.keys()
    for name in params:
        np.testing.assert_array_equal(again[name], params[name], err_msg=name)


def test_gemma3_text_defaults_are_transformers_defaults():
    from jaxunc.models.gemma3 import GLOBAL_THETA, LOCAL_THETA, TEXT_DEFAULTS

    ref = transformers.Gemma3TextConfig().to_dict()
    for key, value in TEXT_DEFAULTS.items():
        assert ref[key] == value, key
    assert ref["rope_parameters"]["full_attention"]["rope_theta"] == GLOBAL_THETA
    assert ref["rope_parameters"]["sliding_attention"]["rope_theta"] == LOCAL_THETA


def test_gemma3_published_multimodal_config_reads_like_transformers():
    """A gemma-3-4b-it style config.json (a sparse text_config with old-style rope_scaling) gives the same
    ModelConfig as transformers' fully resolved config (nested rope_parameters, layer_types)."""
    published = {
        "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "eos_token_id": [1, 106],
        "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                        "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                        "sliding_window": 1024},
        "vision_config": {"model_type": "siglip_vision_model"},
    }
    ours = ModelConfig.from_hf(published)
    resolved = transformers.Gemma3Config(text_config=published["text_config"]).to_dict()
    resolved["eos_token_id"] = [1, 106]
    assert ModelConfig.from_hf(resolved) == ours
    assert ours.layer_types[:6] == ("sliding",) * 5 + ("full",) and ours.layer_types.count("full") == 5
    assert (ours.rope_type, ours.rope_factor, ours.rope_theta, ours.sliding_rope_theta) == ("linear", 8.0, 1e6, 1e4)
    assert (ours.head_dim, ours.num_heads, ours.num_kv_heads, ours.query_pre_attn_scalar) == (256, 8, 4, 256)
    assert ours.eos_token_id == (1, 106) and ours.final_logit_softcap is None and ours.qk_norm == "per_head"
    assert ours.rope_for("sliding").rope_type == "default" and ours.rope_for("full") is ours


def test_phi3_su_rope_matches_transformers_longrope_parameters():
    """Phi-3.5-style config: rope_scaling type "longrope" (old name "su"), top-level original context.
    Attention factor sqrt(1 + ln(131072 / 4096) / ln 4096) and the inverse frequencies as transformers
    computes them (transformers 5 itself rejects "su" before renaming it, so it is given "longrope")."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from jaxunc.models.layers import inverse_frequencies

    short, long = [1.0 + 0.1 * i for i in range(4)], [2.0 + 0.5 * i for i in range(4)]
    hf = dict(model_type="phi3", vocab_size=10, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, max_position_embeddings=131072, original_max_position_embeddings=4096,
              rope_theta=10000.0, rope_scaling={"type": "longrope", "short_factor": short, "long_factor": long})
    cfg = ModelConfig.from_hf(hf)
    assert cfg.rope_type == "longrope" and cfg.rope_original_max_position == 4096
    assert ModelConfig.from_hf(dict(hf, rope_scaling=dict(hf["rope_scaling"], type="su"))) == cfg
    ref_config = transformers.Phi3Config(**{k: v for k, v in hf.items() if k != "model_type"})
    inv_short, factor = ROPE_INIT_FUNCTIONS["longrope"](ref_config, None)
    inv_long, _ = ROPE_INIT_FUNCTIONS["longrope"](ref_config, None, seq_len=4097)
    assert cfg.rope_attention_factor == pytest.approx(factor, rel=1e-12)
    assert factor == pytest.approx(math.sqrt(1 + math.log(32) / math.log(4096)))
    np.testing.assert_allclose(inverse_frequencies(cfg), inv_short.numpy(), rtol=1e-6)
    np.testing.assert_allclose(inverse_frequencies(cfg, long=True), inv_long.numpy(), rtol=1e-6)


def test_unsupported_architecture_or_rope_type_is_one_error_naming_the_field():
    base = dict(vocab_size=10, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    with pytest.raises(ValueError, match=r"unsupported architectures \['Qwen3ForSequenceClassification'\].*supported: \*ForCausalLM"):
        ModelConfig.from_hf(dict(base, model_type="qwen3", architectures=["Qwen3ForSequenceClassification"]))
    with pytest.raises(ValueError, match=r"RoPE type 'yarn' in config.json field rope_scaling.rope_type; supported: default, linear, llama3, longrope"):
        ModelConfig.from_hf(dict(base, model_type="qwen3", rope_scaling=dict(rope_type="yarn", factor=4.0)))
    with pytest.raises(ValueError, match=r"RoPE type 'dynamic' in config.json field rope_parameters.rope_type"):
        ModelConfig.from_hf(dict(base, model_type="olmo2", rope_parameters=dict(rope_type="dynamic", factor=2.0)))
    nested = {"sliding_attention": {"rope_type": "linear", "factor": 2.0}, "full_attention": {}}
    with pytest.raises(ValueError, match=r"rope_parameters.sliding_attention.rope_type; supported: default"):
        ModelConfig.from_hf(dict(base, model_type="gemma3_text", rope_parameters=nested))
    with pytest.raises(ValueError, match=r"longrope rope_short_factor must have rotary_dim / 2 = 4 entries, got 3"):
        ModelConfig.from_hf(dict(base, model_type="phi3", rope_scaling=dict(
            type="longrope", short_factor=[1.0] * 3, long_factor=[1.0] * 4, original_max_position_embeddings=8)))
    with pytest.raises(ValueError, match=r"unsupported model_type 'mamba'.*olmo2.*phi3.*qwen3"):
        ModelConfig.from_hf(dict(base, model_type="mamba"))


def test_phi3_fused_tensor_of_wrong_size_is_the_one_list_error(tmp_path):
    save_tiny_checkpoint("phi3", tmp_path)
    name = "model.layers.1.self_attn.qkv_proj.weight"
    _rewrite(tmp_path, lambda t: (t.__setitem__(name, np.zeros((40, 32), np.float32)),
                                  t.pop("model.layers.0.mlp.gate_up_proj.weight")))
    with pytest.raises(ValueError) as err:
        load_model(tmp_path, cache_dir=tmp_path / "c")
    msg = str(err.value)
    assert msg.startswith("checkpoint does not match the phi3 model")
    assert name in msg and "(40, 32)" in msg and "64 rows" in msg  # 4*8 + 2*2*8 = 64
    assert "layers.0.mlp.gate_proj.kernel (tensor 'model.layers.0.mlp.gate_up_proj.weight')" in msg
