"""Benchmark: jitted `next_token_measures` on [64, 256000] logits vs the unembedding matmul making them.

Baseline (same run): logits = h [64, 2048] @ W [2048, 256000] (float32). Target: ratio <= 1 on the
flat logits (std 3: median nuclei 367..22470 tokens, beyond the top 100) and on peaked ones (x4). Also times the alternatives for the top-k / top-p
part: the shipped top_k + radix-select nucleus (three scatter-add histograms), the previous exact
bisection (~27 passes of four masked reductions), one full sort per row, and single passes that
explain the costs (XLA:CPU materialises a compare/select before reducing it, so one masked sum
costs ~10x a plain sum).
Usage: python bench/bench_measures.py [--batch 64] [--vocab 256000] [--hidden 2048] [--repeats 5]
       [--no-sort] (skip the full-sort alternative, ~10 s per call on 2 cores)
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxunc import columns, measures


def timed(fn, *args, repeats: int) -> float:
    """Median wall time (s) of fn(*args) after one warm-up call, waiting for the result."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@jax.jit
def sorted_vocab_measures(logits):
    """Alternative: every top-k and top-p measure from one full descending sort per row."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    srt = -jnp.sort(-logp, axis=-1)
    p = jnp.exp(srt)
    cum = jnp.cumsum(p, axis=-1)
    before = cum - p
    plogp = jnp.where(p > 0, p * srt, 0.0)
    cum_plogp = jnp.cumsum(plogp, axis=-1)
    out = {"ent": -jnp.sum(plogp, axis=-1)}
    for k in columns.TOP_K:
        mass = cum[:, k - 1]
        out[f"k{k}"] = (jnp.log(mass) - cum_plogp[:, k - 1] / mass) / np.log(k)
    for tp in columns.TOP_P:
        n = jnp.sum(before < tp, axis=-1)
        idx = (n - 1)[:, None]
        mass = jnp.take_along_axis(cum, idx, axis=1)[:, 0]
        h = jnp.log(mass) - jnp.take_along_axis(cum_plogp, idx, axis=1)[:, 0] / mass
        out[f"p{tp}"] = (n, jnp.where(n > 1, h / jnp.log(jnp.maximum(n, 2)), 0.0))
    return out


@jax.jit
def top_k_only(logits):
    """lax.top_k(100) and the five top-k entropies (shipped)."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return measures._top_k_entropies(measures._top_values(logp, max(columns.TOP_K)), columns.TOP_K)


@jax.jit
def top_k_sliced(logits):
    """Same, slicing top[:, :k] per k: XLA:CPU then replaces the TopK by a full sort."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    top = lax.top_k(logp, max(columns.TOP_K))[0]
    return [jax.nn.logsumexp(top[:, :k], axis=-1) for k in columns.TOP_K]


@jax.jit
def nucleus_only(logits):
    """top_k(100) + the four nuclei by radix select where they end beyond the top 100 (shipped)."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    top = measures._top_values(logp, max(columns.TOP_K))
    return measures._nucleus(logp, jnp.exp(logp), top, columns.TOP_P, exclusive=False)


# ---- previous implementation (for the table): bisection on the int32 key of a threshold t,
# one masked reduction M(t) = sum_v p_v [p_v > t] per p and pass, then a final masked pass.

def _float_key(x):
    bits = lax.bitcast_convert_type(x.astype(jnp.float32), jnp.int32)
    return jnp.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def _key_float(key):
    return lax.bitcast_convert_type(jnp.where(key < 0, key ^ 0x7FFFFFFF, key), jnp.float32)


def _bisection_threshold(prob, top, top_p, fits):
    last_top = _float_key(jnp.exp(top[:, -1:]))
    floor = _float_key(0.5 * (1.0 - top_p[None, :]) / prob.shape[-1])
    smallest = jnp.min(jnp.where(prob > 0, prob, jnp.inf), axis=-1, keepdims=True)
    hi = jnp.broadcast_to(last_top, fits.shape)
    lo = jnp.where(fits, hi - 1, jnp.minimum(jnp.maximum(_float_key(smallest) - 1, floor), hi - 1))

    def step(state):
        lo, hi = state
        mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)
        t = _key_float(mid)
        mass = jnp.stack([jnp.sum(jnp.where(prob > t[:, i:i + 1], prob, 0.0), axis=-1)
                          for i in range(t.shape[1])], axis=1)
        ok = mass < top_p[None, :]
        return jnp.where(ok, lo, mid), jnp.where(ok, mid, hi)

    _, hi = lax.while_loop(lambda s: jnp.any(s[1] > s[0] + 1), step, (lo, hi))
    return _key_float(hi)


