"""jaxunc.analyze: the statistics and report again, on any per-item tables (a jaxunc run, several runs,
or the reference study's published files, which use the same column names).

    python -m jaxunc.analyze --results=<dir or parquet files, comma-separated> [--output_dir=DIR]
        [--bootstrap=1000] [--seed=0] [--reproduce_2025=False] [--correction=bh]
        [--group_by=subject[,wave]] [--min_group=20] ...

Writes <output_dir>/analysis/{alignment,calibration,reliability,preference,distribution,
distribution_items,heterogeneity,compare,combination,temperature,probes}.csv, <output_dir>/report.md and
<output_dir>/figures/*.png. With --group_by, alignment, calibration, preference and distribution get
one row per group next to each pooled row (stats/groups.py) and heterogeneity.csv tests whether the
groups differ.
Default output_dir: the --results directory when it is a jaxunc run directory (holds run.json);
otherwise --output_dir is required. Tables of several datasets are analysed per dataset.
probes.csv: per-layer ridge probes (stats/probes.py) of every table with a hidden-state file next to it
(<dir>/hidden/<stem>.safetensors for <dir>/items/<stem>.parquet, written by --config.analysis.probes=True);
tables without one are skipped with a note in the report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from jaxunc import cli
from jaxunc.cli import UsageError
from jaxunc.stats import alignment as A
from jaxunc.stats import calibration as K
from jaxunc.stats import compare as X
from jaxunc.stats import distribution as DI
from jaxunc.stats import groups as G
from jaxunc.stats import preference as P
from jaxunc.stats import probes as PR
from jaxunc.stats import tables as T
from jaxunc.stats.config import AnalysisConfig

log = logging.getLogger(__name__)
HIDDEN_ATTR = "jaxunc_hidden"  # frame.attrs key: the hidden-state file next to the table it was read from


def _usable(tables: list[pd.DataFrame], problems: list[str]) -> list[pd.DataFrame]:
    out = []
    for df in tables:
        issues = T.validate_table(df, _where(df))
        problems += issues
        if len(df) == 0:
            continue
        out.append(df)
    return out


def analyze_tables(tables: Sequence[pd.DataFrame | str | Path] | str | Path, output_dir: str | Path,
                   config: Any = None, **overrides: Any) -> dict[str, pd.DataFrame]:
    """Run every analysis on per-item tables and write CSVs, figures and report.md under output_dir.

    config: AnalysisConfig, dict or ConfigDict (a `run` key is ignored); keyword overrides such as
    bootstrap=200, seed=1 replace its fields.
    Each stage runs on its own: a stage that fails is reported (in report.md and the returned
    'problems' frame) and every other table is still written.
    """
    cfg = AnalysisConfig.from_any(config)
    if overrides:
        cfg = AnalysisConfig.from_any({**dataclasses.asdict(cfg), **overrides})
    with _blas_threads(cfg.blas_threads):
        return _analyze(tables, Path(output_dir), cfg)


@contextlib.contextmanager
def _blas_threads(n: int | None):
    """Limit BLAS threads: the arrays here are small, and threaded OpenBLAS on a busy machine is
    many times slower (measured: SVD of 421 x 79 13x slower with 2 threads than with 1)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        n = None
    if n is None:
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


