"""Pythia (GPT-NeoX: parallel residual, partial rotary); base models only.

Launch (model.size comes from the checkpoint; sizes: 160m, 410m, 1b, 1.4b, 2.8b, 6.9b, 12b):

  python -m jaxunc.main --config=configs/pythia.py:size=160m --config.model.checkpoint=/ckpt/pythia-160m
  python -m jaxunc.main --config=configs/pythia.py:size=160m,runlocal --config.model.checkpoint=/ckpt/pythia-160m   # smoke run, 8 items
  (the older form --config=configs/pythia.py:160m also works)
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model); None where that variant was never released
SIZES = {
    '160m': ('pythia-160m', None),
    '410m': ('pythia-410m', None),
    '1b': ('pythia-1b', None),
    '1.4b': ('pythia-1.4b', None),
    '2.8b': ('pythia-2.8b', None),
    '6.9b': ('pythia-6.9b', None),
    '12b': ('pythia-12b', None),
}


def get_config(arg=None):
    return family_config("pythia", arg, sizes=SIZES, default="160m")
