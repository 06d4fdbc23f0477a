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
_PHI3_IDS = dict(pad_token_id=1, bos_token_id=2, eos_token_id=3)  # Phi3Config's defaults exceed the tiny vocab

# name -> (config class, kwargs). Each variant exercises the features named in its comment.

# Gemma 3 text: 7 layers = 5 sliding + 1 full + 1 sliding, window 4 < prompt, local RoPE base 10 and
# global base 1000 with linear scaling x4 (small bases so both tables matter at positions < 16),
# (1 + w) q/k norms, query scalar 24 != head_dim, no soft-caps. Also the text part of the multimodal one.
_GEMMA3_TEXT = dict(
    _BASE,
    num_hidden_layers=7,
    num_key_value_heads=2,
    head_dim=16,
    sliding_window=4,
    query_pre_attn_scalar=24,
    rope_parameters={
        "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1000.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 10.0},
    },
)

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
    # Qwen3: per-head q/k RMSNorm, head_dim 16 != hidden / heads = 8, no biases, GQA 4:2, tied.
    "qwen3": (
        transformers.Qwen3Config,
        dict(_BASE, num_key_value_heads=2, head_dim=16, tie_word_embeddings=True),
    ),
    "gemma3": (transformers.Gemma3TextConfig, _GEMMA3_TEXT),
    # Gemma 3 multimodal (Gemma3ForConditionalGeneration): the same text model nested in `text_config`, a
    # tiny SigLIP vision tower the loader skips; saved as language_model.model.* tensors.
    "gemma3_multimodal": (
        transformers.Gemma3Config,
        dict(
            text_config=_GEMMA3_TEXT,
            vision_config=dict(
                hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                image_size=16, patch_size=8,
            ),
            mm_tokens_per_image=4,
        ),
    ),
    # Phi-3-mini: fused qkv_proj / gate_up_proj, sliding window 5 on every layer, GQA 4:2.
    "phi3": (transformers.Phi3Config, dict(_BASE, **_PHI3_IDS, num_key_value_heads=2, sliding_window=5)),
    # Phi-4-mini-like: rotary on 75% of each head (6 of 8), longrope with original context 8 so the test
    # prompts of 9 and 12 tokens take the long factors and the one of 7 the short ones (attention factor
    # sqrt(1 + ln(64 / 8) / ln 8)), tied embeddings.
    "phi3_longrope": (
        transformers.Phi3Config,
        dict(
            _BASE,
            **_PHI3_IDS,
            num_key_value_heads=2,
            tie_word_embeddings=True,
            max_position_embeddings=64,
            original_max_position_embeddings=8,
            rope_parameters=dict(
                rope_type="longrope",
                rope_theta=10000.0,
                partial_rotary_factor=0.75,
                short_factor=[1.0, 1.7, 2.9],
                long_factor=[1.3, 4.1, 9.7],
            ),
        ),
    ),
    # OLMo 2: norms after attention and MLP only, q/k RMSNorm over the full projected width, GQA 4:2.
    "olmo2": (transformers.Olmo2Config, dict(_BASE, pad_token_id=1, eos_token_id=3, num_key_value_heads=2)),
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


def build_torch_model(variant: str, seed: int = 0, **overrides) -> transformers.PreTrainedModel:
    """The float32 eval-mode PyTorch model of `variant` (config fields replaced by `overrides`) with eager
    attention and rescaled random weights."""
    config_cls, kwargs = VARIANTS[variant]
    config = config_cls(**{**kwargs, **overrides})
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