def _analyze(tables, out: Path, cfg: AnalysisConfig) -> dict[str, pd.DataFrame]:
    problems: list[str] = []
    frames = [X.with_pair_key(df) for df in _usable(_load(tables, problems), problems)]
    if not frames:
        raise ValueError(f"no readable per-item table to analyse ({'; '.join(problems) or 'none given'})")
    (out / "analysis").mkdir(parents=True, exist_ok=True)
    if cfg.drop_ungraded:
        frames = [df[df["fr_correct?"].astype(str).str.strip() != "?"].reset_index(drop=True)
                  if "fr_correct?" in df else df for df in frames]
    ds = sorted({str(f["dataset"].iloc[0]) for f in frames})
    if len(ds) > 1:
        problems.append(f"several datasets in the input ({ds}): analysed per dataset")
    results: dict[str, pd.DataFrame] = {}
    groupings = [G.groupings_of(df, cfg, _where(df), problems) for df in frames]
    per_table = {
        "alignment": lambda df, gs: G.alignment_rows(df, gs, cfg),
        "calibration": lambda df, gs: G.calibration_rows(df, gs, cfg),
        "preference": lambda df, gs: G.preference_rows(df, gs, cfg),
        "distribution": lambda df, gs: G.distribution_rows(df, gs, cfg),
        "combination": lambda df, gs: X.combination([df], cfg),
        "temperature": lambda df, gs: _temperature([df], cfg),
    }
    timings: list[tuple[str, float]] = []
    for name, fn in per_table.items():
        t0 = time.perf_counter()
        parts = []
        for df, gs in zip(frames, groupings):
            try:
                parts.append(fn(df, gs))
            except Exception as e:  # one bad table must not stop the others
                problems.append(f"{_where(df)}: {name} failed: {type(e).__name__}: {e}")
                log.exception("%s failed on %s", name, _where(df))
        if name == "calibration":
            results["calibration"] = _concat([p[0] for p in parts], K.CAL_COLUMNS)
            results["reliability"] = _concat([p[1] for p in parts], None)
        elif name == "distribution":
            results["distribution"] = _concat([p[0] for p in parts], DI.COLUMNS)
            results["distribution_items"] = _concat([p[1] for p in parts], DI.ITEM_COLUMNS)
        else:
            results[name] = _concat(parts, {"alignment": A.COLUMNS, "preference": P.COLUMNS}.get(name))
        timings.append((name, time.perf_counter() - t0))
        log.info("%s: %d tables in %.1f s", name, len(frames), timings[-1][1])
    t0 = time.perf_counter()
    results["probes"] = _probes(frames, cfg, problems)
    timings.append(("probes", time.perf_counter() - t0))
    for name, add in (("alignment", A.add_qvalues), ("calibration", K.add_qvalues), ("preference", P.add_qvalues),
                      ("distribution", DI.add_qvalues)):  # q-values per family (pooled and group families)
        try:
            results[name] = add(results[name], cfg.correction)
        except Exception as e:
            problems.append(f"{name}: q-values failed: {type(e).__name__}: {e}")
    results["alignment"] = results["alignment"].reindex(columns=A.COLUMNS)
    t0 = time.perf_counter()
    results["heterogeneity"] = _heterogeneity(frames, groupings, results, cfg, problems)
    if cfg.group_by:
        timings.append(("heterogeneity", time.perf_counter() - t0))
        results["groups"] = G.grouping_summary(frames, groupings)
    try:  # across models: the pooled rows only
        results["compare"] = X.compare_models(T.pooled(results["alignment"]), T.pooled(results["calibration"]),
                                              _pairs(frames))
    except Exception as e:
        problems.append(f"compare failed: {type(e).__name__}: {e}")
    for name, df in results.items():
        df.to_csv(out / "analysis" / f"{name}.csv", index=False)
    figures: list[Path] = []
    if cfg.figures:
        t0 = time.perf_counter()
        figures = _figures(results, out / "figures", cfg, problems, _pairs(frames))
        timings.append(("figures", time.perf_counter() - t0))
    results["timings"] = pd.DataFrame(timings, columns=["stage", "seconds"])
    from jaxunc.report.markdown import write_report
    write_report(out, results, figures, problems, cfg)
    results["problems"] = pd.DataFrame({"problem": problems})
    for p in problems:
        log.warning(p)
    return results


def _heterogeneity(frames, groupings, results, cfg: AnalysisConfig, problems: list[str]) -> pd.DataFrame:
    """heterogeneity.csv: between-group tests of every grouping (empty without group_by)."""
    rows: list[dict] = []
    for name, fn in (("alignment", G.alignment_heterogeneity), ("preference", G.preference_heterogeneity)):
        try:
            rows += fn(results[name])
        except Exception as e:
            problems.append(f"heterogeneity of {name} failed: {type(e).__name__}: {e}")
    for df, gs in zip(frames, groupings):
        for g in gs:
            try:
                rows += G.item_heterogeneity(df, g, cfg, results.get("distribution_items"))
            except Exception as e:
                problems.append(f"{_where(df)}: heterogeneity by {g.column} failed: {type(e).__name__}: {e}")
                log.exception("heterogeneity failed on %s", _where(df))
    return G.heterogeneity_table(rows, cfg.correction)


