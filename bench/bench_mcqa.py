"""Benchmark: multiple-choice items/s on Coane with SmolLM2: jaxunc's main-job path vs two transformers
PyTorch pipelines, on the same items, prompt token ids and measures, in one run.

  (a) PyTorch, full prompts: batches of --batch_size items in order, left-padded to the longest in the
      batch, the forward at the last position only (logits_to_keep=1), as the reference study's code
      and lm-eval's HF backend score prompts;
  (b) PyTorch, prefix reuse: the shared prompt prefix run once into a DynamicCache, each batch's
      suffixes run against a copy of it (a stricter baseline that does the same work as jaxunc);
  (c) jaxunc: what `python -m jaxunc.main` runs: prefix groups on token ids, the prefix KV computed
      once, suffixes packed into fixed-shape rows, the jitted packed forward + next_token_measures.
All compute the same per-item measures (entropies, varentropy, top-k / nucleus measures, option
measures; PyTorch with one full sort per row). Each pipeline runs twice over the items: the first
pass includes jaxunc's compilation, the second is the steady state. The three agree to float32
noise (printed). Usage: python bench/bench_mcqa.py [--items 0 (= all 421)] [--batch_size 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from jaxunc import columns, labels, prompts
from jaxunc.checkpoints import load_model
from jaxunc.data import load_dataset
from jaxunc.embedded import smollm2_gguf_path
from jaxunc.engine.mcqa import mcqa_batches, plan_mcqa
from jaxunc.engine.scoring import Scorer

COMPARED = ("total-ent", "var-ent", "top-k-ent-5", "top-p-ent-0.9", "choice-ent", "choice-prob")


def torch_measures(logits: torch.Tensor, choice_ids: torch.Tensor, n_choices: torch.Tensor) -> dict:
    """The section-1 measures in PyTorch from [B, V] logits (inclusive nucleus)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    p = logp.exp()
    ent = -(p * logp).sum(-1)
    out = {"total-ent": ent / math.log(logp.shape[-1]),
           "var-ent": (p * (-logp - ent[:, None]) ** 2).sum(-1), "top-1-prob": logp.max(-1).values}
    srt, _ = torch.sort(p, dim=-1, descending=True)
    for k in columns.TOP_K:
        q = srt[:, :k] / srt[:, :k].sum(-1, keepdim=True)
        out[f"top-k-ent-{k}"] = -(q * q.clamp_min(1e-45).log()).sum(-1) / math.log(k)
    before = srt.cumsum(-1) - srt
    for tp in columns.TOP_P:
        keep = before < tp
        n = keep.sum(-1)
        q = torch.where(keep, srt, 0.0)
        q = q / q.sum(-1, keepdim=True)
        h = -(q * q.clamp_min(1e-45).log()).sum(-1)
        out[f"top-p-len-{tp}"] = n
        out[f"top-p-ent-{tp}"] = torch.where(n > 1, h / n.clamp_min(2).log(), 0.0)
    gathered = torch.where(choice_ids >= 0, logp.gather(1, choice_ids.clamp_min(0).flatten(1)).view(choice_ids.shape),
                           -torch.inf)
    l = torch.logsumexp(gathered, dim=-1)
    valid = torch.arange(l.shape[1])[None] < n_choices[:, None]
    l = torch.where(valid, l, -torch.inf)
    r = torch.softmax(l, -1)
    out["choice-ent"] = -(r * r.clamp_min(1e-45).log()).sum(-1) / n_choices.clamp_min(2).log()
    out["choice-prob"] = l.max(-1).values
    return out


