"""jaxunc.Evaluator: a user-written JAX function and jaxunc's own model, scored from "a training loop".

References: (1) a hand-made embedding-lookup model in jnp, checked item by item against its numpy
logits on the unpadded prompt fed to the float64 measures of tests/measures_reference.py (tolerances
there: 1e-5 on entropies and log-probabilities); (2) jaxunc's own model on a tiny checkpoint against
the main job's table on the same model (prefix cache + packed suffixes vs the Evaluator's full
left-padded prompts): same predictions, measures within 5e-5 (float32 sums in another order; measured
5.3e-6); (3) 4 simulated devices with rows split over `data` vs 1 device.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import jaxunc
import measures_reference as ref
from jaxunc import columns, labels
from tiny_checkpoints import bpe_tokenizer, save_family_checkpoint

ROOT = Path(__file__).resolve().parents[1]
MAIN_JOB_ATOL = 5e-5
N_ITEMS = 12


@pytest.fixture(scope="module")
def tokenizer():
    return bpe_tokenizer()


def embedding_model(vocab: int, dim: int = 16, seed: int = 0):
    """A user's model: mean of the prompt's token embeddings (mask-weighted), tanh, projection to V."""
    rng = np.random.default_rng(seed)
    params = {"embed": jnp.asarray(rng.normal(size=(vocab, dim)), jnp.float32),
              "proj": jnp.asarray(rng.normal(size=(dim, vocab)) * 2, jnp.float32)}
    seen = []

    def logits_fn(params, input_ids, attention_mask):
        seen.append((input_ids.shape, input_ids.dtype, attention_mask.dtype))
        m = attention_mask.astype(jnp.float32)[..., None]
        h = (params["embed"][input_ids] * m).sum(1) / m.sum(1)
        return jnp.tanh(h) @ params["proj"]

    def numpy_logits(tokens):
        e = np.asarray(params["embed"], np.float64)[tokens].mean(0)
        return np.tanh(e) @ np.asarray(params["proj"], np.float64)

    return params, logits_fn, numpy_logits, seen


def test_user_function_against_numpy_reference(tokenizer):
    params, logits_fn, numpy_logits, seen = embedding_model(len(tokenizer))
    ev = jaxunc.Evaluator(tokenizer, datasets="coane", tasks="mcqa", limit=N_ITEMS, prompt_format="chat",
                          batch_size=4, buckets="256,320,384,448,512", model="embed-toy")
    summary = dict(ev.run(logits_fn, params))
    table = ev.items["coane"]
    assert len(table) == N_ITEMS and list(table["item_id"]) == list(ev.datasets["coane"].items["item_id"])
    # one compiled shape per bucket used; int32 [B, L] inputs, L a bucket
    assert 1 <= ev.n_compilations == len({s for s, _, _ in seen}) <= 5
    assert all(s[0] == 4 and s[1] in (256, 320, 384, 448, 512) and d == m == jnp.int32 for s, d, m in seen)
    variants = labels.label_variant_ids(tokenizer, 4)
    for _, row in table.iterrows():
        tokens = tokenizer(row["formatted_question_mcqa"], add_special_tokens=False)["input_ids"]
        z = numpy_logits(tokens)
        want = ref.vocab_measures(z)
        for name in ("total-ent", "top-k-ent-5", "top-k-ent-100", "top-1-prob", "top-p-ent-0.9"):
            assert abs(row[f"mc_{name}"] - want[name]) <= ref.ENT_ATOL, name
        assert abs(row["mc_var-ent"] - want["var-ent"]) <= ref.VAR_RTOL * abs(want["var-ent"])
        ids = [[int(i) for i in variants.ids[j] if i >= 0] for j in range(row["n_options"])]
        choice = ref.choice_measures(z, ids)
        for name in ("choice-ent", "choice-prob", "choice-prob-renorm", "choice-mass", "choice-margin-renorm"):
            assert abs(row[f"mc_{name}"] - choice[name]) <= ref.ENT_ATOL, name
        np.testing.assert_allclose(row["mc_choice-pdf"], choice["choice-pdf"], atol=ref.ENT_ATOL)
        assert row["cloze_pred"] == "ABCD"[choice["cloze_pred"]]
        assert row["correct"] == (row["cloze_pred"] == row["Correct_Answer"])
    assert set(table.columns) >= {*columns.mc_columns(), "cloze_pred", "correct", "model", "model_type", "model_size",
                                  columns.PAIR_COLUMN, "formatted_question_mcqa", "human-ent"}
    assert table["model"].eq("embed-toy").all() and table["model_type"].eq("ins").all()
    for name in ("coane/accuracy", "coane/ece", "coane/auroc", "coane/align/human-ent",
                 "coane/align/MC_Human_Prop_Correct", "coane/mean/mc_choice-ent", "coane/items_per_s"):
        assert name in summary and math.isfinite(summary[name]), name
    assert summary["coane/accuracy"] == pytest.approx(table["correct"].mean())
    from scipy import stats

    for target, sign in (("human-ent", 1), ("MC_Human_Prop_Correct", -1)):  # confidence-type signal: flipped
        keep = table[target].notna()
        aligned = {m: sign * columns.orientation(m) * stats.spearmanr(table.loc[keep, m], table.loc[keep, target])[0]
                   for m in columns.mc_columns() if table[m].nunique() > 1}
        assert summary[f"coane/align/{target}"] == pytest.approx(max(aligned.values()), abs=1e-12)
        assert ev.best["coane"][target] == max(aligned, key=aligned.get)
    assert set(ev.best["coane"]) >= {"human-ent", "MC_Human_Prop_Correct"}
    # a second run with new parameters reuses the compiled step
    before = ev.n_compilations
    new = jax.tree.map(lambda x: x * 0.5, params)
    assert dict(ev.run(logits_fn, new))["coane/mean/mc_choice-ent"] != summary["coane/mean/mc_choice-ent"]
    assert ev.n_compilations == before and len(ev._steps) == 1


def test_bad_logits_and_settings(tokenizer):
    with pytest.raises(ValueError, match="only 'mcqa' is scored here"):
        jaxunc.Evaluator(tokenizer, tasks="mcqa,fr", limit=2)
    with pytest.raises(ValueError, match="batch_size=0 must be a positive multiple"):
        jaxunc.Evaluator(tokenizer, limit=2, batch_size=0)
    ev = jaxunc.Evaluator(tokenizer, limit=2, batch_size=2)
    with pytest.raises(ValueError, match=r"logits_fn must return next-token logits \[B, V\]"):
        ev.run(lambda p, i, m: jnp.zeros((*i.shape, 5)), None)
    with pytest.raises(ValueError, match="returned 5 logits per row, but the option labels"):
        ev.run(lambda p, i, m: jnp.zeros((i.shape[0], 5)), None)
    with pytest.raises(ValueError, match="nothing scored yet"):
        jaxunc.Evaluator(tokenizer, limit=2, batch_size=2).analysis()


@pytest.fixture(scope="module")
def main_job(tokenizer, tmp_path_factory):
    from jaxunc.configs import load_config_file
    from jaxunc.pipeline import run

    root = tmp_path_factory.mktemp("evaluator")
    save_family_checkpoint("llama3", root / "ckpt", tokenizer)
    config = load_config_file(ROOT / "configs" / "llama3.py", "size=1b,ins=True")
    config.model.checkpoint, config.model.cache_dir = str(root / "ckpt"), str(root / "cache")
    config.data.limit, config.engine.batch_size, config.output_dir = N_ITEMS, 4, str(root / "out")
    config.analysis.run = False
    record = run(config)
    return config, pd.read_parquet(record["datasets"]["coane"]["table"]), root


def test_jaxunc_model_equals_the_main_job(main_job, tmp_path):
    from flax import nnx

    from jaxunc.checkpoints import load_model

    config, main, root = main_job
    loaded = load_model(root / "ckpt", dtype="float32", cache_dir=root / "cache")
    graphdef, state = nnx.split(loaded.model)

    def logits_fn(state, input_ids, attention_mask):
        last = jnp.full((input_ids.shape[0], 1), input_ids.shape[1] - 1, jnp.int32)
        return nnx.merge(graphdef, state)(input_ids, attention_mask, last)[:, 0]

    ev = jaxunc.Evaluator(loaded.tokenizer, datasets="coane", limit=N_ITEMS, prompt_format="chat", batch_size=4,
                          model=config.model.name, model_type="ins", model_size=float(main["model_size"].iloc[0]),
                          pair=config.model.pair)
    summary = ev.run(logits_fn, state)
    ours = ev.items["coane"]
    assert list(ours.columns) == list(main.columns)  # the main job's columns, in its order
    assert list(ours["formatted_question_mcqa"]) == list(main["formatted_question_mcqa"])
    assert list(ours["cloze_pred"]) == list(main["cloze_pred"]) and list(ours["correct"]) == list(main["correct"])
    worst = 0.0
    for col in columns.mc_columns():
        if col.startswith("mc_top-p-len"):
            assert list(ours[col]) == list(main[col]), col
            continue
        worst = max(worst, float(np.abs(ours[col].to_numpy(float) - main[col].to_numpy(float)).max()))
    pdf = np.abs(np.stack(ours["mc_choice-pdf"]) - np.stack(main["mc_choice-pdf"])).max()
    print(f"Evaluator vs main job: max |difference| {worst:.3g} (choice-pdf {pdf:.3g})")
    assert worst <= MAIN_JOB_ATOL and pdf <= MAIN_JOB_ATOL
    names = [n for n, _ in summary]
    assert len(names) == len(set(names)) and all(math.isfinite(v) for _, v in summary)
    res = ev.analysis(tmp_path / "analysis", bootstrap=20, permutations=20, figures=False)
    assert set(res["alignment"]["model"]) == {config.model.name}
    assert (tmp_path / "analysis" / "report.md").exists()


MESH_SCRIPT = r"""
import sys, json, numpy as np
sys.path.insert(0, sys.argv[1])
import jax, jaxunc
from jaxunc.engine.mesh import make_mesh
from test_evaluator import embedding_model
from tiny_checkpoints import bpe_tokenizer
tok = bpe_tokenizer()
params, fn, _, _ = embedding_model(len(tok))
out = {}
for spec, n in (("data:1", 1), ("data:4", 4)):
    ev = jaxunc.Evaluator(tok, limit=10, batch_size=4, mesh=make_mesh(spec, jax.devices()[:n]))
    ev.run(fn, params)
    t = ev.items["coane"]
    out[spec] = {c: t[c].astype(float).tolist() for c in ("mc_choice-ent", "mc_total-ent", "mc_choice-prob")}
    out[spec]["pred"] = t["cloze_pred"].tolist()
print(json.dumps({"devices": jax.device_count(), **out}))
"""


def test_rows_over_the_data_axis_of_a_4_device_mesh():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    proc = subprocess.run([sys.executable, "-c", MESH_SCRIPT, str(ROOT / "tests")], capture_output=True, text=True,
                          timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["devices"] == 4
    one, four = res["data:1"], res["data:4"]
    assert one["pred"] == four["pred"]
    for col in ("mc_choice-ent", "mc_total-ent", "mc_choice-prob"):
        np.testing.assert_allclose(four[col], one[col], rtol=0, atol=1e-6, err_msg=col)
