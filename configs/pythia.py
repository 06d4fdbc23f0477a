"""Pythia (GPT-NeoX: parallel residual, partial rotary); base models only.

Usage: python -m jaxunc.main --config=configs/pythia.py:<size>[-ins] --config.model.checkpoint=DIR
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model, billions of parameters)
SIZES = {'160m': ('pythia-160m', None, 0.162), '410m': ('pythia-410m', None, 0.405), '1b': ('pythia-1b', None, 1.01), '1.4b': ('pythia-1.4b', None, 1.41), '2.8b': ('pythia-2.8b', None, 2.78), '6.9b': ('pythia-6.9b', None, 6.86), '12b': ('pythia-12b', None, 11.8)}


def get_config(arg=None):
    return family_config("pythia", arg, sizes=SIZES, default="160m")
