"""The run configuration: `configs/<name>.py` files define `get_config(arg)` with `base_config` or
`family_config`, in big_vision's style.

The argument after the colon of `--config=configs/<name>.py:<arg>` is comma-separated `key=value`
pairs (parse_arg): `size=1b,ins=True`; a bare key sets a boolean (`ins`, `runlocal`). The older
`<size>[-ins]` form (`1b-ins`) still works. `runlocal` makes a tiny smoke run (runlocal()).

Fields (override any with --config.<field>=value):
  model.name / type (base|ins) / prompt_format (icl2|chat|zero_shot_2025)
  model.size          billions of parameters, written to the tables' `model_size` (size trends in
                      compare.csv); unset: the checkpoint's parameter count
  model.pair          base/instruct pair key, family + size (e.g. 'falcon3-1b'), written to the
                      per-item tables' `model_pair` column; compare.csv pairs models on it
  model.checkpoint    local HF checkpoint dir or .gguf file ('' = the embedded SmolLM2 GGUF)
  model.dtype         auto (bfloat16 on GPU/TPU, float32 on CPU) | float32 | bfloat16; model.scan_layers (layers under lax.scan: compile time flat in depth)
  model.system_message  chat system turn (unset: the study's instruction per task; '': none)
  model.cache_dir     converted-parameter cache ('' = $JAXUNC_CACHE or ~/.cache/jaxunc)
  data.datasets       comma-separated: coane, protoqa, mmlu, opinionqa, globalopinionqa, or a path
                      to a generic file
  data.path           local folder/file for mmlu, opinionqa, globalopinionqa (not shipped;
                      docs/datasets.md); data.limit (0 = all); data.on_error (raise|skip)
  data.max_field_chars  longest question/option accepted (characters), checked before tokenization
  data.shuffle_options  unset: the dataset's default; data.seed seeds the option permutation
  tasks               comma-separated: mcqa, fr
  output_dir          '' = results/<config name>
  engine.*            mesh (data:-1,model:1), fsdp, batch_size (packed rows per step, or generation rows),
                      pack_length, prefix_reuse, min_prefix, buckets (free-response suffix lengths),
                      chunk_size, nucleus (inclusive|exclusive2025), max_new_tokens, attention,
                      batch_invariant (bit-identical results for any batch size / layout),
                      distributed / coordinator_address / process_index / process_count /
                      wait_timeout (several hosts: see launch/)
<<<<<<< HEAD
  analysis.*          run, bootstrap, seed, group_by, min_group (docs/analyses.md)
=======
  analysis.*          run, bootstrap, seed, group_by, min_group; probes (mcqa also returns each item's
                      hidden state per layer at the last prompt token -> hidden/<dataset>__<model>.safetensors,
                      and the analysis fits per-layer ridge probes of the human signals: analysis/probes.csv),
                      probes_dtype (float32|bfloat16, of the saved file), probe_permutations
>>>>>>> issue-14
  recompute           discard earlier results of the same output_dir
"""

from __future__ import annotations

import ml_collections

from jaxunc.columns import pair_key_from_name


def base_config(
    name: str,
    *,
    model_name: str,
    model_type: str,
    prompt_format: str,
    size: float | None = None,
    checkpoint: str = "",
    pair: str = "",
) -> ml_collections.ConfigDict:
    """The default config for one model. `size`: billions of parameters (None: the checkpoint's
    parameter count, filled in when it loads). `pair`: the base/instruct pair key (family + size, equal
    for both members of a pair); '' derives it from the model name (columns.pair_key_from_name)."""
    config = ml_collections.ConfigDict()
    config.name = name
    config.model = ml_collections.ConfigDict(dict(
        name=model_name, type=model_type,
        size=ml_collections.config_dict.placeholder(float) if size is None else float(size),
        pair=pair or pair_key_from_name(model_name),
        prompt_format=prompt_format, checkpoint=checkpoint, dtype="auto", scan_layers=True,
        # None: the study's instruction for each task; "" : no system turn.
        system_message=ml_collections.config_dict.placeholder(str), cache_dir="",
    ))
    config.data = ml_collections.ConfigDict(dict(
        datasets="coane", path="", limit=0, on_error="raise", seed=0,
        # A question or option longer than this is refused before tokenization (per data.on_error).
        max_field_chars=50_000,
        # None: each dataset's default (ProtoQA shuffled, since its file is sorted by popularity).
        shuffle_options=ml_collections.config_dict.placeholder(bool),
    ))
    config.tasks = "mcqa"
    config.output_dir = ""
    config.engine = ml_collections.ConfigDict(dict(
        batch_size=8, buckets="64,128,192,256,320,384,512,768,1024,2048", chunk_size=64,
        # Device mesh "axis:size,..." over data (rows) and model (tensor parallel); -1 = the rest.
        mesh="data:-1,model:1", fsdp=False,
        # Shared prompt prefixes run once into a KV cache (at least min_prefix tokens to count);
        # multiple choice packs the suffixes into rows of pack_length tokens (0 = from the data).
        prefix_reuse=True, min_prefix=16, pack_length=0,
        # auto: jax.nn.dot_product_attention (cuDNN) on GPU, the XLA path elsewhere; or xla | jax.
        attention="auto",
        nucleus="inclusive", max_new_tokens=100,
        # False: one batched forward per packed batch (float32 noise across batch compositions, bound
        # in the README); True: one item per row, rows mapped one by one, bit-identical for any batch.
        batch_invariant=False,
        # Several hosts: jax.distributed (distributed=True, e.g. on a TPU pod) or explicit
        # process_index/process_count; items are split by chunk, process 0 writes the tables.
        distributed=False, coordinator_address="", process_index=-1, process_count=0, wait_timeout=1800.0,
    ))
    config.analysis = ml_collections.ConfigDict(dict(run=True, bootstrap=1000, seed=0, group_by="", min_group=20,
                                                     probes=False, probes_dtype="float32", probe_permutations=50))
    config.recompute = False
    return config


