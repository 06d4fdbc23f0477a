"""Benchmark: multiple-choice items/s on Coane with SmolLM2, jaxunc vs a transformers PyTorch pipeline.

Both sides take the same prompt token ids (jaxunc's chat prompts for the first N Coane items), the same
batch size and left padding to the same length buckets, and compute the same per-item measures
(softmax entropy, varentropy, top-k entropies, nucleus sizes/entropies, option-label measures):
  jaxunc:  the jitted scoring step of the main job (forward at the last position + next_token_measures),
           in its default batch-invariant mode (rows one by one) and in batched mode
  PyTorch: transformers' LlamaForCausalLM from the same GGUF (float32), logits of the last position,
           then the measures in torch (one full sort per row).
Compilation is timed separately (first pass) from the steady state (second pass over the same items).
Usage: python bench/bench_mcqa.py [--items 64] [--batch_size 8] [--threads 2]
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
from jaxunc.configs import base_config
from jaxunc.engine.batching import make_batches, parse_buckets
from jaxunc.engine.mesh import make_data_mesh
from jaxunc.engine.scoring import make_score_step


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    path = smollm2_gguf_path()
    loaded = load_model(path)
    tok = loaded.tokenizer
    items = load_dataset("coane", limit=args.items).items
    texts = [prompts.build_prompt(r, fmt="chat", tokenizer=tok) for r in items.to_dict("records")]
    token_lists = prompts.tokenize_prompts(tok, texts)
    variants = labels.label_variant_ids(tok, 4)
    choice_ids = labels.choice_id_array(variants, items["n_options"].to_numpy(), 4)
    n_choices = items["n_options"].to_numpy().astype(np.int32)
    buckets = parse_buckets(base_config("bench", model_name="", family="", model_type="ins", size=0,
                                        prompt_format="chat").engine.buckets)  # the main job's buckets
    batches = make_batches(token_lists, args.batch_size, buckets, tok.pad_token_id or 0)
    n_tokens = sum(len(t) for t in token_lists)
    print(f"{len(items)} items, {n_tokens / len(items):.0f} prompt tokens on average, batch {args.batch_size}, "
          f"buckets {sorted({b.input_ids.shape[1] for b in batches})}")

    mesh = make_data_mesh()
    steps = {"jaxunc": make_score_step(loaded.model, mesh),  # default: batch-invariant
             "jaxunc-batched": make_score_step(loaded.model, mesh, batch_invariant=False)}

    def jax_pass(step):
        def run():
            for b in batches:
                rows = np.concatenate([b.rows, np.full(args.batch_size - b.n_real, b.rows[0])])
                out = step(b, choice_ids[rows], n_choices[rows])
            return out
        return run

    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()

    @torch.inference_mode()
    def torch_pass():
        for b in batches:
            rows = np.concatenate([b.rows, np.full(args.batch_size - b.n_real, b.rows[0])])
            ids, mask = torch.from_numpy(b.input_ids).long(), torch.from_numpy(b.attention_mask).long()
            pos = (mask.cumsum(-1) - 1).clamp_min(0)
            logits = hf(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1).logits[:, -1]
            out = torch_measures(logits, torch.from_numpy(choice_ids[rows]).long(), torch.from_numpy(n_choices[rows]))
        return out

    results = {}
    for name, fn in [(k, jax_pass(v)) for k, v in steps.items()] + [("pytorch", torch_pass)]:
        t0 = time.perf_counter()
        fn()
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        fn()
        steady = time.perf_counter() - t0
        results[name] = (first, steady)
        print(f"{name:14s} first pass {first:7.2f} s ({len(items) / first:6.2f} items/s)   "
              f"steady {steady:7.2f} s ({len(items) / steady:6.2f} items/s)")
    tf, ts = results["pytorch"]
    for name in steps:
        jf, js = results[name]
        print(f"speed-up {name} vs PyTorch: steady {ts / js:.2f}x, first pass incl. compilation {tf / jf:.2f}x "
              f"(target >= 2x)")


if __name__ == "__main__":
    main()
