"""Stop ids and BOS behaviour read from the checkpoint (jaxunc.checkpoints.special_tokens).

The chat templates below are short templates in the layouts of the named families (the token that closes
an assistant turn is the fact under test); the GGUF and HF files are written here.
"""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from jaxunc.checkpoints import load_model
from jaxunc.checkpoints.special_tokens import from_gguf, template_end_of_turn
from jaxunc.embedded import smollm2_gguf_path
from tiny_checkpoints import save_tiny_checkpoint

LAYOUTS = {  # family -> (template, the declared token it closes an assistant turn with)
    "chatml": ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}", "<|im_end|>"),
    "gemma": ("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m.role == 'assistant' else m.role }}\n"
              "{{ m.content | trim }}<end_of_turn>\n{% endfor %}", "<end_of_turn>"),
    "llama3": ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
               "{{ m.content | trim }}<|eot_id|>{% endfor %}", "<|eot_id|>"),
    "phi3": ("{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}<|end|>\n{% endfor %}", "<|end|>"),
    "llama2": ("{% for m in messages %}{% if m.role == 'user' %}{{ bos_token + '[INST] ' + m.content + ' [/INST]' }}"
               "{% else %}{{ ' ' + m.content + ' ' + eos_token }}{% endif %}{% endfor %}", "</s>"),
}
SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "<start_of_turn>", "<end_of_turn>",
            "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|user|>", "<|assistant|>", "<|end|>"]


def _tokenizer(template: str | None) -> PreTrainedTokenizerFast:
    vocab = {t: i for i, t in enumerate(SPECIALS + ["x", "[INST]", "[/INST]"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                  additional_special_tokens=SPECIALS[3:])
    tok.chat_template = template
    return tok


@pytest.mark.parametrize("family", sorted(LAYOUTS))
def test_chat_template_end_of_turn_token(family):
    template, token = LAYOUTS[family]
    tok = _tokenizer(template)
    assert template_end_of_turn(tok) == tok.convert_tokens_to_ids(token)


def test_no_end_of_turn_without_a_declared_token_after_the_reply():
    assert template_end_of_turn(_tokenizer(None)) is None
    assert template_end_of_turn(_tokenizer("{% for m in messages %}{{ m.content }} END\n{% endfor %}")) is None
    assert template_end_of_turn(_tokenizer("{{ raise_exception('roles') }}")) is None


def test_smollm2_gguf_declares_im_end_and_no_bos():
    from jaxunc.checkpoints.gguf_io import read_gguf

    ck = read_gguf(smollm2_gguf_path(), with_tensors=False)
    special = from_gguf(ck.metadata, ck.tokenizer)
    assert special.stop_ids == (2,) and special.bos_id == 1 and special.add_bos is False
    assert dict(special.sources) == {"GGUF tokenizer.ggml.eos_token_id": (2,), "tokenizer eos_token": (2,),
                                     "chat template end of turn": (2,)}


def test_gguf_eot_and_eom_ids_and_llama_bos_default():
    tok = _tokenizer(LAYOUTS["llama3"][0])
    meta = {"tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.eot_token_id": 9, "tokenizer.ggml.eom_token_id": 7,
            "tokenizer.ggml.model": "llama"}
    special = from_gguf(meta, tok)
    assert special.stop_ids == (2, 7, 9) and special.add_bos is True  # "llama" vocabularies: BOS unless declared
    assert from_gguf({**meta, "tokenizer.ggml.add_bos_token": False}, tok).add_bos is False


def test_hf_folder_generation_config_list_and_declared_bos(tmp_path):
    """generation_config.json may list several ids (Llama 3.1 instruct: end_of_text, eom, eot); all stop.
    tokenizer_config.json add_bos_token is the declared BOS behaviour and agrees with the tokenizer."""
    save_tiny_checkpoint("llama3", tmp_path)
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [3, 40, 41], "bos_token_id": 2}))
    cfg_path = tmp_path / "tokenizer_config.json"
    tok_config = json.loads(cfg_path.read_text())
    tok_config["add_bos_token"] = True
    cfg_path.write_text(json.dumps(tok_config))
    loaded = load_model(tmp_path, cache_dir=tmp_path / "c")
    special = loaded.special_tokens
    # 2 = config.json eos_token_id of LlamaConfig; 3 = the tokenizer's "</s>", also the template's end of turn.
    assert special.stop_ids == (2, 3, 40, 41)
    assert dict(special.sources)["generation_config.json eos_token_id"] == (3, 40, 41)
    assert dict(special.sources)["chat template end of turn"] == (3,)
    assert special.add_bos is True and loaded.tokenizer("w5")["input_ids"] == [2, 5]
    from jaxunc import prompts

    assert prompts.bos_prefix(loaded.tokenizer) == "<s>"  # the prompt builder follows the declared flag


def test_declared_add_bos_false_removes_a_post_processor_bos(tmp_path):
    save_tiny_checkpoint("llama3", tmp_path)
    tok = json.loads((tmp_path / "tokenizer.json").read_text())
    tok["post_processor"] = {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                             {"Sequence": {"id": "A", "type_id": 0}}], "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                             {"Sequence": {"id": "B", "type_id": 1}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [2], "tokens": ["<s>"]}}}
    (tmp_path / "tokenizer.json").write_text(json.dumps(tok))
    assert load_model(tmp_path, cache_dir=tmp_path / "c").tokenizer("w5")["input_ids"] == [2, 5]  # no declaration
    cfg_path = tmp_path / "tokenizer_config.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), "add_bos_token": False}))
    loaded = load_model(tmp_path, cache_dir=tmp_path / "c")
    assert loaded.special_tokens.add_bos is False and loaded.tokenizer("w5")["input_ids"] == [5]


def test_pipeline_stops_at_the_declared_ids(tmp_path):
    from jaxunc import pipeline

    save_tiny_checkpoint("qwen3", tmp_path)
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": 50}))
    loaded = load_model(tmp_path, cache_dir=tmp_path / "c")
    # 50 (generation_config.json), 3 ("</s>": the tokenizer's EOS and the template's end of turn); the tiny
    # Qwen3Config declares no eos_token_id.
    assert loaded.config.eos_token_id is None
    assert pipeline.eos_ids(loaded) == [3, 50]
