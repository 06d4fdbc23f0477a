"""Qwen3 dense 0.6B-14B (per-head q/k RMSNorm, head_dim decoupled from hidden/heads); instruct = the
hybrid-thinking chat models (Qwen3-<size>), base = Qwen3-<size>-Base.

Launch (model.size comes from the checkpoint; sizes: 0.6b, 1.7b, 4b, 8b, 14b):

  python -m jaxunc.main --config=configs/qwen3.py:size=0.6b --config.model.checkpoint=/ckpt/Qwen3-0.6B-Base
  python -m jaxunc.main --config=configs/qwen3.py:size=14b,ins=True --config.model.checkpoint=/ckpt/Qwen3-14B
  python -m jaxunc.main --config=configs/qwen3.py:size=0.6b,ins=True,runlocal --config.model.checkpoint=/ckpt/Qwen3-0.6B   # smoke run, 8 items
  (the older form --config=configs/qwen3.py:0.6b-ins also works)
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model); None where that variant was never released
SIZES = {
    '0.6b': ('Qwen3-0.6B-Base', 'Qwen3-0.6B'),
    '1.7b': ('Qwen3-1.7B-Base', 'Qwen3-1.7B'),
    '4b': ('Qwen3-4B-Base', 'Qwen3-4B'),
    '8b': ('Qwen3-8B-Base', 'Qwen3-8B'),
    '14b': ('Qwen3-14B-Base', 'Qwen3-14B'),
}


def get_config(arg=None):
    return family_config("qwen3", arg, sizes=SIZES, default="0.6b")
