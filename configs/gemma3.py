"""Gemma 3 1B (text only, Gemma3ForCausalLM) and 4B/12B/27B (multimodal checkpoints: the language model
is loaded, the vision tower skipped); 5 sliding : 1 global layers with separate RoPE bases.

Usage: python -m jaxunc.main --config=configs/gemma3.py:<size>[-ins] --config.model.checkpoint=DIR
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model, billions of parameters)
SIZES = {
    '1b': ('gemma-3-1b-pt', 'gemma-3-1b-it', 1.0),
    '4b': ('gemma-3-4b-pt', 'gemma-3-4b-it', 4.3),
    '12b': ('gemma-3-12b-pt', 'gemma-3-12b-it', 12.2),
    '27b': ('gemma-3-27b-pt', 'gemma-3-27b-it', 27.4),
}


def get_config(arg=None):
    return family_config("gemma3", arg, sizes=SIZES, default="1b")
