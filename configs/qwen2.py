"""Qwen2 / Qwen2.5 (q/k/v bias).

Usage: python -m jaxunc.main --config=configs/qwen2.py:<size>[-ins] --config.model.checkpoint=DIR
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model, billions of parameters)
SIZES = {'0.5b': ('Qwen2.5-0.5B', 'Qwen2.5-0.5B-Instruct', 0.49), '1.5b': ('Qwen2.5-1.5B', 'Qwen2.5-1.5B-Instruct', 1.54), '7b': ('Qwen2.5-7B', 'Qwen2.5-7B-Instruct', 7.62)}


def get_config(arg=None):
    return family_config("qwen2", arg, sizes=SIZES, default="0.5b")
