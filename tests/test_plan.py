"""The memory plan (engine.plan) against XLA's own accounting of the compiled scoring step on CPU, and
its refusal naming a mesh or batch size that fits.

Real allocation per device = arguments (parameters, inputs, prefix KV) + temporaries + outputs of the
compiled step (compiled.memory_analysis(); abstract parameters, so nothing is allocated). Stated
bound: the plan's total within 20% (measured on SmolLM2's shapes: within 3%).
"""

from __future__ import annotations

import functools
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from jaxunc.checkpoints.loader import model_config
from jaxunc.embedded import smollm2_gguf_path
from jaxunc.engine.plan import check_fits, param_bytes_per_device, plan_memory
from jaxunc.engine.scoring import packed_measures
from jaxunc.models import CausalLM, ModelConfig
from jaxunc.models.transformer import PrefixKV

SHAPES = [(8, 256, 16, 128), (16, 256, 16, 128), (4, 512, 32, 256), (2, 1024, 8, 64), (8, 256, 64, 512),
          (1, 256, 16, 128)]


def compiled_bytes(cfg: ModelConfig, dtype: str, rows: int, length: int, segments: int, prefix: int) -> int:
    graphdef, state = nnx.split(CausalLM(cfg, dtype=dtype, rngs=None))
    score = functools.partial(packed_measures, graphdef)  # the engine's scoring step

    sd, i32 = jax.ShapeDtypeStruct, jnp.int32
    kv = sd((cfg.num_layers, prefix, cfg.num_kv_heads, cfg.head_dim), jnp.dtype(dtype))
    args = (state, sd((rows, length), i32), sd((rows, length), i32), sd((rows, length), i32),
            sd((rows, segments), i32), PrefixKV(kv, kv, sd((), i32)), sd((rows, segments, 4, 16), i32),
            sd((rows, segments), i32))
    m = jax.jit(score).lower(*args).compile().memory_analysis()
    return m.argument_size_in_bytes + m.temp_size_in_bytes + m.output_size_in_bytes


@pytest.fixture(scope="module")
def smollm2_config():
    return model_config(smollm2_gguf_path())


@pytest.mark.parametrize("shape", SHAPES)
def test_plan_is_within_20_percent_of_the_compiled_allocation(smollm2_config, shape):
    rows, length, segments, prefix = shape
    plan = plan_memory(smollm2_config, dtype="float32", mesh_shape={"data": 1, "model": 1}, rows=rows, length=length,
                       segments=segments, prefix_width=prefix)
    real = compiled_bytes(smollm2_config, "float32", *shape)
    assert 0.8 <= plan.total / real <= 1.2, f"plan {plan.total / 2**20:.0f} MiB vs compiled {real / 2**20:.0f} MiB"


def test_parameter_bytes_follow_the_partition_rules(smollm2_config):
    one = param_bytes_per_device(smollm2_config, "float32", {"data": 1, "model": 1})
    assert one == 4 * sum(  # float32: every parameter once
        int(jnp.prod(jnp.asarray(s.shape))) for s in jax.tree.leaves(nnx.state(CausalLM(smollm2_config, rngs=None))))
    four = param_bytes_per_device(smollm2_config, "float32", {"data": 2, "model": 4})
    assert 0.25 <= four / one <= 0.26  # everything large splits 4 ways (heads by their embed fallback)
    assert param_bytes_per_device(smollm2_config, "float32", {"data": 8, "model": 1}) == one  # data: replicated
    assert param_bytes_per_device(smollm2_config, "float32", {"data": 8, "model": 1}, fsdp=True) < one / 7


def test_a_plan_that_does_not_fit_names_a_mesh_that_does(smollm2_config):
    def plan(shape, rows):
        return plan_memory(smollm2_config, dtype="float32", mesh_shape=shape, rows=rows, length=256, segments=16,
                           prefix_width=128)

    need_one = plan({"data": 8, "model": 1}, 8).total
    need_four = plan({"data": 2, "model": 4}, 8).total
    assert need_four < need_one
    limit = (need_one + need_four) // 2
    with pytest.raises(ValueError, match=r"per device .* try --config.engine.mesh=data:\d,model:\d "
                                         r"--config.engine.batch_size=\d+") as err:
        check_fits(plan, {"data": 8, "model": 1}, 8, limit, 8)
    assert "\n" not in str(err.value)
    assert check_fits(plan, {"data": 2, "model": 4}, 8, limit, 8).total == need_four
    with pytest.raises(ValueError, match="no mesh of these devices fits"):
        check_fits(plan, {"data": 1, "model": 1}, 8, 1000, 1)
