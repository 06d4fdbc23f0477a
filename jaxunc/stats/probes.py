"""Activation probes (analyses.md section 5): is human uncertainty linearly readable from the hidden
state at the last prompt token, layer by layer?

Per table (dataset x model), layer l (0 = embedding output, 1..N = each layer's output, N after the
final norm; files of jaxunc.hidden) and target y (every human signal tables.target_columns finds, and
correctness as 0/1):

- Outer CV: K seeded folds (cfg.cv_folds). On the training rows of fold k the features are standardised
  on those rows only, Xs = (X - mu) / s, and the ridge fit with an unpenalised intercept is
      w(a) = (Xs'Xs + a I)^-1 Xs'(y - ybar),     prediction ybar + ((x - mu) / s) w(a),
  for every penalty a = c * n_train, c on the log grid GRID (standardised features: the mean eigenvalue
  of Xs'Xs is n_train), from one eigendecomposition per training fold:
      primal (n_train >= dims): Xs'Xs = V diag(lam) V',  w(a) = V diag(1 / (lam + a)) V' Xs'(y - ybar);
      dual (n_train < dims):    Xs Xs' = U diag(lam) U', w(a) = Xs' U diag(1 / (lam + a)) U' (y - ybar).
  Both give Z = Xs V = U sqrt(lam) and the coordinates c = Z'(y - ybar) used below.
- Inner CV (training rows only, never the test fold): exact leave-one-out of the ridge fit, closed form
      e_(i)(a) = (y_i - yhat_i(a)) / (1 - h_ii(a)),   h_ii(a) = 1/n_train + sum_j Z_ij^2 / (lam_j + a)
  (the intercept is refitted without row i; the scaling mu, s stays the training fold's), its mean
  square over at most `loo_rows` training rows (a seeded subset, the same for every layer; all rows
  when fewer). The penalty with the lowest inner error is used for the fold's test rows.
- Scores per layer, over the n concatenated out-of-fold predictions: Pearson r, Spearman rho,
  R^2 = 1 - SS_res / SS_tot (SS_tot about the mean of y: <= 0 for a useless probe), and for
  correctness (ridge on 0/1, a linear probability model) AUROC of the predictions.
- Best layer by nested CV: in each outer fold the layer with the lowest inner error (training rows
  only) is chosen and predicts that fold's test rows; the `nested_best` row scores those predictions,
  an honest estimate of "probe at the best layer". (Choosing the layer with the best r_oof, as the
  reference study did, is optimistic: tests/test_stats_probes.py measures it on noise.)
- Permutation baseline: P seeded shuffles of y, each through the same procedure (its own penalties and,
  for the nested row, its own layer choice); perm_r95 = 95th percentile of their out-of-fold r,
  p_perm = (1 + #{r_perm >= r}) / (P + 1).

Cost per layer: the fold Gram matrices (n dims^2 once), K eigendecompositions of min(n_train, dims),
the LOO rows' projections (loo_rows dims^2 per fold); every target, permutation and penalty is a
column of small matrix products on top. Layers run in `workers` processes (each with single-threaded
BLAS and its own memory map of the file) when the layers come from a hidden-state file; threads for any
other layer function (scipy's LAPACK eigh holds the GIL, so threads barely overlap).
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import linalg
from scipy import stats as sps
from threadpoolctl import threadpool_limits

GRID = np.logspace(-4, 3, 15)  # penalty a = c * n_train
BINARY = "correct"
COLUMNS = ["dataset", "model", "layer", "target", "n", "r_oof", "rho_oof", "r2_oof", "perm_r95", "best", "kind",
           "auroc_oof", "perm_auroc95", "p_perm", "alpha_median", "layers_chosen", "folds", "permutations", "note"]
FLOAT64_DIMS = 1024  # above this many features the Gram matrices and eigendecompositions run in float32


def make_folds(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold of each row: a seeded permutation of 0, 1, ..., k-1, 0, 1, ... (sizes differ by at most 1)."""
    return rng.permutation(np.arange(n) % k)


