"""Shared pytest fixtures."""

from __future__ import annotations

import jax
import pytest


@pytest.fixture(scope="module")
def fast_compile():
    """Tiny models: XLA's optimisation passes cost more than they save (compile time halves); the
    numbers are unchanged within float32 rounding, which the tolerances of the tests using it allow."""
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", before)
