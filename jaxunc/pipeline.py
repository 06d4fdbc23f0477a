"""One run: model + datasets -> per-item tables, run.json, then the statistics and report.

Plain functions that take a resolved ConfigDict; `jaxunc.main` only parses flags and calls `run`.
"""

from __future__ import annotations

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

from jaxunc import columns, labels, measures, prompts
from jaxunc.data import load_dataset
from jaxunc.engine import freeresponse, mcqa
from jaxunc.engine.batching import parse_buckets
from jaxunc.engine.chunked import process_items, wait_for_all
from jaxunc.engine.decode import make_generate
from jaxunc.engine.mesh import check_batch_size, make_data_mesh
from jaxunc.engine.scoring import make_score_step
from jaxunc.engine.store import ChunkStore, fingerprint, write_parquet_atomic

log = logging.getLogger(__name__)

TASKS = prompts.TASKS
MODEL_COLUMNS = ("model", "model_type", "model_size")
_PACKAGES = ("jax", "jaxlib", "flax", "numpy", "scipy", "pandas", "transformers", "tokenizers", "gguf")


def check_config(config) -> None:
    """Refuse bad settings before any model is loaded, naming the field and what is allowed."""
    choices = {
        "model.dtype": (config.model.dtype, ("float32", "bfloat16")),
        "model.prompt_format": (config.model.prompt_format, prompts.FORMATS),
        "model.type": (config.model.type, ("base", "ins")),
        "engine.nucleus": (config.engine.nucleus, measures.NUCLEUS_OPTIONS),
        "data.on_error": (config.data.on_error, ("raise", "skip")),
    }
    for field, (value, allowed) in choices.items():
        if value not in allowed:
            raise ValueError(f"config.{field}={value!r}: expected one of {tuple(allowed)}")
    for field in ("batch_size", "chunk_size", "max_new_tokens"):
        if int(config.engine[field]) < 1:
            raise ValueError(f"config.engine.{field} must be >= 1, got {config.engine[field]}")
    if config.data.limit < 0:
        raise ValueError(f"config.data.limit must be >= 0 (0 = all items), got {config.data.limit}")
    parse_buckets(config.engine.buckets)
    parse_tasks(config.tasks)


