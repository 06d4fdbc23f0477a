"""Base/instruct pairing on the explicit pair key (`model_pair`), for every configured family."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jaxunc import columns as C
from jaxunc.configs import load_config_file
from jaxunc.stats import compare as X

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT.parent / "shared" / "reference" / "authors_results" / "coane"


def config_variants():
    """Every (config file, arg) of configs/*.py: each size key, base and (if any) instruct."""
    out = []
    for path in sorted((ROOT / "configs").glob("*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sizes = getattr(module, "SIZES", None)
        if sizes is None:  # a single-model config (smollm2)
            out.append((path, None))
            continue
        for key, (base, instruct) in sizes.items():
            if base is not None:  # instruct-only sizes (Phi-3, Phi-4-mini) have no base variant
                out.append((path, key))
            if instruct is not None:
                out.append((path, f"{key}-ins"))
    return out


def table_as_pipeline_names_it(config, n=5):
    """A per-item table with the model columns the pipeline writes for this config."""
    return pd.DataFrame({"Question": [f"q{i}" for i in range(n)], "dataset": "toy",
                         "model": config.model.name, "model_type": config.model.type,
                         "model_size": 1.0, C.PAIR_COLUMN: config.model.pair})


def synthetic_alignment(tables, value_of):
    rows = [dict(dataset="toy", model=t["model"].iloc[0], model_type=t["model_type"].iloc[0],
                 model_size=t["model_size"].iloc[0], measure="mc_choice-ent", target="human-ent",
                 method="spearman", coef_oriented=value_of(t)) for t in tables]
    return pd.DataFrame(rows)


def test_every_configured_base_instruct_pair_is_found():
    configs = [load_config_file(p, a) for p, a in config_variants()]
    # instruct-only models (SmolLM2, Phi-3 / Phi-4-mini) have no base partner
    instruct_only = {c.model.pair for c in configs if c.model.type == "ins"} - {
        c.model.pair for c in configs if c.model.type == "base"}
    assert "smollm2-135m" in instruct_only and all(p.startswith(("smollm2", "phi3")) for p in instruct_only)
    expected = {c.model.pair for c in configs if c.model.type == "ins"} - instruct_only
    assert len(expected) >= 17  # Falcon3 x4, Gemma x2, Gemma2 x2, Llama2 x2, Llama3 x3, Mistral x2, Qwen2 x3, ...
    # both variants of a size share the key, whatever the names (Falcon3-1B-Base / -Instruct, ...)
    for c in configs:
        if c.model.type == "ins" and c.model.pair not in instruct_only:
            assert any(o.model.pair == c.model.pair and o.model.type == "base" for o in configs), c.model.name
    tables = [X.with_pair_key(table_as_pipeline_names_it(c)) for c in configs]
    pairs = {t["model"].iloc[0]: X.table_pair_key(t) for t in tables}
    # base = 1, instruct = 0: every found pair gives d = +1
    al = synthetic_alignment(tables, lambda t: 1.0 if t["model_type"].iloc[0] == "base" else 0.0)
    cmp_ = X.compare_models(al, pd.DataFrame(), pairs)
    row = cmp_[cmp_["comparison"] == "base_vs_instruct"].iloc[0]
    found = set(row["pairs"].split(";"))
    assert found == expected
    assert row["n_pairs"] == len(found) and row["effect_size"] == 1.0
    assert "usable pairs" not in str(row["note"])
    assert set(row["unpaired"].split(";")) == {  # models without a partner are listed
        *[c.model.name for c in configs if c.model.pair in instruct_only],
        *[c.model.name for c in configs if c.model.pair.startswith("pythia")]}
    # the names alone (no model_pair column) pair the same models: the name-derived key
    names_only = X.compare_models(al, pd.DataFrame())
    assert names_only.iloc[0]["n_pairs"] == len(found)
    # the old suffix rule finds only the pairs whose names differ by a trailing suffix: the defect
    old = {X.family_key(c.model.name) for c in configs if c.model.type == "base"} & {
        X.family_key(c.model.name) for c in configs if c.model.type == "ins"}
    defect = {c.model.name for c in configs if c.model.type == "base" and c.model.pair in (
        "falcon3-1b", "falcon3-3b", "falcon3-7b", "falcon3-10b", "llama2-7b", "llama2-13b", "mistral-v0.1", "mistral-v0.3")}
    assert len(defect) == 8 and not {X.family_key(n) for n in defect} & old  # the 8 the issue found
    assert len(old) < len(found)


@pytest.mark.parametrize("name, key", [
    ("Falcon3_1B_Ins", "falcon3-1b"), ("Falcon3-1B-Base", "falcon3-1b"), ("Falcon3-1B-Instruct", "falcon3-1b"),
    ("Llama_2_7B_Chat", "llama-2-7b"), ("Llama-2-7b-chat-hf", "llama-2-7b"), ("Llama-2-7b-hf", "llama-2-7b"),
    ("Mistral-7B-Instruct-v0.3", "mistral-7b-v0.3"), ("Mistral-7B-v0.3", "mistral-7b-v0.3"),
    ("Mistral_0.1_Ins", "mistral-0.1"), ("gemma-2-9b-it", "gemma-2-9b"), ("Gemma2_9B", "gemma2-9b"),
    ("Qwen2.5-0.5B-Instruct", "qwen2.5-0.5b"), ("Llama_3.1_8B_Ins", "llama-3.1-8b")])
def test_pair_key_from_name(name, key):
    assert C.pair_key_from_name(name) == key


def test_versions_and_sizes_stay_apart():
    assert C.pair_key_from_name("Mistral-7B-v0.1") != C.pair_key_from_name("Mistral-7B-Instruct-v0.3")
    assert C.pair_key_from_name("Gemma_2B") != C.pair_key_from_name("Gemma2_2B")


@pytest.mark.skipif(not REF.is_dir(), reason=f"reference files not found under {REF}")
def test_reference_file_names_give_15_pairs():
    models = [p.stem.split("_", 1)[1] for p in sorted(REF.glob("coane_*.parquet"))]
    types = ["ins" if m.endswith(("_Ins", "_Chat")) else "base" for m in models]
    info = X.pair_report(models, types)
    assert len(info["keys"]) == 15 and not info["unpaired"] and not info["ambiguous"]


def test_ambiguous_and_unpaired_are_reported():
    vals = pd.DataFrame({"model": ["A-1B", "A-1B-copy", "A-1B-Instruct", "B-2B"],
                         "model_type": ["base", "base", "ins", "base"],
                         C.PAIR_COLUMN: ["a-1b", "a-1b", "a-1b", "b-2b"], "value": [1.0, 2.0, 0.0, 1.0]})
    res = X.base_vs_instruct(vals)
    assert res["n_pairs"] == 1 and res["pairs"] == "a-1b"
    assert "ambiguous pair keys" in res["note"] and res["unpaired"] == "B-2B"
    assert np.isnan(res["p_value"])  # one pair: no test, said so in the note
