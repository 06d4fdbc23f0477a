"""One run: model + datasets -> per-item tables, run.json, then the statistics and report.

Plain functions that take a resolved ConfigDict; `jaxunc.main` only parses flags and calls `run`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import platform
import re
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from jaxunc import columns, labels, measures, prompts
from jaxunc.cli import UsageError
from jaxunc.data import DATASETS, SHIPPED, LoadedDataset, generic, load_dataset
from jaxunc.engine import freeresponse, mcqa, provenance
from jaxunc.engine.batching import parse_buckets
from jaxunc.engine.chunked import process_items, wait_for_all
from jaxunc.engine.decode import make_generate
from jaxunc.engine.lock import OutputLock
from jaxunc.engine.mesh import make_mesh, parse_mesh
from jaxunc.models.layers import ATTENTION_IMPLS
from jaxunc.engine.scoring import Scorer
from jaxunc.engine.store import (KEY_COLUMNS, ChunkStore, SettingsConflict, conflict_message, read_manifest,
                                 write_parquet_atomic)
from jaxunc.stats.config import AnalysisConfig

log = logging.getLogger(__name__)

TASKS = prompts.TASKS
_PACKAGES = ("jax", "jaxlib", "flax", "numpy", "scipy", "pandas", "transformers", "tokenizers", "gguf")


def check_config(config) -> None:
    """Refuse bad settings before anything is loaded (UsageError naming the field and what is allowed)."""
    choices = {
        "model.dtype": (config.model.dtype, ("auto", "float32", "bfloat16")),
        "model.prompt_format": (config.model.prompt_format, prompts.FORMATS),
        "model.type": (config.model.type, ("base", "ins")),
        "engine.nucleus": (config.engine.nucleus, measures.NUCLEUS_OPTIONS),
        "data.on_error": (config.data.on_error, ("raise", "skip")),
    }
    for field, (value, allowed) in choices.items():
        if value not in allowed:
            raise UsageError(f"config.{field}={value!r}: expected one of {tuple(allowed)}")
    if config.engine.attention not in ("auto", *ATTENTION_IMPLS):
        raise UsageError(f"config.engine.attention={config.engine.attention!r}: expected one of "
                         f"{('auto', *ATTENTION_IMPLS)}")
    try:
        mesh = parse_mesh(config.engine.mesh, len(jax.local_devices()))
    except ValueError as err:
        raise UsageError(f"config.{err}") from err
    if config.engine.batch_size % mesh["data"]:
        raise UsageError(f"config.engine.batch_size={config.engine.batch_size} must be a multiple of the data axis "
                         f"({mesh['data']}, engine.mesh={config.engine.mesh!r}); try "
                         f"--config.engine.batch_size={-(-config.engine.batch_size // mesh['data']) * mesh['data']}")
    if config.engine.pack_length < 0 or config.engine.min_prefix < 1:
        raise UsageError("config.engine.pack_length must be >= 0 (0 = from the data) and engine.min_prefix >= 1")
    for field in ("engine.batch_size", "engine.chunk_size", "engine.max_new_tokens", "data.max_field_chars"):
        group, name = field.split(".")
        if int(config[group][name]) < 1:
            raise UsageError(f"config.{field} must be >= 1, got {config[group][name]}")
    if config.data.limit < 0:
        raise UsageError(f"config.data.limit must be >= 0 (0 = all items), got {config.data.limit}")
    try:
        parse_buckets(config.engine.buckets)
        AnalysisConfig.from_any(config.analysis)
    except ValueError as err:
        raise UsageError(f"config.{err}" if str(err).startswith("analysis") else str(err)) from err
    tasks = parse_tasks(config.tasks)
    if config.analysis.get("probes", False) and "mcqa" not in tasks:
        raise UsageError(f"config.analysis.probes=True needs the mcqa task (hidden states are taken at the last "
                         f"multiple-choice prompt token) but config.tasks={config.tasks!r}; add mcqa to --config.tasks")
    dataset_specs(config)
    checkpoint = Path(config.model.checkpoint).expanduser() if config.model.checkpoint else None
    if checkpoint is not None and not checkpoint.exists():
        raise UsageError(f"config.model.checkpoint: checkpoint path {checkpoint} does not exist")


def dataset_specs(config) -> list[str]:
    """The entries of config.data.datasets: known names or existing data files, distinct table names."""
    specs = [d.strip() for d in config.data.datasets.split(",") if d.strip()]
    if not specs:
        raise UsageError(f"config.data.datasets is empty; give one or more of {DATASETS} or data file paths")
    for spec in specs:
        if spec not in DATASETS and not generic.is_generic_path(spec):
            raise UsageError(f"config.data.datasets: unknown dataset {spec!r}; expected one of {DATASETS} "
                             f"or a path to a {'/'.join(generic.SUFFIXES)} file")
        if spec in DATASETS and spec not in SHIPPED and not config.data.path:
            raise UsageError(f"config.data.datasets={spec!r} needs config.data.path (a local copy)")
        if generic.is_generic_path(spec) and not Path(spec).is_file():
            raise UsageError(f"config.data.datasets: data file {spec} does not exist")
    if config.data.path and not Path(config.data.path).exists():
        raise UsageError(f"config.data.path: {config.data.path} does not exist")
    names = [dataset_name(s) for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"config.data.datasets: several datasets would write the table {twice[0]!r} "
                         f"({[s for s in specs if dataset_name(s) == twice[0]]}); rename one file")
    return specs


def dataset_name(spec: str) -> str:
    """The table name of a dataset entry: the name itself, or a data file's stem."""
    return Path(spec).stem if generic.is_generic_path(spec) else spec


