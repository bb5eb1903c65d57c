"""What the engine reports about each file: a light module the parent process imports without
loading the HTTP stack (``requests`` is only needed where files are fetched)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from pypidl.manifest import Entry

__all__ = ["DOWNLOADED", "FAILED", "INTERRUPTED", "SKIPPED", "FileResult", "Status"]

#: What can happen to a file (plain strings: they are what ``--report`` and the summary show).
Status = Literal["downloaded", "skipped", "failed", "interrupted"]

DOWNLOADED: Final = "downloaded"
SKIPPED: Final = "skipped"
FAILED: Final = "failed"
#: stopped by Ctrl-C or SIGTERM; the partial download is kept and the next run resumes it
INTERRUPTED: Final = "interrupted"


@dataclass(frozen=True)
class FileResult:
    """What happened to one entry.

    :param status: ``"downloaded"``, ``"skipped"`` (already present and verified), ``"failed"``
        or ``"interrupted"`` (stopped mid-transfer; the part is kept for the next run).
    :param bytes: size of the file this run placed under its final name (0 when skipped or failed,
        so the sum over a report is what the run fetched).
    :param mirror: the mirror (``host:port``) it came from, when downloaded.
    :param error: why it failed; credentials are never part of it.
    :param attempts: HTTP attempts made for it.
    """

    entry: Entry
    status: Status
    bytes: int = 0
    mirror: str | None = None
    error: str | None = None
    attempts: int = 0
