"""Uncertainty measures of docs/measures.md sections 1 and 2 as pure jax functions.

All arithmetic is float32 in log space: log-probabilities come from ``log_softmax``, sums of
probabilities of option variants from ``logsumexp``, and ``0 ln 0 = 0`` is enforced by masking terms
whose probability is zero, and log-probability outputs are floored at LOG_TINY, so every output is
finite for finite or ``-inf`` (masked) logits, provided each row has at least one finite logit
(choice-pdf keeps -inf for absent options j >= n). H(q) = -sum_i q_i ln q_i (natural logs).

Cost per row: one ``lax.top_k`` of the vocabulary (k = max(top_k)), shared by the top-k entropies
and every nucleus that ends within those k tokens (read off their cumulative sums). Only when some
row's nucleus is longer (lax.cond) does an exact, sort-free search run over the whole vocabulary:
a radix select of the float32 bit pattern of a probability threshold tau (three scatter-add
histograms of 11 + 10 + 10 bits, p, 1 and p ln p summed per bin; bench/bench_measures.py compares it
with the earlier bisection, which needed ~27 masked reductions per p). The inclusive nucleus
{i : sum_{j<i} p(j) < p} is the set of tokens with p > tau plus the first ceil((p - M)/tau) of the
tokens tied at tau (M = mass strictly above tau), so its size, mass and entropy do not depend on the
order among tied tokens. Nucleus sizes equal the float64 sorted-cumsum definition except where a
cumulative sum lies within float32 rounding of p. (XLA:CPU note: slicing one top_k result several
ways makes it fall back to a full sort, so positions >= k are masked instead.)

Public functions: `next_token_measures` (section 1), `step_statistics` and `reduce_step_statistics`
(section 2 inside a decode loop), `sequence_measures` (section 2 on full logits).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxunc import columns

NUCLEUS_OPTIONS: tuple[str, ...] = ("inclusive", "exclusive2025")
# ln of the smallest positive normal float32: the floor of `choice-margin` (ties give this, not -inf).
LOG_TINY: float = float(np.log(np.finfo(np.float32).tiny))

_F32 = jnp.float32


# --------------------------------------------------------------------------------------------------
# validation (static shape/dtype checks always; value checks only for concrete arrays)


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_options(top_k, top_p, nucleus) -> tuple[tuple[int, ...], tuple[float, ...]]:
    top_k = tuple(top_k)
    top_p = tuple(top_p)
    if not top_k or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in top_k):
        raise ValueError(f"top_k: expected a non-empty sequence of positive ints, got {top_k!r}")
    if not top_p or any(not isinstance(p, (int, float, np.floating)) or not 0.0 < p < 1.0 for p in top_p):
        raise ValueError(f"top_p: expected a non-empty sequence of floats in (0, 1), got {top_p!r}")
    if nucleus not in NUCLEUS_OPTIONS:
        raise ValueError(f"nucleus: expected one of {NUCLEUS_OPTIONS}, got {nucleus!r}")
    return tuple(int(k) for k in top_k), tuple(float(p) for p in top_p)


def _check_logits(logits, rank: int, name: str = "logits") -> None:
    shape = "[B, V]" if rank == 2 else "[B, T, V]"
    if not hasattr(logits, "shape") or not hasattr(logits, "dtype"):
        raise ValueError(f"{name}: expected an array of shape {shape}, got {type(logits).__name__}")
    if logits.ndim != rank:
        raise ValueError(f"{name}: expected rank {rank} {shape}, got shape {tuple(logits.shape)}")
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise ValueError(f"{name}: expected a floating dtype, got {logits.dtype}")
    if logits.shape[-1] < 1 or logits.shape[0] < 1 or (rank == 3 and logits.shape[1] < 1):
        raise ValueError(f"{name}: expected non-empty dimensions {shape}, got shape {tuple(logits.shape)}")
    if _is_concrete(logits):
        bad_value, empty_row = (bool(x) for x in _logit_problems(jnp.asarray(logits)))
        if bad_value:
            raise ValueError(f"{name}: expected finite or -inf values, found NaN or +inf")
        if empty_row:
            raise ValueError(f"{name}: every row needs at least one finite logit (a row is all -inf)")


@jax.jit
def _logit_problems(z):
    return jnp.any(jnp.isnan(z) | (z == jnp.inf)), jnp.any(jnp.all(z == -jnp.inf, axis=-1))


def _check_choices(choice_ids, n_choices, batch: int, vocab: int):
    if choice_ids is None:
        if n_choices is not None:
            raise ValueError("n_choices: given without choice_ids; pass choice_ids [B, O, K] too")
        return None, None
    if not hasattr(choice_ids, "ndim") or choice_ids.ndim != 3:
        raise ValueError(f"choice_ids: expected an int array [B, O, K], got shape {getattr(choice_ids, 'shape', None)}")
    if not jnp.issubdtype(choice_ids.dtype, jnp.integer):
        raise ValueError(f"choice_ids: expected an integer dtype, got {choice_ids.dtype}")
    b, n_opt, n_var = choice_ids.shape
    if b != batch:
        raise ValueError(f"choice_ids: batch size {b} does not match logits batch size {batch}")
    if n_opt < 1 or n_var < 1:
        raise ValueError(f"choice_ids: expected O >= 1 options and K >= 1 variants, got shape {choice_ids.shape}")
    if n_choices is None:
        n_choices = jnp.full((batch,), n_opt, jnp.int32)
    if not hasattr(n_choices, "ndim") or n_choices.ndim != 1:
        raise ValueError(f"n_choices: expected an int array [B], got shape {getattr(n_choices, 'shape', None)}")
    if not jnp.issubdtype(n_choices.dtype, jnp.integer):
        raise ValueError(f"n_choices: expected an integer dtype, got {n_choices.dtype}")
    if n_choices.shape[0] != batch:
        raise ValueError(f"n_choices: batch size {n_choices.shape[0]} does not match choice_ids/logits batch size {batch}")
    if _is_concrete(choice_ids):
        ids = np.asarray(choice_ids)
        bad = (ids < -1) | (ids >= vocab)
        if bad.any():
            row, opt, var = np.argwhere(bad)[0]
            raise ValueError(
                f"choice_ids: expected ids in [-1, {vocab}) (-1 = padding), got {ids[row, opt, var]} "
                f"at row {row}, option {opt}, variant {var}")
        if _is_concrete(n_choices):
            n = np.asarray(n_choices)
            if ((n < 1) | (n > n_opt)).any():
                row = int(np.argmax((n < 1) | (n > n_opt)))
                raise ValueError(f"n_choices: expected 1 <= n <= O = {n_opt}, got {n[row]} at row {row}")
            empty = ~(ids >= 0).any(axis=-1) & (np.arange(n_opt)[None, :] < n[:, None])
            if empty.any():
                row, opt = np.argwhere(empty)[0]
                raise ValueError(f"choice_ids: option {opt} of row {row} is present (< n_choices) but has no variant id")
    elif _is_concrete(n_choices):
        n = np.asarray(n_choices)
        if ((n < 1) | (n > n_opt)).any():
            raise ValueError(f"n_choices: expected 1 <= n <= O = {n_opt}, got {n.min()}..{n.max()}")
    return jnp.asarray(choice_ids, jnp.int32), jnp.asarray(n_choices, jnp.int32)


# --------------------------------------------------------------------------------------------------
# private helpers (all operate on float32 log-probabilities, last axis = distribution)


def _plogp(logp: jax.Array) -> jax.Array:
    """Terms p ln p with 0 ln 0 = 0 (also for -inf log-probabilities)."""
    p = jnp.exp(logp)
    return jnp.where(p > 0, p * logp, 0.0)


def _entropy_from_logprobs(logp: jax.Array, axis: int = -1) -> jax.Array:
    """H = -sum_i p_i ln p_i for normalised log-probabilities."""
    return -jnp.sum(_plogp(logp), axis=axis)


def _varentropy(logp: jax.Array, entropy: jax.Array) -> jax.Array:
    """sum_i p_i (-ln p_i - H)^2 (two-pass form, H given)."""
    p = jnp.exp(logp)
    dev = logp + entropy[..., None]
    return jnp.sum(jnp.where(p > 0, p * dev * dev, 0.0), axis=-1)


def _normalise(h: jax.Array, n) -> jax.Array:
    """h / ln n, and 0 where n <= 1."""
    n = jnp.asarray(n, _F32)
    return jnp.where(n > 1, h / jnp.log(jnp.maximum(n, 2.0)), 0.0)


def _top_values(logp: jax.Array, k_max: int) -> jax.Array:
    """The k_max largest log-probabilities per row, descending (one lax.top_k); -inf padded if V < k_max."""
    vocab = logp.shape[-1]
    top = lax.top_k(logp, min(k_max, vocab))[0]
    if vocab < k_max:
        top = jnp.pad(top, ((0, 0), (0, k_max - vocab)), constant_values=-jnp.inf)
    return top


def _top_k_entropies(top: jax.Array, top_k: tuple[int, ...]) -> list[jax.Array]:
    """For each k: q = p(1..k) renormalised, H(q) / ln k, from the sorted top log-probabilities.

    A vocabulary smaller than k counts as padded with zero-probability tokens. (Positions >= k are
    masked rather than sliced off: several slices of one top_k make XLA:CPU fall back to a full sort.)
    """
    position = jnp.arange(top.shape[-1])
    out = []
    for k in top_k:
        head = jnp.where(position < k, top, -jnp.inf)
        lq = head - jax.nn.logsumexp(head, axis=-1, keepdims=True)
        out.append(_normalise(_entropy_from_logprobs(lq), k))
    return out


def _size_and_entropy(size, total, total_plogp):
    """H = ln N - A / N of p renormalised on a nucleus of mass N, sum p ln p = A; 0 when size <= 1."""
    safe_total = jnp.where(total > 0, total, 1.0)
    ent = jnp.where(size > 1, jnp.log(safe_total) - total_plogp / safe_total, 0.0)
    return size, jnp.maximum(ent, 0.0)


def _nucleus_from_top(top: jax.Array, top_p: jax.Array, exclusive: bool):
    """Nucleus from the sorted top log-probabilities [B, K]; exact where `fits` (S_K >= p).

    Returns (fits, size, entropy), each [B, P]: n = #{i <= K : S_{i-1} < p} (S = cumulative sum).
    """
    top_prob = jnp.exp(top)
    cum = jnp.cumsum(top_prob, axis=-1)
    cum_plogp = jnp.cumsum(_plogp(top), axis=-1)
    before = cum - top_prob  # S_{i-1}
    size = jnp.sum(before[:, None, :] < top_p[None, :, None], axis=-1, dtype=jnp.int32)  # [B, P]
    fits = cum[:, -1:] >= top_p[None, :]
    if exclusive:
        through = jnp.take_along_axis(cum, jnp.maximum(size - 1, 0), axis=1)
        size = size - (through > top_p[None, :]).astype(jnp.int32)
    last = jnp.maximum(size - 1, 0)
    total = jnp.where(size > 0, jnp.take_along_axis(cum, last, axis=1), 0.0)
    total_plogp = jnp.where(size > 0, jnp.take_along_axis(cum_plogp, last, axis=1), 0.0)
    return (fits,) + _size_and_entropy(size, total, total_plogp)


# Radix levels of the int32 bit pattern of a probability (non-negative floats order as their bits):
# (shift, bits) of the digit read at each level, most significant first; 11 + 10 + 10 = 31 bits.
_RADIX_LEVELS: tuple[tuple[int, int], ...] = ((20, 11), (10, 10), (0, 10))


def _radix_histogram(key, values, prefix, level: int):
    """Sums of `values` [3, B, V] per digit of `key` [B, V] at `level`, for the tokens whose higher
    digits equal prefix[b, j] (slot j, [B, P]); the first matching slot takes a token. -> [B, S, D, 3]
    (S = 1 slot without prefix at level 0, else P). One scatter-add whose window is the 3 values:
    ~40% faster on XLA:CPU than scattering [B*V, 3] rows (which adds a transposing copy)."""
    shift, bits = _RADIX_LEVELS[level]
    digits = 1 << bits
    digit = (key >> shift) & (digits - 1)
    if level == 0:
        slots, index = 1, digit
    else:
        slots = prefix.shape[1]
        high = key >> (shift + bits)
        index = jnp.full_like(key, slots * digits)  # the dump bin: tokens outside every slot
        for j in reversed(range(slots)):
            index = jnp.where(high == prefix[:, j:j + 1], j * digits + digit, index)
    batch, n_values = key.shape[0], values.shape[0]
    width = slots * digits + 1
    flat = (index + width * jnp.arange(batch, dtype=index.dtype)[:, None]).reshape(-1, 1)
    numbers = lax.ScatterDimensionNumbers(update_window_dims=(0,), inserted_window_dims=(1,),
                                          scatter_dims_to_operand_dims=(1,))
    hist = lax.scatter_add(jnp.zeros((n_values, batch * width), values.dtype), flat,
                           values.reshape(n_values, -1), numbers)
    hist = hist.reshape(n_values, batch, width)[:, :, :-1].reshape(n_values, batch, slots, digits)
    return jnp.moveaxis(hist, 0, -1)


def _nucleus_by_histogram(logp, prob, top_p, exclusive: bool):
    """Nucleus of every row over the whole vocabulary, exact and sort-free: radix select of tau.

    tau is the value of the crossing token: the smallest token probability t with
    M(t) = sum_v p_v [p_v > t] < p. Three passes of a histogram (scatter-add of p, 1 and p ln p per
    digit of the bit pattern of p, `_RADIX_LEVELS`) narrow the bit pattern of tau from its highest
    digit down; each pass picks, per row and p, the lowest bin with positive mass whose mass above
    (earlier passes + higher bins) is < p. The last pass's bins are single values, so it gives tau,
    the number r of tokens tied at tau and C/M/A, the count/mass/sum p ln p of the tokens above tau.
    Then n = C + k, k = min(r, max(1, ceil((p - M) / tau))); N = M + k tau; A_n = A + k tau ln tau.
    """
    key = lax.bitcast_convert_type(prob, jnp.int32)  # >= 0, monotone in p
    values = jnp.stack([prob, jnp.ones_like(prob), _plogp(logp)])  # [3, B, V]
    batch, n_p = prob.shape[0], top_p.shape[0]
    prefix = jnp.zeros((batch, n_p), jnp.int32)
    above = jnp.zeros((batch, n_p, 3), _F32)  # mass, count, sum p ln p above the current prefix
    slot = jnp.zeros((batch, n_p), jnp.int32)
    for level, (_, bits) in enumerate(_RADIX_LEVELS):
        hist = _radix_histogram(key, values, prefix, level)  # [B, S, D, 3]
        mine = jnp.take_along_axis(hist, slot[:, :, None, None], axis=1)  # [B, P, D, 3]
        # exclusive sums over the higher bins: E[d] = sum_{d' > d} hist[d'] (no cancellation)
        from_top = jnp.flip(jnp.cumsum(jnp.flip(mine, axis=2), axis=2), axis=2)
        higher = jnp.concatenate([from_top[:, :, 1:], jnp.zeros_like(from_top[:, :, :1])], axis=2)
        crossing = ((above[:, :, None, 0] + higher[..., 0] < top_p[None, :, None]) & (mine[..., 0] > 0))
        digit = jnp.argmax(crossing, axis=2).astype(jnp.int32)  # lowest such bin  [B, P]
        above = above + jnp.take_along_axis(higher, digit[:, :, None, None], axis=2)[:, :, 0]
        ties = jnp.take_along_axis(mine[..., 1], digit[:, :, None], axis=2)[:, :, 0]
        prefix = (prefix << bits) | digit
        # slot of each p at the next level: the first p with the same prefix
        same = prefix[:, :, None] == prefix[:, None, :]
        slot = jnp.argmax(same, axis=2).astype(jnp.int32)
    tau = lax.bitcast_convert_type(prefix, _F32)
    mass, count, plogp = above[..., 0], above[..., 1].astype(jnp.int32), above[..., 2]
    need = jnp.ceil((top_p[None, :] - mass) / tau)  # inf when tau underflows: take the whole block
    k = jnp.minimum(jnp.maximum(jnp.minimum(need, ties), 1.0), ties).astype(jnp.int32)
    if exclusive:
        k = k - (mass + k.astype(_F32) * tau > top_p[None, :]).astype(jnp.int32)
    kf = k.astype(_F32)
    log_tau = jnp.log(jnp.where(tau > 0, tau, 1.0))
    return _size_and_entropy(count + k, mass + kf * tau, plogp + jnp.where(kf > 0, kf * tau * log_tau, 0.0))


def _nucleus(logp: jax.Array, prob: jax.Array, top: jax.Array, top_p: tuple[float, ...],
             exclusive: bool) -> tuple[jax.Array, jax.Array]:
    """Nucleus size n [B, P] (int32) and entropy H of p renormalised on the nucleus [B, P].

    Inclusive (default): tokens i (sorted descending) with sum_{j<i} p(j) < p; n >= 1.
    Exclusive (2025 study): tokens with sum_{j<=i} p(j) <= p, i.e. the inclusive nucleus minus its
    crossing token when the cumulative mass through it exceeds p; n = 0 when p(1) > p.
    A nucleus within the top values is read off their cumulative sums; the whole-vocabulary pass
    (`_nucleus_by_histogram`) runs only when some row's nucleus is longer (lax.cond).
    """
    ps = jnp.asarray(top_p, _F32)
    fits, size, ent = _nucleus_from_top(top, ps, exclusive)

    def long_nucleus(_):
        long_size, long_ent = _nucleus_by_histogram(logp, prob, ps, exclusive)
        return jnp.where(fits, size, long_size), jnp.where(fits, ent, long_ent)

    return lax.cond(jnp.all(fits), lambda _: (size, ent), long_nucleus, None)


def _choice_logprobs(logp: jax.Array, choice_ids: jax.Array, n_choices: jax.Array) -> jax.Array:
    """l[b, j] = ln sum_{v in variants(j)} p_v (logsumexp; ids deduplicated, -1 ignored); -inf for j >= n."""
    batch, n_opt, n_var = choice_ids.shape
    valid = choice_ids >= 0
    same = (choice_ids[..., :, None] == choice_ids[..., None, :]) & valid[..., None, :]
    earlier = jnp.tril(jnp.ones((n_var, n_var), bool), k=-1)  # [i, j]: j before i
    keep = valid & ~jnp.any(same & earlier, axis=-1)
    ids = jnp.where(valid, choice_ids, 0).reshape(batch, n_opt * n_var)
    lp = jnp.take_along_axis(logp, ids, axis=1).reshape(batch, n_opt, n_var)
    l = jax.nn.logsumexp(jnp.where(keep, lp, -jnp.inf), axis=-1)
    present = jnp.arange(n_opt)[None, :] < n_choices[:, None]
    return jnp.where(present, l, -jnp.inf)


def _choice_measures(l: jax.Array, n_choices: jax.Array) -> dict[str, jax.Array]:
    """Section-1 option measures from l [B, O] (-inf = absent); keys are the base names + 'cloze_pred'.

    q = softmax(l); if every present option has probability 0, q is taken uniform over the n options.
    The log-probability outputs (choice-prob, choice-mass, choice-margin) are floored at LOG_TINY.
    """
    present = jnp.arange(l.shape[1])[None, :] < n_choices[:, None]
    n = n_choices.astype(_F32)
    mass = jax.nn.logsumexp(l, axis=-1)
    degenerate = ~jnp.isfinite(mass)
    lq = jnp.where(degenerate[:, None], jnp.where(present, -jnp.log(n)[:, None], -jnp.inf),
                   l - jnp.where(degenerate, 0.0, mass)[:, None])
    if l.shape[1] >= 2:
        top_l = lax.top_k(l, 2)[0]
        top_q = lax.top_k(lq, 2)[0]
    else:
        top_l = jnp.concatenate([l, jnp.full_like(l, -jnp.inf)], axis=1)
        top_q = jnp.concatenate([lq, jnp.full_like(lq, -jnp.inf)], axis=1)

    def log_gap(a, b):  # ln(e^a - e^b) for a >= b; -inf for a == b
        d = jnp.where(jnp.isfinite(a), b - a, -jnp.inf)
        return jnp.where(jnp.isfinite(a), a, -jnp.inf) + jnp.log(-jnp.expm1(d))

    return {
        "choice-ent": _normalise(_entropy_from_logprobs(lq), n),
        "choice-prob": jnp.maximum(top_l[:, 0], LOG_TINY),
        "choice-prob-renorm": jnp.exp(top_q[:, 0]),
        "choice-mass": jnp.maximum(mass, LOG_TINY),
        "choice-margin": jnp.maximum(log_gap(top_l[:, 0], top_l[:, 1]), LOG_TINY),
        "choice-margin-renorm": jnp.exp(top_q[:, 0]) * -jnp.expm1(top_q[:, 1] - top_q[:, 0]),
        "cloze_pred": jnp.argmax(l, axis=-1).astype(jnp.int32),
    }


# --------------------------------------------------------------------------------------------------
# step statistics (one distribution per row)


def _step_keys(top_k, top_p) -> list[str]:
    keys = ["total-ent", "var-ent"] + [f"top-k-ent-{k}" for k in top_k]
    keys += [f"top-p-len-{p}" for p in top_p] + [f"top-p-ent-{p}" for p in top_p]
    keys += [f"top-p-h-{p}" for p in top_p] + [f"top-p-lnlen-{p}" for p in top_p]
    return keys + ["top-1-prob", "neg-log-max-p"]


@functools.partial(jax.jit, static_argnames=("top_k", "top_p", "nucleus"))
def _step_statistics(logits, *, top_k, top_p, nucleus):
    logp = jax.nn.log_softmax(logits.astype(_F32), axis=-1)
    vocab = logp.shape[-1]
    prob = jnp.exp(logp)
    ent = _entropy_from_logprobs(logp)
    top = _top_values(logp, max(top_k))
    size, nuc_ent = _nucleus(logp, prob, top, top_p, exclusive=nucleus == "exclusive2025")
    log_max = jnp.max(logp, axis=-1)
    stats = {"total-ent": _normalise(ent, vocab), "var-ent": _varentropy(logp, ent)}
    for k, h in zip(top_k, _top_k_entropies(top, top_k)):
        stats[f"top-k-ent-{k}"] = h
    for i, p in enumerate(top_p):
        n = size[:, i]
        stats[f"top-p-len-{p}"] = n
        ent_p = _normalise(nuc_ent[:, i], n)
        stats[f"top-p-ent-{p}"] = jnp.where(n == 0, 1.0, ent_p) if nucleus == "exclusive2025" else ent_p
        stats[f"top-p-h-{p}"] = nuc_ent[:, i]
        stats[f"top-p-lnlen-{p}"] = jnp.log(jnp.maximum(n, 1).astype(_F32))
    stats["top-1-prob"] = log_max
    stats["neg-log-max-p"] = -log_max
    return stats


def step_statistics(logits, *, top_k: Sequence[int] = columns.TOP_K, top_p: Sequence[float] = columns.TOP_P,
                    nucleus: str = "inclusive") -> dict[str, jax.Array]:
    """Per-row scalars of one decode step (logits [B, V]) that section 2 aggregates; each [B].

    Keys: 'total-ent' H/ln V; 'var-ent' sum p (-ln p - H)^2; 'top-k-ent-{k}' H(top k renormalised)/ln k;
    'top-p-len-{p}' nucleus size n (int32); 'top-p-ent-{p}' H(nucleus)/ln n (0 if n = 1; 1 if n = 0,
    exclusive2025 only); 'top-p-h-{p}' unnormalised H(nucleus) (0 if n <= 1); 'top-p-lnlen-{p}' ln n
    (0 if n <= 1); 'top-1-prob' ln max p; 'neg-log-max-p' -ln max p. See `next_token_measures` for
    `nucleus`.
    """
    top_k, top_p = _check_options(top_k, top_p, nucleus)
    _check_logits(logits, 2)
    return _step_statistics(jnp.asarray(logits), top_k=top_k, top_p=top_p, nucleus=nucleus)


def _parse_stat_keys(stats: Mapping[str, jax.Array]) -> tuple[tuple[int, ...], tuple[float, ...]]:
    top_k = tuple(int(k[len("top-k-ent-"):]) for k in stats if k.startswith("top-k-ent-"))
    top_p = tuple(float(k[len("top-p-len-"):]) for k in stats if k.startswith("top-p-len-"))
    missing = [k for k in _step_keys(top_k, top_p) if k not in stats]
    if missing or not top_k or not top_p:
        raise ValueError(f"stats: expected the keys of step_statistics, missing {missing or 'top-k/top-p keys'}")
    return top_k, top_p


@jax.jit
def _reduce(stats, mask):
    top_k, top_p = _parse_stat_keys(stats)
    m = mask.astype(_F32)
    t_eff = jnp.sum(m, axis=1)
    empty = t_eff == 0
    denom = jnp.where(empty, 1.0, t_eff)

    def mean(x):
        return jnp.where(empty, jnp.nan, jnp.sum(m * x.astype(_F32), axis=1) / denom)

    first = jnp.argmax(m > 0, axis=1)
    first_ent = jnp.take_along_axis(stats["total-ent"].astype(_F32), first[:, None], axis=1)[:, 0]
    values = [mean(stats["total-ent"]), jnp.where(empty, jnp.nan, first_ent), mean(stats["var-ent"])]
    values += [mean(stats[f"top-k-ent-{k}"]) for k in top_k]
    values += [mean(stats[f"top-p-len-{p}"]) for p in top_p]
    for p in top_p:
        multi = m * (stats[f"top-p-len-{p}"] > 1)
        num = jnp.sum(multi * stats[f"top-p-h-{p}"], axis=1)
        den = jnp.sum(multi * stats[f"top-p-lnlen-{p}"], axis=1)
        ratio = jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)
        values.append(jnp.where(empty, jnp.nan, ratio))
    values.append(jnp.exp(mean(stats["neg-log-max-p"])))
    names = columns.sequence_names(top_k, top_p)
    assert len(names) == len(values)
    return dict(zip(names, values))


def reduce_step_statistics(stats: Mapping[str, jax.Array], mask, *, prefix: str = "fr_") -> dict[str, jax.Array]:
    """Section-2 aggregates from per-step tracks stats[key] [B, T] (keys of `step_statistics`), mask [B, T].

    With m_t the mask and T_eff = sum_t m_t: fr_total-ent, fr_var-ent, fr_top-k-ent-k, fr_top-p-len-p
    = (1/T_eff) sum_t m_t x_t; fr_first-token-ent = total-ent at the first step with m_t = 1;
    fr_top-p-ent-p = sum_t m_t [n_t>1] H(nucleus_t) / sum_t m_t [n_t>1] ln n_t (0 when the denominator
    is 0); fr_ppl = exp((1/T_eff) sum_t m_t (-ln max p_t)). Every aggregate of a row with T_eff = 0 is NaN.
    """
    if not isinstance(stats, Mapping) or not stats:
        raise ValueError("stats: expected a non-empty dict of [B, T] arrays from step_statistics")
    if not hasattr(mask, "ndim") or mask.ndim != 2:
        raise ValueError(f"mask: expected a [B, T] array, got shape {getattr(mask, 'shape', None)}")
    if not (jnp.issubdtype(mask.dtype, jnp.bool_) or jnp.issubdtype(mask.dtype, jnp.number)):
        raise ValueError(f"mask: expected a bool or numeric dtype, got {mask.dtype}")
    for key, value in stats.items():
        if getattr(value, "shape", None) != tuple(mask.shape):
            raise ValueError(f"stats[{key!r}]: expected shape {tuple(mask.shape)} (as mask), got {getattr(value, 'shape', None)}")
    _parse_stat_keys(stats)
    if _is_concrete(mask) and not np.isin(np.asarray(mask), (0, 1)).all():
        raise ValueError("mask: expected values 0/1 (or bool)")
    return {prefix + k: v for k, v in _reduce(dict(stats), jnp.asarray(mask)).items()}


@functools.partial(jax.jit, static_argnames=("top_k", "top_p", "nucleus"))
def _sequence_measures(logits, mask, *, top_k, top_p, nucleus):
    def step(carry, t):
        step_logits = lax.dynamic_index_in_dim(logits, t, axis=1, keepdims=False)
        return carry, _step_statistics(step_logits, top_k=top_k, top_p=top_p, nucleus=nucleus)

    _, tracks = lax.scan(step, None, jnp.arange(logits.shape[1]))  # each [T, B]
    return _reduce({k: v.T for k, v in tracks.items()}, mask)


def sequence_measures(logits, mask, *, top_k: Sequence[int] = columns.TOP_K,
                      top_p: Sequence[float] = columns.TOP_P, nucleus: str = "inclusive",
                      prefix: str = "fr_") -> dict[str, jax.Array]:
    """Section-2 measures of logits [B, T, V] under mask [B, T]: `reduce_step_statistics` of
    `step_statistics` at each step (a lax.scan over T, so only [B, V] temporaries are live).

    `bfr_*` is the same call with the bracket mask and prefix="bfr_".
    """
    top_k, top_p = _check_options(top_k, top_p, nucleus)
    _check_logits(logits, 3)
    if not hasattr(mask, "ndim") or tuple(mask.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"mask: expected shape {tuple(logits.shape[:2])} ([B, T] of logits), got {getattr(mask, 'shape', None)}")
    if not (jnp.issubdtype(mask.dtype, jnp.bool_) or jnp.issubdtype(mask.dtype, jnp.number)):
        raise ValueError(f"mask: expected a bool or numeric dtype, got {mask.dtype}")
    if _is_concrete(mask) and not np.isin(np.asarray(mask), (0, 1)).all():
        raise ValueError("mask: expected values 0/1 (or bool)")
    out = _sequence_measures(jnp.asarray(logits), jnp.asarray(mask), top_k=top_k, top_p=top_p, nucleus=nucleus)
    return {prefix + k: v for k, v in out.items()}


# --------------------------------------------------------------------------------------------------
# section 1


@jax.jit
def _choices(logits, choice_ids, n_choices):
    logp = jax.nn.log_softmax(logits.astype(_F32), axis=-1)
    l = _choice_logprobs(logp, choice_ids, n_choices)
    present = jnp.arange(l.shape[1])[None, :] < n_choices[:, None]
    return jnp.where(present, jnp.maximum(l, LOG_TINY), -jnp.inf), _choice_measures(l, n_choices)


def next_token_measures(logits, choice_ids=None, n_choices=None, *, top_k: Sequence[int] = columns.TOP_K,
                        top_p: Sequence[float] = columns.TOP_P, nucleus: str = "inclusive",
                        prefix: str = "mc_") -> dict[str, jax.Array]:
    """Section-1 measures of logits [B, V] (any float dtype, computed in float32); each value [B].

    p = softmax(z) sorted descending, V = logits.shape[-1] (masked -inf entries included):
      total-ent = H(p)/ln V; var-ent = sum p (-ln p - H)^2; top-k-ent-k = H(p(1..k) renormalised)/ln k;
      top-p-len-p (int32) = #{i : sum_{j<i} p(j) < p} (>= 1); top-p-ent-p = H(p on nucleus)/ln n, 0 if
      n = 1; top-1-prob = ln p(1).
    nucleus="exclusive2025" reproduces the 2025 study: #{i : sum_{j<=i} p(j) <= p} (crossing token
    excluded), size 0 when p(1) > p, and then entropy 1 by that study's convention.
    With choice_ids int [B, O, K] (variant ids of option j, -1 = padding, duplicates counted once) and
    n_choices int [B] (default O; options j >= n ignored), l_j = logsumexp of ln p over variants and
    q = softmax(l) over the n options:
      choice-pdf [B, O] = max(l, ln tiny) (-inf for j >= n); choice-ent = H(q)/ln n (0 if n = 1);
      choice-prob = max(max_j l_j, ln tiny); choice-prob-renorm = max q; choice-mass =
      max(ln sum_j e^{l_j}, ln tiny); choice-margin = ln max(P1 - P2, tiny) (P = e^l sorted; ties give
      ln tiny); choice-margin-renorm = q(1) - q(2); cloze_pred (int32, no prefix) = argmax_j l_j
      (lowest index on ties). tiny = smallest positive normal float32 (LOG_TINY = ln tiny ~ -87.34):
      every log-probability output is floored there, so all are finite for finite or -inf logits.
    If all n options have probability exactly 0 (-inf logits), choice-prob, choice-mass and the
    present choice-pdf entries are ln tiny and q is taken uniform (choice-ent 1, choice-prob-renorm
    1/n). Without choice_ids only the vocabulary measures are returned
    (`fr_tok1_*`: ``next_token_measures(step1_logits, prefix="fr_tok1_")``).
    """
    top_k, top_p = _check_options(top_k, top_p, nucleus)
    _check_logits(logits, 2)
    choice_ids, n_choices = _check_choices(choice_ids, n_choices, logits.shape[0], logits.shape[1])
    logits = jnp.asarray(logits)
    stats = _step_statistics(logits, top_k=top_k, top_p=top_p, nucleus=nucleus)
    out = {prefix + name: stats[name] for name in columns.vocabulary_names(top_k, top_p)}
    if choice_ids is not None:
        l, choice = _choices(logits, choice_ids, n_choices)
        out.update({prefix + name: choice[name] for name in columns.CHOICE_NAMES})
        out[prefix + "choice-pdf"] = l
        out["cloze_pred"] = choice["cloze_pred"]
    return out
