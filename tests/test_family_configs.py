"""Every configs/<family>.py runs the main job on a tiny random checkpoint of its family.

The checkpoints are tiny random transformers models saved with save_pretrained; the tokenizer is a
real byte-level BPE trained here on the Coane questions (so option letters are single tokens).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest

from jaxunc import columns
from jaxunc.configs import family_config, load_config_file, parse_arg
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
    "qwen3": ("qwen3", "0.6b-ins"),
    "gemma3": ("gemma3", "1b"),
    "phi3": ("phi3_longrope", "4mini-ins"),
    "olmo2": ("olmo2", "7b-ins"),
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
    # model.size unset: the checkpoint's parameter count, in billions
    assert config.model.size is None
    assert set(table["model_size"]) == {record["model"]["n_params"] / 1e9}


def test_instruct_only_family_refuses_base_variant():
    config = load_config_file(ROOT / "configs" / "phi3.py")
    assert (config.model.name, config.model.type, config.model.prompt_format) == ("Phi-4-mini-instruct", "ins", "chat")
    with pytest.raises(ValueError, match=r"configs/phi3.py: Phi-4-mini-instruct has no base model; use 4mini-ins"):
        load_config_file(ROOT / "configs" / "phi3.py", "4mini")
    with pytest.raises(ValueError, match=r"configs/x.py: b has no instruct model"):
        family_config("x", "s-ins", sizes={"s": ("b", None)}, default="s")


# family -> how each release names its instruct model after the base model
_INSTRUCT_NAMING = {
    "qwen3": lambda base: base.removesuffix("-Base"),
    "gemma3": lambda base: base.removesuffix("-pt") + "-it",
    "olmo2": lambda base: base + "-Instruct",
}


@pytest.mark.parametrize("family", sorted(_INSTRUCT_NAMING))
def test_new_family_sizes_pair_base_and_instruct_names(family):
    import importlib.util

    spec = importlib.util.spec_from_file_location(family, ROOT / "configs" / f"{family}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for key, (base, instruct) in module.SIZES.items():
        assert instruct == _INSTRUCT_NAMING[family](base), key
        assert module.get_config(key).model.name == base
        assert module.get_config(f"{key}-ins").model.name == instruct


def test_key_value_arguments_equal_the_older_form():
    path = ROOT / "configs" / "llama3.py"
    for new, old in (("size=8b,ins=True", "8b-ins"), ("size=3b", "3b"), ("ins", "1b-ins"), ("size=8b,ins", "8b-ins"),
                     ("ins=False,size=8b", "8b"), ("runlocal,size=8b", "8b,runlocal")):
        assert load_config_file(path, new).to_dict() == load_config_file(path, old).to_dict(), (new, old)
    assert load_config_file(path).model.name == "Llama-3.2-1B"  # the default size, base
    phi = load_config_file(ROOT / "configs" / "phi3.py", "runlocal")  # instruct-only: the default variant
    assert (phi.model.name, phi.model.type) == ("Phi-4-mini-instruct", "ins")
    for bad, message in (("size=8b,foo", "unknown argument 'foo'"), ("ins=maybe", "ins='maybe': expected True or False"),
                         ("size=13b", "unknown size '13b'"), ("8b-xx", "variant 'xx'")):
        with pytest.raises(ValueError, match=message):
            load_config_file(path, bad)
    with pytest.raises(ValueError, match=r"configs/smollm2.py: unknown argument 'size'"):
        load_config_file(ROOT / "configs" / "smollm2.py", "size=1b")
    args = parse_arg("a=3,b=0.5,c,d=x", a=1, b=1.0, c=False, d="y")
    assert args.to_dict() == {"a": 3, "b": 0.5, "c": True, "d": "x"}
    with pytest.raises(ValueError, match="a='x': expected a int"):
        parse_arg("a=x", a=1)
    with pytest.raises(ValueError, match="argument 'd' needs a value"):
        parse_arg("d", d="y")


def test_runlocal_is_a_tiny_smoke_run_in_its_own_folder():
    full = load_config_file(ROOT / "configs" / "smollm2.py")
    small = load_config_file(ROOT / "configs" / "smollm2.py", "runlocal")
    assert (full.data.limit, full.analysis.bootstrap) == (0, 1000)
    assert (small.name, small.data.limit, small.analysis.bootstrap, small.engine.max_new_tokens) == (
        "smollm2-runlocal", 8, 20, 16)
    fam = load_config_file(ROOT / "configs" / "gemma2.py", "size=9b,ins=True,runlocal")
    assert (fam.name, fam.model.name, fam.data.limit) == ("gemma2-9b-ins-runlocal", "gemma-2-9b-it", 8)


def test_every_config_docstring_has_launch_commands_that_parse():
    """Each configs/*.py shows `python -m jaxunc.main --config=...` lines; each one's config loads and its
    overrides name existing fields."""
    from jaxunc.main import check_config_flags

    for path in sorted((ROOT / "configs").glob("*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        commands = [line.split("#")[0].split() for line in (module.__doc__ or "").splitlines()
                    if line.strip().startswith("python -m jaxunc.main --config=")]
        assert commands, f"{path.name}: no launch command in its docstring"
        for words in commands:
            argv = ["jaxunc"] + [w.replace("configs/", f"{ROOT}/configs/", 1) if w.startswith("--config=") else w
                                 for w in words[3:] if not w.startswith("--config.model.checkpoint")]
            check_config_flags(argv)  # raises UsageError on a bad file, argument or field
