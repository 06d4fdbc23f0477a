"""Time the full analysis of the four ProtoQA reference tables against a per-measure scipy loop.

    python bench/bench_stats.py [--bootstrap=1000] [--loop_resamples=20]

Full: jaxunc.analyze.analyze_tables on the 4 files (8,724 items each, 17 measures, 2 human signals,
B resamples: Spearman, Pearson, partial Spearman intervals, Kendall, 8 n-strata, preference,
combination, figures). Baseline: for each resample, scipy.stats.spearmanr / pearsonr and a partial
Spearman on the explicitly resampled arrays, one measure at a time. The baseline is timed on
`loop_resamples` resamples of one (model, target, measure) and extrapolated linearly to the same
workload (4 models x 2 targets x 17 measures x B), which this script prints.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

from jaxunc.analyze import analyze_tables
from jaxunc.stats import tables as T
from jaxunc.stats.alignment import partial_spearman

REF = Path(__file__).resolve().parents[2] / "shared" / "reference" / "authors_results" / "protoqa"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--loop_resamples", type=int, default=20)
    args = ap.parse_args()
    files = sorted(REF.glob("protoqa_*.parquet"))
    if not files:
        raise SystemExit(f"no ProtoQA reference tables under {REF}")
    frames = T.load_tables(files)
    n_items = len(frames[0])
    measures = T.measure_columns(frames[0])
    targets = T.target_columns(frames[0])

    t0, c0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as out:
        res = analyze_tables(frames, out, dict(bootstrap=args.bootstrap))
    full, full_cpu = time.perf_counter() - t0, time.process_time() - c0
    n_rows = len(res["alignment"])

    df = frames[0]
    x, y = df[measures[0]].to_numpy(float), df[targets[0]].to_numpy(float)
    z = T.n_options(df)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(args.loop_resamples):
        i = rng.integers(0, n_items, n_items)
        stats.spearmanr(x[i], y[i])
        stats.pearsonr(x[i], y[i])
        partial_spearman(x[i], y[i], z[i])
    per = (time.perf_counter() - t0) / args.loop_resamples
    loop = per * len(frames) * len(targets) * len(measures) * args.bootstrap

    print(f"workload: {len(frames)} models x {len(targets)} targets x {len(measures)} measures, "
          f"{n_items} items, B={args.bootstrap}; {n_rows} alignment rows")
    print(f"full analysis (all stages + figures): {full:.1f} s wall, {full_cpu:.1f} s CPU; stages: "
          + ", ".join(f"{r.stage} {r.seconds:.1f}s" for r in res["timings"].itertuples()))
    print(f"per-measure scipy loop (bootstrap part only): {per * 1e3:.2f} ms per resample, measured on "
          f"{args.loop_resamples} resamples, extrapolated to {loop:.0f} s")
    print(f"ratio loop / full analysis: {loop / full:.1f}x")


if __name__ == "__main__":
    main()