def loo_subsets(folds: np.ndarray, limit: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Per outer fold: the training rows whose leave-one-out error chooses the penalty (all of them when
    there are at most `limit`, else a seeded subset of `limit`), sorted."""
    out = []
    for k in range(int(folds.max()) + 1):
        train = np.flatnonzero(folds != k)
        out.append(train if len(train) <= limit else np.sort(rng.choice(train, limit, replace=False)))
    return out


@dataclass
class LayerFit:
    """One layer's cross-validated ridge fits for every column of y."""

    oof: np.ndarray    # [n, m] out-of-fold predictions
    inner: np.ndarray  # [K, m] inner (leave-one-out) mean squared error at the chosen penalty
    alpha: np.ndarray  # [K, m] the chosen penalty a


def _scales(var: np.ndarray) -> np.ndarray:
    """1 / sd per feature; 0 for (numerically) constant features, which then drop out."""
    sd = np.sqrt(np.maximum(var, 0))
    return np.where(sd > 1e-6 * max(float(sd.max(initial=0)), 1e-30), 1 / np.where(sd > 0, sd, 1), 0.0)


def fit_layer(x: np.ndarray, y: np.ndarray, folds: np.ndarray, loo: list[np.ndarray],
              grid: np.ndarray = GRID) -> LayerFit:
    """Cross-validated ridge from features x [n, dims] to every column of y [n, m] (module docstring):
    outer folds `folds`, penalty chosen per fold and column by leave-one-out over the rows `loo[k]`."""
    n, dims = x.shape
    y = np.asarray(y, np.float64).reshape(n, -1)
    m, K = y.shape[1], int(folds.max()) + 1
    dt = np.float64 if dims <= FLOAT64_DIMS else np.float32
    order = np.argsort(folds, kind="stable")  # rows grouped by fold: every fold a contiguous slice (no copies)
    where = np.empty(n, int)
    where[order] = np.arange(n)
    x = np.array(x, dt)[order]
    x -= x.mean(axis=0)  # a shift for numerical accuracy only: each fold re-centres on its training rows
    y = y[order]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(folds, minlength=K))])
    members = [slice(bounds[k], bounds[k + 1]) for k in range(K)]
    primal = [n - (bounds[k + 1] - bounds[k]) >= dims for k in range(K)]
    if any(primal):  # per-fold sums: a training fold's Gram matrix is the total minus its test fold's
        grams = [x[te].T @ x[te] for te in members]
        sums = [x[te].sum(axis=0, dtype=np.float64) for te in members]
        cross = [(x[te].T @ y[te].astype(dt)).astype(np.float64) for te in members]
        gram_all, sum_all, cross_all = sum(grams), sum(sums), sum(cross)
    oof, inner, alpha = np.empty((n, m)), np.empty((K, m)), np.empty((K, m))
    for k, te in enumerate(members):
        train = np.concatenate([np.arange(bounds[j], bounds[j + 1]) for j in range(K) if j != k])
        rows = where[loo[k]]  # the LOO rows in the sorted order
        n_t = len(train)
        ybar = y[train].mean(axis=0)
        if primal[k]:
            s = sum_all - sums[k]
            mu = s / n_t
            c = (gram_all - grams[k]).astype(np.float64) - n_t * np.outer(mu, mu)
            inv = _scales(np.diag(c) / n_t)
            lam, vec = linalg.eigh((c * inv[:, None] * inv[None, :]).astype(dt), check_finite=False, driver="evd")
            lam = np.maximum(lam.astype(np.float64), 0)
            coords = vec.T @ (inv[:, None] * (cross_all - cross[k] - np.outer(s, ybar))).astype(dt)
            mu_d, inv_d = mu.astype(dt), inv.astype(dt)
            z_loo = ((x[rows] - mu_d) * inv_d) @ vec

            def predict(coef, te=te, vec=vec, mu_d=mu_d, inv_d=inv_d):
                return ((x[te] - mu_d) * inv_d) @ (vec @ coef)
        else:
            mu = x[train].mean(axis=0)
            inv = _scales(x[train].var(axis=0).astype(np.float64)).astype(dt)
            xs = (x[train] - mu) * inv
            lam, u = linalg.eigh(xs @ xs.T, check_finite=False, driver="evd")
            keep = lam > max(float(lam.max(initial=0)), 1e-30) * n_t * np.finfo(dt).eps
            lam, u = lam[keep].astype(np.float64), u[:, keep]
            root = np.sqrt(lam).astype(dt)
            coords = root[:, None] * (u.T @ (y[train] - ybar).astype(dt))
            z_loo = (u * root)[np.searchsorted(train, rows)]

            def predict(coef, te=te, mu=mu, inv=inv, xs=xs, u=u, root=root):
                return (((x[te] - mu) * inv) @ xs.T) @ (u @ (coef / root[:, None]))
        alphas = np.asarray(grid) * n_t
        g = (1 / (lam[:, None] + alphas[None, :])).astype(dt)  # [r, A]
        h = 1 / n_t + (z_loo * z_loo) @ g  # [rows, A]
        # no components (every feature constant, e.g. the embedding of a fixed last token): ybar for all
        fitted = (z_loo @ (g[:, :, None] * coords[:, None, :]).reshape(len(lam), len(alphas) * m)).reshape(
            len(rows), len(alphas), m)
        err = ((y[rows] - ybar).astype(dt)[:, None, :] - fitted) / (1 - h)[:, :, None]
        mse = np.mean(np.square(err, dtype=np.float64), axis=0)  # [A, m]
        best = np.argmin(mse, axis=0)
        inner[k], alpha[k] = mse[best, np.arange(m)], alphas[best]
        oof[te] = np.asarray(predict(coords * g[:, best]), np.float64) + ybar
    return LayerFit(oof[where], inner, alpha)


