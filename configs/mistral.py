"""Mistral 7B v0.1 and v0.3.

Launch (model.size comes from the checkpoint; sizes: v0.1, v0.3):

  python -m jaxunc.main --config=configs/mistral.py:size=v0.1 --config.model.checkpoint=/ckpt/Mistral-7B-v0.1
  python -m jaxunc.main --config=configs/mistral.py:size=v0.3,ins=True --config.model.checkpoint=/ckpt/Mistral-7B-Instruct-v0.3
  python -m jaxunc.main --config=configs/mistral.py:size=v0.1,ins=True,runlocal --config.model.checkpoint=/ckpt/Mistral-7B-Instruct-v0.1   # smoke run, 8 items
  (the older form --config=configs/mistral.py:v0.1-ins also works)
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model); None where that variant was never released
SIZES = {
    'v0.1': ('Mistral-7B-v0.1', 'Mistral-7B-Instruct-v0.1'),
    'v0.3': ('Mistral-7B-v0.3', 'Mistral-7B-Instruct-v0.3'),
}


def get_config(arg=None):
    return family_config("mistral", arg, sizes=SIZES, default="v0.3")