@jax.jit
def bisection_nucleus(logits):
    """top_k(100) + the previous bisection nucleus (sizes only; same threshold search)."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    prob = jnp.exp(logp)
    top = measures._top_values(logp, max(columns.TOP_K))
    ps = jnp.asarray(columns.TOP_P, jnp.float32)
    fits, size, _ = measures._nucleus_from_top(top, ps, False)

    def long_nucleus():
        tau = _bisection_threshold(prob, top, ps, fits)[:, :, None]
        above = prob[:, None, :] > tau
        count = jnp.sum(above, axis=-1, dtype=jnp.int32)
        ties = jnp.sum(prob[:, None, :] == tau, axis=-1, dtype=jnp.int32)
        mass = jnp.sum(jnp.where(above, prob[:, None, :], 0.0), axis=-1)
        tau = tau[:, :, 0]
        k = jnp.clip(jnp.ceil((ps[None, :] - mass) / tau), 1.0, ties.astype(jnp.float32)).astype(jnp.int32)
        return jnp.where(fits, size, count + k)

    return lax.cond(jnp.all(fits), lambda: size, long_nucleus)  # as shipped: skipped when all fit


# ---- single passes over [B, V] (what one step of each search costs)

@jax.jit
def pass_sum(prob):
    """Plain row sum: the memory-bound floor of one pass."""
    return jnp.sum(prob, axis=-1)


@jax.jit
def pass_masked_sum(prob, t):
    """One masked reduction sum_v p_v [p_v > t_b] (one bisection evaluation for one p)."""
    return jnp.sum(jnp.where(prob > t, prob, 0.0), axis=-1)


@jax.jit
def pass_histogram(logits):
    """log_softmax + one radix level: scatter-add of (p, 1, p ln p) into 2048 bins per row."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    prob = jnp.exp(logp)
    key = lax.bitcast_convert_type(prob, jnp.int32)
    values = jnp.stack([prob, jnp.ones_like(prob), measures._plogp(logp)])
    return measures._radix_histogram(key, values, None, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=256000)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-sort", action="store_true", help="skip the full-sort alternative")
    args = parser.parse_args()
    key_h, key_w, key_ids = jax.random.split(jax.random.key(0), 3)
    hidden = jax.random.normal(key_h, (args.batch, args.hidden), jnp.float32)
    # scale so logits have a spread typical of an LM head (std ~ 3)
    weight = jax.random.normal(key_w, (args.hidden, args.vocab), jnp.float32) * (3.0 / np.sqrt(args.hidden))
    unembed = jax.jit(lambda h, w: h @ w)
    logits = jax.block_until_ready(unembed(hidden, weight))
    choice_ids = jax.random.randint(key_ids, (args.batch, 4, 8), 0, args.vocab, jnp.int32)
    choice_ids = choice_ids.at[:, :, 6:].set(-1)  # realistic padding: 6 variants of 8 slots
    n_choices = jnp.full((args.batch,), 4, jnp.int32)

    ntm = jax.jit(lambda z, ids, n: measures.next_token_measures(z, ids, n))
    print(f"devices: {jax.devices()}  logits [{args.batch}, {args.vocab}], hidden {args.hidden}")
    t_mat = timed(unembed, hidden, weight, repeats=args.repeats)
    t_ntm = timed(ntm, logits, choice_ids, n_choices, repeats=args.repeats)
    print(f"unembedding matmul           : {t_mat * 1e3:9.1f} ms")
    print(f"next_token_measures (shipped): {t_ntm * 1e3:9.1f} ms   ratio measures/matmul = {t_ntm / t_mat:.2f}")
    sharp = logits * 4.0  # a more peaked, LM-like distribution: nuclei mostly within the top 100
    t_sharp = timed(ntm, sharp, choice_ids, n_choices, repeats=args.repeats)
    print(f"next_token_measures, peaked  : {t_sharp * 1e3:9.1f} ms   ratio measures/matmul = {t_sharp / t_mat:.2f}")
    for name, z in [("flat  ", logits), ("peaked", sharp)]:
        out = measures.next_token_measures(z)
        ent = float(jnp.mean(out["mc_total-ent"])) * np.log(args.vocab)
        sizes = {p: int(jnp.median(out[f"mc_top-p-len-{p}"])) for p in columns.TOP_P}
        print(f"  {name}: mean entropy {ent:.2f} nats, median nucleus sizes {sizes}")
    print("alternatives (same logits):")
    prob = jax.nn.softmax(logits, axis=-1)
    rows = [
        ("  top_k(100) entropies only   ", top_k_only, (logits,)),
        ("  top_k(100), sliced per k    ", top_k_sliced, (logits,)),
        ("  radix nucleus only (shipped)", nucleus_only, (logits,)),
        ("  radix nucleus, peaked       ", nucleus_only, (sharp,)),
        ("  bisection nucleus (previous)", bisection_nucleus, (logits,)),
        ("  bisection nucleus, peaked   ", bisection_nucleus, (sharp,)),
        ("  one pass: plain row sum     ", pass_sum, (prob,)),
        ("  one pass: masked sum p > t  ", pass_masked_sum, (prob, jnp.full((args.batch, 1), 1e-6))),
        ("  one pass: radix histogram   ", pass_histogram, (logits,)),
    ]
    if not args.no_sort:
        rows += [("  full sort (all top-k/top-p) ", sorted_vocab_measures, (logits,)),
                 ("  full sort, peaked           ", sorted_vocab_measures, (sharp,))]
    diff = np.abs(np.asarray(bisection_nucleus(logits)) - np.asarray(nucleus_only(logits)[0]))
    print(f"  (bisection vs radix nucleus sizes, flat logits: {int((diff > 0).sum())} of {diff.size} differ, "
          f"by at most {int(diff.max())}: float32 boundary cases, see tests)")
    for name, fn, fn_args in rows:
        t = timed(fn, *fn_args, repeats=args.repeats)
        print(f"{name}: {t * 1e3:9.1f} ms   ratio vs matmul = {t / t_mat:.2f}")

if __name__ == "__main__":
    main()
