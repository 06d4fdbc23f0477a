"""Checkpoint readers: HF safetensors directories and GGUF files -> Flax params (see loader.load_model)."""

from jaxunc.checkpoints.loader import LoadedModel, load_model
from jaxunc.checkpoints.special_tokens import SpecialTokens

__all__ = ["LoadedModel", "SpecialTokens", "load_model"]
