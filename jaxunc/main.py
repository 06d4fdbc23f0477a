"""jaxunc main job: score one model on multiple-choice (and free-response) questions with known human
answer distributions, compute the uncertainty measures on device, then the statistics and the report.

    python -m jaxunc.main --config=configs/<name>.py[:arg] [--config.<field>=<value> ...]
    python -m jaxunc.main --config=configs/smollm2.py:runlocal          # a tiny smoke run
    python -m jaxunc.main --config=configs/llama3.py:size=8b,ins=True --config.model.checkpoint=DIR

Writes under config.output_dir (default results/<config name>): items/<dataset>__<model>.parquet (one
row per item), run.json, analysis/*.csv, report.md and figures/, then prints a short summary (where
the files are, accuracy, the best-aligned measures). Config fields: jaxunc/configs.py; each
configs/*.py docstring has launch commands. Errors are one line; exit status 2 for a bad flag, config
file, field or setting, 1 for a data or model error; JAXUNC_DEBUG=1 shows the traceback.
"""

from __future__ import annotations

from pathlib import Path

import sys

from ml_collections import ConfigDict, config_flags

from jaxunc import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "A configs/*.py file, optionally with :<arg>.",
                                          lock_config=True)


def _flag_value(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def check_config_flags(argv: list[str]) -> None:
    """Refuse a missing or failing config file and overrides of fields the config does not have."""
    from jaxunc.configs import load_config_file

    spec = _flag_value(argv, "config")
    if not spec:
        raise cli.UsageError("--config is required, e.g. --config=configs/smollm2.py")
    path, _, arg = spec.partition(":")
    if not Path(path).is_file():
        raise cli.UsageError(f"--config={spec}: no such config file {path}")
    try:
        config = load_config_file(path, arg or None)
    except Exception as err:
        raise cli.UsageError(f"--config={spec}: {cli.one_line(err)}") from err
    for item in argv:
        if not item.startswith("--config."):
            continue
        field = item[len("--config."):].split("=", 1)[0]
        node = config
        for depth, part in enumerate(field.split(".")):
            if not isinstance(node, ConfigDict) or part not in node:
                known = sorted(node.keys()) if isinstance(node, ConfigDict) else []
                where = ".".join(field.split(".")[:depth]) or "the config"
                raise cli.UsageError(f"{item}: {where} has no field {part!r}"
                                     + (f"; its fields: {', '.join(known)}" if known else ""))
            node = node[part]


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}; settings go in --config.<field>=<value>")
    from jaxunc.pipeline import run

    run(_CONFIG.value)


def run_main() -> None:
    cli.run("jaxunc", main, precheck=check_config_flags, doc=__doc__, module=sys.modules[__name__])


if __name__ == "__main__":
    run_main()
