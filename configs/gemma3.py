"""Gemma 3 1B (text only, Gemma3ForCausalLM) and 4B/12B/27B (multimodal checkpoints: the language model
is loaded, the vision tower skipped); 5 sliding : 1 global layers with separate RoPE bases.

Launch (model.size comes from the checkpoint; sizes: 1b, 4b, 12b, 27b):

  python -m jaxunc.main --config=configs/gemma3.py:size=1b --config.model.checkpoint=/ckpt/gemma-3-1b-pt
  python -m jaxunc.main --config=configs/gemma3.py:size=27b,ins=True --config.model.checkpoint=/ckpt/gemma-3-27b-it
  python -m jaxunc.main --config=configs/gemma3.py:size=1b,ins=True,runlocal --config.model.checkpoint=/ckpt/gemma-3-1b-it   # smoke run, 8 items
  (the older form --config=configs/gemma3.py:1b-ins also works)
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model); None where that variant was never released
SIZES = {
    '1b': ('gemma-3-1b-pt', 'gemma-3-1b-it'),
    '4b': ('gemma-3-4b-pt', 'gemma-3-4b-it'),
    '12b': ('gemma-3-12b-pt', 'gemma-3-12b-it'),
    '27b': ('gemma-3-27b-pt', 'gemma-3-27b-it'),
}


def get_config(arg=None):
    return family_config("gemma3", arg, sizes=SIZES, default="1b")
