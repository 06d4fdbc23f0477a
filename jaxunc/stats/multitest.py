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
