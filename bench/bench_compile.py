"""Benchmark: compile time of the scoring step for 4 vs 32 layers of a tiny Llama, layers scanned
(model.scan_layers, the default) vs unrolled, measured in the same run.

The scoring step is the main job's: packed rows after a prefix KV cache, then next_token_measures.
Parameters are abstract (ShapeDtypeStruct): only lowering and XLA compilation are timed.
Usage: python bench/bench_compile.py [--layers 4 32] [--repeats 2]
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
from flax import nnx

from jaxunc.engine.scoring import packed_measures
from jaxunc.models import CausalLM, ModelConfig
from jaxunc.models.transformer import PrefixKV

ROWS, LENGTH, SLOTS, PREFIX = 4, 128, 8, 64


def tiny(layers: int) -> ModelConfig:
    return ModelConfig(model_type="llama", vocab_size=512, hidden_size=64, intermediate_size=128, num_layers=layers,
                       num_heads=4, num_kv_heads=2, head_dim=16, layer_types=("full",) * layers)


def compile_seconds(config: ModelConfig, scan: bool) -> float:
    graphdef, state = nnx.split(CausalLM(config, rngs=None, scan_layers=scan))
    score = functools.partial(packed_measures, graphdef)  # the engine's scoring step

    sd, i32 = jax.ShapeDtypeStruct, jnp.int32
    kv = sd((config.num_layers, PREFIX, config.num_kv_heads, config.head_dim), jnp.float32)
    args = (state, sd((ROWS, LENGTH), i32), sd((ROWS, LENGTH), i32), sd((ROWS, LENGTH), i32), sd((ROWS, SLOTS), i32),
            PrefixKV(kv, kv, sd((), i32)), sd((ROWS, SLOTS, 4, 2), i32), sd((ROWS, SLOTS), i32))
    t0 = time.perf_counter()
    jax.jit(score).lower(*args).compile()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, nargs="+", default=[4, 32])
    parser.add_argument("--repeats", type=int, default=2, help="compilations per case (the fastest is kept)")
    args = parser.parse_args()
    times = {}
    for scan in (True, False):
        for layers in args.layers:
            times[scan, layers] = min(compile_seconds(tiny(layers), scan) for _ in range(args.repeats))
            print(f"{'scanned ' if scan else 'unrolled'} {layers:3d} layers: compile {times[scan, layers]:6.2f} s")
    lo, hi = min(args.layers), max(args.layers)
    for scan in (True, False):
        print(f"{'scanned ' if scan else 'unrolled'}: {hi} vs {lo} layers {times[scan, hi] / times[scan, lo]:.2f}x")
    print(f"{hi} layers: unrolled / scanned compile time {times[False, hi] / times[True, hi]:.2f}x")


if __name__ == "__main__":
    main()
