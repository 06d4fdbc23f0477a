"""Time the activation probes on a synthetic MMLU-sized hidden-state file against a naive baseline.

    python bench/bench_probes.py [--items=8724] [--layers=30] [--dims=2048] [--permutations=50]
                                 [--workers=2] [--keep=PATH]

Data: a real hidden-state file (jaxunc.hidden, float32, [items, layers, dims], ~2.1 GB at the default
size, written block by block) whose layers carry a low-rank signal of 5 human-like targets and a 0/1
correctness column, strongest in the middle layers; read back through the memory map as the analysis
does. Full: jaxunc.stats.probes.probes_table with the default analysis settings (5 outer folds, 15
penalties, leave-one-out on <= 1000 training rows, `permutations` shuffles per target, nested best
layer; `workers` layers at a time in worker processes, single-threaded BLAS each).
Baseline: a direct implementation of the same nested CV, with the penalty chosen by 5 inner folds:
per (layer, outer fold, inner fold or the outer refit, penalty) it standardises the training rows,
forms X'X and solves the normal equations with np.linalg.solve for all target columns at once. One
such unit is timed on this data (averaged over `baseline_units`) and multiplied by the workload,
layers x 5 x (5 + 1) x 15 units, which this script prints.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from jaxunc.hidden import read_hidden, write_hidden
from jaxunc.stats import probes as P

TARGETS = ("human-ent", "MC_Human_Prop_Correct", "MC_Human_RT_Combined", "FR_Human_Prop_Correct", "FR_Human_RT_ANS")


def synthetic_table(n: int, seed: int = 0, rank: int = 16) -> tuple[pd.DataFrame, np.ndarray]:
    """(item table with the targets and correctness, latent [n, rank]): its own seeded stream, so a kept
    hidden file and a rebuilt table always match."""
    rng = np.random.default_rng([seed, 1])
    latent = rng.standard_normal((n, rank))
    ids = [f"item{i}" for i in range(n)]
    table = pd.DataFrame({"item_id": ids, "dataset": "synthetic", "model": "bench"})
    for t in TARGETS:
        table[t] = latent @ rng.standard_normal(rank) * 0.15 + rng.standard_normal(n)
    score = latent @ rng.standard_normal(rank) * 0.5 + rng.standard_normal(n)
    table["Correct_Answer"] = "A"
    table["cloze_pred"] = np.where(score > 0, "A", "B")
    return table, latent


def synthetic(path: Path, n: int, layers: int, dims: int, seed: int = 0, block: int = 512) -> pd.DataFrame:
    """Write the hidden file (layers carry the table's latent signal, strongest in the middle); return
    the matching item table."""
    table, latent = synthetic_table(n, seed)
    rng = np.random.default_rng([seed, 2])
    rank = latent.shape[1]
    mix = [rng.standard_normal((rank, dims)).astype(np.float32) / np.sqrt(rank) for _ in range(layers)]
    strength = np.exp(-((np.arange(layers) - layers / 2) / (layers / 4)) ** 2)  # middle layers carry most
    offsets = rng.standard_normal((layers, dims)).astype(np.float32) * 3  # non-zero means, as real states

    def rows():
        for start in range(0, n, block):
            z = latent[start:start + block].astype(np.float32)
            noise = rng.standard_normal((len(z), layers, dims), dtype=np.float32)
            x = noise + offsets[None] + np.stack([(strength[l] * z) @ mix[l] for l in range(layers)], axis=1)
            yield from x

    write_hidden(path, rows(), (n, layers, dims), list(table["item_id"]))
    return table


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the probes' worker processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def baseline_unit(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, alpha: float) -> None:
    """One naive unit: standardise the training rows, X'X, solve, predict the held-out rows."""
    mu, sd = x[train].mean(0), x[train].std(0)
    xs = (x[train] - mu) / np.where(sd > 0, sd, 1)
    w = np.linalg.solve(xs.T @ xs + alpha * np.eye(x.shape[1], dtype=xs.dtype), xs.T @ (y[train] - y[train].mean(0)))
    ((x[test] - mu) / np.where(sd > 0, sd, 1)) @ w


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=8724)
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--dims", type=int, default=2048)
    ap.add_argument("--permutations", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--baseline_units", type=int, default=2)
    ap.add_argument("--keep", default="", help="write (or reuse) the synthetic hidden file here")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    path = Path(args.keep or Path(tmp.name) / "synthetic__bench.safetensors")
    t0 = time.perf_counter()
    if args.keep and path.exists():  # reuse the file; the table comes from its own seeded stream
        table = synthetic_table(args.items)[0]
    else:
        table = synthetic(path, args.items, args.layers, args.dims)
    made = time.perf_counter() - t0
    print(f"synthetic file: {path.stat().st_size / 1e9:.2f} GB, {made:.0f} s to write")

    cfg = dict(probe_permutations=args.permutations, probe_workers=args.workers)
    t0, c0 = time.perf_counter(), cpu_seconds()
    result, notes = P.probes_table(table, path, cfg)  # its worker processes run single-threaded BLAS
    full, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    nested = result[result["kind"] == "nested_best"][["target", "layer", "layers_chosen", "r_oof", "r2_oof",
                                                      "perm_r95", "auroc_oof"]]
    print(nested.to_string(index=False))
    columns = (len(TARGETS) + 1) * (1 + args.permutations)
    print(f"full probes: {full:.1f} s wall, {cpu:.1f} s CPU ({args.layers} layers x {args.items} items x "
          f"{args.dims} dims, {len(TARGETS)} targets + correctness x (1 + {args.permutations} permutations) = "
          f"{columns} columns, {args.workers} workers); notes: {notes or 'none'}")

    from threadpoolctl import threadpool_limits

    hs = read_hidden(path)
    x = hs.layer(args.layers // 2).astype(np.float64)
    rng = np.random.default_rng(1)
    y = rng.standard_normal((args.items, columns))
    fold = P.make_folds(args.items, 5, rng)
    train = np.flatnonzero(fold != 0)  # outer training rows; the unit is an inner fit on them
    inner_train, inner_test = train[: int(0.8 * len(train))], train[int(0.8 * len(train)):]
    with threadpool_limits(limits=1, user_api="blas"):
        t0 = time.perf_counter()
        for u in range(args.baseline_units):
            baseline_unit(x, y, inner_train, inner_test, 10.0 ** u)
        unit = (time.perf_counter() - t0) / args.baseline_units
    units = args.layers * 5 * (5 + 1) * len(P.GRID)
    naive = unit * units / args.workers  # granting the baseline the same parallel workers
    print(f"naive baseline: {unit:.2f} s per unit x {units} units / {args.workers} workers = {naive:.0f} s "
          f"({naive / 60:.0f} min) extrapolated; naive / full = {naive / full:.0f}x")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
