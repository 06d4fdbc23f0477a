"""Benchmark: scoring forward of the embedded SmolLM2-135M (float32, CPU) vs transformers PyTorch.

Ours: load_model(GGUF) -> JittedModel.forward with logit_positions = last token. Baseline (same run):
transformers' LlamaForCausalLM loaded from the same GGUF (float32, logits_to_keep=1, torch.no_grad).
Prompts: windows of `--length` tokens (default 250, about a Coane MC prompt with the chat template)
cut from the tokenized Coane questions and options.

FLOPs counted per forward (matmul multiply-adds x 2; norms, softmax, RoPE ignored):
  B * L * (2 * N_layers + 4 * n_layers * L * n_heads * head_dim) + B * 2 * hidden * vocab
where N_layers = n_params - vocab * hidden (all parameters outside the tied embedding) and the
attention term counts QK^T and PV over the full L x L score matrix, as computed. Peak: a jitted
float32 [n, n] @ [n, n] jnp matmul, 2 n^3 / time, best of the repeats.
Also (unless --no-torch): each per-layer GEMM of the model at B*L rows, jnp.dot (XLA:CPU) vs
torch.matmul (oneDNN/MKL), which bounds what the JAX forward can gain over PyTorch (GEMMs are ~90% of
the FLOPs).
Usage: python bench/bench_forward.py [--batches 8,16] [--length 250] [--repeats 3] [--threads N]

Recorded (2 shared cores shared with other jobs: +-30% run to run), 250 tokens, fastest [median]:
  before (attention batched over (kv head, group)), load ~3.5: batch 8 ours 443 [367] tok/s vs torch
    232 [172]; batch 16 ours 373 [315] vs torch 417 [253] (torch suffers more from the load).
  after (query groups stacked per kv head), load ~1.5: batch 8 ours 664 [594] vs torch 726 [720], 71% of
    peak; batch 16 ours 583 [572] vs torch 743 [701], 73% of peak. Same-process A/B of the forward,
    batch 8: 1.17x-1.21x faster than before (median of 5-7). GEMMs: XLA 0.55x-0.77x torch's at these
    shapes, so the forward (~93% GEMM FLOPs) cannot reach 2x torch on XLA:CPU; XLA_FLAGS
    --xla_cpu_use_onednn / --xla_cpu_use_xnnpack did not change the forward time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxunc.checkpoints import load_model
from jaxunc.embedded import smollm2_gguf_path
from jaxunc.models import JittedModel

def interleaved_times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Wall times (s) of each fn, run in turn `repeats` times after one warm-up call each, so that load
    from other processes on a shared machine hits all of them alike. fns must block until done."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def prompt_batch(tokenizer, batch: int, length: int) -> np.ndarray:
    """[batch, length] int32 windows of the tokenized Coane items (random ids if the data is absent)."""
    try:
        import pandas as pd

        from jaxunc.data.coane import SHIPPED

        items = pd.read_parquet(SHIPPED)
        text = "\n\n".join(  # one MC item per paragraph
            f"Question: {q}\n" + "\n".join(f"{'ABCD'[i]}. {a}" for i, a in enumerate(ans)) + "\nAnswer:"
            for q, ans in zip(items["Question"], items["Answers"])
        )
        stream = np.concatenate([np.asarray(ids, np.int32) for ids in tokenizer(text.split("\n\n"))["input_ids"]])
    except (OSError, ImportError, KeyError):
        stream = np.random.default_rng(0).integers(17, 49152, size=batch * length, dtype=np.int32)
    if stream.size < batch * length:
        stream = np.resize(stream, batch * length)
    return stream[: batch * length].reshape(batch, length)


def matmul_fn(n: int) -> Callable[[], jax.Array]:
    """A jitted float32 [n, n] @ [n, n] (2 n^3 FLOPs) that blocks until done: the peak reference."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    mm = jax.jit(jnp.matmul)
    return lambda: jax.block_until_ready(mm(a, b))


