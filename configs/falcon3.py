"""Falcon3 1B-10B (Llama architecture).

Usage: python -m jaxunc.main --config=configs/falcon3.py:<size>[-ins] --config.model.checkpoint=DIR
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model, billions of parameters)
SIZES = {'1b': ('Falcon3-1B-Base', 'Falcon3-1B-Instruct', 1.67), '3b': ('Falcon3-3B-Base', 'Falcon3-3B-Instruct', 3.23), '7b': ('Falcon3-7B-Base', 'Falcon3-7B-Instruct', 7.46), '10b': ('Falcon3-10B-Base', 'Falcon3-10B-Instruct', 10.3)}


def get_config(arg=None):
    return family_config("falcon3", arg, sizes=SIZES, default="1b")
