"""The command line: argument parsing, exit codes, and the one place errors become words.

``main(argv) -> int`` is what tests call; ``entrypoint()`` and ``seed_entrypoint()`` are the
console scripts ``pypidl`` and ``pypi-downloader``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import traceback
from collections.abc import Sequence
from types import FrameType, SimpleNamespace

from pypidl import __version__
from pypidl.cli._output import UI
from pypidl.errors import (
    EXIT_BUG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PypidlError,
)
from pypidl.stopping import RequestCancelled, allow_waits, interrupt_waits

__all__ = [
    "EXIT_BUG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "entrypoint",
    "main",
    "seed_entrypoint",
]

#: each command and the module that registers it (with ``register(subparsers, parents)``)
COMMANDS = {
    "sync": "pypidl.cli.pipeline",
    "plan": "pypidl.cli.pipeline",
    "download": "pypidl.cli.pipeline",
    "index": "pypidl.cli.index",
    "serve": "pypidl.cli.index",
    "verify": "pypidl.cli.verify",
    "export": "pypidl.cli.transfer",
    "merge": "pypidl.cli.transfer",
    "bundle": "pypidl.cli.transfer",
    "import": "pypidl.cli.transfer",
    "check": "pypidl.cli.check",
    "publish": "pypidl.cli.publish",
    "audit": "pypidl.cli.audit",
}
#: command modules, in the order ``pypidl --help`` lists their commands
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))

log = logging.getLogger("pypidl")


def _parents() -> SimpleNamespace:
    from pypidl.cli import _common

    return _common.parent_parsers()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with a known ``command``, only the module defining it is imported
    (a download does not load the index builder, the server and the exporters to start)."""
    parents = _parents()
    parser = argparse.ArgumentParser(
        prog="pypidl",
        description=(
            "Build a verified, pip- and uv-installable mirror of Python packages for an "
            "air-gapped network: resolve for every target environment, plan, download, index."
        ),
        epilog="Exit codes: 0 all done, 1 some files failed, 2 bad input, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"pypidl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in (COMMANDS[command],) if command in COMMANDS else COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub, parents)
    return parser


def main(argv: Sequence[str] | None = None, *, seed: bool = False) -> int:
    """Run pypidl with ``argv`` (without the program name) and return the exit code.

    :param seed: parse ``argv`` as ``pypi-downloader`` does: the flat flags of ``sync``.
    """
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser("sync" if seed else (words[0] if words else None))
    if seed:
        parser = _subparser(parser, "sync")
        parser.prog = "pypi-downloader"
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    ui = UI(
        verbose=args.verbose,
        quiet=args.quiet,
        stdout_taken=_writes_to_stdout(args),
    )
    previous = _install_stop_handlers()
    try:
        return int(args.func(args, ui))
    except PypidlError as exc:
        ui.error("%s", exc)
        if exc.hint:
            ui.error("hint: %s", exc.hint)
        for problem in getattr(exc, "problems", [])[1:21]:
            ui.error("  %s", problem)
        if args.debug:
            traceback.print_exc()
        return exc.exit_code
    except (KeyboardInterrupt, RequestCancelled):
        ui.error("interrupted")
        return EXIT_INTERRUPTED
    except OSError as exc:
        if exc.filename is None:  # not about a file: treat it as the bug it probably is
            return _bug(ui)
        # a disk that is full, read-only or gone: the environment's fault, not pypidl's
        ui.error("%s: %s", exc.filename, exc.strerror or exc)
        if args.debug:
            traceback.print_exc()
        return EXIT_FAILED
    except Exception:
        return _bug(ui)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        ui.close()


def _writes_to_stdout(args: argparse.Namespace) -> bool:
    """Whether one of the command's outputs is ``-``, standard output."""
    return any(
        getattr(args, dest, None) == "-"
        for dest in ("output", "manifest", "report", "url_list_path")
    )


def _bug(ui: UI) -> int:
    traceback.print_exc()
    ui.error(
        "pypidl %s hit an unexpected error (a bug): please report it with the traceback above",
        __version__,
    )
    return EXIT_BUG


def _install_stop_handlers() -> dict[int, signal._HANDLER]:
    """Make Ctrl-C and SIGTERM stop a run the same clean way: KeyboardInterrupt in the main
    thread, and every other thread's retry wait cut short (see ``session.interrupt_waits``),
    so no thread sleeping on a server's ``Retry-After`` keeps the process alive.

    A SIGINT that was ignored when pypidl started stays ignored: a shell without job control
    starts background jobs that way so that Ctrl-C stops only its foreground command.

    :returns: the handlers replaced, by signal number.
    """
    allow_waits()

    def handler(signum: int, frame: FrameType | None) -> None:
        interrupt_waits()
        raise KeyboardInterrupt

    stops = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        stops.append(signal.SIGINT)
    return {signum: signal.signal(signum, handler) for signum in stops}


def entrypoint() -> None:
    """The ``pypidl`` console script."""
    sys.exit(main(sys.argv[1:]))


def seed_entrypoint() -> None:
    """The ``pypi-downloader`` console script: the flat flags of ``pypidl sync``."""
    sys.exit(main(sys.argv[1:], seed=True))


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[name]
            return found
    raise LookupError(name)