def gemm_times(cfg, rows: int, repeats: int) -> None:
    """Print GFLOP/s of each per-layer GEMM shape [rows, k] @ [k, n]: jnp.dot vs torch.matmul."""
    import torch

    hidden, inter = cfg["hidden_size"], cfg["intermediate_size"]
    kv = cfg["num_key_value_heads"] * cfg["head_dim"]
    rng = np.random.default_rng(0)
    dot = jax.jit(jnp.dot)
    for name, k, n in (("q/o proj", hidden, hidden), ("k/v proj", hidden, kv), ("gate/up", hidden, inter),
                       ("down", inter, hidden)):
        a = rng.standard_normal((rows, k), np.float32)
        b = rng.standard_normal((k, n), np.float32)
        aj, bj, at, bt = jnp.asarray(a), jnp.asarray(b), torch.from_numpy(a), torch.from_numpy(b)
        times = interleaved_times(
            {"xla": lambda: jax.block_until_ready(dot(aj, bj)), "torch": lambda: torch.matmul(at, bt)}, repeats
        )
        rate = {key: 2 * rows * k * n / statistics.median(v) / 1e9 for key, v in times.items()}
        print(f"  GEMM {name:9s} [{rows}, {k}] @ [{k}, {n}]: XLA {rate['xla']:6.1f} GFLOP/s, "
              f"torch {rate['torch']:6.1f} GFLOP/s (median), XLA/torch {rate['xla'] / rate['torch']:.2f}x")


def forward_flops(cfg, n_params: int, batch: int, length: int) -> float:
    """FLOPs of one scoring forward (formula in the module docstring)."""
    n_layers_params = n_params - cfg["vocab_size"] * cfg["hidden_size"]
    attention = 4 * cfg["num_hidden_layers"] * length * cfg["num_attention_heads"] * cfg["head_dim"]
    return batch * length * (2 * n_layers_params + attention) + batch * 2 * cfg["hidden_size"] * cfg["vocab_size"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="8,16")
    parser.add_argument("--length", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peak-n", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline")
    args = parser.parse_args()

    path = smollm2_gguf_path()
    start = time.perf_counter()
    loaded = load_model(path, dtype="float32")
    print(f"load_model: {time.perf_counter() - start:.1f} s, n_params={loaded.n_params:,}")
    from jaxunc.checkpoints.gguf_io import read_gguf

    cfg = read_gguf(path, with_tensors=False).config
    jm = JittedModel(loaded.model)
    hf = None
    if not args.no_torch:
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(args.threads)
        hf = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()

    peak_fn = matmul_fn(args.peak_n)
    print(f"devices={jax.devices()} cpu_count={os.cpu_count()} torch_threads={args.threads}")
    print("rates from the fastest of the interleaved repeats (median in brackets); peak: the fastest matmul")
    for batch in (int(b) for b in args.batches.split(",")):
        ids = prompt_batch(loaded.tokenizer, batch, args.length)
        mask = np.ones_like(ids)
        positions = np.full((batch, 1), args.length - 1, np.int32)
        ids_j, mask_j, pos_j = jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(positions)
        fns: dict[str, Callable[[], object]] = {
            "peak": peak_fn,
            "ours": lambda: jax.block_until_ready(jm.forward(jm.state, ids_j, mask_j, pos_j)),
        }
        if hf is not None:
            ids_t, mask_t = torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(mask.astype(np.int64))

            def theirs():
                with torch.no_grad():
                    return hf(input_ids=ids_t, attention_mask=mask_t, logits_to_keep=1).logits

            diff = np.abs(np.asarray(fns["ours"]())[:, 0] - theirs()[:, -1].numpy()).max()
            fns["torch"] = theirs
        times = interleaved_times(fns, args.repeats)
        tokens = batch * args.length
        peak = 2 * args.peak_n**3 / min(times["peak"])
        flops = forward_flops(cfg, loaded.n_params, batch, args.length)
        rate = {k: (tokens / min(v), tokens / statistics.median(v)) for k, v in times.items() if k != "peak"}
        print(f"batch {batch} x {args.length} tokens, load average {os.getloadavg()[0]:.1f}:")
        print(f"  matmul peak      {peak / 1e9:8.1f} GFLOP/s")
        print(f"  ours (jax)       {rate['ours'][0]:8.0f} tok/s [{rate['ours'][1]:.0f}]   "
              f"{flops / min(times['ours']) / 1e9:.1f} GFLOP/s = {100 * flops / min(times['ours']) / peak:.0f}% of peak")
        if "torch" in rate:
            print(f"  torch (float32)  {rate['torch'][0]:8.0f} tok/s [{rate['torch'][1]:.0f}]   "
                  f"{flops / min(times['torch']) / 1e9:.1f} GFLOP/s")
            print(f"  ratio ours/torch {rate['ours'][0] / rate['torch'][0]:8.2f}x [{rate['ours'][1] / rate['torch'][1]:.2f}x]"
                  f"   max |logit diff| at the last position {diff:.2g}")
            gemm_times(cfg, tokens, args.repeats)


if __name__ == "__main__":
    main()
