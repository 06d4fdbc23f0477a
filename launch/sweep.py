"""Run a sweep of models one after another, then the statistics across all of them.

A sweep file has one run per line: `<config file>[:<arg>] <checkpoint dir or .gguf>` ('#' comments;
the checkpoint may be omitted for configs/smollm2.py). Every run writes to <output_dir>/<config name>
and is resumable (re-running the sweep skips finished models); then `jaxunc.analyze` reads every
per-item table under <output_dir> and writes the cross-model analysis to <output_dir>.

  python launch/sweep.py --sweep=launch/coane_study.txt --output_dir=results/study [--dry_run]
  extra flags after `--` go to every run, e.g. -- --config.data.limit=20
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from absl import flags

from jaxunc import cli
from jaxunc.configs import load_config_file

FLAGS = flags.FLAGS
flags.DEFINE_string("sweep", None, "sweep file: one '<config>[:arg] [checkpoint]' per line")
flags.DEFINE_string("output_dir", "results/sweep", "root folder of the sweep's runs and analysis")
flags.DEFINE_bool("dry_run", False, "print the commands instead of running them")


def parse_sweep(path: Path) -> list[tuple[str, str | None, str]]:
    """[(config file, arg or None, checkpoint or '')] from a sweep file, with errors naming the line."""
    if not path.is_file():
        raise cli.UsageError(f"--sweep={path}: no such sweep file")
    runs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = shlex.split(line)
        if len(parts) > 2:
            raise cli.UsageError(f"{path}:{number}: expected '<config>[:arg] [checkpoint]', got {line!r}")
        config, _, arg = parts[0].partition(":")
        if not Path(config).is_file():
            raise cli.UsageError(f"{path}:{number}: config file {config} not found")
        try:
            load_config_file(config, arg or None)
        except Exception as err:
            raise cli.UsageError(f"{path}:{number}: {config}{':' + arg if arg else ''}: {cli.one_line(err)}") from err
        runs.append((config, arg or None, parts[1] if len(parts) == 2 else ""))
    if not runs:
        raise cli.UsageError(f"{path}: no runs listed")
    return runs


def commands(runs, output_dir: Path, extra: list[str]) -> list[list[str]]:
    """One `python -m jaxunc.main` per run, then one `python -m jaxunc.analyze` over all of them."""
    cmds = []
    for config, arg, checkpoint in runs:
        name = load_config_file(config, arg).name
        cmd = [sys.executable, "-m", "jaxunc.main", f"--config={config}" + (f":{arg}" if arg else ""),
               f"--config.output_dir={output_dir / name}", "--config.analysis.run=False"]
        if checkpoint:
            cmd.append(f"--config.model.checkpoint={checkpoint}")
        cmds.append(cmd + extra)
    cmds.append([sys.executable, "-m", "jaxunc.analyze", f"--results={output_dir}", f"--output_dir={output_dir}"])
    return cmds


def main(argv):
    if not FLAGS.sweep:
        raise cli.UsageError("--sweep is required (a file with one '<config>[:arg] [checkpoint]' per line)")
    extra = argv[1:]
    cmds = commands(parse_sweep(Path(FLAGS.sweep)), Path(FLAGS.output_dir), extra)
    for number, cmd in enumerate(cmds, start=1):
        print(shlex.join(cmd), flush=True)
        if FLAGS.dry_run:
            continue
        status = subprocess.run(cmd).returncode
        if status:  # the run printed its own one-line error; say which run it was and stop
            cli.fail("sweep", f"command {number} of {len(cmds)} failed (exit {status}): {shlex.join(cmd)}", status)


if __name__ == "__main__":
    cli.run("sweep", main, doc=__doc__, module=sys.modules[__name__])
