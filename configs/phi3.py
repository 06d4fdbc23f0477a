"""Phi-3-mini (4k, 128k), Phi-3.5-mini, Phi-3-medium, Phi-4-mini and Phi-4 (model_type phi3: fused
qkv/gate_up, partial rotary on Phi-4-mini, longrope on the 128k-context models). All are instruct-only
releases, so every size needs the -ins variant.

Launch (model.size comes from the checkpoint; sizes: mini4k, mini128k, 3.5mini, medium4k, 4mini, 4):

  python -m jaxunc.main --config=configs/phi3.py:size=4,ins=True --config.model.checkpoint=/ckpt/phi-4
  python -m jaxunc.main --config=configs/phi3.py:size=mini4k,ins=True,runlocal --config.model.checkpoint=/ckpt/Phi-3-mini-4k-instruct   # smoke run, 8 items
  (the older form --config=configs/phi3.py:mini4k-ins also works)
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model); None where that variant was never released
SIZES = {
    'mini4k': (None, 'Phi-3-mini-4k-instruct'),
    'mini128k': (None, 'Phi-3-mini-128k-instruct'),
    '3.5mini': (None, 'Phi-3.5-mini-instruct'),
    'medium4k': (None, 'Phi-3-medium-4k-instruct'),
    '4mini': (None, 'Phi-4-mini-instruct'),
    '4': (None, 'phi-4'),
}


def get_config(arg=None):
    return family_config("phi3", arg, sizes=SIZES, default="4mini-ins")
