"""Shared pytest fixtures, and one persistent XLA compilation cache for the test session.

Many tests run the same programs again (the main job on SmolLM2 after a kill, a rerun that reuses
results, the same step in a subprocess): each compiled program is stored once per session in a
temporary folder (set before jax starts; xdist workers and subprocesses inherit it) and loaded on
later compilations. A compiled program gives the same numbers whether compiled or loaded; the folder
is removed when the session ends. JAXUNC_TEST_XLA_CACHE=0 turns it off.
"""

from __future__ import annotations

import os
import shutil
import tempfile

if os.environ.get("JAXUNC_TEST_XLA_CACHE", "1") != "0" and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    # the controller (or a plain pytest run) creates the folder; xdist workers inherit the variable
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxunc-tests-xla-")
    os.environ["JAXUNC_TEST_XLA_CACHE_OWNER"] = str(os.getpid())
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import jax  # noqa: E402  (after the cache settings above)
import pytest  # noqa: E402


def pytest_unconfigure(config):
    if os.environ.get("JAXUNC_TEST_XLA_CACHE_OWNER") == str(os.getpid()):
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


@pytest.fixture(scope="module")
def fast_compile():
    """Tiny models: XLA's optimisation passes cost more than they save (compile time halves); the
    numbers are unchanged within float32 rounding, which the tolerances of the tests using it allow."""
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", before)
