"""OLMo 2 1B (0425), 7B and 13B (1124), 32B (0325): post-norms, full-width q/k RMSNorm.

Usage: python -m jaxunc.main --config=configs/olmo2.py:<size>[-ins] --config.model.checkpoint=DIR
"""

from jaxunc.configs import family_config

# size key: (base model, instruct model, billions of parameters)
SIZES = {
    '1b': ('OLMo-2-0425-1B', 'OLMo-2-0425-1B-Instruct', 1.48),
    '7b': ('OLMo-2-1124-7B', 'OLMo-2-1124-7B-Instruct', 7.30),
    '13b': ('OLMo-2-1124-13B', 'OLMo-2-1124-13B-Instruct', 13.7),
    '32b': ('OLMo-2-0325-32B', 'OLMo-2-0325-32B-Instruct', 32.2),
}


def get_config(arg=None):
    return family_config("olmo2", arg, sizes=SIZES, default="1b")
