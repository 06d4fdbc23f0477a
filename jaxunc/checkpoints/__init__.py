"""Checkpoint readers: HF safetensors directories and GGUF files -> Flax params (see loader.load_model)."""

from jaxunc.checkpoints.loader import LoadedModel, load_model

__all__ = ["LoadedModel", "load_model"]
