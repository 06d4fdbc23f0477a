"""Benchmark: scoring throughput (prompt tokens/s and MFU) of a random-weight Llama of a given shape,
jaxunc vs transformers on the same device, same weights, same prompts, both in bfloat16 (or --dtype),
in one run.

  jaxunc:        the main job's scoring step (packed rows, one prompt per row here, the forward at the
                 last position + next_token_measures) on a data mesh over the visible devices;
                 attention "auto" (jax.nn.dot_product_attention, cuDNN, on GPU; the XLA path on CPU)
  transformers:  LlamaForCausalLM with sdpa attention, logits_to_keep=1, the same measures in torch
MFU = model FLOPs / (time x peak): FLOPs per prompt token 2 * (non-embedding parameters + unembedding
at the last token only, amortised) + 4 * layers * hidden * (mean key length); peak = the device's
nominal bfloat16 dense rate when known (H200/H100 989 TFLOP/s), else a bfloat16 matmul measured in
this run. Needs only jax, flax, transformers, torch, numpy and jaxunc's light pure-Python deps.

  python bench/bench_scale.py                                # CPU: a small Llama
  python bench/bench_scale.py --shape=llama3-8b --batch=16 --length=1024   # a GPU/TPU
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.45")  # leave room for the torch model on the GPU

import jax
import jax.numpy as jnp
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_mcqa import torch_measures  # noqa: E402

from jaxunc.checkpoints import keymaps  # noqa: E402
from jaxunc.checkpoints.placement import assemble, place_params  # noqa: E402
from jaxunc.engine.mesh import make_mesh, param_layouts  # noqa: E402
from jaxunc.engine.packing import pack  # noqa: E402
from jaxunc.engine.scoring import Scorer  # noqa: E402
from jaxunc.models import ModelConfig, param_shapes, stacked_shapes  # noqa: E402

SHAPES = {  # HF LlamaConfig fields
    "small": dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
                  num_key_value_heads=4, vocab_size=32000),
    "smollm2": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                    num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True),
    "llama3-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0),
}
NOMINAL_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12}


def measured_peak(device, dtype) -> float:
    n = 4096 if device.platform != "cpu" else 2048
    a = jax.device_put(jnp.ones((n, n), dtype), device)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(10):
        f(a).block_until_ready()
    return 10 * 2 * n**3 / (time.perf_counter() - t0)


def flops_per_token(hf_cfg, length: int) -> float:
    d, f, layers = hf_cfg.hidden_size, hf_cfg.intermediate_size, hf_cfg.num_hidden_layers
    hd = d // hf_cfg.num_attention_heads
    kv = hf_cfg.num_key_value_heads * hd
    per_layer = d * d + 2 * d * kv + d * d + 3 * d * f
    return 2 * layers * per_layer + 4 * layers * d * (length + 1) / 2 + 2 * d * hf_cfg.vocab_size / length


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=sorted(SHAPES), default="small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side (after one warm-up)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on CPU")
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    device = jax.devices()[0]
    torch_device = "cuda" if torch.cuda.is_available() else "cpu"
    hf_cfg = transformers.LlamaConfig(**SHAPES[args.shape], max_position_embeddings=max(4096, args.length + 8))
    torch.manual_seed(0)
    torch_dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[args.dtype]
    hf = transformers.LlamaForCausalLM(hf_cfg).to(torch_dtype).to(torch_device).eval()
    hf.config._attn_implementation = "sdpa"
    n_params = sum(p.numel() for p in hf.parameters())
    print(f"{args.shape}: {n_params / 1e9:.2f} B parameters, batch {args.batch} x {args.length} tokens, "
          f"jax on {device.device_kind} ({jax.device_count()} devices), torch on {torch_device}")

    config = ModelConfig.from_hf(hf_cfg.to_dict())
    mesh = make_mesh(f"data:{jax.device_count()},model:1", jax.devices())
    state = hf.state_dict()
    dt = args.dtype
    expected = {k: tuple(v.shape) for k, v in param_shapes(config, dt).items()}
    stream = keymaps.iter_convert(list(state), lambda n: state[n].float().cpu().numpy(), config, expected,
                                  np.dtype(jnp.dtype(dt)))
    shapes = {p: tuple(s.shape) for p, s in stacked_shapes(config, dt).items()}
    model = assemble(config, dt, place_params(stream, config, dt, mesh, param_layouts(shapes, mesh, config)))
    model.attention = "jax" if device.platform == "gpu" else "xla"
    scorer = Scorer(model, mesh)

    rng = np.random.default_rng(0)
    prompts = rng.integers(0, hf_cfg.vocab_size, (args.batch, args.length))
    (batch,) = pack(list(prompts), list(range(args.batch)), rows=args.batch, length=args.length, segments=1, pad_id=0)
    choice_ids = rng.integers(0, hf_cfg.vocab_size, (args.batch, 1, 4, 1)).astype(np.int32)
    n_choices = np.full((args.batch, 1), 4, np.int32)
    prefix = scorer.prefix([], 1)

    def jax_step():
        return scorer(batch, prefix, choice_ids, n_choices)

    ids = torch.from_numpy(prompts).to(torch_device)
    mask = torch.ones_like(ids)
    cids, nch = torch.from_numpy(choice_ids[:, 0]).long().to(torch_device), torch.from_numpy(n_choices[:, 0]).to(torch_device)

    @torch.inference_mode()
    def torch_step():
        logits = hf(input_ids=ids, attention_mask=mask, logits_to_keep=1).logits[:, -1]
        out = torch_measures(logits, cids, nch)
        if torch_device == "cuda":
            torch.cuda.synchronize()
        return out

    results = {}
    for name, step in (("jaxunc", jax_step), ("transformers", torch_step)):
        t0 = time.perf_counter()
        step()
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        results[name] = (time.perf_counter() - t0) / args.steps
        print(f"{name:13s} first step {first:7.2f} s, steady {results[name]:7.3f} s/step")

    tokens = args.batch * args.length
    nominal = next((v for k, v in NOMINAL_BF16.items() if k in device.device_kind), None)
    if args.dtype != "bfloat16":
        nominal = None
    peak = nominal * jax.device_count() if nominal else measured_peak(device, jnp.dtype(args.dtype)) * jax.device_count()
    flops = flops_per_token(hf_cfg, args.length) * tokens
    for name, seconds in results.items():
        print(f"{name:13s} {tokens / seconds:10.0f} prompt tokens/s, MFU {flops / seconds / peak:.1%} "
              f"(peak {peak / 1e9:.0f} GFLOP/s, {'nominal' if nominal else f'a {args.dtype} matmul measured here'})")
    print(f"jaxunc vs transformers: {results['transformers'] / results['jaxunc']:.2f}x")


if __name__ == "__main__":
    main()