def pearson_columns(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each column of pred with the same column of y (NaN where either is constant)."""
    a, b = pred - pred.mean(axis=0), y - y.mean(axis=0)
    den = np.sqrt((a ** 2).sum(axis=0) * (b ** 2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=0) / np.where(den > 0, den, 1), np.nan)


def r2_columns(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """R^2 = 1 - sum (y - pred)^2 / sum (y - mean y)^2 per column."""
    return 1 - ((y - pred) ** 2).sum(axis=0) / ((y - y.mean(axis=0)) ** 2).sum(axis=0)


def auroc_columns(score: np.ndarray, label: np.ndarray) -> np.ndarray:
    """AUROC of each score column for the 0/1 labels of the same column (Mann-Whitney: (rank sum of the
    positives - n1 (n1 + 1) / 2) / (n1 n0), ties at half credit); NaN without both classes."""
    ranks = sps.rankdata(score, axis=0)
    pos = label > 0.5
    n1 = pos.sum(axis=0)
    n0 = len(label) - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * pos).sum(axis=0) - n1 * (n1 + 1) / 2) / (n1 * n0)
    return np.where((n1 > 0) & (n0 > 0), auc, np.nan)


def _rng(seed: int, *keys: object) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32("|".join(map(str, keys)).encode())])


@dataclass(frozen=True)
class FileLayers:
    """layer(l) from a hidden-state file (float32 [len(rows) or items, hidden]); picklable, so layer fits
    can run in worker processes that each open the file's memory map."""

    path: Path
    rows: np.ndarray | None = None

    def __call__(self, index: int) -> np.ndarray:
        from jaxunc.hidden import read_hidden

        return read_hidden(self.path).layer(index, self.rows)


_WORKER: dict = {}


def _worker_init(layer, idx, y, fold, loo, grid) -> None:
    _WORKER.update(layer=layer, idx=idx, y=y, fold=fold, loo=loo, grid=grid,
                   blas=threadpool_limits(limits=1, user_api="blas"))  # kept: single-threaded for the worker's life


def _worker_fit(index: int) -> LayerFit:
    w = _WORKER
    x = np.asarray(w["layer"](index))
    return fit_layer(x[w["idx"]] if len(w["idx"]) != len(x) else x, w["y"], w["fold"], w["loo"], w["grid"])


@contextlib.contextmanager
def _layer_fits(layer, n_layers, idx, y, fold, loo, grid, workers):
    """An iterator of fit_layer for layers 0..n_layers-1 in order: worker processes for a FileLayers
    source, else threads (single-threaded BLAS while more than one runs)."""
    if workers > 1 and isinstance(layer, FileLayers):
        ctx = multiprocessing.get_context("spawn")  # never fork a process that may hold jax's threads
        with ProcessPoolExecutor(min(workers, n_layers), mp_context=ctx, initializer=_worker_init,
                                 initargs=(layer, idx, y, fold, loo, grid)) as pool:
            yield pool.map(_worker_fit, range(n_layers))
        return

    def one(l):
        x = np.asarray(layer(l))
        return fit_layer(x[idx] if len(idx) != len(x) else x, y, fold, loo, grid)

    # single-threaded BLAS while layers run in parallel threads (threaded BLAS inside threads thrashes)
    blas = threadpool_limits(limits=1 if workers > 1 else None, user_api="blas")
    with blas, ThreadPoolExecutor(max(1, workers)) as pool:
        yield pool.map(one, range(n_layers))


def _check_target(name: str, y: np.ndarray, folds: int) -> tuple[np.ndarray, str]:
    """(finite-row mask, '' or why the target is not probed)."""
    ok = np.isfinite(y)
    n = int(ok.sum())
    if n < 2 * folds:
        return ok, f"{n} items with a finite {name}, fewer than 2 x cv_folds = {2 * folds}"
    if np.ptp(y[ok]) == 0:
        return ok, f"{name} is constant over its {n} items"
    if name == BINARY and not np.isin(y[ok], (0, 1)).all():
        return ok, f"{name} must be 0/1"
    return ok, ""


def probe_layers(layer: Callable[[int], np.ndarray], n_layers: int, targets: dict[str, np.ndarray], *,
                 folds: int = 5, permutations: int = 50, seed: int = 0, loo_rows: int = 1000, workers: int = 1,
                 grid: np.ndarray = GRID, key: str = "") -> tuple[pd.DataFrame, list[str]]:
    """Probe every layer for every target (module docstring).

    layer(l) -> float32 [n, dims], the features of all n items at layer l (called once per layer and
    group of targets with the same finite rows); targets: name -> [n] values (NaN = missing; the name
    `correct` is treated as 0/1 and also scored by AUROC). Returns (rows of COLUMNS without dataset and
    model, messages about targets that were not probed).
    """
    notes: list[str] = []
    rows: list[dict] = []
    groups: dict[bytes, list[str]] = {}
    for name, y in targets.items():
        y = np.asarray(y, np.float64)
        ok, why = _check_target(name, y, folds)
        if why:
            notes.append(f"probes: {why}; not probed")
            rows.append(dict(layer=np.nan, target=name, n=int(ok.sum()), kind="layer", best=False, folds=folds,
                             permutations=permutations, note=why))
            continue
        groups.setdefault(ok.tobytes(), []).append(name)
    for mask_bytes, names in groups.items():
        idx = np.flatnonzero(np.frombuffer(mask_bytes, bool))
        rows += _probe_group(layer, n_layers, idx, {t: np.asarray(targets[t], np.float64)[idx] for t in names},
                             folds=folds, permutations=permutations, rng=_rng(seed, key, *names), loo_rows=loo_rows,
                             workers=workers, grid=grid)
    return pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("dataset", "model")]), notes


