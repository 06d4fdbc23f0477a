"""python -m jaxunc.main --config=configs/<name>.py[:arg] [--config.<field>=<value> ...]

Scores the model of the config on its datasets, writes the per-item tables, run.json, the analysis
and the report under config.output_dir (fields: jaxunc/configs.py). Errors are one line; exit
status 2 for a bad flag, config file, field or setting, 1 for a data or model error;
JAXUNC_DEBUG=1 shows the traceback.
"""

from __future__ import annotations

from pathlib import Path

from absl import logging
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
    import logging as std_logging

    from jaxunc.pipeline import run

    logging.set_verbosity(logging.INFO)
    std_logging.getLogger("jax._src.xla_bridge").setLevel(std_logging.WARNING)  # no backend-probing lines
    run(_CONFIG.value)


def run_main() -> None:
    cli.run("jaxunc", main, precheck=check_config_flags)


if __name__ == "__main__":
    run_main()
