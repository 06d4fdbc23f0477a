"""Gemma 2 2B and 9B (soft-capping, sliding window).

Launch (model.size comes from the checkpoint; sizes: 2b, 9b):

  python -m jaxunc.main --config=configs/gemma2.py:size=2b --config.model.checkpoint=/ckpt/gemma-2-2b
  python -m jaxunc.main --config=configs/gemma2.py:size=9b,ins=True --config.model.checkpoint=/ckpt/gemma-2-9b-it
  python -m jaxunc.main --config=configs/gemma2.py:size=2b,ins=True,runlocal --config.model.checkpoint=/ckpt/gemma-2-2b-it   # smoke run, 8 items
  (the older form --config=configs/gemma2.py:2b-ins also works)
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model); None where that variant was never released
SIZES = {
    '2b': ('gemma-2-2b', 'gemma-2-2b-it'),
    '9b': ('gemma-2-9b', 'gemma-2-9b-it'),
}


def get_config(arg=None):
    return family_config("gemma2", arg, sizes=SIZES, default="2b")
