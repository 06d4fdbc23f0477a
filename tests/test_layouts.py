"""Same numbers on every mesh layout: 1 device, and 8 simulated CPU devices as data:8, data:2,model:4 and
data:1,model:8 (parameters split by the partition rules, with their fallbacks when heads do not divide).

Each family's tiny checkpoint (and SmolLM2) is loaded on each layout (data:8: one tiny family) in one
process with --xla_force_host_platform_device_count=8 (tests/layout_worker.py); multiple-choice measures of packed
Coane items after their shared prefix and free-response greedy answers with their step measures are
compared with the 1-device run: tokens equal, measures within 1e-5, except the log choice-margin
ln(P1 - P2), whose float32 error grows as the two largest option masses approach a tie (bound from its
condition number, margin_atol); SmolLM2 within SMOLLM2_ATOL. The probes' hidden states (scoring step
with probes=True, [items, layers + 1, hidden]) within the same tolerance times each layer's scale
max(1, max |state|) (SmolLM2's residual stream reaches ~560).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tiny_checkpoints import bpe_tokenizer, save_family_checkpoint

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = ("data:1,model:1", "data:8,model:1", "data:2,model:4", "data:1,model:8")
ATOL = 1e-5
# SmolLM2 (Q4 weights, logits up to ~25): a split over `model` reorders the matmuls' sums, so float32
# logits move by ~1e-5 relative; measured on 16 Coane items and 8 x 8 generated steps: option
# log-probabilities (mc_choice-pdf) 4.7e-5, step var-ent 7.1e-5, nucleus entropies 7.6e-5, the
# [0, 1] measures of multiple choice <= 1.5e-5; greedy answers identical.
SMOLLM2_ATOL = 1e-4
# one tiny checkpoint per family (tests/test_family_configs.py names the same variants)
VARIANTS = ("llama_tied_bias", "llama3", "mistral", "qwen2", "gemma", "gemma2", "pythia", "qwen3", "gemma3",
            "phi3", "olmo2")
# data:8 replicates the parameters and splits the rows: no family-specific code differs from one
# device, so it runs for one tiny family (and SmolLM2); the layouts that split parameters run for all.
DATA_ONLY = "data:8,model:1"
DATA_ONLY_VARIANTS = ("llama3",)


def run_layouts(checkpoint: Path, tmp_path: Path, layouts=LAYOUTS, **extra) -> dict[str, np.ndarray]:
    out = tmp_path / "layouts.npz"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    args = [sys.executable, str(ROOT / "tests" / "layout_worker.py"), str(checkpoint), str(out),
            "--cache_dir", str(tmp_path / "cache"), "--layouts", *layouts]
    args += [f"--{k}={v}" for k, v in extra.items()]
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return dict(np.load(out))


def margin_atol(pdf: np.ndarray, atol: float = ATOL) -> np.ndarray:
    """Per-item bound for ln(P1 - P2): float32 option masses carry a few ulps of relative error, so the
    log of their difference is ill-conditioned near a tie: ATOL + 64 eps (P1 + P2) / (P1 - P2)."""
    p = np.sort(np.exp(pdf.astype(np.float64)), axis=1)[:, ::-1]
    return atol + 64 * np.finfo(np.float32).eps * (p[:, 0] + p[:, 1]) / np.maximum(p[:, 0] - p[:, 1], 1e-300)


def compare(results: dict[str, np.ndarray], atol: float = ATOL) -> None:
    """Every layout against the 1-device run. Nucleus sizes may differ by one where a cumulative sum
    lies within float32 rounding of p (at most 2 such steps); the nucleus's other statistics are then
    compared where the sizes agree."""
    base = LAYOUTS[0]
    others = [x for x in LAYOUTS[1:] if any(k.startswith(f"{x}|") for k in results)]  # the layouts that ran
    for key, want in results.items():
        layout, _, name = key.partition("|")
        if layout != base or name == "sharding":
            continue
        for other in others:
            got, where = results[f"{other}|{name}"], f"{other} {name}"
            if "-len-" in name:
                flips = got != want
                assert np.abs(got.astype(int) - want.astype(int)).max(initial=0) <= 1 and flips.sum() <= 2, where
            elif want.dtype.kind in "iub":
                np.testing.assert_array_equal(got, want, err_msg=where)
            elif name == "mcqa|hidden":
                scale = np.maximum(1.0, np.abs(want).max(axis=(0, 2)))
                worst = np.abs(got - want).max(axis=(0, 2))
                assert np.all(worst <= atol * scale), (where, worst / scale)
            elif name == "mcqa|mc_choice-margin":
                bound = margin_atol(results[f"{base}|mcqa|mc_choice-pdf"], atol)
                assert np.all(np.abs(got - want) <= bound), (where, np.abs(got - want), bound)
            elif "top-p-" in name and "|" in name:
                task, _, stat = name.partition("|")
                p = stat.rsplit("-", 1)[1]
                size = f"{task}|{stat.split('top-p-')[0]}top-p-len-{p}"
                same = results[f"{other}|{size}"] == results[f"{base}|{size}"] if f"{base}|{size}" in results else True
                np.testing.assert_allclose(np.where(same, got, want), want, rtol=0, atol=atol, err_msg=where)
            else:
                np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=where)


@pytest.mark.parametrize("variant", VARIANTS)
def test_tiny_family_gives_the_same_numbers_on_every_layout(variant, tmp_path):
    ckpt = tmp_path / "ckpt"
    save_family_checkpoint(variant, ckpt, bpe_tokenizer())
    layouts = LAYOUTS if variant in DATA_ONLY_VARIANTS else tuple(x for x in LAYOUTS if x != DATA_ONLY)
    results = run_layouts(ckpt, tmp_path, layouts)
    assert {k.partition("|")[0] for k in results} == set(layouts)
    compare(results)


@pytest.mark.slow
def test_smollm2_gives_the_same_numbers_on_every_layout(tmp_path):
    from jaxunc.embedded import smollm2_gguf_path

    results = run_layouts(smollm2_gguf_path(), tmp_path, items=16, fr_items=8, steps=8)
    compare(results, SMOLLM2_ATOL)
    total = results[f"{LAYOUTS[0]}|sharding"][0]
    for layout in ("data:2,model:4", "data:1,model:8"):
        per_device = results[f"{layout}|sharding"]
        share = float(per_device.max() / total)
        limit = {"data:2,model:4": 0.30, "data:1,model:8": 0.18}[layout]
        assert share <= limit, f"{layout}: a device holds {share:.0%} of the parameter bytes"
