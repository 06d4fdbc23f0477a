"""OLMo 2 1B (0425), 7B and 13B (1124), 32B (0325): post-norms, full-width q/k RMSNorm.

Launch (model.size comes from the checkpoint; sizes: 1b, 7b, 13b, 32b):

  python -m jaxunc.main --config=configs/olmo2.py:size=1b --config.model.checkpoint=/ckpt/OLMo-2-0425-1B
  python -m jaxunc.main --config=configs/olmo2.py:size=32b,ins=True --config.model.checkpoint=/ckpt/OLMo-2-0325-32B-Instruct
  python -m jaxunc.main --config=configs/olmo2.py:size=1b,ins=True,runlocal --config.model.checkpoint=/ckpt/OLMo-2-0425-1B-Instruct   # smoke run, 8 items
  (the older form --config=configs/olmo2.py:1b-ins also works)
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model); None where that variant was never released
SIZES = {
    '1b': ('OLMo-2-0425-1B', 'OLMo-2-0425-1B-Instruct'),
    '7b': ('OLMo-2-1124-7B', 'OLMo-2-1124-7B-Instruct'),
    '13b': ('OLMo-2-1124-13B', 'OLMo-2-1124-13B-Instruct'),
    '32b': ('OLMo-2-0325-32B', 'OLMo-2-0325-32B-Instruct'),
}


def get_config(arg=None):
    return family_config("olmo2", arg, sizes=SIZES, default="1b")
