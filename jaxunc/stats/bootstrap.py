"""Vectorised item bootstrap shared across measures.

A resample of N items is stored as a count matrix c[B, N] (how often each item was drawn). Every
statistic is computed as a weighted statistic of the original items with weights c, which equals
the statistic on the explicitly resampled array (tests check this against explicit resampling):

- ranks of a column within resample b: for the sorted tie-groups g of the column,
  rank_g = (sum of counts of the groups below g) + (count of g + 1) / 2 (average ranks for ties);
- Pearson between columns with weights c; Spearman = Pearson of those ranks.

One count matrix serves all measures of a table (the resampled index matrix is shared), and ranks
are computed once per resample and column. Percentile intervals (method name 'percentile').
"""

from __future__ import annotations

import numpy as np

CI_METHOD = "percentile"


def count_matrix(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """c[B, n] float64: counts of each item among n draws with replacement, per resample."""
    idx = rng.integers(0, n, size=(n_boot, n))
    flat = idx + n * np.arange(n_boot)[:, None]
    return np.bincount(flat.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def rank_plan(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort order of x and the start flags of its tie groups (computed once per column)."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    return order, np.r_[True, xs[1:] != xs[:-1]]


def weighted_ranks(x: np.ndarray, counts: np.ndarray, plan: tuple | None = None) -> np.ndarray:
    """Average ranks [B, n] of the items of x (no NaN) in each resample given by counts [B, n]."""
    order, new_group = plan if plan is not None else rank_plan(x)
    cs = counts[:, order]
    ranks = np.empty_like(counts)
    if new_group.all():  # no ties: each item is its own group
        grank = np.cumsum(cs, axis=1)
        grank -= (cs - 1.0) / 2.0
        ranks[:, order] = grank
        return ranks
    gc = np.add.reduceat(cs, np.flatnonzero(new_group), axis=1)  # [B, G]
    grank = np.cumsum(gc, axis=1) - (gc - 1.0) / 2.0
    ranks[:, order] = grank[:, np.cumsum(new_group) - 1]
    return ranks


def chunk_size(n: int, k: int, n_boot: int, budget: float = 1.2e7) -> int:
    """Resamples per chunk so that a [chunk, n, k] float64 array stays near budget elements."""
    return int(max(1, min(n_boot, budget // max(1, n * k))))


def weighted_cross_corr(a: np.ndarray, b: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Weighted Pearson correlations [B, K, T] between the columns of a and of b.

    a [B, n, K] or [n, K], b [B, n, T] or [n, T], weights w = counts / n [B, n]:
    r_kl = (E_w[a_k b_l] - E_w[a_k] E_w[b_l]) / sqrt(Var_w(a_k) Var_w(b_l)) (moments with weights w;
    centre the columns beforehand for accuracy). Constant columns give NaN.
    """
    w = counts / counts.sum(axis=1, keepdims=True)  # [B, n]

    def moments(x):
        if x.ndim == 2:  # shared columns: E_w[x] and E_w[x^2] are plain matrix products
            return w @ x, w @ (x * x), None
        wx = x * w[:, :, None]
        return np.einsum("bnk->bk", wx), np.einsum("bnk,bnk->bk", wx, x), wx

    ma, sa, wa = moments(a)
    mb, sb, _ = moments(b)
    if a.ndim == 2 and b.ndim == 2:
        cross = (w @ (a[:, :, None] * b[:, None, :]).reshape(len(a), -1)).reshape(len(w), a.shape[1], b.shape[1])
    elif wa is not None:
        cross = np.matmul(wa.transpose(0, 2, 1), b if b.ndim == 3 else b[None])
    else:
        cross = np.matmul((a[None] * w[:, :, None]).transpose(0, 2, 1), b)
    va, vb = sa - ma**2, sb - mb**2
    va[va <= 1e-12 * np.maximum(1.0, sa)] = np.nan
    vb[vb <= 1e-12 * np.maximum(1.0, sb)] = np.nan
    cov = cross - ma[:, :, None] * mb[:, None, :]
    return cov / np.sqrt(va)[:, :, None] / np.sqrt(vb)[:, None, :]


def partial_from_corr(r_xy: np.ndarray, r_xz: np.ndarray, r_yz: np.ndarray) -> np.ndarray:
    """First-order partial correlation (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2)).

    Equal to the correlation of the residuals of x and y after a linear regression on z.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        return (r_xy - r_xz * r_yz) / np.sqrt((1 - r_xz**2) * (1 - r_yz**2))


def percentile_ci(samples: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along axis 0, ignoring NaN resamples (NaN when all are NaN)."""
    alpha = (1 - level) / 2
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(samples).any(axis=0)
        lo = np.full(samples.shape[1:], np.nan)
        hi = np.full(samples.shape[1:], np.nan)
        if ok.any():
            q = np.nanquantile(samples[:, ok], [alpha, 1 - alpha], axis=0)
            lo[ok], hi[ok] = q[0], q[1]
    return lo, hi


def centred_ranks(plans: list[tuple], counts: np.ndarray) -> np.ndarray:
    """Ranks [B, K, n] of K columns (given by their rank plans) minus (n + 1) / 2.

    (n + 1) / 2 is the weighted mean rank of every resample, so the result has weighted mean 0.
    Layout [B, K, n] keeps each column contiguous.
    """
    n = counts.shape[1]
    out = np.empty((counts.shape[0], len(plans), n))
    for k, plan in enumerate(plans):
        out[:, k, :] = weighted_ranks(None, counts, plan)
    out -= (n + 1) / 2.0
    return out


def centred_corr(r: np.ndarray, cols: list[int] | slice, counts: np.ndarray) -> np.ndarray:
    """Weighted correlations [B, K, L] between all columns of r [B, K, n] (weighted mean 0 per
    resample, e.g. centred_ranks) and its columns `cols`: sum w r_k r_l / sqrt(sum w r_k^2 sum w r_l^2)."""
    w = counts / counts.sum(axis=1, keepdims=True)
    small = r[:, cols, :] * w[:, None, :]  # weights on the small side
    cross = np.matmul(r, small.transpose(0, 2, 1))
    var = np.matmul(np.square(r), w[:, :, None])[:, :, 0]
    var[var <= 0] = np.nan  # constant column within the resample
    return cross / np.sqrt(var)[:, :, None] / np.sqrt(var[:, cols])[:, None, :]


def bootstrap_corr(x: np.ndarray, y: np.ndarray, z: np.ndarray | None, n_boot: int,
                   rng: np.random.Generator, rank: bool = True,
                   chunk: int | None = None) -> dict[str, np.ndarray]:
    """Bootstrap samples [B, m, t] of Pearson, Spearman and (if z given) partial Spearman.

    x [n, m] measures and y [n, t] targets (no NaN), z [n] covariate (number of options). All
    columns share each resample's count vector; ranks are computed once per resample and column.
    """
    y = y.reshape(len(y), -1)
    n, m = x.shape
    t = y.shape[1]
    cols = np.column_stack([x, y] + ([z] if z is not None else []))
    # centre and scale on the full sample: better conditioned weighted moments
    sd = cols.std(axis=0)
    cols = (cols - cols.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    keys = ["pearson"] + (["spearman"] if rank else []) + (["partial_spearman"] if rank and z is not None else [])
    out = {k: np.empty((n_boot, m, t)) for k in keys}
    plans = [rank_plan(cols[:, k]) for k in range(cols.shape[1])] if rank else []
    chunk = chunk or chunk_size(n, cols.shape[1], n_boot)
    for start in range(0, n_boot, chunk):
        c = count_matrix(n, min(chunk, n_boot - start), rng)
        sl = slice(start, start + c.shape[0])
        out["pearson"][sl] = weighted_cross_corr(cols[:, :m], cols[:, m : m + t], c)
        if not rank:
            continue
        rs = centred_corr(centred_ranks(plans, c), slice(m, cols.shape[1]), c)  # [B, K, t (+1)]
        out["spearman"][sl] = rs[:, :m, :t]
        if z is not None:
            out["partial_spearman"][sl] = partial_from_corr(
                rs[:, :m, :t], rs[:, :m, t][:, :, None], rs[:, m : m + t, t][:, None, :])
    return out
