"""Multiple-comparison adjustments over a family of p-values (NaN p-values are left out)."""

from __future__ import annotations

import numpy as np
from scipy import stats


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (scipy.stats.false_discovery_control); NaN stays NaN."""
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok], method="bh")
    return q


def bonferroni(p: np.ndarray, m: int | None = None) -> np.ndarray:
    """min(1, p * m), m = number of finite p-values unless given."""
    p = np.asarray(p, dtype=float)
    m = int(np.isfinite(p).sum()) if m is None else m
    return np.minimum(1.0, p * m)


def adjust(p: np.ndarray, method: str) -> np.ndarray:
    """'bh' or 'bonferroni'."""
    if method == "bh":
        return bh_qvalues(p)
    if method == "bonferroni":
        return bonferroni(p)
    raise ValueError(f"correction must be 'bh' or 'bonferroni', got {method!r}")


METHOD_NAMES = {"bh": "benjamini_hochberg", "bonferroni": "bonferroni"}


def family_qvalues(table, p_to_q: dict[str, str], correction: str, pooled_keys: list[str],
                   group_keys: list[str], pooled_what: str, group_what: str, labels: dict[str, str] | None = None):
    """q-values per family of tests, and the family named in `q_family`.

    Pooled rows (tables.is_pooled) form families by `pooled_keys`, group rows (stats/groups.py) by
    `group_keys`; each p column of `p_to_q` is adjusted within each family ('bh' or 'bonferroni'), NaN
    p-values are left out. q_family reads e.g. 'dataset=mmlu x model=M x group_by=subject x method=spearman:
    all groups, measures and targets (1140 tests)'. `labels` renames key columns in that text.
    """
    from jaxunc.stats.tables import is_pooled
    table = table.copy()
    table["q_method"] = METHOD_NAMES[correction]
    for q in p_to_q.values():
        table[q] = np.nan
    table["q_family"] = ""
    if table.empty:
        return table
    pooled = is_pooled(table)
    labels = labels or {}
    for mask, keys, what in ((pooled, pooled_keys, pooled_what), (~pooled, group_keys, group_what)):
        sub = table[mask]
        if sub.empty:
            continue
        for key, idx in sub.groupby(keys, dropna=False, sort=False).groups.items():
            key = key if isinstance(key, tuple) else (key,)
            counts = []
            for p_col, q_col in p_to_q.items():
                p = table.loc[idx, p_col].to_numpy(dtype=float)
                table.loc[idx, q_col] = adjust(p, correction)
                counts.append(f"{p_col}: {int(np.isfinite(p).sum())} tests" if len(p_to_q) > 1
                              else f"{int(np.isfinite(p).sum())} tests")
            name = " x ".join(f"{labels.get(k, k)}={v}" for k, v in zip(keys, key))
            table.loc[idx, "q_family"] = f"{name}: {what} ({'; '.join(counts)})"
    return table
