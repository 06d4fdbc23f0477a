"""Phi-3-mini (4k, 128k), Phi-3.5-mini, Phi-3-medium, Phi-4-mini and Phi-4 (model_type phi3: fused
qkv/gate_up, partial rotary on Phi-4-mini, longrope on the 128k-context models). All are instruct-only
releases, so every size needs the -ins variant.

Usage: python -m jaxunc.main --config=configs/phi3.py:<size>-ins --config.model.checkpoint=DIR
"""

from jaxunc.configs import family_config

# size key: (base model or None when only an instruct model was released, instruct model, billions)
SIZES = {
    'mini4k': (None, 'Phi-3-mini-4k-instruct', 3.82),
    'mini128k': (None, 'Phi-3-mini-128k-instruct', 3.82),
    '3.5mini': (None, 'Phi-3.5-mini-instruct', 3.82),
    'medium4k': (None, 'Phi-3-medium-4k-instruct', 14.0),
    '4mini': (None, 'Phi-4-mini-instruct', 3.84),
    '4': (None, 'phi-4', 14.7),
}


def get_config(arg=None):
    return family_config("phi3", arg, sizes=SIZES, default="4mini-ins")