INSTRUCT_SUFFIXES = ("ins", "instruct", "chat", "it")
RUNLOCAL_LIMIT = 8


def _value(key: str, text: str, default):
    """`text` as the type of `default` (bool: true/false/1/0/yes/no), ValueError naming the key."""
    if isinstance(default, bool):
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError(f"{key}={text!r}: expected True or False")
    if isinstance(default, (int, float)):
        try:
            return type(default)(text)
        except ValueError:
            raise ValueError(f"{key}={text!r}: expected a {type(default).__name__}") from None
    return text


def parse_arg(arg: str | None, where: str = "config", **defaults) -> ml_collections.ConfigDict:
    """'size=1b,ins=True,runlocal' -> ConfigDict(size='1b', ins=True, runlocal=True) over `defaults`.

    Values take the type of their default; a bare key sets a boolean True. An unknown key or a bare
    non-boolean key is a ValueError naming `where` and the keys there are."""
    out = ml_collections.ConfigDict(dict(defaults))
    for part in [p.strip() for p in (arg or "").split(",") if p.strip()]:
        key, eq, text = part.partition("=")
        key = key.strip()
        if key not in defaults:
            raise ValueError(f"{where}: unknown argument {key!r}; expected key=value with keys {sorted(defaults)}")
        if not eq:
            if not isinstance(defaults[key], bool):
                raise ValueError(f"{where}: argument {key!r} needs a value ({key}=...)")
            out[key] = True
        else:
            out[key] = _value(f"{where}: {key}", text, defaults[key])
    return out


def runlocal(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A tiny smoke run of `config`: 8 items, 20 bootstrap resamples, 16 generated tokens, its own
    output folder (<name>-runlocal, so a full run's results are never mixed with it)."""
    config.name = f"{config.name}-runlocal"
    config.data.limit = RUNLOCAL_LIMIT
    config.analysis.bootstrap = 20
    config.engine.max_new_tokens = 16
    return config


def single_config(name: str, arg: str | None, **model) -> ml_collections.ConfigDict:
    """A config for one model (no size choice); `arg` may hold `runlocal`."""
    args = parse_arg(arg, f"configs/{name}.py", runlocal=False)
    config = base_config(name, **model)
    return runlocal(config) if args.runlocal else config


def _legacy(parts: list[str]) -> bool:
    """Whether the argument starts with the older `<size>[-ins]` form."""
    return bool(parts) and "=" not in parts[0] and parts[0] not in ("ins", "runlocal")


def _family_args(family: str, arg: str | None, default: str) -> ml_collections.ConfigDict:
    """size / ins / runlocal from `size=1b,ins=True[,runlocal]` or the older `1b-ins[,runlocal]`."""
    parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
    if _legacy(parts):  # '<size>[-<variant>]' first
        key, _, kind = parts[0].partition("-")
        if kind and kind not in INSTRUCT_SUFFIXES and kind != "base":
            raise ValueError(f"configs/{family}.py: variant {kind!r} must be 'base' or one of {INSTRUCT_SUFFIXES}")
        parts = [f"size={key}"] + (["ins"] if kind in INSTRUCT_SUFFIXES else []) + parts[1:]
    return parse_arg(",".join(parts), f"configs/{family}.py", size=default, ins=False, runlocal=False)


def family_config(
    family: str, arg: str | None, *, sizes: dict[str, tuple[str | None, str | None]], default: str,
) -> ml_collections.ConfigDict:
    """A config for one checkpoint of a family: `configs/<family>.py:size=<key>[,ins=True][,runlocal]`
    (or the older `:<size>[-ins]`).

    `sizes` maps a size key to (base model name or None, instruct model name or None); None marks a
    variant that was never released (Phi-3 and Phi-4 are instruct-only). `default` is a size key, or
    `<key>-ins` for an instruct-only family. Base models get the `icl2` completion prompt, instruct
    models the tokenizer's chat template. The checkpoint directory is given with
    --config.model.checkpoint=DIR; model.size comes from its parameter count. Both variants of a
    size get the pair key `<family>-<size key>` (e.g. 'falcon3-1b'), whatever their model names.
    """
    parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
    if not _legacy(parts) and not any(p.startswith("size=") for p in parts):
        parts.insert(0, default)  # no size given: the default's size (and variant), then the rest
    args = _family_args(family, ",".join(parts), default.partition("-")[0])
    key, instruct = args.size, args.ins
    if key not in sizes:
        raise ValueError(f"configs/{family}.py: unknown size {key!r}; choose one of {sorted(sizes)}")
    base_name, instruct_name = sizes[key]
    if instruct and instruct_name is None:
        raise ValueError(f"configs/{family}.py: {base_name} has no instruct model")
    if not instruct and base_name is None:
        raise ValueError(f"configs/{family}.py: {instruct_name} has no base model; use {key}-ins")
    config = base_config(
        f"{family}-{key}{'-ins' if instruct else ''}",
        model_name=instruct_name if instruct else base_name,
        model_type="ins" if instruct else "base", prompt_format="chat" if instruct else "icl2",
        pair=f"{family}-{key}",
    )
    return runlocal(config) if args.runlocal else config


def load_config_file(path, arg: str | None = None) -> ml_collections.ConfigDict:
    """`get_config(arg)` of a config file, as `--config=path[:arg]` would give (for library use)."""
    import importlib.util
    from pathlib import Path

    path = Path(path)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg) if arg is not None else module.get_config()
