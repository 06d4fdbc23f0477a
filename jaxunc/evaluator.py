"""jaxunc.Evaluator: human alignment and calibration of any JAX model, from inside a training loop.

In the spirit of big_vision's evaluators: built once from a tokenizer and the datasets, then run on
the current parameters as often as the loop likes::

    ev = jaxunc.Evaluator(tokenizer, datasets="coane", tasks="mcqa", limit=0, prompt_format="chat")
    for name, value in ev.run(logits_fn, params):
        writer.scalar(f"eval/{name}", value, step)
    ev.items["coane"]          # the per-item table, with the main job's columns
    ev.analysis()              # the full statistics (jaxunc.analyze.analyze_tables)

`logits_fn(params, input_ids, attention_mask) -> logits` is any JAX function: input_ids and
attention_mask are int32 [B, L], prompts left-padded (mask 1 on the tokens), and logits [B, V] are
the next-token logits after the last column, i.e. after each prompt's last token. A Flax NNX or Linen
model's apply, a MaxText model or a plain function all fit. The Evaluator scores whole prompts (no
shared-prefix cache, unlike the main job): prompts are grouped by length bucket into fixed-shape
batches (engine/batching.py), so `jax.jit` of logits_fn followed by the measures
(`jaxunc.measures.next_token_measures`) compiles once per bucket, and only the per-item measures come
back to the host. Batch rows are split over the `data` axis of the engine's mesh (engine/mesh.py);
params are passed as they are (replicated, sharded on the same mesh, or uncommitted).

Multiple choice only (`tasks="mcqa"`): free response needs generation with a cache, which the main
job does (`python -m jaxunc.main`).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jaxunc import columns, labels, prompts

ECE_MEASURE = "mc_choice-prob-renorm"
DEFAULT_BUCKETS = "64,128,192,256,320,384,512,768,1024,2048"
MEAN_MEASURES = ("mc_choice-ent", "mc_total-ent")


@dataclass
class _Dataset:
    """One dataset, prepared once: items, prompts, token ids, option ids and the fixed-shape batches."""

    name: str
    items: pd.DataFrame
    texts: list[str]
    batches: list  # engine.batching.Batch
    choice_ids: np.ndarray  # int32 [n_items, O, K]
    n_choices: np.ndarray  # int32 [n_items]
    label_variants: dict


class Evaluator:
    """Scores `logits_fn(params, input_ids, attention_mask) -> [B, V]` on multiple-choice datasets.

    tokenizer: a Hugging Face tokenizer (its chat template for prompt_format="chat").
    datasets: comma-separated names or files, as config.data.datasets (coane, protoqa, mmlu with
    data_path, a .jsonl/.csv/.parquet path). limit: items per dataset (0 = all). prompt_format:
    icl2 | chat | zero_shot_2025 (jaxunc.prompts). batch_size: rows per step (a multiple of the
    mesh's data axis). buckets: prompt lengths of the compiled shapes. mesh: a jax Mesh with a `data`
    axis, or a spec such as "data:-1,model:1" (default). model / model_type / model_size name the
    model in the tables (model_type default: "ins" for chat prompts, else "base"; pair: the
    base/instruct pair key, default from the name). analysis: settings
    of ev.analysis() (jaxunc.stats.AnalysisConfig fields).
    """

    def __init__(self, tokenizer: Any, datasets: str | Sequence[str] = "coane", tasks: str = "mcqa", limit: int = 0,
                 prompt_format: str = "chat", *, system_message: str | None = None, batch_size: int = 8,
                 buckets: str | Sequence[int] = DEFAULT_BUCKETS, mesh: Any = None, nucleus: str = "inclusive",
                 model: str = "model", model_type: str | None = None, model_size: float | None = None,
                 pair: str | None = None,
                 data_path: str | None = None, shuffle_options: bool | None = None, seed: int = 0,
                 pad_id: int | None = None, analysis: Any = None, output_dir: str | Path | None = None):
        from jaxunc import measures
        from jaxunc.data import load_dataset
        from jaxunc.engine.batching import make_batches, parse_buckets
        from jaxunc.engine.mesh import DATA_AXIS, make_mesh

        if [t.strip() for t in str(tasks).split(",") if t.strip()] != ["mcqa"]:
            raise ValueError(f"Evaluator: tasks={tasks!r}: only 'mcqa' is scored here (free response needs "
                             "generation with a KV cache: use python -m jaxunc.main --config.tasks=mcqa,fr)")
        if prompt_format not in prompts.FORMATS:
            raise ValueError(f"Evaluator: prompt_format={prompt_format!r}: expected one of {prompts.FORMATS}")
        if nucleus not in measures.NUCLEUS_OPTIONS:
            raise ValueError(f"Evaluator: nucleus={nucleus!r}: expected one of {measures.NUCLEUS_OPTIONS}")
        if int(limit) < 0:
            raise ValueError(f"Evaluator: limit={limit}: expected >= 0 (0 = all items)")
        self.mesh = mesh if hasattr(mesh, "shape") and not isinstance(mesh, str) else make_mesh(mesh or "data:-1,model:1")
        if DATA_AXIS not in self.mesh.shape:
            raise ValueError(f"Evaluator: mesh axes {tuple(self.mesh.shape)} have no '{DATA_AXIS}' axis for the batch rows")
        data = self.mesh.shape[DATA_AXIS]
        if batch_size < 1 or batch_size % data:
            raise ValueError(f"Evaluator: batch_size={batch_size} must be a positive multiple of the mesh's data "
                             f"axis ({data})")
        self.tokenizer, self.prompt_format, self.nucleus = tokenizer, prompt_format, nucleus
        self.batch_size, self.buckets = int(batch_size), parse_buckets(buckets)
        self.model = dict(model=model, model_type=model_type or ("ins" if prompt_format == "chat" else "base"),
                          model_size=float("nan") if model_size is None else float(model_size))
        self.model[columns.PAIR_COLUMN] = pair or columns.pair_key_from_name(model)
        self.analysis_config, self.output_dir = analysis, output_dir
        pad = pad_id if pad_id is not None else getattr(tokenizer, "pad_token_id", None)
        self.pad_id = int(pad) if pad is not None else 0
        names = [d.strip() for d in datasets.split(",")] if isinstance(datasets, str) else [str(d) for d in datasets]
        self.datasets: dict[str, _Dataset] = {}
        for spec in [n for n in names if n]:
            ds = load_dataset(spec, path=data_path, limit=int(limit) or None, shuffle_options=shuffle_options, seed=seed)
            items = ds.items.reset_index(drop=True)
            texts = [prompts.build_prompt(row, fmt=prompt_format, task="mcqa", tokenizer=tokenizer,
                                          system_message=system_message) for row in items.to_dict("records")]
            tokens = prompts.tokenize_prompts(tokenizer, texts)
            max_options = int(items["n_options"].max())
            variants = labels.label_variant_ids(tokenizer, max_options)
            n_choices = items["n_options"].to_numpy().astype(np.int32)
            self.datasets[ds.name] = _Dataset(
                ds.name, items, texts, make_batches(tokens, self.batch_size, self.buckets, self.pad_id),
                labels.choice_id_array(variants, n_choices, max_options), n_choices, variants.table)
        if not self.datasets:
            raise ValueError("Evaluator: datasets is empty; give one or more of coane, protoqa, ... or data files")
        self.items: dict[str, pd.DataFrame] = {}
        self.best: dict[str, dict[str, str]] = {}  # dataset -> human signal -> best-aligned measure
        self.shapes: set[tuple[int, ...]] = set()
        self._steps: dict[Callable, Callable] = {}
        self._vocab: dict[Callable, int] = {}

    @property
    def n_compilations(self) -> int:
        """Distinct batch shapes compiled so far (one per bucket used)."""
        return len(self.shapes)

    def _step(self, logits_fn: Callable) -> Callable:
        """jit(logits_fn -> next_token_measures), made once per logits_fn."""
        if logits_fn not in self._steps:
            import jax

            from jaxunc import measures

            nucleus, vocab = self.nucleus, self._vocab

            def step(params, ids, mask, choice_ids, n_choices):
                logits = logits_fn(params, ids, mask)
                if logits.ndim != 2 or logits.shape[0] != ids.shape[0]:
                    raise ValueError(f"logits_fn must return next-token logits [B, V] = [{ids.shape[0]}, V] for "
                                     f"input_ids {tuple(ids.shape)}; got shape {tuple(logits.shape)}")
                vocab[logits_fn] = int(logits.shape[1])  # at trace time: checked against the label ids
                return measures.next_token_measures(logits, choice_ids, n_choices, nucleus=nucleus)

            self._steps[logits_fn] = jax.jit(step)
        return self._steps[logits_fn]

    def score(self, logits_fn: Callable, params: Any) -> dict[str, pd.DataFrame]:
        """The per-item tables (also in self.items), one per dataset."""
        import jax

        from jaxunc.engine.mcqa import rows_from_measures
        from jaxunc.engine.mesh import batch_sharding

        step = self._step(logits_fn)
        for ds in self.datasets.values():
            start = time.perf_counter()
            parts, rows = [], []
            for batch in ds.batches:
                idx = np.concatenate([batch.rows, np.repeat(batch.rows[:1], self.batch_size - batch.n_real)])
                args = [jax.device_put(a, batch_sharding(self.mesh, a.ndim)) for a in
                        (batch.input_ids, batch.attention_mask, ds.choice_ids[idx], ds.n_choices[idx])]
                self.shapes.add(batch.input_ids.shape)
                out = step(params, *args)
                parts.append({k: np.asarray(v)[: batch.n_real] for k, v in out.items()})
                rows.append(batch.rows)
            if self._vocab[logits_fn] <= int(ds.choice_ids.max()):
                raise ValueError(f"logits_fn returned {self._vocab[logits_fn]} logits per row, but the option labels "
                                 f"of {ds.name} have token ids up to {int(ds.choice_ids.max())} in this tokenizer")
            order = np.concatenate(rows)
            measures_ = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            scored = rows_from_measures(ds.items.iloc[order], measures_)
            seconds = time.perf_counter() - start
            table = ds.items.copy()
            table["formatted_question_mcqa"] = ds.texts
            table = table.merge(scored, on="item_id", how="left")
            for key, value in self.model.items():
                table[key] = value
            table = table[columns.ordered(list(table.columns))]
            table.attrs["items_per_second"] = len(table) / seconds if seconds > 0 else float("nan")
            self.items[ds.name] = table
        return self.items

    def run(self, logits_fn: Callable, params: Any) -> list[tuple[str, float]]:
        """Score every dataset and return (name, value) summaries, e.g. ('coane/accuracy', 0.61).

        Per dataset: accuracy; ece (of mc_choice-prob-renorm, 10 equal-width bins); auroc (the best
        AUROC of an oriented measure for predicting a wrong answer); align/<signal> (the best alignment
        of any measure with each human signal: oriented Spearman, positive = the model is unsure where
        people are, docs/measures.md section 5; the measure is in ev.best); partial/<signal> (the same
        controlling for the number of options, where it varies); mean/<measure>; items_per_s.
        """
        self.score(logits_fn, params)
        return [pair for name in self.items for pair in self.summaries(name)]

    def summaries(self, dataset: str) -> list[tuple[str, float]]:
        """The (name, value) summaries of one scored dataset (see run)."""
        from jaxunc.report.summary import target_sign
        from jaxunc.stats import alignment as A
        from jaxunc.stats import calibration as K
        from jaxunc.stats.config import AnalysisConfig

        table = self.items[dataset]
        quick = AnalysisConfig(bootstrap=0, permutations=0, kendall=False, figures=False)
        out: list[tuple[str, float]] = []
        correct = table["correct"].dropna().astype(float)
        if len(correct):
            out.append((f"{dataset}/accuracy", float(correct.mean())))
            cal, _ = K.calibration_table(table, quick)
            mc = cal[cal["task"] == "mc"]
            ece = mc.loc[mc["measure"] == ECE_MEASURE, "ece_width10"]
            if len(ece):
                out.append((f"{dataset}/ece", float(ece.iloc[0])))
            if mc["auroc"].notna().any():
                out.append((f"{dataset}/auroc", float(mc["auroc"].max())))
        al = A.alignment_table(table, quick)
        self.best[dataset] = {}
        for method, key in (("spearman", "align"), ("partial_spearman", "partial")):
            rows = al[(al["method"] == method) & al["coef_oriented"].notna()]
            for target, g in rows.groupby("target", sort=True):
                aligned = target_sign(g.iloc[0]) * g["coef_oriented"]  # positive = aligned, for every signal
                top = aligned.idxmax()
                out.append((f"{dataset}/{key}/{target}", float(aligned[top])))
                if method == "spearman":
                    self.best[dataset][target] = str(g.loc[top, "measure"])
        for m in MEAN_MEASURES:
            out.append((f"{dataset}/mean/{m}", float(table[m].mean())))
        out.append((f"{dataset}/items_per_s", float(table.attrs.get("items_per_second", np.nan))))
        return out

    def analysis(self, output_dir: str | Path | None = None, **overrides: Any) -> dict[str, pd.DataFrame]:
        """The full statistics of the last run (jaxunc.analyze.analyze_tables): CSVs, figures and report.md
        under output_dir (default: the Evaluator's output_dir, else a new temporary folder); keyword
        overrides replace AnalysisConfig fields, e.g. bootstrap=200, figures=False."""
        from jaxunc.analyze import analyze_tables

        if not self.items:
            raise ValueError("Evaluator.analysis(): nothing scored yet; call ev.run(logits_fn, params) first")
        out = output_dir or self.output_dir or tempfile.mkdtemp(prefix="jaxunc-eval-")
        return analyze_tables(list(self.items.values()), out, self.analysis_config, **overrides)
