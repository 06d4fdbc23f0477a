"""Gemma 2B and 7B.

Launch (model.size comes from the checkpoint; sizes: 2b, 7b):

  python -m jaxunc.main --config=configs/gemma.py:size=2b --config.model.checkpoint=/ckpt/gemma-2b
  python -m jaxunc.main --config=configs/gemma.py:size=7b,ins=True --config.model.checkpoint=/ckpt/gemma-7b-it
  python -m jaxunc.main --config=configs/gemma.py:size=2b,ins=True,runlocal --config.model.checkpoint=/ckpt/gemma-2b-it   # smoke run, 8 items
  (the older form --config=configs/gemma.py:2b-ins also works)
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model); None where that variant was never released
SIZES = {
    '2b': ('gemma-2b', 'gemma-2b-it'),
    '7b': ('gemma-7b', 'gemma-7b-it'),
}


def get_config(arg=None):
    return family_config("gemma", arg, sizes=SIZES, default="2b")
