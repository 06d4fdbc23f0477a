"""Falcon3 1B-10B (Llama architecture).

Launch (model.size comes from the checkpoint; sizes: 1b, 3b, 7b, 10b):

  python -m jaxunc.main --config=configs/falcon3.py:size=1b --config.model.checkpoint=/ckpt/Falcon3-1B-Base
  python -m jaxunc.main --config=configs/falcon3.py:size=10b,ins=True --config.model.checkpoint=/ckpt/Falcon3-10B-Instruct
  python -m jaxunc.main --config=configs/falcon3.py:size=1b,ins=True,runlocal --config.model.checkpoint=/ckpt/Falcon3-1B-Instruct   # smoke run, 8 items
  (the older form --config=configs/falcon3.py:1b-ins also works)
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model); None where that variant was never released
SIZES = {
    '1b': ('Falcon3-1B-Base', 'Falcon3-1B-Instruct'),
    '3b': ('Falcon3-3B-Base', 'Falcon3-3B-Instruct'),
    '7b': ('Falcon3-7B-Base', 'Falcon3-7B-Instruct'),
    '10b': ('Falcon3-10B-Base', 'Falcon3-10B-Instruct'),
}


def get_config(arg=None):
    return family_config("falcon3", arg, sizes=SIZES, default="1b")
