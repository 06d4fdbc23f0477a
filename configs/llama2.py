"""Llama 2 (7B, 13B); instruct = the -chat models.

Usage: python -m jaxunc.main --config=configs/llama2.py:<size>[-ins] --config.model.checkpoint=DIR
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model, billions of parameters)
SIZES = {'7b': ('Llama-2-7b-hf', 'Llama-2-7b-chat-hf', 6.74), '13b': ('Llama-2-13b-hf', 'Llama-2-13b-chat-hf', 13.0)}


def get_config(arg=None):
    return family_config("llama2", arg, sizes=SIZES, default="7b")
