"""Qwen3 dense 0.6B-14B (per-head q/k RMSNorm, head_dim decoupled from hidden/heads); instruct = the
hybrid-thinking chat models (Qwen3-<size>), base = Qwen3-<size>-Base.

Usage: python -m jaxunc.main --config=configs/qwen3.py:<size>[-ins] --config.model.checkpoint=DIR
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model, billions of parameters)
SIZES = {
    '0.6b': ('Qwen3-0.6B-Base', 'Qwen3-0.6B', 0.6),
    '1.7b': ('Qwen3-1.7B-Base', 'Qwen3-1.7B', 1.7),
    '4b': ('Qwen3-4B-Base', 'Qwen3-4B', 4.0),
    '8b': ('Qwen3-8B-Base', 'Qwen3-8B', 8.2),
    '14b': ('Qwen3-14B-Base', 'Qwen3-14B', 14.8),
}


def get_config(arg=None):
    return family_config("qwen3", arg, sizes=SIZES, default="0.6b")
