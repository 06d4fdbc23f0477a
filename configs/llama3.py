"""Llama 3.1 8B and Llama 3.2 1B/3B (llama3 RoPE scaling).

Launch (model.size comes from the checkpoint; sizes: 1b, 3b, 8b):

  python -m jaxunc.main --config=configs/llama3.py:size=1b --config.model.checkpoint=/ckpt/Llama-3.2-1B
  python -m jaxunc.main --config=configs/llama3.py:size=8b,ins=True --config.model.checkpoint=/ckpt/Llama-3.1-8B-Instruct
  python -m jaxunc.main --config=configs/llama3.py:size=1b,ins=True,runlocal --config.model.checkpoint=/ckpt/Llama-3.2-1B-Instruct   # smoke run, 8 items
  (the older form --config=configs/llama3.py:1b-ins also works)
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model); None where that variant was never released
SIZES = {
    '1b': ('Llama-3.2-1B', 'Llama-3.2-1B-Instruct'),
    '3b': ('Llama-3.2-3B', 'Llama-3.2-3B-Instruct'),
    '8b': ('Llama-3.1-8B', 'Llama-3.1-8B-Instruct'),
}


def get_config(arg=None):
    return family_config("llama3", arg, sizes=SIZES, default="1b")
