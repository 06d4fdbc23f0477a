"""Time the grouped analysis (group_by=subject) on a synthetic MMLU-sized table.

    python bench/bench_groups.py [--items=14000] [--groups=57] [--measures=20] [--bootstrap=1000]
        [--loop_resamples=20]

Table: `items` items in `groups` subjects of unequal size, 4 options, `measures` mc_* measure
columns, a human signal (human-ent) and human shares (Answer_Ratios), so every grouped stage runs:
alignment, calibration, preference, distribution, heterogeneity (B bootstrap resamples and
1000 permutations), plus the pooled stages and the figures.

Printed, all measured in this run:
- grouped: jaxunc.analyze.analyze_tables with group_by=subject (pooled + per-group rows);
- pooled: the same call without group_by (the cost the grouping adds is the difference);
- naive per-group loop (bootstrap part only): per group and measure, B explicit resamples of the
  group's items with scipy.stats.spearmanr (alignment) and scipy.stats.mannwhitneyu (AUROC), one
  measure at a time; timed on `loop_resamples` resamples of every group for one measure and
  extrapolated linearly to all measures x B.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pandas as pd
from scipy import stats

from jaxunc import columns as C
from jaxunc.analyze import analyze_tables


def synthetic_table(n: int, n_groups: int, n_measures: int, seed: int = 0) -> pd.DataFrame:
    """n items in n_groups subjects (sizes ~ Dirichlet), per-subject accuracy and signal strength."""
    rng = np.random.default_rng(seed)
    base = min(100, n // (2 * n_groups))  # MMLU's smallest test subject has 100 items
    sizes = base + rng.multinomial(n - base * n_groups, rng.dirichlet(np.full(n_groups, 5.0)))
    subject = np.repeat([f"subject_{g:02d}" for g in range(n_groups)], sizes)
    g = np.repeat(np.arange(n_groups), sizes)
    strength = rng.uniform(0.5, 3.0, n_groups)[g]           # how peaked the model is per subject
    logits = rng.normal(size=(n, 4)) * strength[:, None]
    gold = rng.integers(0, 4, n)
    logits[np.arange(n), gold] += rng.uniform(0.0, 2.0, n_groups)[g]  # per-subject accuracy
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    mass = rng.uniform(0.3, 0.95, n)
    pdf = np.log(p * mass[:, None])
    ent = -(p * np.log(p)).sum(axis=1) / np.log(4)
    shares = 0.5 * p + 0.5 * rng.dirichlet(np.ones(4), n)
    cols = {"Question": [f"q{i}" for i in range(n)], "Answers": [["a", "b", "c", "d"]] * n,
            "Answer_Ratios": list(shares), "Correct_Answer": [chr(65 + k) for k in gold],
            "cloze_pred": [chr(65 + k) for k in p.argmax(axis=1)], "mc_choice-pdf": list(pdf),
            "human-ent": -(shares * np.log(shares)).sum(axis=1) / np.log(4), "subject": subject,
            "model": "synthetic_1B", "model_type": "base", "model_size": 1.0, "dataset": "mmlu"}
    real = {"mc_choice-ent": ent, "mc_choice-prob": np.log(p.max(axis=1) * mass),
            "mc_choice-prob-renorm": p.max(axis=1), "mc_choice-mass": np.log(mass),
            "mc_choice-margin": np.sort(p, axis=1)[:, -1] - np.sort(p, axis=1)[:, -2]}
    names = [c for c in C.mc_columns() if c not in real]
    k = 0
    while len(real) < n_measures:  # the other measures: noisy, partly tied transforms of the entropy
        noisy = ent + rng.normal(scale=0.1 * (1 + k % 4), size=n)
        real[names[k]] = np.round(noisy, 1) if k % 3 == 0 else noisy
        k += 1
    return pd.DataFrame({**cols, **dict(list(real.items())[:n_measures])})


def naive_loop(df: pd.DataFrame, measure: str, resamples: int, rng: np.random.Generator) -> float:
    """Seconds per resample of every group for one measure: scipy Spearman + Mann-Whitney AUROC."""
    y = df["human-ent"].to_numpy(float)
    x = df[measure].to_numpy(float)
    wrong = (df["cloze_pred"] != df["Correct_Answer"]).to_numpy()
    groups = [np.flatnonzero(df["subject"].to_numpy() == s) for s in df["subject"].unique()]
    t0 = time.perf_counter()
    for _ in range(resamples):
        for idx in groups:
            i = rng.choice(idx, len(idx))
            stats.spearmanr(x[i], y[i])
            w = wrong[i]
            if 0 < w.sum() < len(w):
                stats.mannwhitneyu(x[i][w], x[i][~w])
    return (time.perf_counter() - t0) / resamples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=14000)
    ap.add_argument("--groups", type=int, default=57)
    ap.add_argument("--measures", type=int, default=20)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--loop_resamples", type=int, default=20)
    args = ap.parse_args()
    df = synthetic_table(args.items, args.groups, args.measures)
    sizes = df["subject"].value_counts()
    cfg = dict(bootstrap=args.bootstrap, permutations=1000, min_group=20)

    with tempfile.TemporaryDirectory() as out:
        t0, c0 = time.perf_counter(), time.process_time()
        res = analyze_tables([df], out, dict(cfg, group_by="subject"))
        grouped, grouped_cpu = time.perf_counter() - t0, time.process_time() - c0
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        analyze_tables([df], out, cfg)
        pooled = time.perf_counter() - t0
    per = naive_loop(df, "mc_choice-ent", args.loop_resamples, np.random.default_rng(0))
    loop = per * args.measures * args.bootstrap

    print(f"workload: {len(df)} items, {df['subject'].nunique()} groups ({sizes.min()}-{sizes.max()} items), "
          f"{args.measures} measures, 1 human signal, B={args.bootstrap}, 1000 permutations")
    print(f"rows: alignment {len(res['alignment'])}, calibration {len(res['calibration'])}, "
          f"heterogeneity {len(res['heterogeneity'])}")
    print(f"grouped analysis (pooled + {df['subject'].nunique()} groups, all stages + figures): {grouped:.1f} s wall, "
          f"{grouped_cpu:.1f} s CPU; stages: " + ", ".join(f"{r.stage} {r.seconds:.1f}s" for r in res["timings"].itertuples()))
    print(f"pooled analysis alone (same call, no group_by): {pooled:.1f} s; grouping adds {grouped - pooled:.1f} s "
          f"(ratio grouped / pooled {grouped / pooled:.2f}x)")
    print(f"naive per-group scipy loop (bootstrap of Spearman + AUROC only): {per * 1e3:.1f} ms per resample of all "
          f"groups for one measure, measured on {args.loop_resamples} resamples, extrapolated to {loop:.0f} s")
    print(f"ratio naive loop / grouped analysis: {loop / grouped:.1f}x")


if __name__ == "__main__":
    main()
