"""Benchmark: jitted `next_token_measures` on [64, 256000] logits vs the unembedding matmul making them.

Baseline (same run): logits = h [64, 2048] @ W [2048, 256000] (float32). Also times the alternatives
for the top-k / top-p part: the shipped top_k + sort-free bisection nucleus vs one full sort per row.
Usage: python bench/bench_measures.py [--batch 64] [--vocab 256000] [--hidden 2048] [--repeats 5]
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
    """top_k(100) + the four nuclei by bisection (shipped)."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    top = measures._top_values(logp, max(columns.TOP_K))
    return measures._nucleus(logp, jnp.exp(logp), top, columns.TOP_P, exclusive=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=256000)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
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
    for name, fn, z in [
        ("  top_k(100) entropies only   ", top_k_only, logits),
        ("  top_k(100), sliced per k    ", top_k_sliced, logits),
        ("  bisection nucleus only      ", nucleus_only, logits),
        ("  bisection nucleus, peaked   ", nucleus_only, sharp),
        ("  full sort (all top-k/top-p) ", sorted_vocab_measures, logits),
        ("  full sort, peaked           ", sorted_vocab_measures, sharp),
    ]:
        t = timed(fn, z, repeats=args.repeats)
        print(f"{name}: {t * 1e3:9.1f} ms   ratio vs matmul = {t / t_mat:.2f}")


if __name__ == "__main__":
    main()
