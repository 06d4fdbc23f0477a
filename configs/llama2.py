"""Llama 2 (7B, 13B); instruct = the -chat models.

Launch (model.size comes from the checkpoint; sizes: 7b, 13b):

  python -m jaxunc.main --config=configs/llama2.py:size=7b --config.model.checkpoint=/ckpt/Llama-2-7b-hf
  python -m jaxunc.main --config=configs/llama2.py:size=13b,ins=True --config.model.checkpoint=/ckpt/Llama-2-13b-chat-hf
  python -m jaxunc.main --config=configs/llama2.py:size=7b,ins=True,runlocal --config.model.checkpoint=/ckpt/Llama-2-7b-chat-hf   # smoke run, 8 items
  (the older form --config=configs/llama2.py:7b-ins also works)
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model); None where that variant was never released
SIZES = {
    '7b': ('Llama-2-7b-hf', 'Llama-2-7b-chat-hf'),
    '13b': ('Llama-2-13b-hf', 'Llama-2-13b-chat-hf'),
}


def get_config(arg=None):
    return family_config("llama2", arg, sizes=SIZES, default="7b")
