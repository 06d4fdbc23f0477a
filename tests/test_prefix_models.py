"""Prefix reuse is exact: a shared prefix run once into a KV cache, then suffixes packed into rows or
prefilled into a cache, gives the logits of the full prompts (every family's tiny checkpoint).

Reference: our own model on the full prompts, left-padded in one batch (itself checked against
transformers in test_models_parity.py). The prefix (9 tokens, also padded to 16 columns of which
only 9 are real) is longer than every sliding window
(4, 5), so windows cross the prefix boundary; suffixes of 2..9 tokens; Pythia rotates 25% of each
head. Tolerance 1e-5 on logits of magnitude ~5 (float32 sums in another order: measured <= 3e-6).
Scanned and unrolled layers agree to the same tolerance (XLA fuses them differently: measured <= 2e-6).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxunc.checkpoints import load_model
from jaxunc.engine.packing import pack
from jaxunc.models import JittedModel
from tiny_checkpoints import VARIANTS, save_tiny_checkpoint

ATOL = 1e-5
PREFIX = 9
SUFFIXES = (3, 9, 2, 6, 5)
STEPS = 3


pytestmark = pytest.mark.usefixtures("fast_compile")  # tests/conftest.py


@pytest.fixture(scope="module", params=list(VARIANTS))
def model(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param)
    save_tiny_checkpoint(request.param, directory)
    return request.param, load_model(directory, cache_dir=directory / "cache").model


def prompts(seed: int = 0):
    rng = np.random.default_rng(seed)
    prefix = rng.integers(4, 160, size=PREFIX)
    return prefix, [rng.integers(4, 160, size=n) for n in SUFFIXES]


def full_last_logits(model, prefix, suffixes) -> np.ndarray:
    """Logits at the last token of each full prompt, from one left-padded batch."""
    seqs = [np.concatenate([prefix, s]) for s in suffixes]
    width = max(len(s) for s in seqs)
    ids = np.ones((len(seqs), width), np.int32)
    mask = np.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):], mask[i, width - len(s):] = s, 1
    last = np.full((len(seqs), 1), width - 1, np.int32)
    return np.asarray(JittedModel(model).forward(nnx_state(model), ids, mask, last))[:, 0]


def nnx_state(model):
    from flax import nnx

    return nnx.split(model)[1]


def padded(prefix, width):
    """The prefix ids right-padded to `width` columns (prefix_kv(ids, length) masks the rest)."""
    return jnp.asarray(np.concatenate([prefix, np.ones(width - len(prefix), prefix.dtype)]), jnp.int32)


@pytest.mark.parametrize("width", [PREFIX, 16])
def test_packed_suffixes_after_a_cached_prefix_equal_the_full_prompts(model, width):
    variant, m = model
    prefix, suffixes = prompts()
    reference = full_last_logits(m, prefix, suffixes)
    pkv = jax.jit(m.prefix_kv)(padded(prefix, width), PREFIX)
    got = np.zeros_like(reference)
    for batch in pack(suffixes, list(range(len(suffixes))), rows=2, length=12, segments=4, pad_id=1,
                      prefix_length=PREFIX):
        logits = np.asarray(jax.jit(m.packed_logits)(batch.input_ids, batch.positions, batch.segments,
                                                     batch.last, pkv))
        for (r, s), item in np.ndenumerate(batch.items):
            if item >= 0:
                got[item] = logits[r, s]
    worst = float(np.abs(got - reference).max())
    assert worst <= ATOL, f"{variant} (prefix width {width}): packed-with-prefix vs full prompts {worst:.3g}"


@pytest.mark.parametrize("model", [v for v in VARIANTS if v != "phi3_longrope"], indirect=True)
def test_prefilled_cache_after_a_prefix_decodes_like_the_full_prompts(model):
    """Left-padded suffix batch prefilled after the prefix, then greedy steps: same logits as the same
    steps after prefilling the full prompts. Not phi3_longrope: a cache keeps the rotation its keys were
    written with (test_models_parity)."""
    variant, m = model
    prefix, suffixes = prompts(1)
    width = max(SUFFIXES)

    def decode(ids, mask, cache):
        logits, cache = m.prefill(ids, mask, cache)
        steps = [logits]
        for _ in range(STEPS):
            logits, cache = m.decode_step(jnp.argmax(logits, -1).astype(jnp.int32), cache)
            steps.append(logits)
        return jnp.stack(steps, 1)

    def left_pad(seqs, w):
        ids = np.ones((len(seqs), w), np.int32)
        mask = np.zeros_like(ids)
        for i, s in enumerate(seqs):
            ids[i, w - len(s):], mask[i, w - len(s):] = s, 1
        return ids, mask

    full_ids, full_mask = left_pad([np.concatenate([prefix, s]) for s in suffixes], PREFIX + width)
    want = jax.jit(lambda i, k: decode(i, k, m.init_cache(len(suffixes), PREFIX + width + STEPS)))(full_ids, full_mask)
    ids, mask = left_pad(suffixes, width)
    pkv = m.prefix_kv(padded(prefix, 16), PREFIX)  # padding columns inside the cache too
    got = jax.jit(lambda i, k, p: decode(i, k, m.init_cache(len(suffixes), 16 + width + STEPS, prefix=p)))(
        ids, mask, pkv)
    worst = float(np.abs(np.asarray(got) - np.asarray(want)).max())
    assert worst <= ATOL, f"{variant}: prefix cache + decode vs full prompts {worst:.3g}"


def test_scanned_and_unrolled_layers_agree(model):
    variant, m = model
    prefix, suffixes = prompts(2)
    scanned = full_last_logits(m, prefix, suffixes)
    m.scan_layers = False
    try:
        unrolled = full_last_logits(m, prefix, suffixes)
    finally:
        m.scan_layers = True
    np.testing.assert_allclose(unrolled, scanned, rtol=0, atol=ATOL, err_msg=variant)


def test_dot_product_attention_path_matches_the_xla_path(model):
    """attention="jax" (jax.nn.dot_product_attention; cuDNN on GPU, its XLA fallback here) gives the
    xla path's logits (soft-capped models always take the xla path); measured <= 3e-6."""
    variant, m = model
    prefix, suffixes = prompts(3)
    xla = full_last_logits(m, prefix, suffixes)
    m.attention = "jax"
    try:
        fused = full_last_logits(m, prefix, suffixes)
    finally:
        m.attention = "xla"
    np.testing.assert_allclose(fused, xla, rtol=0, atol=ATOL, err_msg=variant)
