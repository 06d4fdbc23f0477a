"""End to end on the embedded SmolLM2-135M-Instruct GGUF: our loader + Flax model vs transformers PyTorch.

The reference is transformers' own GGUF loading of the same file
(AutoModelForCausalLM.from_pretrained(folder, gguf_file=name), float32), run one prompt at a time without
padding; ours runs the prompts as one left-padded batch.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")  # transformers needs it to load a GGUF file

import jax.numpy as jnp  # noqa: E402

from jaxunc.checkpoints import load_model  # noqa: E402
from jaxunc.embedded import smollm2_gguf_path  # noqa: E402
from jaxunc.models import JittedModel  # noqa: E402

pytestmark = pytest.mark.slow

SMOLLM2 = smollm2_gguf_path()
PAD = 2  # <|im_end|>, the file's padding token
PROMPTS = [
    "The capital of France is",
    "Question: Which animal is known as the king of the jungle?\nA. Elephant\nB. Lion\nAnswer:",
    "1, 2, 3, 4,",
]
QUESTIONS = ["What is the capital of Germany?", "Name a primary colour."]
STEPS = 12
LOGIT_ATOL = 1e-4  # the bound; measured values are in the test docstrings


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("jaxunc_cache")


@pytest.fixture(scope="module")
def loaded(cache_dir):
    return load_model(SMOLLM2, dtype="float32", cache_dir=cache_dir)


@pytest.fixture(scope="module")
def jitted(loaded):
    return JittedModel(loaded.model)


@pytest.fixture(scope="module")
def hf_model():
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(SMOLLM2.parent), gguf_file=SMOLLM2.name, dtype=torch.float32)
    return model.eval()


def _left_pad(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    width = max(map(len, rows))
    ids = np.full((len(rows), width), PAD, np.int32)
    mask = np.zeros((len(rows), width), np.int32)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = row
        mask[i, width - len(row) :] = 1
    return ids, mask


def _hf_logits(hf_model, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return hf_model(torch.tensor([ids])).logits[0].float().numpy()


def test_model_summary(loaded, hf_model):
    assert loaded.source == f"gguf:{SMOLLM2}"
    assert loaded.n_params == sum(p.numel() for p in hf_model.parameters())  # 134,515,008 (tied)


def test_next_token_logits_match_transformers(loaded, jitted, hf_model):
    """Logits at the last 3 positions of each prompt, left-padded batch vs torch one by one.

    Measured max |diff| 9.2e-5 (logits range about [-34, 38]); tolerance 1e-4. For scale: torch float32
    itself is up to 8e-5 away from a float64 numpy forward of the same weights on these prompts, and
    ours up to 1.3e-4 (5-token prompt, unpadded), so 1e-4 is at the float32 noise floor.
    """
    rows = [loaded.tokenizer(p)["input_ids"] for p in PROMPTS]
    ids, mask = _left_pad(rows)
    width = ids.shape[1]
    positions = np.array([[width - 3, width - 2, width - 1]] * len(rows), np.int32)
    ours = np.asarray(jitted.forward(jitted.state, jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(positions)))
    assert ours.shape == (len(rows), 3, 49152) and ours.dtype == np.float32
    worst = 0.0
    for i, row in enumerate(rows):
        ref = _hf_logits(hf_model, row)[-3:]
        worst = max(worst, float(np.abs(ours[i] - ref).max()))
        assert np.argmax(ours[i, -1]) == np.argmax(ref[-1])
    print(f"max |logit diff| = {worst:.3g}")
    assert worst < LOGIT_ATOL


def test_greedy_decode_matches_transformers(loaded, jitted, hf_model):
    """12 greedy steps from chat-formatted questions (left-padded batch, KV cache) = torch greedy.

    Measured max |diff| vs torch's generate logits: prefill 6.4e-5, decode steps 8.4e-5; tolerance 1e-4.
    """
    tok = loaded.tokenizer
    rows = [
        tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, return_dict=False)
        for q in QUESTIONS
    ]
    ids, mask = _left_pad(rows)
    cache = jitted.init_cache(len(rows), ids.shape[1] + STEPS)
    logits, cache = jitted.prefill(jitted.state, jnp.asarray(ids), jnp.asarray(mask), cache)
    step_logits, generated = [], []
    for _ in range(STEPS):
        step_logits.append(np.asarray(logits))
        nxt = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        generated.append(np.asarray(nxt))
        logits, cache = jitted.decode_step(jitted.state, nxt, cache)
    ours = np.stack(generated, axis=1)
    ours_logits = np.stack(step_logits, axis=1)  # [B, STEPS, V]: prefill, then decode steps

    for i, row in enumerate(rows):
        with torch.no_grad():
            out = hf_model.generate(
                torch.tensor([row]), attention_mask=torch.ones(1, len(row), dtype=torch.long),
                max_new_tokens=STEPS, do_sample=False, eos_token_id=None, pad_token_id=PAD,
                output_logits=True, return_dict_in_generate=True,
            )
        ref_tokens = out.sequences[0, len(row) :].tolist()
        assert ours[i].tolist() == ref_tokens, (tok.decode(ours[i]), tok.decode(ref_tokens))
        diffs = [float(np.abs(ours_logits[i, k] - out.logits[k][0].numpy()).max()) for k in range(STEPS)]
        print(f"row {i}: max |logit diff| prefill {diffs[0]:.3g}, decode steps {max(diffs[1:]):.3g}")
        assert max(diffs) < LOGIT_ATOL


def test_second_load_hits_cache(loaded, cache_dir, caplog):
    assert list((cache_dir / "params").glob("*/manifest.json")), "the first load wrote no cache entry"
    with caplog.at_level(logging.INFO, logger="jaxunc.checkpoints.cache"):
        again = load_model(SMOLLM2, dtype="float32", cache_dir=cache_dir)
    assert "param cache hit" in caplog.text
    assert "rebuilding" not in caplog.text and "cache miss" not in caplog.text
    assert again.n_params == loaded.n_params
    ids = jnp.asarray([[504, 3575, 282]], jnp.int32)
    mask = jnp.ones_like(ids)
    pos = jnp.asarray([[2]], jnp.int32)
    np.testing.assert_array_equal(np.asarray(again.model(ids, mask, pos)), np.asarray(loaded.model(ids, mask, pos)))
