"""jaxunc: human alignment and calibration of language-model uncertainty, in JAX.

`jaxunc.Evaluator` (jaxunc/evaluator.py) scores any JAX model from a training loop; it is imported on
first use, so `import jaxunc` stays cheap (no jax, no transformers).
"""

__version__ = "0.1.0"
__all__ = ["Evaluator"]


def __getattr__(name: str):
    if name == "Evaluator":
        from jaxunc.evaluator import Evaluator

        return Evaluator
    raise AttributeError(f"module 'jaxunc' has no attribute {name!r}")
