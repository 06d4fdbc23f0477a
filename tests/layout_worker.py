"""Run by tests/test_layouts.py in a process with simulated CPU devices: load one checkpoint on each
mesh layout, score Coane items (packed, after the shared prefix) and generate greedily, and save
every layout's measures and answers to an .npz for the test to compare.

  python tests/layout_worker.py CHECKPOINT OUT.npz --layouts data:1,model:1 data:8,model:1 ...
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("--layouts", nargs="+", required=True)
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--fr_items", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--cache_dir", required=True)
    args = parser.parse_args()

    import jax

    jax.config.update("jax_disable_most_optimizations", True)  # tiny models: compiles twice as fast
    from jaxunc import labels, prompts
    from jaxunc.checkpoints import load_model
    from jaxunc.data import load_dataset
    from jaxunc.engine.batching import make_batches
    from jaxunc.engine.decode import make_generate
    from jaxunc.engine.freeresponse import plan_fr
    from jaxunc.engine.mcqa import mcqa_batches, plan_mcqa
    from jaxunc.engine.mesh import make_mesh
    from jaxunc.engine.scoring import Scorer

    results = {}
    for layout in args.layouts:
        devices = jax.local_devices()[:1] if layout == "data:1,model:1" else jax.local_devices()
        mesh = make_mesh(layout, devices)
        loaded = load_model(args.checkpoint, cache_dir=args.cache_dir, mesh=mesh)
        tok = loaded.tokenizer
        items = load_dataset("coane", limit=args.items).items
        texts = {t: [prompts.build_prompt(r, fmt="chat", task=t, tokenizer=tok) for r in items.to_dict("records")]
                 for t in ("mcqa", "fr")}
        tokens = {t: prompts.tokenize_prompts(tok, v) for t, v in texts.items()}
        variants = labels.label_variant_ids(tok, 4)
        choice_ids = labels.choice_id_array(variants, items["n_options"].to_numpy(), 4)
        n_choices = items["n_options"].to_numpy().astype(np.int32)
        plan = plan_mcqa(tokens["mcqa"], rows=8)
        scorer = Scorer(loaded.model, mesh, probes=True)  # the probes' hidden states are compared too
        by_item = {}
        for rows, out in mcqa_batches(scorer, plan, tokens["mcqa"], list(range(len(items))), choice_ids, n_choices):
            for k, i in enumerate(rows):
                by_item[int(i)] = {name: np.asarray(v[k]) for name, v in out.items()}
        for name in by_item[0]:
            results[f"{layout}|mcqa|{name}"] = np.stack([by_item[i][name] for i in range(len(items))])
        fr_plan = plan_fr(tokens["fr"][: args.fr_items], batch_size=8, buckets=(64, 128, 256, 512))
        generate = make_generate(loaded.model, mesh, max_new_tokens=args.steps, eos_ids=[])
        group = fr_plan.groups[0]
        suffixes = [tokens["fr"][i][len(group.prefix):] for i in group.items]
        (batch,) = make_batches(suffixes, 8, fr_plan.buckets, tok.pad_token_id or 0)
        gen = generate(batch.input_ids, batch.attention_mask, generate.prefix(list(group.prefix), fr_plan.prefix_width))
        n = len(group.items)
        results[f"{layout}|fr|tokens"] = gen.tokens[:n]
        for name, v in {**gen.stats, **gen.first}.items():
            results[f"{layout}|fr|{name}"] = v[:n]
        results[f"{layout}|sharding"] = np.asarray(loaded.sharding_record()["param_bytes_per_device"])
    np.savez(args.out, **results)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    main()
