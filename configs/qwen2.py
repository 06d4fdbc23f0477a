"""Qwen2 / Qwen2.5 (q/k/v bias).

Launch (model.size comes from the checkpoint; sizes: 0.5b, 1.5b, 7b):

  python -m jaxunc.main --config=configs/qwen2.py:size=0.5b --config.model.checkpoint=/ckpt/Qwen2.5-0.5B
  python -m jaxunc.main --config=configs/qwen2.py:size=7b,ins=True --config.model.checkpoint=/ckpt/Qwen2.5-7B-Instruct
  python -m jaxunc.main --config=configs/qwen2.py:size=0.5b,ins=True,runlocal --config.model.checkpoint=/ckpt/Qwen2.5-0.5B-Instruct   # smoke run, 8 items
  (the older form --config=configs/qwen2.py:0.5b-ins also works)
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model); None where that variant was never released
SIZES = {
    '0.5b': ('Qwen2.5-0.5B', 'Qwen2.5-0.5B-Instruct'),
    '1.5b': ('Qwen2.5-1.5B', 'Qwen2.5-1.5B-Instruct'),
    '7b': ('Qwen2.5-7B', 'Qwen2.5-7B-Instruct'),
}


def get_config(arg=None):
    return family_config("qwen2", arg, sizes=SIZES, default="0.5b")
