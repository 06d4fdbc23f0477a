"""One writer per output folder: an exclusive `fcntl.flock` on `<output_dir>/.jaxunc.lock`.

The kernel releases the lock when its process ends, however it ends (SIGKILL included), so a lock
left by a killed run is never stale: the next run takes it over, and says whose it was. The file
holds the owner's pid, host and start time for the message a second run prints. Only the writing
process of a multi-host run (process 0) takes it; the others write chunks under their own names.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = ".jaxunc.lock"


class OutputDirBusy(RuntimeError):
    """Another run holds the output folder."""


class OutputLock:
    """Context manager holding the output folder's lock; OutputDirBusy when another run has it."""

    def __init__(self, output_dir: Path):
        self.path = Path(output_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "OutputLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputDirBusy(f"{self.path.parent} is in use by another jaxunc run ({self._owner()}); wait for "
                                "it to finish or use another --config.output_dir") from None
        previous = self._owner()
        if previous != "owner unknown":
            log.info("taking over the lock of a run that has ended (%s)", previous)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _owner(self) -> str:
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        if not info:
            return "owner unknown"
        return f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}"

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