def _probes(frames, cfg: AnalysisConfig, problems: list[str]) -> pd.DataFrame:
    """probes.csv: the tables with a hidden-state file; attrs["skipped"] lists the others."""
    parts, skipped = [], []
    for df in frames:
        path = df.attrs.get(HIDDEN_ATTR)
        if not path or not Path(path).exists():
            skipped.append(_where(df))
            continue
        try:
            table, notes = PR.probes_table(df, path, cfg)
            parts.append(table)
            problems += notes
        except Exception as e:  # one bad file must not stop the other stages
            problems.append(f"{_where(df)}: probes failed: {type(e).__name__}: {e}")
            log.exception("probes failed on %s", _where(df))
    out = _concat(parts, PR.COLUMNS).reindex(columns=PR.COLUMNS)
    out.attrs["skipped"] = skipped
    return out


def _load(tables, problems: list[str]) -> list[pd.DataFrame]:
    """Frames from frames / paths / a directory; unreadable files are reported and skipped. A frame read
    from a file records its hidden-state file (jaxunc.hidden.hidden_for_table) in attrs[HIDDEN_ATTR]."""
    from jaxunc.hidden import hidden_for_table
    items = T.expand_paths(tables) if isinstance(tables, (str, Path)) else list(tables)
    out = []
    for t in items:
        try:
            frames = T.load_tables([t])
            if not isinstance(t, pd.DataFrame):
                for frame, path in zip(frames, T.expand_paths([t])):
                    frame.attrs[HIDDEN_ATTR] = str(hidden_for_table(path))
            out += frames
        except Exception as e:
            problems.append(f"{t if not isinstance(t, pd.DataFrame) else '<frame>'}: not read: {type(e).__name__}: {e}")
    return out


def _pairs(frames: list[pd.DataFrame]) -> dict[str, str]:
    """model name -> base/instruct pair key (the tables' `model_pair` column, filled by with_pair_key)."""
    return {str(df["model"].iloc[0]): X.table_pair_key(df) for df in frames if len(df)}


def _where(df: pd.DataFrame) -> str:
    return f"{df['dataset'].iloc[0] if len(df) else '?'}/{df['model'].iloc[0] if len(df) else '?'}"


def _concat(parts: list[pd.DataFrame], columns: list[str] | None) -> pd.DataFrame:
    parts = [p for p in parts if p is not None and not p.empty]
    if parts:
        return pd.concat(parts, ignore_index=True)
    return pd.DataFrame(columns=columns) if columns else pd.DataFrame()


def _temperature(frames, cfg):
    from jaxunc.stats.temperature import temperature_table
    return temperature_table(frames, cfg)


def _figures(results, fig_dir: Path, cfg: AnalysisConfig, problems: list[str],
             pairs: dict[str, str] | None = None) -> list[Path]:
    from jaxunc.report import figures as F
    fig_dir.mkdir(parents=True, exist_ok=True)
    empty = pd.DataFrame()
    full = {k: results.get(k, empty) for k in ("alignment", "calibration", "preference", "distribution")}
    pool = {k: T.pooled(v) for k, v in full.items()}  # the figures of the pooled analysis
    jobs = [("alignment heatmap", lambda: F.alignment_heatmaps(pool["alignment"], fig_dir, cfg.alpha)),
            ("ECE heatmap", lambda: F.ece_heatmaps(pool["calibration"], fig_dir)),
            ("accuracy/agreement", lambda: F.accuracy_agreement_chart(pool["calibration"], pool["preference"], fig_dir)),
            ("base vs instruct", lambda: F.base_vs_instruct_chart(pool["alignment"], fig_dir, pairs)),
            ("distribution", lambda: F.distribution_charts(pool["distribution"],
                                                           results.get("distribution_items", empty), fig_dir)),
            ("probes", lambda: F.probe_charts(results.get("probes", empty), fig_dir))]
    if cfg.group_by:
        jobs.append(("group calibration heatmap", lambda: F.group_calibration_heatmaps(full["calibration"], fig_dir,
                                                                                       cfg.alpha)))
    if cfg.reliability_figures:
        jobs.append(("reliability", lambda: F.reliability_diagrams(results.get("reliability", empty), fig_dir, cfg.reliability_all)))
    paths: list[Path] = []
    for name, fn in jobs:
        try:
            paths += fn()
        except Exception as e:
            problems.append(f"figure '{name}' failed: {type(e).__name__}: {e}")
    return paths