def parse_tasks(spec: str) -> list[str]:
    tasks = [t.strip() for t in spec.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if not tasks or unknown:
        raise UsageError(f"config.tasks must be a comma-separated subset of {TASKS}, got {spec!r}")
    return tasks


def output_dir(config) -> Path:
    return Path(config.output_dir or Path("results") / config.name)


def safe_name(text: str) -> str:
    """A file-name-safe model or dataset name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def checkpoint_path(config) -> str:
    """config.model.checkpoint, or the embedded SmolLM2 GGUF when none is given."""
    from jaxunc.embedded import smollm2_gguf_path

    return config.model.checkpoint or str(smollm2_gguf_path())


def load_model_for(config, mesh=None):
    """The checkpoint of config.model, its parameters placed on `mesh`."""
    from jaxunc.checkpoints import load_model

    return load_model(checkpoint_path(config), dtype=config.model.dtype, cache_dir=config.model.cache_dir or None,
                      mesh=mesh, fsdp=config.engine.fsdp, scan_layers=config.model.scan_layers)


def check_memory(config, mesh, tasks: list[str]):
    """The memory plan of the run from the checkpoint's config alone; ValueError naming a mesh or batch
    size that fits when a device's memory is too small (engine/plan.py)."""
    from jaxunc.checkpoints.loader import model_config
    from jaxunc.engine.plan import check_fits, device_memory, plan_for_config

    cfg = model_config(checkpoint_path(config))
    plan = lambda shape, rows: plan_for_config(config, cfg, shape, rows, tasks)  # noqa: E731
    return check_fits(plan, dict(mesh.shape), int(config.engine.batch_size), device_memory(), mesh.size)


def prefix_reuse(config, loaded, token_lists: dict[str, list[list[int]]]) -> bool:
    """Whether shared prefixes are computed once: engine.prefix_reuse, except for a longrope model with
    prompts beyond its original context (its rotation depends on the whole sequence's length)."""
    cfg = loaded.config
    if cfg.rope_type == "longrope" and any(len(t) > cfg.rope_original_max_position
                                           for lists in token_lists.values() for t in lists):
        log.warning("prefix reuse off: longrope with prompts longer than %d tokens", cfg.rope_original_max_position)
        return False
    return bool(config.engine.prefix_reuse)


def eos_ids(loaded) -> list[int]:
    """Ids that end a generation, as the checkpoint declares them (checkpoints/special_tokens.py)."""
    return list(loaded.special_tokens.stop_ids)


@dataclass(frozen=True)
class Hosts:
    """This process among the processes (hosts) sharing the run; process 0 writes the tables."""

    index: int = 0
    count: int = 1

    @property
    def is_writer(self) -> bool:
        return self.index == 0


def resolve_hosts(config) -> Hosts:
    """This process among the run's processes: joins jax.distributed when engine.distributed (the
    coordinator auto-detected on TPU pods and SLURM, or engine.coordinator_address with
    engine.process_count / process_index, as launch/local.py passes them); else from
    engine.process_index / process_count (hosts that share only the output folder). Must run before
    anything touches the devices."""
    index, count = int(config.engine.process_index), int(config.engine.process_count)
    if config.engine.distributed:
        if config.engine.coordinator_address:
            jax.distributed.initialize(config.engine.coordinator_address, num_processes=count, process_id=index)
        else:
            jax.distributed.initialize()
        index, count = jax.process_index(), jax.process_count()
    index = index if index >= 0 else 0
    count = count if count > 0 else 1
    if not 0 <= index < count:
        raise UsageError(f"config.engine.process_index={index} must lie in [0, engine.process_count={count})")
    if count > 1 and config.recompute:
        raise UsageError("config.recompute=True with several processes would race; use a new output_dir instead")
    return Hosts(index, count)


@dataclass
class DatasetRun:
    """One dataset of a run: its items, its per-task stores and its final table."""

    spec: str
    dataset: LoadedDataset
    final: Path
    stores: dict[str, ChunkStore]

    @property
    def item_ids(self) -> list[str]:
        return list(self.dataset.items["item_id"])


def plan_datasets(config, tasks: list[str], out: Path, hosts: Hosts) -> list[DatasetRun]:
    """Load and validate every dataset and check every stored result against the settings.

    Runs before the model loads, so that bad data and conflicting settings are reported at once.
    """
    plans = []
    for spec in dataset_specs(config):
        dataset = load_dataset(spec, path=config.data.path or None, limit=config.data.limit or None,
                               on_error=config.data.on_error, shuffle_options=config.data.shuffle_options,
                               seed=config.data.seed, max_field_chars=config.data.max_field_chars)
        stem = f"{safe_name(dataset.name)}__{safe_name(config.model.name)}"
        shuffled = bool(dataset.permutation["shuffled"])
        stores = {task: ChunkStore(out / "items" / "parts" / f"{stem}.{task}.parquet",
                                   provenance.task_settings(config, spec, shuffled, task), writer=hosts.index)
                  for task in tasks}
        plan = DatasetRun(spec, dataset, out / "items" / f"{stem}.parquet", stores)
        if not config.recompute:
            for store in stores.values():
                store.check()
            check_table_kept(plan, tasks)
        plans.append(plan)
    return plans


def check_table_kept(plan: DatasetRun, tasks: list[str]) -> None:
    """Refuse to replace a finished table by one with fewer tasks or fewer items."""
    manifest = read_manifest(plan.final)
    if manifest is None:
        return
    differences = []
    dropped = [t for t in manifest.get("tasks", []) if t not in tasks]
    if dropped:
        differences.append(f"tasks: {','.join(manifest['tasks'])!r} -> {','.join(tasks)!r}")
    stored_ids = pq.read_table(plan.final, columns=["item_id"]).column("item_id").to_pylist()
    lost = set(stored_ids) - set(plan.item_ids)
    if lost:
        differences.append(f"items: {len(stored_ids)} -> {len(plan.item_ids)} ({len(lost)} of the finished "
                           "table's items are not in this run; data.limit or the data file changed)")
    if differences:
        hint = f"add {','.join(dropped)} to --config.tasks (their results are reused)" if dropped else ""
        raise SettingsConflict(conflict_message(plan.final, differences, hint))


def fit_context(plan: DatasetRun, token_lists: dict[str, list[list[int]]], limits: dict[str, int],
                on_error: str) -> list[int]:
    """Indices of the items whose prompts fit the model's context; the others are refused
    (on_error=raise: ValueError naming the first) or left out of plan.dataset with a reason (skip)."""
    items = plan.dataset.items
    too_long: dict[int, str] = {}
    for task, lists in token_lists.items():
        for i, tokens in enumerate(lists):
            if len(tokens) > limits[task] and i not in too_long:
                too_long[i] = (f"item {items['item_id'].iat[i]}: the {task} prompt has {len(tokens)} tokens; "
                               f"the model takes at most {limits[task]} here")
    keep = [i for i in range(len(items)) if i not in too_long]
    if not too_long:
        return keep
    if on_error == "raise":
        raise ValueError(f"{plan.dataset.source}: {too_long[min(too_long)]} ({len(too_long)} such items; "
                         "--config.data.on_error=skip leaves them out)")
    if not keep:
        raise ValueError(f"{plan.dataset.source}: every prompt exceeds the model's context ({too_long[0]})")
    plan.dataset.skipped.extend((items["item_id"].iat[i], "prompt longer than the model context") for i in too_long)
    plan.dataset.items = items.iloc[keep].reset_index(drop=True)
    return keep


def resolve_dtype_setting(config):
    """model.dtype "auto": bfloat16 on GPU/TPU, float32 on CPU (a copy of the config with it resolved, so
    run.json and the stored settings record the dtype actually used)."""
    if config.model.dtype != "auto":
        return config
    config = config.copy_and_resolve_references()
    config.model.dtype = "float32" if jax.default_backend() == "cpu" else "bfloat16"
    return config


def attention_impl(config) -> str:
    """engine.attention: "auto" is jax.nn.dot_product_attention (cuDNN where it applies) on GPU, the XLA
    path elsewhere (measured faster on CPU)."""
    if config.engine.attention != "auto":
        return config.engine.attention
    return "jax" if jax.default_backend() == "gpu" else "xla"


def context_limits(config, loaded, tasks: list[str]) -> dict[str, int]:
    """Longest prompt per task: the model's context, less the generated tokens for free response."""
    context = int(loaded.config.max_position_embeddings)
    limits = {"mcqa": context, "fr": context - int(config.engine.max_new_tokens)}
    if "fr" in tasks and limits["fr"] < 1:
        raise UsageError(f"config.engine.max_new_tokens={config.engine.max_new_tokens} leaves no room for a "
                         f"prompt in the model's context of {context} tokens")
    return {t: limits[t] for t in tasks}


def run_dataset(config, loaded, plan: DatasetRun, tasks: list[str], engines: dict, content, out: Path,
                hosts: Hosts = Hosts()) -> dict:
    """Run the tasks on one dataset; process 0 writes items/<dataset>__<model>.parquet."""
    dataset, tokenizer = plan.dataset, loaded.tokenizer
    texts, token_lists = {}, {}
    for task in tasks:
        texts[task] = [prompts.build_prompt(row, fmt=config.model.prompt_format, task=task, tokenizer=tokenizer,
                                            system_message=config.model.system_message)
                       for row in dataset.items.to_dict("records")]
        token_lists[task] = prompts.tokenize_prompts(tokenizer, texts[task])
    keep = fit_context(plan, token_lists, context_limits(config, loaded, tasks), config.data.on_error)
    texts = {t: [v[i] for i in keep] for t, v in texts.items()}
    token_lists = {t: [v[i] for i in keep] for t, v in token_lists.items()}
    items = dataset.items
    table = items.copy()
    record: dict = {"source": dataset.source, "source_sha256": source_digest(dataset.source),
                    "n_items": len(items), "n_skipped": len(dataset.skipped),
                    "skipped": [[str(row), reason] for row, reason in dataset.skipped]}
    reuse = prefix_reuse(config, loaded, token_lists)
    for task in tasks:
        tokens = token_lists[task]
        if task == "mcqa":
            max_options = int(items["n_options"].max())
            variants = labels.label_variant_ids(tokenizer, max_options)
            choice_ids = labels.choice_id_array(variants, items["n_options"].to_numpy(), max_options)
            n_choices = items["n_options"].to_numpy().astype(np.int32)
            task_plan = mcqa.plan_mcqa(tokens, rows=config.engine.batch_size, length=config.engine.pack_length,
                                       min_prefix=config.engine.min_prefix, reuse_prefix=reuse,
                                       row_mode=config.engine.batch_invariant,
                                       max_context=int(loaded.config.max_position_embeddings))
            batches = lambda todo, p=task_plan: mcqa.mcqa_batches(engines["mcqa"], p, tokens, todo, choice_ids,  # noqa: E731
                                                                  n_choices)
            rows_fn = mcqa.rows_from_measures
            record["label_variants"] = variants.table
        else:
            task_plan = freeresponse.plan_fr(tokens, batch_size=config.engine.batch_size,
                                             buckets=parse_buckets(config.engine.buckets),
                                             min_prefix=config.engine.min_prefix, reuse_prefix=reuse)
            pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            batches = lambda todo, p=task_plan: freeresponse.fr_batches(engines["fr"], p, tokens, todo, pad_id)  # noqa: E731
            rows_fn = freeresponse.rows_fn(tokenizer)
        store, ids = plan.stores[task], plan.item_ids
        keys = provenance.item_keys(items, tokens)
        stats = process_items(items, store, batches, rows_fn, item_keys=keys, content_key=content.key,
                              chunk_size=config.engine.chunk_size, desc=f"{dataset.name} {task}",
                              process_index=hosts.index, process_count=hosts.count)
        stats["prefix"] = task_plan.record(tokens)
        lengths = [len(t) for t in token_lists[task]]
        record[task] = {"prompt_tokens": {"min": min(lengths), "max": max(lengths),
                                          "mean": float(np.mean(lengths))}, **stats}
        if not hosts.is_writer:
            continue
        wait_for_all(store, ids, keys, content.key, timeout=config.engine.wait_timeout)
        scored = store.finalize(ids, keys, content.key, {"content": content.as_dict()})
        if task == "mcqa":
            scored, hidden = split_hidden(config, loaded, plan, scored, out)
            if hidden:
                record["hidden"] = hidden
        table[f"formatted_question_{task}"] = texts[task]
        table = table.merge(scored.drop(columns=list(KEY_COLUMNS)), on="item_id", how="left")
    if not hosts.is_writer:
        return record
    table["model"], table["model_type"], table["model_size"] = (
        config.model.name, config.model.type, model_size(config, loaded))
    table[columns.PAIR_COLUMN] = config.model.get("pair") or columns.pair_key_from_name(config.model.name)
    table = table[columns.ordered(list(table.columns))]
    write_parquet_atomic(table, plan.final, {
        "tasks": tasks, "settings": {t: s.settings for t, s in plan.stores.items()},
        "content": content.as_dict(), "source_sha256": record["source_sha256"]})
    record["table"] = str(plan.final)
    record["summary"] = summarize(table)
    return record


def model_size(config, loaded) -> float:
    """Billions of parameters: config.model.size when given, else the checkpoint's parameter count."""
    size = config.model.get("size")
    return float(size) if size is not None else loaded.n_params / 1e9


def split_hidden(config, loaded, plan: DatasetRun, scored: pd.DataFrame, out: Path):
    """(rows without the hidden-state column, record): with analysis.probes, writes the rows' hidden
    states to hidden/<dataset>__<model>.safetensors in the table's row order, atomically."""
    from jaxunc.engine.mcqa import HIDDEN_COLUMN
    from jaxunc.hidden import hidden_path, write_hidden

    if HIDDEN_COLUMN not in scored:
        return scored, None
    rest = scored.drop(columns=[HIDDEN_COLUMN])
    if not config.analysis.get("probes", False):
        return rest, None
    shape = (len(scored), loaded.config.num_layers + 1, loaded.config.hidden_size)
    path = hidden_path(out, plan.final.stem)
    dtype = config.analysis.get("probes_dtype", "float32")
    rows = (np.frombuffer(b, np.float32).reshape(shape[1:]) for b in scored[HIDDEN_COLUMN])
    size = write_hidden(path, rows, shape, list(scored["item_id"]), dtype,
                        {"dataset": plan.dataset.name, "model": config.model.name})
    return rest, {"path": str(path), "shape": list(shape), "dtype": dtype, "bytes": size}


def source_digest(source: str) -> str | None:
    """sha256 of a data file, or over the files of a data folder (path and bytes); None if neither."""
    path = Path(source)
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else []
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode() + b"\0")
        with open(f, "rb") as handle:
            while block := handle.read(1 << 22):
                h.update(block)
    return h.hexdigest()


