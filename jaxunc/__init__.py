"""jaxunc: human alignment and calibration of language-model uncertainty, in JAX."""

__version__ = "0.1.0"