def default_output_dir(results: str, output_dir: str | None) -> Path:
    """--output_dir if given; else the --results directory when it is a jaxunc run dir (run.json)."""
    if output_dir:
        return Path(output_dir)
    first = Path(results.split(",")[0].strip())
    if first.is_dir() and (first / "run.json").exists() and "," not in results:
        return first
    raise UsageError(f"--results={results} is not a jaxunc run directory (no run.json): "
                     "give --output_dir for the analysis outputs")


def check_group_by(paths: Sequence[Path], group_by: Sequence[str]) -> None:
    """UsageError (one line, listing the columns there are) for a group_by column in none of the tables.

    Reads only the parquet schemas. A column missing from some tables only is reported per table by
    the analysis (those tables get pooled rows only)."""
    if not group_by:
        return
    import pyarrow.parquet as pq
    names: dict[str, None] = {}
    for p in paths:
        try:
            names.update(dict.fromkeys(pq.read_schema(p).names))
        except Exception:  # an unreadable file is reported by the analysis itself
            continue
    if not names:
        return
    names.update(dict.fromkeys(("dataset", "model", "model_type", "model_size")))  # added when absent
    for col in group_by:
        if col not in names:
            raise UsageError(f"--group_by={','.join(group_by)}: column '{col}' is in none of the tables; "
                             f"available columns: {', '.join(c for c in names if not c.startswith('__'))}")


def run_main(argv=None) -> None:
    """The `jaxunc-analyze` / `python -m jaxunc.analyze` entry point."""
    import sys

    _define_flags()
    cli.run("jaxunc.analyze", _main, argv, doc=__doc__, module=sys.modules[__name__])


def _define_flags():
    from absl import flags
    if "results" in flags.FLAGS:
        return
    flags.DEFINE_string("results", None, "directory or comma-separated parquet files of per-item tables")
    flags.DEFINE_string("output_dir", None, "output folder (default: the run directory given in --results)")
    flags.DEFINE_integer("bootstrap", 1000, "bootstrap resamples B (0 = no intervals)")
    flags.DEFINE_integer("seed", 0, "seed of every random procedure")
    flags.DEFINE_bool("reproduce_2025", False, "add the 2025 study's confounded Pearson(measure*ln n, H(r)) rows")
    flags.DEFINE_enum("correction", "bh", ["bh", "bonferroni"], "multiple-comparison adjustment for q_value")
    flags.DEFINE_float("alpha", 0.05, "significance level for masks and counts")
    flags.DEFINE_bool("drop_ungraded", False, "drop items graded '?' in fr_correct? (the reference study's 419 Coane items)")
    flags.DEFINE_integer("permutations", 1000, "relabellings of the JSD-shift permutation test")
    flags.DEFINE_bool("figures", True, "write figures")
    flags.DEFINE_bool("reliability_figures", True, "write one reliability-diagram PNG per model")
    flags.DEFINE_string("group_by", "", "item-table columns (comma-separated) to repeat the statistics per "
                        "group of, e.g. subject; each column is its own grouping")
    flags.DEFINE_integer("min_group", 20, "smallest group (items) computed; smaller groups are reported, not computed")
    flags.DEFINE_integer("probe_permutations", 50, "shuffled-target refits per layer of the activation probes")
    flags.mark_flag_as_required("results")


def _main(argv) -> None:
    from absl import flags
    F = flags.FLAGS
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {argv[1:]}")
    try:  # a missing file, an empty folder or a CSV is a usage error, found before anything runs
        T.expand_paths(F.results)
    except (OSError, ValueError) as err:
        raise UsageError(str(err)) from err
    out = default_output_dir(F.results, F.output_dir)
    try:
        cfg = AnalysisConfig(bootstrap=F.bootstrap, seed=F.seed, reproduce_2025=F.reproduce_2025,
                             correction=F.correction, alpha=F.alpha, drop_ungraded=F.drop_ungraded,
                             permutations=F.permutations, figures=F.figures,
                             reliability_figures=F.reliability_figures, group_by=F.group_by,
                             min_group=F.min_group, probe_permutations=F.probe_permutations)
    except ValueError as err:  # "analysis.<field>=..." -> the flag's name
        raise UsageError(str(err).replace("analysis.", "--", 1)) from err
    check_group_by(T.expand_paths(F.results), cfg.group_by)
    res = analyze_tables(F.results, out, cfg)
    print(f"wrote {out}/analysis/*.csv, {out}/report.md, {out}/figures/")
    for p in res["problems"]["problem"]:
        print("problem:", p)


if __name__ == "__main__":
    run_main()
