"""Free response: the jitted greedy decode with per-step statistics against a full forward.

Reference: the model's full (uncached) forward over prompt + generated tokens gives the logits of
every step; their argmax must be the generated tokens, and `measures.sequence_measures` on them must
equal what the decode loop accumulated without ever keeping [batch, steps, vocab].
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from jaxunc import measures
from jaxunc.checkpoints import load_model
from jaxunc.configs import load_config_file
from jaxunc.engine.batching import left_pad
from jaxunc.engine.decode import make_generate
from jaxunc.engine.freeresponse import answer_masks
from jaxunc.engine.mesh import make_mesh
from jaxunc.pipeline import run
from tiny_checkpoints import bpe_tokenizer, save_family_checkpoint

ROOT = Path(__file__).resolve().parents[1]
STEPS = 6
ATOL = 1e-4  # decode-with-cache vs full uncached forward: float32 summation-order noise only
PROMPTS = ["Which band was Paul McCartney a member of?", "What is the capital of France?",
           "Name the largest planet."]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt")
    save_family_checkpoint("llama3", path, bpe_tokenizer())
    return path


@pytest.fixture(scope="module")
def loaded(checkpoint, tmp_path_factory):
    return load_model(checkpoint, cache_dir=tmp_path_factory.mktemp("cache"))


def full_forward_logits(model, prompt: list[int], generated: list[int]) -> np.ndarray:
    """Logits [T, V] predicting each generated token, from one uncached forward pass."""
    seq = np.asarray([prompt + generated], np.int32)
    positions = np.arange(len(prompt) - 1, len(prompt) - 1 + len(generated), dtype=np.int32)[None]
    return np.asarray(model(jnp.asarray(seq), jnp.ones_like(jnp.asarray(seq)), jnp.asarray(positions)))[0]


def test_decode_matches_full_forward_and_sequence_measures(loaded):
    tok = loaded.tokenizer
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    ids, mask = left_pad(prompts, 32, tok.pad_token_id)
    generate = make_generate(loaded.model, make_mesh(), max_new_tokens=STEPS, eos_ids=[])
    gen = generate(ids, mask)
    assert gen.tokens.shape == (3, STEPS) and gen.hit_cap.all() and (gen.steps == STEPS).all()

    logits = np.stack([full_forward_logits(loaded.model, p, list(map(int, t))) for p, t in zip(prompts, gen.tokens)])
    np.testing.assert_array_equal(logits.argmax(-1), gen.tokens)
    mask_t = np.ones((3, STEPS), np.float32)
    mask_t[1, 4:] = 0  # a shorter answer in row 1
    want = measures.sequence_measures(jnp.asarray(logits), jnp.asarray(mask_t))
    got = measures.reduce_step_statistics(gen.stats, mask_t)
    for name, value in want.items():
        np.testing.assert_allclose(np.asarray(got[name]), np.asarray(value), rtol=1e-5, atol=ATOL, err_msg=name)
    first = measures.next_token_measures(jnp.asarray(logits[:, 0]), prefix="fr_tok1_")
    for name, value in first.items():
        np.testing.assert_allclose(gen.first[name], np.asarray(value), rtol=1e-5, atol=ATOL, err_msg=name)

    # The first EOS ends the answer: make row 0's third token an end-of-sequence id.
    eos = int(gen.tokens[0, 2])
    stopped = make_generate(loaded.model, make_mesh(), max_new_tokens=STEPS, eos_ids=[eos])(ids, mask)
    assert stopped.steps[0] == 3 and not stopped.hit_cap[0]
    np.testing.assert_array_equal(stopped.tokens[0, :3], gen.tokens[0, :3])


def test_bracket_mask_marks_the_steps_inside_the_first_span(loaded):
    tok = loaded.tokenizer
    tokens = np.asarray(tok("It is {The Beatles} I think", add_special_tokens=False)["input_ids"])
    end, bracket, text = answer_masks(tok, tokens, len(tokens))
    assert text == "It is {The Beatles} I think" and end.sum() == len(tokens)
    inside = "".join(tok.decode([int(t)]) for t, m in zip(tokens, bracket) if m)
    assert "The Beatles" in inside and "I think" not in inside and "It is" not in inside


def test_main_job_with_free_response(checkpoint, tmp_path):
    config = load_config_file(ROOT / "configs" / "llama3.py", "1b-ins")
    config.model.checkpoint, config.model.cache_dir = str(checkpoint), str(tmp_path / "cache")
    config.output_dir, config.tasks = str(tmp_path / "out"), "mcqa,fr"
    config.data.limit, config.engine.batch_size, config.engine.max_new_tokens = 2, 2, 5
    config.analysis.run = False
    record = run(config)
    table = pd.read_parquet(record["datasets"]["coane"]["table"])
    assert {"fr_total-ent", "fr_ppl", "bfr_total-ent", "fr_tok1_total-ent", "fr_model_answer"} <= set(table)
    assert (table["fr_gen_length"] <= 5).all() and table["formatted_question_fr"].str.contains("{}").all()
    assert np.isfinite(table["fr_total-ent"]).all() and (table["fr_ppl"] >= 1).all()
    assert table.loc[~table["fr_bracket_found"], "bfr_total-ent"].isna().all()
