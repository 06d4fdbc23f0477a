"""Tiny random transformers checkpoints (one per architecture variant) saved with save_pretrained.

Weights are redrawn with a fixed torch seed at a scale where every component matters (default HF init
gives near-uniform logits, which would hide mistakes): 2-D tensors N(0, 0.2^2), 1-D tensors (norm
scales, biases) default + N(0, 0.2^2). A tiny word-level tokenizer with a chat template is saved too.
"""

from __future__ import annotations

import pathlib

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

VOCAB = 160
CHAT_TEMPLATE = "{% for m in messages %}<s>{{ m['role'] }} {{ m['content'] }}</s>{% endfor %}"

_BASE = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)

# name -> (config class, kwargs). Each variant exercises the features named in its comment.
VARIANTS: dict[str, tuple[type, dict]] = {
    # Llama 3.1: llama3 RoPE scaling (old context 16 puts rotary frequencies in all three regimes), GQA 4:2.
    "llama3": (
        transformers.LlamaConfig,
        dict(
            _BASE,
            num_key_value_heads=2,
            rope_parameters=dict(
                rope_type="llama3",
                rope_theta=500000.0,
                factor=8.0,
                low_freq_factor=1.0,
                high_freq_factor=4.0,
                original_max_position_embeddings=16,
            ),
            max_position_embeddings=128,
        ),
    ),
    # SmolLM2 / Falcon3-like Llama: tied embeddings, multi-query (4:1), q/k/v/o and MLP biases, 3 layers.
    "llama_tied_bias": (
        transformers.LlamaConfig,
        dict(
            _BASE,
            num_hidden_layers=3,
            num_key_value_heads=1,
            tie_word_embeddings=True,
            attention_bias=True,
            mlp_bias=True,
        ),
    ),
    # Mistral v0.1: sliding window on every layer, GQA 4:2.
    "mistral": (transformers.MistralConfig, dict(_BASE, num_key_value_heads=2, sliding_window=5, head_dim=8)),
    # Qwen2: q/k/v biases, GQA 4:2, untied.
    "qwen2": (transformers.Qwen2Config, dict(_BASE, num_key_value_heads=2, tie_word_embeddings=False)),
    # Gemma: GeGLU, scaled embeddings, (1 + w) RMSNorm, head_dim 16 != hidden / heads, MQA, tied.
    "gemma": (transformers.GemmaConfig, dict(_BASE, num_key_value_heads=1, head_dim=16)),
    # Gemma 2: soft-capping (small caps so tanh bends), sliding window 4 on layers 0 and 2, query scalar.
    "gemma2": (
        transformers.Gemma2Config,
        dict(
            _BASE,
            num_hidden_layers=3,
            num_key_value_heads=2,
            head_dim=16,
            sliding_window=4,
            query_pre_attn_scalar=24,
            attn_logit_softcapping=3.0,
            final_logit_softcapping=5.0,
        ),
    ),
    # Pythia: parallel residual, rotary on 25% of each head, LayerNorm, untied embed_out.
    "pythia": (transformers.GPTNeoXConfig, dict(_BASE, hidden_size=64, intermediate_size=96, rotary_pct=0.25)),
    # GPT-NeoX with the sequential residual.
    "neox_sequential": (
        transformers.GPTNeoXConfig,
        dict(_BASE, hidden_size=64, rotary_pct=0.5, use_parallel_residual=False),
    ),
}


def tiny_tokenizer() -> transformers.PreTrainedTokenizerFast:
    vocab = {"<unk>": 0, "<pad>": 1, "<s>": 2, "</s>": 3, **{f"w{i}": i for i in range(4, VOCAB)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        chat_template=CHAT_TEMPLATE,
    )


def build_torch_model(variant: str, seed: int = 0) -> transformers.PreTrainedModel:
    """The float32 eval-mode PyTorch model of `variant` with eager attention and rescaled random weights."""
    config_cls, kwargs = VARIANTS[variant]
    config = config_cls(**kwargs)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 0.2)
            else:
                p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def save_tiny_checkpoint(
    variant: str,
    directory: pathlib.Path,
    *,
    dtype: torch.dtype = torch.float32,
    max_shard_size: str | None = None,
    seed: int = 0,
) -> transformers.PreTrainedModel:
    """Save `variant` (weights cast to `dtype`, optionally sharded) plus a tokenizer; returns the float32 model."""
    model = build_torch_model(variant, seed)
    to_save = model if dtype == torch.float32 else build_torch_model(variant, seed).to(dtype)
    extra = {"max_shard_size": max_shard_size} if max_shard_size else {}
    to_save.save_pretrained(directory, safe_serialization=True, **extra)
    tiny_tokenizer().save_pretrained(directory)
    return model


# A real tokenizer for main-job tests: option letters are single tokens, ChatML chat template.
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

def bpe_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """A byte-level BPE with 400 entries trained on Coane text, ChatML template, no BOS."""
    from jaxunc.data import load_dataset

    items = load_dataset("coane").items
    text = list(items["Question"]) + [a for answers in items["Answers"] for a in answers]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(text, trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHATML)


def save_family_checkpoint(variant: str, directory: pathlib.Path, tokenizer) -> None:
    """`variant` with the vocabulary of `tokenizer`, random HF init, saved with its tokenizer."""
    config_cls, kwargs = VARIANTS[variant]
    config = config_cls(**{**kwargs, "vocab_size": len(tokenizer), "max_position_embeddings": 4096})
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
