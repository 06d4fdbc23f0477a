"""Gemma 2 2B and 9B (soft-capping, sliding window).

Usage: python -m jaxunc.main --config=configs/gemma2.py:<size>[-ins] --config.model.checkpoint=DIR
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model, billions of parameters)
SIZES = {'2b': ('gemma-2-2b', 'gemma-2-2b-it', 2.61), '9b': ('gemma-2-9b', 'gemma-2-9b-it', 9.24)}


def get_config(arg=None):
    return family_config("gemma2", arg, sizes=SIZES, default="2b")
