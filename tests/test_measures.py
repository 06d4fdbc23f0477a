"""jaxunc.measures against the float64 reference (tests/measures_reference.py) and the study's files.

Measured on this machine (float32 vs float64, vocabularies up to 256,000, scales 0.01..1000):
normalised entropies and ln p(1) within 4e-7 absolute, var-ent within 1e-6 relative, nucleus sizes
equal except one legitimate boundary flip (214258 vs 214259) where a float64 cumulative sum lies
within 1e-6 of p. Tolerances below: 1e-5 absolute (entropies, log-probabilities), 1e-5 relative
(var-ent), nucleus size |n - n_ref| <= number of cumulative sums within 1e-5 of p.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxunc import columns, measures

import measures_reference as ref
from measures_reference import ENT_ATOL, SLACK_DELTA, VAR_RTOL


def _logits(rng, batch, vocab, scales):
    return np.stack([rng.standard_normal(vocab) * s for s in scales])[:batch].astype(np.float32)


def _check_vocab(out, logits, prefix="mc_", exclusive=False):
    for row, z in enumerate(logits):
        expected = ref.vocab_measures(z, exclusive=exclusive)
        for name in columns.vocabulary_names():
            got, want = float(out[prefix + name][row]), expected[name]
            if name == "var-ent":
                assert got == pytest.approx(want, rel=VAR_RTOL, abs=1e-9), (row, name)
            elif name.startswith("top-p-len"):
                p = float(name.rsplit("-", 1)[1])
                assert abs(got - want) <= ref.boundary_slack(z, p, SLACK_DELTA), (row, name, got, want)
            else:
                assert abs(got - want) <= ENT_ATOL, (row, name, got, want)


# ------------------------------------------------------------------ vocabulary measures vs reference
# One batch per shape, computed once per module: compiles dominate the run time on a small CPU.

VOCAB = 1001  # p V is not an integer for any p in TOP_P: no boundary for the uniform row
ROWS = {"temperature": range(0, 7), "uniform": 7, "one_hot": 8, "near_one_hot": 9, "masked": 10,
        "ties": 11, "ties_permuted": 12}


@pytest.fixture(scope="module")
def vocab_batch():
    rng = np.random.default_rng(0)
    scales = [0.01, 0.3, 1.0, 3.0, 10.0, 30.0, 300.0]  # near uniform ... near one-hot
    rows = [rng.standard_normal(VOCAB) * s for s in scales]
    rows.append(np.zeros(VOCAB))
    one_hot = np.full(VOCAB, -np.inf)
    one_hot[17] = 5.0
    near = np.zeros(VOCAB)
    near[3] = 200.0
    masked = rng.standard_normal(VOCAB) * 2.0
    masked[::3] = -np.inf
    ties = np.concatenate([np.full(7, 3.0), np.full(300, 1.0), np.full(VOCAB - 307, -0.5)])
    rows += [one_hot, near, masked, ties, rng.permutation(ties)]
    logits = np.stack(rows).astype(np.float32)
    return logits, measures.next_token_measures(logits), measures.next_token_measures(logits, nucleus="exclusive2025")


def test_vocab_measures_match_reference(vocab_batch):
    logits, out, _ = vocab_batch
    assert set(out) == {"mc_" + n for n in columns.vocabulary_names()}
    assert all(v.shape == (len(logits),) for v in out.values())
    for p in columns.TOP_P:
        assert out[f"mc_top-p-len-{p}"].dtype == jnp.int32
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in out.values())
    _check_vocab(out, logits)


def test_exclusive2025_variant_matches_reference(vocab_batch):
    logits, _, out = vocab_batch
    _check_vocab(out, logits, exclusive=True)
    # a confident row: p(1) > 0.95 gives size 0 and entropy 1 (that study's convention)
    row = ROWS["near_one_hot"]
    assert int(out["mc_top-p-len-0.95"][row]) == 0 and float(out["mc_top-p-ent-0.95"][row]) == 1.0


def test_uniform_and_one_hot(vocab_batch):
    _, out, _ = vocab_batch
    rows = [ROWS["uniform"], ROWS["one_hot"], ROWS["near_one_hot"]]

    def col(name):
        return np.asarray(out[name])[rows]

    np.testing.assert_allclose(col("mc_total-ent"), [1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(col("mc_var-ent"), [0.0, 0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(col("mc_top-1-prob"), [-math.log(VOCAB), 0.0, 0.0], atol=1e-5)
    for k in columns.TOP_K:
        np.testing.assert_allclose(col(f"mc_top-k-ent-{k}"), [1.0, 0.0, 0.0], atol=1e-6)
    for p in columns.TOP_P:
        assert col(f"mc_top-p-len-{p}").tolist() == [math.ceil(p * VOCAB), 1, 1]
        np.testing.assert_allclose(col(f"mc_top-p-ent-{p}"), [1.0, 0.0, 0.0], atol=1e-6)


def test_ties_in_nucleus_are_order_independent(vocab_batch):
    # blocks of tied tokens; every p crosses inside a block, away from float boundaries
    _, out, _ = vocab_batch
    for name in columns.vocabulary_names():
        a, b = out["mc_" + name][ROWS["ties"]], out["mc_" + name][ROWS["ties_permuted"]]
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert int(out["mc_top-p-len-0.5"][ROWS["ties"]]) == 7 + 202  # ceil((0.5 - M) / tau) = 202


def test_vocab_measures_256k_vocabulary():
    rng = np.random.default_rng(1)
    logits = _logits(rng, 2, 256_000, [0.3, 3.0])  # flat: nucleus ~0.9 V; peaked: ~22k tokens
    _check_vocab(measures.next_token_measures(logits), logits)


def test_radix_nucleus_resolves_low_bits_ties_and_bin_edges():
    """The whole-vocabulary search alone, on float32 probabilities given bit by bit: values that differ
    only in their lowest bits, straddle the 2^20- and 2^10-key bin edges of the radix levels and a
    binade, and a block tied exactly at an edge. Reference: float64 cumulative sums of the same values."""
    rng = np.random.default_rng(3)
    edge = np.float32(2.0 ** -12).view(np.int32)  # a multiple of 2^23: every level's bin edge
    keys = edge + rng.integers(-1500, 1500, size=(3, 4000)).astype(np.int32)
    keys[1, :2000] = edge  # 2000 tokens tied exactly at the edge
    keys[2] = edge + rng.integers(0, 4, 4000)  # only the last two bits differ
    prob = keys.view(np.float32)  # rows sum to ~0.98: the search does not need normalised rows
    ps = np.array(columns.TOP_P, np.float32)
    search = jax.jit(measures._nucleus_by_histogram, static_argnames="exclusive")
    for exclusive in (False, True):
        size, ent = search(jnp.log(prob), jnp.asarray(prob), jnp.asarray(ps), exclusive=exclusive)
        for row in range(3):
            p_sorted = np.sort(prob[row].astype(np.float64))[::-1]
            cum = np.cumsum(p_sorted)
            for i, tp in enumerate(columns.TOP_P):
                n = ref.nucleus_size(p_sorted, tp, exclusive)
                slack = int(np.sum(np.abs(cum - tp) <= SLACK_DELTA))
                assert abs(int(size[row, i]) - n) <= slack, (exclusive, row, tp, int(size[row, i]), n)
                if n > 1 and slack == 0:  # normalised entropy, as mc_top-p-ent (measured <= 1.3e-6)
                    want = ref.entropy(p_sorted[:n] / cum[n - 1]) / math.log(n)
                    assert abs(float(ent[row, i]) / math.log(n) - want) <= ENT_ATOL, (exclusive, row, tp)


# ------------------------------------------------------------------------------ choice measures

CHOICE_VOCAB = 50  # < max(top_k): the top-k list is padded with zero-probability tokens


@pytest.fixture(scope="module")
def choice_batch():
    rng = np.random.default_rng(5)
    n_random = 6
    logits = np.concatenate([_logits(rng, n_random, CHOICE_VOCAB, [0.5, 1.0, 2.0, 4.0, 8.0, 1.0]),
                             np.zeros((3, CHOICE_VOCAB), np.float32)])
    ids = np.full((9, 5, 4), -1, np.int32)
    n_choices = np.array([4, 3, 5, 2, 1, 4, 2, 2, 2], np.int32)
    variants = []
    for b in range(n_random):
        row = []
        for j in range(n_choices[b]):
            v = rng.choice(CHOICE_VOCAB, size=rng.integers(1, 4), replace=False).tolist()
            if j == 0:
                v = v + [v[0]]  # a duplicate id counts once
            ids[b, j, : len(v)] = v
            row.append(v)
        variants.append(row)
    ids[6, 0, 0], ids[6, 1, 0] = 1, 2  # row 6: options tie exactly (uniform logits)
    logits[7:] = -np.inf
    logits[7, 7] = logits[8, 9] = 0.0  # all -inf except one token: an option's (row 7) or none (row 8)
    ids[7:, 0, 0], ids[7:, 1, 0] = 7, 8
    out = measures.next_token_measures(logits, ids, n_choices)
    return logits, ids, n_choices, variants, out


def test_choice_measures_match_reference(choice_batch):
    logits, ids, n_choices, variants, out = choice_batch
    assert set(out) == set(columns.mc_columns()) | {"mc_choice-pdf", "cloze_pred"}
    assert out["mc_choice-pdf"].shape == ids.shape[:2] and out["cloze_pred"].dtype == jnp.int32
    for b, row in enumerate(variants):
        expected = ref.choice_measures(logits[b], row)
        n = n_choices[b]
        np.testing.assert_allclose(out["mc_choice-pdf"][b, :n], expected["choice-pdf"], atol=1e-5)
        assert np.all(np.isneginf(np.asarray(out["mc_choice-pdf"][b, n:])))
        assert int(out["cloze_pred"][b]) == expected["cloze_pred"]
        for name in columns.CHOICE_NAMES:
            assert abs(float(out["mc_" + name][b]) - expected[name]) <= ENT_ATOL, (b, name)
    _check_vocab(out, logits)


def test_choice_ties_and_single_option(choice_batch):
    _, _, _, _, out = choice_batch
    tie, single = 6, 4
    assert float(out["mc_choice-margin"][tie]) == pytest.approx(measures.LOG_TINY)
    assert measures.LOG_TINY == pytest.approx(math.log(np.finfo(np.float32).tiny))
    assert float(out["mc_choice-margin-renorm"][tie]) == 0.0
    assert float(out["mc_choice-ent"][tie]) == pytest.approx(1.0, abs=1e-6)
    assert float(out["mc_choice-prob-renorm"][tie]) == pytest.approx(0.5, abs=1e-6)
    assert int(out["cloze_pred"][tie]) == 0  # lowest index on ties
    # n_choices = 1: entropy 0, renormalised probability and margin 1
    assert float(out["mc_choice-ent"][single]) == 0.0
    assert float(out["mc_choice-prob-renorm"][single]) == pytest.approx(1.0)
    assert float(out["mc_choice-margin-renorm"][single]) == pytest.approx(1.0)
    assert float(out["mc_choice-margin"][single]) == pytest.approx(float(out["mc_choice-prob"][single]), abs=1e-6)


def test_all_inf_except_one_token(choice_batch):
    _, _, _, _, out = choice_batch
    has, none = 7, 8
    assert float(out["mc_choice-ent"][has]) == 0.0 and float(out["mc_choice-prob"][has]) == 0.0
    assert float(out["mc_choice-margin"][has]) == 0.0 and float(out["mc_choice-margin-renorm"][has]) == 1.0
    # zero mass on every option: the log-probability outputs are floored at ln(smallest normal
    # float32) instead of ln 0 = -inf, q is uniform over the n = 2 options
    tiny = np.float32(measures.LOG_TINY)
    for name in ("mc_choice-mass", "mc_choice-prob", "mc_choice-margin"):
        assert np.float32(out[name][none]) == tiny, name
    assert np.asarray(out["mc_choice-pdf"][none, :2]).tolist() == [tiny, tiny]
    assert bool(jnp.all(jnp.isneginf(out["mc_choice-pdf"][none, 2:])))  # absent options j >= n
    assert float(out["mc_choice-ent"][none]) == 1.0
    assert float(out["mc_choice-prob-renorm"][none]) == pytest.approx(0.5)
    assert float(out["mc_choice-margin-renorm"][none]) == 0.0
    assert out["mc_top-p-len-0.95"][7:].tolist() == [1, 1]
    finite = [k for k in out if k != "mc_choice-pdf"]
    assert all(bool(jnp.all(jnp.isfinite(out[k]))) for k in finite)


# ------------------------------------------------------------------- the study's published values


_choice_from_pdf = jax.jit(measures._choice_measures)
AUTHORS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "authors_results" / "coane"


@pytest.mark.skipif(not AUTHORS.is_dir(), reason=f"reference study files not found at {AUTHORS}")
def test_choice_entropy_reproduces_published_values():
    """Recompute mc_choice-ent and mc_choice-prob from the published mc_choice-pdf (30 files).

    The stored pdf is rounded (bfloat16 logits; a few log-probabilities slightly above 0), so the
    entropy cannot match exactly: measured max |diff| = 0.01248 (Mistral 0.3 Instruct), < 2e-7 for the
    Gemma 2 files; bound 0.015. mc_choice-prob (= max l) matches exactly.
    """
    pd = pytest.importorskip("pandas")
    files = sorted(AUTHORS.glob("coane_*.parquet"))
    assert len(files) == 30
    worst, n_rows = 0.0, 0
    for path in files:
        df = pd.read_parquet(path, columns=["mc_choice-pdf", "mc_choice-ent", "mc_choice-prob"])
        n = df["mc_choice-pdf"].map(len).to_numpy()
        pdf = np.full((len(df), n.max()), -np.inf, np.float32)
        for i, values in enumerate(df["mc_choice-pdf"]):
            pdf[i, : len(values)] = values
        got = _choice_from_pdf(jnp.asarray(pdf), jnp.asarray(n, jnp.int32))
        worst = max(worst, float(np.max(np.abs(np.asarray(got["choice-ent"]) - df["mc_choice-ent"]))))
        np.testing.assert_array_equal(np.asarray(got["choice-prob"]), df["mc_choice-prob"].astype(np.float32))
        n_rows += len(df)
    assert n_rows == 30 * 421
    assert worst <= 0.015, worst
