"""Command-line plumbing shared by every entry point: one-line errors and exit statuses.

Exit status: 0 done; 2 usage error (a bad flag, config file, config field or setting: `UsageError`
and absl's flag errors); 1 data or model error (anything else: a bad data file, checkpoint, output
folder, or a bug). The message is one line, `<prog>: error: <what, where, what was expected>`;
`JAXUNC_DEBUG=1` re-raises instead, with the traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

USAGE, DATA = 2, 1


class UsageError(ValueError):
    """A bad flag, config file, config field or setting (exit status 2)."""


def debug() -> bool:
    return bool(os.environ.get("JAXUNC_DEBUG"))


def one_line(err: BaseException) -> str:
    """The exception's message on one line (its type name when it has none)."""
    text = " ".join(str(err).split())
    if isinstance(err, KeyError | AttributeError | TypeError | IndexError) or not text:
        return f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text


def fail(prog: str, err: BaseException | str, status: int) -> None:
    """Print `<prog>: error: <one line>` to stderr and exit with `status`."""
    message = err if isinstance(err, str) else one_line(err)
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(status)


def status_of(err: BaseException) -> int:
    return USAGE if isinstance(err, UsageError) else DATA


def guarded(prog: str, fn: Callable[[], object]) -> object:
    """Run fn(); turn any exception into a one-line message and an exit status (unless JAXUNC_DEBUG)."""
    try:
        return fn()
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as err:  # every error reaches the user as one line
        if debug():
            raise
        fail(prog, err, status_of(err))


def run(prog: str, main: Callable[[list[str]], object], argv: Sequence[str] | None = None,
        precheck: Callable[[list[str]], None] | None = None) -> None:
    """absl's app.run with one-line errors: flag errors and `precheck(argv)` failures exit 2."""
    from absl import app, flags

    def parse(args: list[str]) -> list[str]:
        try:
            if precheck is not None:
                precheck(args)
            return flags.FLAGS(args)
        except (flags.Error, UsageError) as err:
            if debug():
                raise
            fail(prog, err, USAGE)

    app.run(lambda args: guarded(prog, lambda: main(args)), argv=list(argv) if argv is not None else None,
            flags_parser=parse)