def summarize(table: pd.DataFrame) -> str:
    """A short text summary: accuracy and measure means."""
    lines = [f"{len(table)} items"]
    if "correct" in table and table["correct"].notna().any():
        lines.append(f"accuracy {table['correct'].dropna().astype(float).mean():.3f}")
    for col in ("mc_choice-ent", "mc_total-ent", "mc_choice-prob-renorm"):
        if col in table:
            lines.append(f"mean {col} {table[col].mean():.4f}")
    return ", ".join(lines)


def run(config) -> dict:
    """Run every dataset x task of the config; write tables, run.json and the analysis.

    Order: settings, datasets and stored results are checked first (nothing loaded, nothing
    written); then the output folder is locked, the model loaded and the items scored.
    """
    hosts = resolve_hosts(config)  # first: jax.distributed must start before the devices are used
    config = resolve_dtype_setting(config)
    check_config(config)
    tasks = parse_tasks(config.tasks)
    out = output_dir(config)
    plans = plan_datasets(config, tasks, out, hosts)
    with OutputLock(out) if hosts.is_writer else contextlib.nullcontext():
        return _run_locked(config, tasks, hosts, out, plans)


def _run_locked(config, tasks, hosts, out: Path, plans: list[DatasetRun]) -> dict:
    if config.recompute:
        for plan in plans:
            for store in plan.stores.values():
                store.discard()
    timings: dict[str, float] = {}
    mesh = make_mesh(config.engine.mesh)  # each host scores its own items on its own devices
    memory = check_memory(config, mesh, tasks)
    t0 = time.perf_counter()
    loaded = load_model_for(config, mesh)
    loaded.model.attention = attention_impl(config)
    timings["load_model"] = time.perf_counter() - t0
    content = provenance.run_content(loaded)
    engines = {}
    if "mcqa" in tasks:
        engines["mcqa"] = Scorer(loaded.model, mesh, row_mode=config.engine.batch_invariant,
                                 nucleus=config.engine.nucleus, probes=bool(config.analysis.get("probes", False)))
    if "fr" in tasks:
        engines["fr"] = make_generate(loaded.model, mesh, max_new_tokens=config.engine.max_new_tokens,
                                      eos_ids=eos_ids(loaded), nucleus=config.engine.nucleus)
    record = {
        "config": json.loads(config.to_json_best_effort()),
        "versions": {p: _version(p) for p in ("jaxunc", *_PACKAGES)},
        "python": platform.python_version(),
        "devices": [str(d) for d in jax.devices()], "mesh": dict(mesh.shape),
        "model": {"source": loaded.source, "n_params": int(loaded.n_params), "dtype": config.model.dtype,
                  "attention": loaded.model.attention, "scan_layers": bool(loaded.model.scan_layers)},
        "sharding": loaded.sharding_record(), "memory_plan": memory.as_dict(),
        "content": content.as_dict(),
        "nucleus_variant": config.engine.nucleus, "datasets": {}, "timings": timings,
    }
    for plan in plans:
        t0 = time.perf_counter()
        print(plan.dataset.summary())
        entry = run_dataset(config, loaded, plan, tasks, engines, content, out, hosts)
        record["datasets"][plan.dataset.name] = entry
        if not hosts.is_writer:
            continue
        print(f"{plan.dataset.name} / {config.model.name}: {entry['summary']}")
        entry["compilations"] = {task: engine.n_compilations for task, engine in engines.items()}
        timings[f"dataset:{plan.dataset.name}"] = time.perf_counter() - t0
    record["hosts"] = {"index": hosts.index, "count": hosts.count}
    if not hosts.is_writer:
        return record
    _write_json(out / "run.json", record)

    if config.analysis.run:
        t0 = time.perf_counter()
        from jaxunc.analyze import analyze_tables

        tables = sorted((out / "items").glob("*.parquet"))  # this run's and earlier runs' finished tables
        analyze_tables(tables, out, config.analysis)
        timings["analysis"] = time.perf_counter() - t0
        _write_json(out / "run.json", record)
    from jaxunc.report.summary import summary_block

    print(summary_block(out, [config.model.name], [e["table"] for e in record["datasets"].values() if "table" in e]))
    return record


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _write_json(path: Path, record: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    tmp.replace(path)
