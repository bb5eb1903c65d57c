"""Everything a person sees: log lines, the summary table, and (in _progress) the bars."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import TextIO

__all__ = ["UI", "format_bytes"]

LOG_FORMAT = "%(asctime)s | %(levelname)s | %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class UI:
    """The CLI's voice: log lines on stderr, tables on stdout.

    :param verbose: 0 normal, 1 details, 2 debug.
    :param quiet: only warnings, errors and the final summary.
    :param stdout_taken: a command writes its output to standard output (``-o -``): the tables
        then go to stderr, so that what stdout carries is the output alone.
    """

    def __init__(
        self,
        *,
        verbose: int = 0,
        quiet: bool = False,
        stream: TextIO | None = None,
        stdout_taken: bool = False,
    ):
        self.verbose = verbose
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self.stdout_taken = stdout_taken
        self.log = logging.getLogger("pypidl")
        noisy = [logging.getLogger(name) for name in ("urllib3", "requests", "filelock")]
        # what close() puts back, taken before anything changes
        self._saved = (self.log.level, self.log.propagate, [(lg, lg.level) for lg in noisy])
        self._handler = logging.StreamHandler(self.stream)
        self._handler.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))
        level = logging.WARNING if quiet else logging.DEBUG if verbose >= 2 else logging.INFO
        self._handler.setLevel(level)
        self.log.addHandler(self._handler)
        self.log.setLevel(logging.DEBUG if verbose >= 1 else level)
        self.log.propagate = False
        # pypidl's own module loggers say more with -v; third-party chatter only with -vv,
        # which also shows it (those loggers have no handler of their own)
        self._noisy = noisy if verbose >= 2 else []
        for lg in noisy:
            lg.setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)
        for lg in self._noisy:
            lg.addHandler(self._handler)
        if verbose == 1:
            self._handler.setLevel(logging.DEBUG)

    def close(self) -> None:
        """Undo what __init__ did to the ``pypidl`` logger (main() may run many times in one process)."""
        self.log.removeHandler(self._handler)
        for lg in self._noisy:
            lg.removeHandler(self._handler)
        level, propagate, noisy = self._saved
        self.log.setLevel(level)
        self.log.propagate = propagate
        for lg, lg_level in noisy:
            lg.setLevel(lg_level)

    def info(self, msg: str, *args: object) -> None:
        self.log.info(msg, *args)

    def debug(self, msg: str, *args: object) -> None:
        self.log.debug(msg, *args)

    def warning(self, msg: str, *args: object) -> None:
        self.log.warning(msg, *args)

    def error(self, msg: str, *args: object) -> None:
        self.log.error(msg, *args)

    def table(
        self,
        title: str,
        headers: Sequence[str],
        rows: Sequence[Sequence[object]],
        *,
        footer: Sequence[str] = (),
    ) -> None:
        """Print an aligned text table on stdout (always, even with -q: it is the result), then
        the ``footer`` lines below it."""
        cells = [[str(c) for c in headers]] + [[_cell(c) for c in row] for row in rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
        rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        out = sys.stderr if self.stdout_taken else sys.stdout
        out.write(f"\n{title}\n{rule}\n")
        for n, row in enumerate(cells):
            out.write("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |\n")
            if n == 0:
                out.write(rule + "\n")
        out.write(rule + "\n")
        for line in footer:
            out.write(line + "\n")
        out.flush()


#: control characters as escapes: a file name with a newline must not forge a row (issue 20)
_ESCAPES = {c: repr(chr(c))[1:-1] for c in (*range(32), 127)}


def _cell(value: object) -> str:
    return str(value).translate(_ESCAPES)


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - loop always returns
