"""Every configs/<family>.py runs the main job on a tiny random checkpoint of its family.

The checkpoints are tiny random transformers models saved with save_pretrained; the tokenizer is a
real byte-level BPE trained here on the Coane questions (so option letters are single tokens).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from jaxunc import columns
from jaxunc.configs import load_config_file
from jaxunc.pipeline import run
from tiny_checkpoints import bpe_tokenizer, save_family_checkpoint

ROOT = Path(__file__).resolve().parents[1]

# config file -> (tiny variant of tiny_checkpoints.VARIANTS, config argument)
FAMILIES = {
    "llama2": ("llama_tied_bias", "7b"),
    "llama3": ("llama3", "1b-ins"),
    "mistral": ("mistral", "v0.3"),
    "qwen2": ("qwen2", "0.5b-ins"),
    "falcon3": ("llama_tied_bias", "1b-ins"),
    "gemma": ("gemma", "2b"),
    "gemma2": ("gemma2", "2b-ins"),
    "pythia": ("pythia", "160m"),
}


@pytest.fixture(scope="module")
def tokenizer():
    return bpe_tokenizer()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_config_runs_main_job(family, tokenizer, tmp_path):
    variant, arg = FAMILIES[family]
    save_family_checkpoint(variant, tmp_path / "ckpt", tokenizer)
    config = load_config_file(ROOT / "configs" / f"{family}.py", arg)
    config.model.checkpoint = str(tmp_path / "ckpt")
    config.model.cache_dir = str(tmp_path / "cache")
    config.data.limit = 3
    config.engine.batch_size = 2
    config.output_dir = str(tmp_path / "out")
    config.analysis.run = False
    record = run(config)

    table = pd.read_parquet(record["datasets"]["coane"]["table"])
    assert len(table) == 3 and set(table["model"]) == {config.model.name}
    assert set(table["model_type"]) == {"ins" if arg.endswith("-ins") else "base"}
    assert set(table[columns.PAIR_COLUMN]) == {f"{family}-{arg.split('-')[0]}"}  # base and instruct share it
    for col in columns.mc_columns():
        assert table[col].notna().all() and all(math.isfinite(v) for v in table[col]), col
    assert table["cloze_pred"].isin(list("ABCD")).all()
    for pdf in table["mc_choice-pdf"]:
        assert len(pdf) == 4 and max(pdf) <= 1e-6
    prompt = table["formatted_question_mcqa"][0]
    if arg.endswith("-ins"):
        assert prompt.endswith("<|im_start|>assistant\n")  # nothing after the generation prompt
    else:
        assert prompt.rstrip().endswith("Answer:")
    assert record["datasets"]["coane"]["compilations"]["mcqa"] >= 1