def parse_tasks(spec: str) -> list[str]:
    tasks = [t.strip() for t in spec.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if not tasks or unknown:
        raise ValueError(f"config.tasks must be a comma-separated subset of {TASKS}, got {spec!r}")
    return tasks


def output_dir(config) -> Path:
    return Path(config.output_dir or Path("results") / config.name)


def safe_name(text: str) -> str:
    """A file-name-safe model or dataset name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def load_model_for(config):
    """The checkpoint of config.model (the embedded SmolLM2 GGUF when none is given)."""
    from jaxunc.checkpoints import load_model
    from jaxunc.embedded import smollm2_gguf_path

    path = config.model.checkpoint or str(smollm2_gguf_path())
    return load_model(path, dtype=config.model.dtype, cache_dir=config.model.cache_dir or None)


def item_settings(config, dataset: str, checkpoint_source: str) -> dict:
    """Everything that determines a per-item value (data.limit excluded: rows are reusable)."""
    return {
        "dataset": dataset, "checkpoint": checkpoint_source, "dtype": config.model.dtype,
        "prompt_format": config.model.prompt_format, "system_message": config.model.system_message,
        "nucleus": config.engine.nucleus, "batch_invariant": config.engine.batch_invariant,
        "shuffle_options": config.data.shuffle_options,
        "seed": config.data.seed, "on_error": config.data.on_error, "path": config.data.path,
        "model": config.model.name, "model_type": config.model.type, "model_size": config.model.size,
    }


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
    """From engine.process_index/process_count, else from jax (after jax.distributed.initialize)."""
    if config.engine.distributed:
        jax.distributed.initialize()
    index = config.engine.process_index if config.engine.process_index >= 0 else jax.process_index()
    count = config.engine.process_count if config.engine.process_count > 0 else jax.process_count()
    if not 0 <= index < count:
        raise ValueError(f"engine.process_index={index} must lie in [0, engine.process_count={count})")
    if count > 1 and config.recompute:
        raise ValueError("recompute=True with several processes would race; use a new output_dir instead")
    return Hosts(index, count)


def run_dataset(config, loaded, dataset, tasks: list[str], engines: dict, out: Path,
                hosts: Hosts = Hosts()) -> dict:
    """Run the tasks on one dataset; process 0 writes items/<dataset>__<model>.parquet."""
    items, tokenizer = dataset.items, loaded.tokenizer
    stem = f"{safe_name(dataset.name)}__{safe_name(config.model.name)}"
    settings = item_settings(config, dataset.name, loaded.source)
    common = dict(batch_size=config.engine.batch_size, buckets=parse_buckets(config.engine.buckets),
                  pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
                  chunk_size=config.engine.chunk_size)
    table = items.copy()
    record: dict = {"n_items": len(items), "n_skipped": len(dataset.skipped),
                    "skipped": [[str(row), reason] for row, reason in dataset.skipped]}
    for task in tasks:
        texts = [prompts.build_prompt(row, fmt=config.model.prompt_format, task=task, tokenizer=tokenizer,
                                      system_message=config.model.system_message)
                 for row in items.to_dict("records")]
        token_lists = prompts.tokenize_prompts(tokenizer, texts)
        if task == "mcqa":
            max_options = int(items["n_options"].max())
            variants = labels.label_variant_ids(tokenizer, max_options)
            choice_ids = labels.choice_id_array(variants, items["n_options"].to_numpy(), max_options)
            n_choices = items["n_options"].to_numpy().astype(np.int32)
            fns = mcqa.batch_fn(engines["mcqa"], choice_ids, n_choices), mcqa.rows_from_measures
            record["label_variants"] = variants.table
        else:
            fns = freeresponse.batch_fn(engines["fr"]), freeresponse.rows_fn(tokenizer)
        store = ChunkStore(out / "items" / "parts" / f"{stem}.{task}.parquet",
                           fingerprint({**settings, "task": task,
                                        "max_new_tokens": config.engine.max_new_tokens if task == "fr" else None}),
                           writer=hosts.index)
        if config.recompute:
            store.discard()
        stats = process_items(items, token_lists, store, *fns, desc=f"{dataset.name} {task}",
                              process_index=hosts.index, process_count=hosts.count, **common)
        lengths = [len(t) for t in token_lists]
        record[task] = {"prompt_tokens": {"min": min(lengths), "max": max(lengths),
                                          "mean": float(np.mean(lengths))}, **stats}
        if not hosts.is_writer:
            continue
        wait_for_all(store, list(items["item_id"]), timeout=config.engine.wait_timeout)
        scored = store.finalize(list(items["item_id"]))
        table[f"formatted_question_{task}"] = texts
        table = table.merge(scored, on="item_id", how="left")
    if not hosts.is_writer:
        return record
    table["model"], table["model_type"], table["model_size"] = (
        config.model.name, config.model.type, float(config.model.size))
    table = table[columns.ordered(list(table.columns))]
    final = out / "items" / f"{stem}.parquet"
    write_parquet_atomic(table, final)
    record["table"] = str(final)
    record["summary"] = summarize(table)
    return record


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
    """Run every dataset x task of the config; write tables, run.json and the analysis."""
    check_config(config)
    tasks = parse_tasks(config.tasks)
    hosts = resolve_hosts(config)
    out = output_dir(config)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    loaded = load_model_for(config)
    timings["load_model"] = time.perf_counter() - t0

    mesh = make_data_mesh(jax.local_devices())  # each host scores its own items on its own devices
    check_batch_size(config.engine.batch_size, mesh)
    engines = {}
    if "mcqa" in tasks:
        engines["mcqa"] = make_score_step(loaded.model, mesh, batch_invariant=config.engine.batch_invariant,
                                          nucleus=config.engine.nucleus)
    if "fr" in tasks:
        engines["fr"] = make_generate(loaded.model, mesh, max_new_tokens=config.engine.max_new_tokens,
                                      eos_ids=eos_ids(loaded), nucleus=config.engine.nucleus)
    record = {
        "config": json.loads(config.to_json_best_effort()),
        "versions": {p: _version(p) for p in ("jaxunc", *_PACKAGES)},
        "python": platform.python_version(),
        "devices": [str(d) for d in jax.devices()], "mesh": dict(mesh.shape),
        "model": {"source": loaded.source, "n_params": int(loaded.n_params)},
        "nucleus_variant": config.engine.nucleus, "datasets": {}, "timings": timings,
    }
    tables = []
    for name in [d.strip() for d in config.data.datasets.split(",") if d.strip()]:
        t0 = time.perf_counter()
        dataset = load_dataset(name, path=config.data.path or None, limit=config.data.limit or None,
                               on_error=config.data.on_error, shuffle_options=config.data.shuffle_options,
                               seed=config.data.seed)
        print(dataset.summary())
        entry = run_dataset(config, loaded, dataset, tasks, engines, out, hosts)
        record["datasets"][dataset.name] = entry
        if not hosts.is_writer:
            continue
        tables.append(entry["table"])
        print(f"{dataset.name} / {config.model.name}: {entry['summary']}")
        if "mcqa" in engines:
            entry["compilations"] = {"mcqa": engines["mcqa"].n_compilations}
        timings[f"dataset:{dataset.name}"] = time.perf_counter() - t0
    record["hosts"] = {"index": hosts.index, "count": hosts.count}
    if not hosts.is_writer:
        return record
    _write_json(out / "run.json", record)

    if config.analysis.run and tables:
        t0 = time.perf_counter()
        from jaxunc.analyze import analyze_tables

        analyze_tables(tables, out, bootstrap=config.analysis.bootstrap, seed=config.analysis.seed)
        timings["analysis"] = time.perf_counter() - t0
        _write_json(out / "run.json", record)
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
