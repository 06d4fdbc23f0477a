"""Mistral 7B v0.1 and v0.3.

Usage: python -m jaxunc.main --config=configs/mistral.py:<size>[-ins] --config.model.checkpoint=DIR
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model, billions of parameters)
SIZES = {'v0.1': ('Mistral-7B-v0.1', 'Mistral-7B-Instruct-v0.1', 7.24), 'v0.3': ('Mistral-7B-v0.3', 'Mistral-7B-Instruct-v0.3', 7.25)}


def get_config(arg=None):
    return family_config("mistral", arg, sizes=SIZES, default="v0.3")
