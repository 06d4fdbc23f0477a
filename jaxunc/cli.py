"""Command-line plumbing shared by every entry point: one-line errors and exit statuses.

Exit status: 0 done; 2 usage error (a bad flag, config file, config field or setting: `UsageError`
and absl's flag errors); 1 data or model error (anything else: a bad data file, checkpoint, output
folder, or a bug). The message is one line, `<prog>: error: <what, where, what was expected>`;
`JAXUNC_DEBUG=1` re-raises instead, with the traceback.

Every entry point answers `--help` (or `-h`) with its module docstring, which says what it does, and
its own flags, then exits 0. At the default verbosity the backends' probing messages are silenced
(jax's failed TPU lookup, XLA's C++ INFO lines, transformers' advisory lines such as "PyTorch was not
found"); `--verbosity=0` (absl INFO) or `--verbosity=1` (DEBUG) shows everything.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

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


HELP_ARGS = ("--help", "-h", "-?", "--helpshort", "--helpfull")
VERBOSE_ARGS = ("--verbosity", "-v", "--v")


def _own_args(argv: Sequence[str]) -> list[str]:
    """The arguments of the entry point itself: those before a `--` (the rest is passed on)."""
    args = list(argv[1:])
    return args[:args.index("--")] if "--" in args else args


def wants_help(argv: Sequence[str]) -> bool:
    return any(a in HELP_ARGS for a in _own_args(argv))


def verbose(argv: Sequence[str]) -> bool:
    """Whether absl's --verbosity (-v) was given: then nothing is silenced."""
    return any(a.split("=", 1)[0] in VERBOSE_ARGS for a in _own_args(argv))


def quiet_backends() -> None:
    """Silence what the backends print while probing (before jax or transformers is imported; values
    the user set in the environment are kept): XLA's C++ INFO lines, transformers' advisory warnings
    ("PyTorch was not found ...") and its info lines. jax's "Unable to initialize backend 'tpu'" is a
    Python INFO record, hidden by absl's default WARNING level."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def help_text(prog: str, doc: str | None, module: ModuleType | None) -> str:
    """The module docstring, then the flags the module defines with their defaults."""
    from absl import flags

    lines = [(doc or f"{prog}: no description").strip(), ""]
    own = flags.FLAGS.get_flags_for_module(module) if module is not None else []
    if own:
        lines.append("flags:")
        for flag in sorted(own, key=lambda f: f.name):
            default = "" if flag.default is None else f" (default: {flag.default_as_str})"
            lines.append(f"  --{flag.name}: {' '.join(str(flag.help).split())}{default}")
    lines.append("  --verbosity: 0 = INFO logs, 1 = DEBUG (default: warnings only, backend probing silenced)")
    return "\n".join(lines) + "\n"


def run(prog: str, main: Callable[[list[str]], object], argv: Sequence[str] | None = None,
        precheck: Callable[[list[str]], None] | None = None, doc: str | None = None,
        module: ModuleType | None = None) -> None:
    """absl's app.run with one-line errors: flag errors and `precheck(argv)` failures exit 2.

    `--help` prints `doc` (the entry point's module docstring) and the flags `module` defines, and
    exits 0, before any check; without --verbosity the backends are quietened (quiet_backends)."""
    from absl import app, flags

    args = list(argv) if argv is not None else list(sys.argv)
    if wants_help(args):
        sys.stdout.write(help_text(prog, doc, module))
        sys.exit(0)
    quiet = not verbose(args)
    if quiet:
        quiet_backends()

    def parse(args: list[str]) -> list[str]:
        try:
            if precheck is not None:
                precheck(args)
            return flags.FLAGS(args)
        except (flags.Error, UsageError) as err:
            if debug():
                raise
            fail(prog, err, USAGE)

    def start(parsed: list[str]) -> object:
        if quiet:  # absl's own default is INFO: backend probing and per-stage timings
            from absl import logging

            logging.set_verbosity(logging.WARNING)
        return guarded(prog, lambda: main(parsed))

    app.run(start, argv=args, flags_parser=parse)