def _probe_group(layer, n_layers, idx, targets, *, folds, permutations, rng, loo_rows, workers, grid) -> list[dict]:
    """Every layer for targets sharing their finite rows idx: one fit per layer for all columns."""
    n, names = len(idx), list(targets)
    fold = make_folds(n, folds, rng)
    loo = loo_subsets(fold, loo_rows, rng)
    per = 1 + permutations  # column block of a target: the target, then its shuffles
    y = np.column_stack([col for t in names for col in
                         [targets[t]] + [targets[t][rng.permutation(n)] for _ in range(permutations)]])
    binary = np.array([t == BINARY for t in names for _ in range(per)])
    real = np.arange(len(names)) * per

    def scores(pred):
        r = pearson_columns(pred, y)
        auc = np.full(y.shape[1], np.nan)
        if binary.any():
            auc[binary] = auroc_columns(pred[:, binary], y[:, binary])
        return r, auc

    best_inner = np.full((folds, y.shape[1]), np.inf)
    chosen = np.zeros((folds, y.shape[1]), int)
    nested = np.zeros_like(y)
    out: list[dict] = []
    with _layer_fits(layer, n_layers, idx, y, fold, loo, grid, workers) as fits:
        for l, fit in enumerate(fits):
            r, auc = scores(fit.oof)
            better = fit.inner < best_inner  # strict: ties keep the earlier layer
            best_inner = np.where(better, fit.inner, best_inner)
            chosen = np.where(better, l, chosen)
            nested = np.where(better[fold], fit.oof, nested)
            for j, t in enumerate(names):
                out.append(_row(l, t, n, fit.oof[:, real[j]], y[:, real[j]], r, auc, real[j], per, folds,
                                permutations, kind="layer", alpha=fit.alpha[:, real[j]]))
    r, auc = scores(nested)
    for j, t in enumerate(names):
        picks = chosen[:, real[j]]
        mode = int(np.bincount(picks).argmax())
        for row in out:
            if row["target"] == t:
                row["best"] = row["layer"] == mode
        out.append(_row(mode, t, n, nested[:, real[j]], y[:, real[j]], r, auc, real[j], per, folds, permutations,
                        kind="nested_best", layers_chosen=";".join(map(str, picks))))
    return out


