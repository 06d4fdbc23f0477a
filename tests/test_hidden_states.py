"""Hidden states for the activation probes vs transformers' `output_hidden_states` at the last token.

Convention (issue 14): entry 0 the embedding output, entry i the output of layer i, the last entry after
the final norm: [layers + 1, hidden] per item. Reference: the PyTorch model of each tiny checkpoint
(tests/tiny_checkpoints.py, float32, eager attention), each full prompt alone and unpadded. Ours:

- `CausalLM.hidden_states(final_norm=True)` on one left-padded batch, at the last column;
- the engine path: `Scorer(probes=True)` through `mcqa_batches` (a shared prefix run once into the KV
  cache, suffixes packed several to a row), the "hidden" output of the jitted scoring step;
- the same in row mode (engine.batch_invariant: shard_map + lax.map over rows).

Tolerance 1e-4 max abs (float32) on states of magnitude ~1-10 (measured values in the asserts' messages
and the README's Numerics section).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch

from jaxunc.checkpoints import load_model
from jaxunc.engine.mcqa import mcqa_batches, plan_mcqa
from jaxunc.engine.mesh import make_mesh
from jaxunc.engine.scoring import Scorer
from tiny_checkpoints import VARIANTS, save_tiny_checkpoint

ATOL = 1e-4
PREFIX = 9
SUFFIXES = (3, 9, 2, 6, 5)


pytestmark = pytest.mark.usefixtures("fast_compile")  # tests/conftest.py


@pytest.fixture(scope="module", params=list(VARIANTS))
def pair(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param)
    torch_model = save_tiny_checkpoint(request.param, directory)
    return request.param, torch_model, load_model(directory, cache_dir=directory / "cache")


def prompts(seed: int = 0) -> list[np.ndarray]:
    """Full prompts: one shared 9-token prefix (longer than every sliding window) + suffixes of 2..9."""
    rng = np.random.default_rng(seed)
    prefix = rng.integers(4, 160, size=PREFIX)
    return [np.concatenate([prefix, rng.integers(4, 160, size=n)]) for n in SUFFIXES]


def torch_last_states(model, seq: np.ndarray) -> np.ndarray:
    """[layers + 1, hidden]: transformers' output_hidden_states at the last token, the prompt alone."""
    with torch.no_grad():
        states = model(input_ids=torch.tensor(seq[None]), output_hidden_states=True).hidden_states
    return np.stack([s[0, -1].float().numpy() for s in states])


def left_padded(seqs, pad: int = 1):
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad, np.int32)
    mask = np.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):], mask[i, width - len(s):] = s, 1
    return ids, mask


def engine_states(loaded, seqs, *, row_mode: bool = False, rows: int = 2) -> np.ndarray:
    """[items, layers + 1, hidden] from the jitted scoring step (prefix cache + packing)."""
    return engine_states_for(loaded, [list(map(int, s)) for s in seqs], row_mode=row_mode, rows=rows, prefix=PREFIX)


def engine_states_for(loaded, tokens, *, row_mode: bool = False, rows: int = 2, min_prefix: int = 4,
                      prefix: int | None = None) -> np.ndarray:
    plan = plan_mcqa(tokens, rows=rows, min_prefix=min_prefix, row_mode=row_mode)
    assert len(plan.groups) == 1 and len(plan.groups[0].prefix) >= min_prefix  # one shared prefix, cached
    if prefix is not None:
        assert len(plan.groups[0].prefix) == prefix
    if not row_mode:
        assert plan.segments > 1  # several suffixes share a row
    scorer = Scorer(loaded.model, make_mesh("data:1,model:1", jax.local_devices()[:1]), row_mode=row_mode,
                    probes=True)
    choice_ids = np.array([[[5], [6]]] * len(tokens), np.int32)
    n_choices = np.full(len(tokens), 2, np.int32)
    got = {}
    for items, out in mcqa_batches(scorer, plan, tokens, list(range(len(tokens))), choice_ids, n_choices):
        assert out["hidden"].dtype == np.float32
        for k, i in enumerate(items):
            got[int(i)] = out["hidden"][k]
    return np.stack([got[i] for i in range(len(tokens))])


def test_left_padded_hidden_states_match_transformers(pair):
    variant, torch_model, loaded = pair
    seqs = prompts()
    ids, mask = left_padded(seqs)
    states = jax.jit(lambda m, i, k: m.hidden_states(i, k, final_norm=True))(loaded.model, ids, mask)
    ours = np.asarray(states)[:, :, -1].transpose(1, 0, 2)  # the last column of each row
    ref = np.stack([torch_last_states(torch_model, s) for s in seqs])
    assert ours.shape == ref.shape == (len(seqs), loaded.config.num_layers + 1, loaded.config.hidden_size)
    worst = float(np.abs(ours - ref).max())
    print(f"{variant} left-padded: max |ours - transformers| {worst:.3g} (scale {np.abs(ref).max():.3g})")
    assert worst <= ATOL, f"{variant}: left-padded hidden states differ by {worst:.3g}"


def test_scoring_step_hidden_states_match_transformers(pair):
    """The probes path of the engine: prefix KV cache + packed suffixes, states gathered in the scan."""
    variant, torch_model, loaded = pair
    seqs = prompts(1)
    ours = engine_states(loaded, seqs)
    ref = np.stack([torch_last_states(torch_model, s) for s in seqs])
    worst = float(np.abs(ours - ref).max())
    print(f"{variant} packed after prefix: max |ours - transformers| {worst:.3g}")
    assert worst <= ATOL, f"{variant}: packed hidden states differ by {worst:.3g}"


@pytest.mark.parametrize("pair", ("llama3", "gemma2"), indirect=True)  # one per norm type: the same step per row
def test_row_mode_hidden_states_match_the_batched_step(pair):
    variant, _, loaded = pair
    seqs = prompts(2)
    batched, rows = engine_states(loaded, seqs), engine_states(loaded, seqs, row_mode=True)
    np.testing.assert_allclose(rows, batched, rtol=0, atol=1e-5)


@pytest.mark.parametrize("pair", ("llama3",), indirect=True)
def test_probes_off_returns_no_hidden_states(pair):
    variant, _, loaded = pair
    tokens = [list(map(int, s)) for s in prompts()]
    plan = plan_mcqa(tokens, rows=2, min_prefix=4)
    scorer = Scorer(loaded.model, make_mesh("data:1,model:1", jax.local_devices()[:1]))
    choice_ids = np.array([[[5], [6]]] * len(tokens), np.int32)
    for _, out in mcqa_batches(scorer, plan, tokens, list(range(len(tokens))), choice_ids,
                               np.full(len(tokens), 2, np.int32)):
        assert "hidden" not in out
