"""Gemma 2B and 7B.

Usage: python -m jaxunc.main --config=configs/gemma.py:<size>[-ins] --config.model.checkpoint=DIR
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model, billions of parameters)
SIZES = {'2b': ('gemma-2b', 'gemma-2b-it', 2.51), '7b': ('gemma-7b', 'gemma-7b-it', 8.54)}


def get_config(arg=None):
    return family_config("gemma", arg, sizes=SIZES, default="2b")