def _row(layer, target, n, pred, y, r, auc, col, per, folds, permutations, *, kind, alpha=None,
         layers_chosen="") -> dict:
    perm_r = r[col + 1: col + per]
    row = dict(layer=int(layer), target=target, n=n, r_oof=float(r[col]),
               rho_oof=float(sps.spearmanr(pred, y).statistic) if np.ptp(pred) > 0 else np.nan,
               r2_oof=float(r2_columns(pred[:, None], y[:, None])[0]),
               perm_r95=float(np.percentile(perm_r, 95)) if len(perm_r) else np.nan,
               p_perm=float((1 + np.sum(perm_r >= r[col])) / (1 + len(perm_r))) if len(perm_r) else np.nan,
               auroc_oof=float(auc[col]), best=kind == "nested_best", kind=kind,
               perm_auroc95=float(np.nanpercentile(auc[col + 1: col + per], 95)) if target == BINARY and len(perm_r)
               else np.nan,
               alpha_median=float(np.median(alpha)) if alpha is not None else np.nan,
               layers_chosen=layers_chosen, folds=folds, permutations=permutations, note="")
    return row


def probes_table(df: pd.DataFrame, hidden, cfg=None) -> tuple[pd.DataFrame, list[str]]:
    """probes.csv rows of one per-item table and its hidden-state file (jaxunc.hidden.HiddenStates or a
    path), rows matched on item_id; targets: the human signals of tables.target_columns and correctness.
    ValueError naming the file when some of the table's items have no hidden state."""
    from jaxunc.hidden import read_hidden
    from jaxunc.stats import tables as T
    from jaxunc.stats.config import AnalysisConfig

    cfg = AnalysisConfig.from_any(cfg)
    hidden = read_hidden(hidden) if not hasattr(hidden, "layer") else hidden
    if "item_id" not in df.columns:
        raise ValueError(f"{hidden.path}: the table has no item_id column to match its rows to the hidden states")
    where = {str(i): k for k, i in enumerate(hidden.item_ids)}
    ids = df["item_id"].astype(str).tolist()
    missing = [i for i in ids if i not in where]
    if missing:
        raise ValueError(f"{hidden.path}: {len(missing)} of the table's {len(ids)} items have no hidden state "
                         f"(first: {missing[0]}); rerun the model with --config.analysis.probes=True")
    rows = np.array([where[i] for i in ids])
    targets = {t: pd.to_numeric(df[t], errors="coerce").to_numpy(float) for t in T.target_columns(df)}
    targets[BINARY] = T.correct_mc(df)
    dataset, model = str(df["dataset"].iloc[0]), str(df["model"].iloc[0])
    same = len(rows) == hidden.n_items and np.array_equal(rows, np.arange(len(rows)))
    table, notes = probe_layers(FileLayers(Path(hidden.path), None if same else rows), hidden.n_layers, targets,
                                folds=cfg.cv_folds, permutations=cfg.probe_permutations, seed=cfg.seed,
                                loo_rows=cfg.probe_loo_rows, workers=cfg.probe_workers, key=f"{dataset}|{model}")
    table.insert(0, "model", model)
    table.insert(0, "dataset", dataset)
    return table, [f"{dataset}/{model}: {m}" for m in notes]
