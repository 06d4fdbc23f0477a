"""Llama 3.1 8B and Llama 3.2 1B/3B (llama3 RoPE scaling).

Usage: python -m jaxunc.main --config=configs/llama3.py:<size>[-ins] --config.model.checkpoint=DIR
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model, billions of parameters)
SIZES = {'1b': ('Llama-3.2-1B', 'Llama-3.2-1B-Instruct', 1.24), '3b': ('Llama-3.2-3B', 'Llama-3.2-3B-Instruct', 3.21), '8b': ('Llama-3.1-8B', 'Llama-3.1-8B-Instruct', 8.03)}


def get_config(arg=None):
    return family_config("llama3", arg, sizes=SIZES, default="1b")
