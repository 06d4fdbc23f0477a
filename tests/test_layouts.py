"""Same numbers on every mesh layout: 1 device, and 8 simulated CPU devices as data:8, data:2,model:4 and
data:1,model:8 (parameters split by the partition rules, with their fallbacks when heads do not divide).

Each family's tiny checkpoint (and SmolLM2) is loaded on each layout in one process with
--xla_force_host_platform_device_count=8 (tests/layout_worker.py); multiple-choice measures of packed
Coane items after their shared prefix and free-response greedy answers with their step measures are
compared with the 1-device run: tokens equal, measures within 1e-5 (measured: <= 2e-6 on the tiny
models; SmolLM2 within 1e-5 except the log choice-margin, ill-conditioned near ties).
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
# one tiny checkpoint per family (tests/test_family_configs.py names the same variants)
VARIANTS = ("llama_tied_bias", "llama3", "mistral", "qwen2", "gemma", "gemma2", "pythia", "qwen3", "gemma3",
            "phi3", "olmo2")


def run_layouts(checkpoint: Path, tmp_path: Path, **extra) -> dict[str, np.ndarray]:
    out = tmp_path / "layouts.npz"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    args = [sys.executable, str(ROOT / "tests" / "layout_worker.py"), str(checkpoint), str(out),
            "--cache_dir", str(tmp_path / "cache"), "--layouts", *LAYOUTS]
    args += [f"--{k}={v}" for k, v in extra.items()]
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return dict(np.load(out))


def compare(results: dict[str, np.ndarray], atol: dict[str, float] | None = None) -> None:
    atol = atol or {}
    base = LAYOUTS[0]
    for key, want in results.items():
        layout, _, name = key.partition("|")
        if layout != base or name == "sharding":
            continue
        for other in LAYOUTS[1:]:
            got = results[f"{other}|{name}"]
            if want.dtype.kind in "iub":
                np.testing.assert_array_equal(got, want, err_msg=f"{other} {name}")
            else:
                tol = atol.get(name.split("|")[-1], ATOL)
                np.testing.assert_allclose(got, want, rtol=0, atol=tol, err_msg=f"{other} {name}")


@pytest.mark.parametrize("variant", VARIANTS)
def test_tiny_family_gives_the_same_numbers_on_every_layout(variant, tmp_path):
    ckpt = tmp_path / "ckpt"
    save_family_checkpoint(variant, ckpt, bpe_tokenizer())
    compare(run_layouts(ckpt, tmp_path))


@pytest.mark.slow
def test_smollm2_gives_the_same_numbers_on_every_layout(tmp_path):
    from jaxunc.embedded import smollm2_gguf_path

    results = run_layouts(smollm2_gguf_path(), tmp_path, items=16, fr_items=8, steps=8)
    compare(results, {"mc_choice-margin": 1e-4})
    total = results[f"{LAYOUTS[0]}|sharding"][0]
    for layout in ("data:2,model:4", "data:1,model:8"):
        per_device = results[f"{layout}|sharding"]
        share = float(per_device.max() / total)
        limit = {"data:2,model:4": 0.30, "data:1,model:8": 0.18}[layout]
        assert share <= limit, f"{layout}: a device holds {share:.0%} of the parameter bytes"
