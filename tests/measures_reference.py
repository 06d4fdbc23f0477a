"""Independent float64 numpy reference of docs/measures.md sections 1 and 2 (full sort, plain loops).

Written from the spec text only, for tests: one distribution at a time, no cleverness.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp

# Tolerances of the float32 implementation against this reference (measured values in brackets).
ENT_ATOL = 1e-5  # normalised entropies and log-probabilities (measured <= 4e-7)
VAR_RTOL = 1e-5  # var-ent (measured <= 1e-6 relative)
SLACK_DELTA = 1e-5  # nucleus size may differ by the number of float64 cumulative sums within this of p

TINY32 = float(np.finfo(np.float32).tiny)


def entropy(q: np.ndarray) -> float:
    q = q[q > 0]
    return float(-np.sum(q * np.log(q)))


def distribution(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p, ln p) in float64."""
    z = np.asarray(logits, np.float64)
    logp = z - logsumexp(z)
    return np.exp(logp), logp


def nucleus_size(p_sorted: np.ndarray, top_p: float, exclusive: bool = False) -> int:
    """Inclusive: #{i : sum_{j<i} p(j) < top_p}; exclusive (2025): #{i : sum_{j<=i} p(j) <= top_p}."""
    n, before = 0, 0.0
    for value in p_sorted:
        after = before + value
        if (after <= top_p) if exclusive else (before < top_p):
            n += 1
        else:
            break
        before = after
    return n


def vocab_measures(logits: np.ndarray, top_k=(5, 10, 25, 50, 100), top_p=(0.95, 0.9, 0.75, 0.5),
                   exclusive: bool = False) -> dict[str, float]:
    """Section-1 vocabulary measures of one logit vector, keyed by base name."""
    p, logp = distribution(logits)
    vocab = len(p)
    h = entropy(p)
    nz = p > 0
    out = {"total-ent": h / math.log(vocab) if vocab > 1 else 0.0,
           "var-ent": float(np.sum(p[nz] * (-logp[nz] - h) ** 2)),
           "top-1-prob": float(np.max(logp))}
    p_sorted = np.sort(p)[::-1]
    for k in top_k:
        head = p_sorted[:k]
        out[f"top-k-ent-{k}"] = entropy(head / head.sum()) / math.log(k) if k > 1 else 0.0
    for tp in top_p:
        n = nucleus_size(p_sorted, tp, exclusive)
        out[f"top-p-len-{tp}"] = n
        if n == 0:
            out[f"top-p-ent-{tp}"] = 1.0
        elif n == 1:
            out[f"top-p-ent-{tp}"] = 0.0
        else:
            head = p_sorted[:n]
            out[f"top-p-ent-{tp}"] = entropy(head / head.sum()) / math.log(n)
        out[f"top-p-h-{tp}"] = entropy(p_sorted[:n] / p_sorted[:n].sum()) if n > 1 else 0.0
    return out


def choice_measures(logits: np.ndarray, variant_ids: list[list[int]]) -> dict[str, float | np.ndarray]:
    """Option measures; variant_ids[j] = ids of option j (padding already removed)."""
    p, _ = distribution(logits)
    probs = np.array([sum(p[v] for v in set(ids)) for ids in variant_ids])  # P_j, duplicates once
    n = len(probs)
    with np.errstate(divide="ignore"):
        l = np.log(probs)
    q = probs / probs.sum()
    ordered = np.sort(probs)[::-1]
    second = ordered[1] if n > 1 else 0.0
    q_sorted = np.sort(q)[::-1]
    return {
        "choice-pdf": l,
        "choice-ent": entropy(q) / math.log(n) if n > 1 else 0.0,
        "choice-prob": float(np.max(l)),
        "choice-prob-renorm": float(np.max(q)),
        "choice-mass": float(np.log(probs.sum())),
        "choice-margin": float(np.log(max(ordered[0] - second, TINY32))),
        "choice-margin-renorm": float(q_sorted[0] - (q_sorted[1] if n > 1 else 0.0)),
        "cloze_pred": int(np.argmax(probs)),
    }


def sequence_measures(logits: np.ndarray, mask: np.ndarray, top_k=(5, 10, 25, 50, 100),
                      top_p=(0.95, 0.9, 0.75, 0.5)) -> dict[str, float]:
    """Section-2 measures of one sequence: logits [T, V], mask [T] (0/1)."""
    steps = [vocab_measures(z, top_k, top_p) for z in logits]
    used = [s for s, m in zip(steps, mask) if m]
    names = ["total-ent", "first-token-ent", "var-ent"] + [f"top-k-ent-{k}" for k in top_k]
    names += [f"top-p-len-{p}" for p in top_p] + [f"top-p-ent-{p}" for p in top_p] + ["ppl"]
    if not used:
        return {name: float("nan") for name in names}
    out = {"total-ent": np.mean([s["total-ent"] for s in used]),
           "first-token-ent": used[0]["total-ent"],
           "var-ent": np.mean([s["var-ent"] for s in used])}
    for k in top_k:
        out[f"top-k-ent-{k}"] = np.mean([s[f"top-k-ent-{k}"] for s in used])
    for tp in top_p:
        out[f"top-p-len-{tp}"] = np.mean([s[f"top-p-len-{tp}"] for s in used])
        multi = [s for s in used if s[f"top-p-len-{tp}"] > 1]
        den = sum(math.log(s[f"top-p-len-{tp}"]) for s in multi)
        out[f"top-p-ent-{tp}"] = sum(s[f"top-p-h-{tp}"] for s in multi) / den if den > 0 else 0.0
    out["ppl"] = math.exp(np.mean([-s["top-1-prob"] for s in used]))
    return {name: float(out[name]) for name in names}


def boundary_slack(logits: np.ndarray, top_p: float, delta: float) -> int:
    """Number of sorted positions i whose cumulative sum S_i lies within delta of top_p.

    A float32 implementation may legitimately differ from the float64 nucleus size by at most this.
    """
    p, _ = distribution(logits)
    cum = np.cumsum(np.sort(p)[::-1])
    return int(np.sum(np.abs(cum - top_p) <= delta))
