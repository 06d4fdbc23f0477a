"""Start N local processes of one run, joined by jax.distributed (coordinator on 127.0.0.1).

Each process gets its own simulated CPU devices (--devices_per_process) or, on a GPU host, its share
of the GPUs (--gpus_per_process, via CUDA_VISIBLE_DEVICES); items are split by chunk between the
processes and process 0 merges and writes the tables. The result equals one process's (tested).

  python launch/local.py --num_processes=2 -- --config=configs/smollm2.py --config.data.limit=16
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys

from absl import flags

from jaxunc import cli

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_processes", 2, "processes to start")
flags.DEFINE_integer("devices_per_process", 1, "simulated CPU devices per process (XLA host platform)")
flags.DEFINE_integer("gpus_per_process", 0, "GPUs per process (0: CPU devices)")
flags.DEFINE_integer("port", 0, "coordinator port on 127.0.0.1 (0: a free one)")
flags.DEFINE_bool("dry_run", False, "print the commands instead of running them")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def commands(main_flags: list[str], n: int, port: int) -> list[list[str]]:
    """One `python -m jaxunc.main` per process, all pointing at the same coordinator."""
    return [[sys.executable, "-m", "jaxunc.main", *main_flags, "--config.engine.distributed=True",
             f"--config.engine.coordinator_address=127.0.0.1:{port}", f"--config.engine.process_count={n}",
             f"--config.engine.process_index={i}"] for i in range(n)]


def environment(i: int) -> dict[str, str]:
    env = dict(os.environ)
    if FLAGS.gpus_per_process:
        first = i * FLAGS.gpus_per_process
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(first + g) for g in range(FLAGS.gpus_per_process))
    else:
        env["JAX_PLATFORMS"] = "cpu"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={FLAGS.devices_per_process}"
    return env


def main(argv: list[str]) -> None:
    main_flags = argv[1:]
    if not any(a.startswith("--config") for a in main_flags):
        raise cli.UsageError("give the main job's flags after --, e.g. -- --config=configs/smollm2.py")
    if FLAGS.num_processes < 1:
        raise cli.UsageError(f"--num_processes={FLAGS.num_processes}: expected >= 1")
    cmds = commands(main_flags, FLAGS.num_processes, FLAGS.port or free_port())
    for cmd in cmds:
        print(shlex.join(cmd), flush=True)
    if FLAGS.dry_run:
        return
    procs = [subprocess.Popen(cmd, env=environment(i)) for i, cmd in enumerate(cmds)]
    statuses = [p.wait() for p in procs]
    failed = [(i, s) for i, s in enumerate(statuses) if s]
    if failed:
        cli.fail("local", f"process {failed[0][0]} of {len(cmds)} failed (exit {failed[0][1]})", failed[0][1] or 1)


if __name__ == "__main__":
    cli.run("local", main, doc=__doc__, module=sys.modules[__name__])
