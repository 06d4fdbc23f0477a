"""Benchmark: peak host memory (RSS) of loading SmolLM2 onto 8 simulated CPU devices, per mesh layout,
against a process that imports everything and reads the checkpoint's config but loads no weights
(measured in the same run, each case in its own process).

Parameters go from the parameter cache (or the GGUF file, on a miss) to their shards one tensor at a
time, so a host holds what its devices hold plus one tensor: with model:8 the 8 CPU "devices" hold
the model once, with data:8 (replicated) eight times.
Usage: python bench/bench_load.py [--meshes data:1,model:8 data:8,model:1] [--cache_dir DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import resource, sys
import jax
from jaxunc.checkpoints import load_model
from jaxunc.checkpoints.loader import model_config
from jaxunc.embedded import smollm2_gguf_path
from jaxunc.engine.mesh import make_mesh
mesh_spec, cache = sys.argv[1], sys.argv[2]
path = smollm2_gguf_path()
model_config(path)
if mesh_spec != "none":
    loaded = load_model(path, cache_dir=cache, mesh=make_mesh(mesh_spec, jax.devices()))
    per_device = max(loaded.sharding_record()["param_bytes_per_device"])
    total = loaded.sharding_record()["param_bytes_total"]
else:
    per_device = total = 0
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, per_device, total)
"""


def peak(mesh: str, cache: str) -> tuple[int, int, int]:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", CHILD, mesh, cache], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), int(out[1]), int(out[2])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--meshes", nargs="+", default=["data:1,model:8", "data:8,model:1"])
    parser.add_argument("--cache_dir", default="")
    args = parser.parse_args()
    cache = args.cache_dir or tempfile.mkdtemp(prefix="jaxunc-bench-cache-")
    peak(args.meshes[0], cache)  # fill the parameter cache first: every case below is a cache hit
    base, _, _ = peak("none", cache)
    print(f"baseline (imports, config, no weights): peak RSS {base / 2**20:.0f} MiB")
    for mesh in args.meshes:
        rss, per_device, total = peak(mesh, cache)
        print(f"{mesh:16s} peak RSS {rss / 2**20:6.0f} MiB = baseline + {(rss - base) / 2**20:5.0f} MiB; parameters "
              f"{total / 2**20:.0f} MiB in all, {per_device / 2**20:.0f} MiB per device x 8 devices = "
              f"{8 * per_device / 2**20:.0f} MiB on this host")


if __name__ == "__main__":
    main()