def left_pad(lists, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(t) for t in lists)
    ids = torch.full((len(lists), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(lists), width), dtype=torch.long)
    for i, t in enumerate(lists):
        ids[i, width - len(t):], mask[i, width - len(t):] = torch.tensor(t), 1
    return ids, mask


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=0, help="Coane items (0 = all 421)")
    parser.add_argument("--batch_size", type=int, default=8, help="items per PyTorch batch, rows per jaxunc batch")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    path = smollm2_gguf_path()
    loaded = load_model(path)
    tok = loaded.tokenizer
    items = load_dataset("coane", limit=args.items or None).items
    texts = [prompts.build_prompt(r, fmt="chat", tokenizer=tok) for r in items.to_dict("records")]
    token_lists = prompts.tokenize_prompts(tok, texts)
    variants = labels.label_variant_ids(tok, 4)
    choice_ids = labels.choice_id_array(variants, items["n_options"].to_numpy(), 4)
    n_choices = items["n_options"].to_numpy().astype(np.int32)
    n, pad = len(items), tok.pad_token_id or 0
    plan = plan_mcqa(token_lists, rows=args.batch_size)
    record = plan.record(token_lists)
    prefix = list(max(plan.groups, key=lambda g: len(g.items)).prefix)
    print(f"{n} items, {np.mean([len(t) for t in token_lists]):.0f} prompt tokens on average, shared prefix "
          f"{len(prefix)} tokens ({len(plan.groups)} group(s)); jaxunc computes {record['computed_fraction']:.1%} "
          f"of the prompt tokens; packed rows {plan.rows} x {plan.length}, padded/real suffix tokens "
          f"{record['packing']['padded_over_real']:.2f}")

    scorer = Scorer(loaded.model, loaded.mesh)

    def jaxunc_pass():
        out = {}
        for rows, measures in mcqa_batches(scorer, plan, token_lists, list(range(n)), choice_ids, n_choices):
            for k, name in enumerate(rows):
                out[int(name)] = {m: float(measures["mc_" + m][k]) for m in COMPARED}
        return out

    from transformers import AutoModelForCausalLM, DynamicCache

    hf = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    batches = [list(range(s, min(n, s + args.batch_size))) for s in range(0, n, args.batch_size)]

    def collect(out, rows, logits):
        m = torch_measures(logits, torch.from_numpy(choice_ids[rows]).long(), torch.from_numpy(n_choices[rows]))
        for k, i in enumerate(rows):
            out[i] = {name: float(m[name][k]) for name in COMPARED}

    @torch.inference_mode()
    def torch_full_pass():
        out = {}
        for rows in batches:
            ids, mask = left_pad([token_lists[i] for i in rows], pad)
            pos = (mask.cumsum(-1) - 1).clamp_min(0)
            collect(out, rows, hf(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1).logits[:, -1])
        return out

    @torch.inference_mode()
    def torch_prefix_pass():
        out, p = {}, len(prefix)
        shared = hf(input_ids=torch.tensor([prefix]), use_cache=True).past_key_values
        layers = [(layer.keys, layer.values) for layer in shared.layers]
        for rows in batches:
            assert all(token_lists[i][:p] == prefix for i in rows), "one prefix for every item (Coane chat)"
            ids, mask = left_pad([token_lists[i][p:] for i in rows], pad)
            cache = DynamicCache([(k.expand(len(rows), -1, -1, -1).contiguous(),
                                   v.expand(len(rows), -1, -1, -1).contiguous()) for k, v in layers])
            full_mask = torch.cat([torch.ones((len(rows), p), dtype=torch.long), mask], dim=1)
            pos = p + (mask.cumsum(-1) - 1).clamp_min(0)
            logits = hf(input_ids=ids, attention_mask=full_mask, position_ids=pos, past_key_values=cache,
                        logits_to_keep=1).logits[:, -1]
            collect(out, rows, logits)
        return out

    results, values = {}, {}
    pipelines = [("(c) jaxunc", jaxunc_pass), ("(a) PyTorch full prompts", torch_full_pass)]
    if len(plan.groups) == 1:
        pipelines.append(("(b) PyTorch prefix reuse", torch_prefix_pass))
    for name, fn in pipelines:
        t0 = time.perf_counter()
        values[name] = fn()
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        fn()
        steady = time.perf_counter() - t0
        results[name] = (first, steady)
        print(f"{name:26s} first pass {first:7.2f} s ({n / first:6.2f} items/s)   steady {steady:7.2f} s "
              f"({n / steady:6.2f} items/s)")
    ref = values["(a) PyTorch full prompts"]
    for name in values:
        worst = max(abs(values[name][i][m] - ref[i][m]) for i in range(n) for m in COMPARED)
        print(f"  {name}: max |difference| to (a) over {', '.join(COMPARED)}: {worst:.2g}")
    jf, js = results["(c) jaxunc"]
    for name, label in [("(a) PyTorch full prompts", "full prompts"), ("(b) PyTorch prefix reuse", "prefix reuse")]:
        if name in results:
            tf, ts = results[name]
            print(f"jaxunc vs PyTorch {label}: steady {ts / js:.2f}x, incl. compilation {tf / jf:.2f}x")


if __name__ == "__main__":
    main()
