"""Helpers for tests that stop a run part-way: files that stall, waiting, and what a run kept."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

from pypidl.hashing import CHUNK_SIZE
from tests.lib.server import IndexServer, ServedFile, Stall

__all__ = ["blob", "default_sigint", "parts_with_data", "stalling_files", "wait_for"]


def blob(directory: Path, name: str, size: int) -> Path:
    """A file named like a wheel holding ``size`` reproducible random bytes, written 1 MiB at a
    time (so a large one never sits in memory)."""
    path = directory / f"{name}-1.0-py3-none-any.whl"
    rng = random.Random(name)  # noqa: S311 - test data
    with open(path, "wb") as fh:
        for _ in range(0, size, 1 << 20):
            fh.write(rng.randbytes(min(1 << 20, size - fh.tell())))
    return path


def stalling_files(server: IndexServer, directory: Path, *, stall: float = 60) -> list[ServedFile]:
    """Four files that finish at once, then four that stall for ``stall`` seconds after two
    chunks (so a run stopped meanwhile holds four parts with data)."""
    quick = [
        server.add_file(blob(directory, f"quick{i}", 100_000), metadata=False) for i in range(4)
    ]
    slow = [
        server.add_file(blob(directory, f"slow{i}", 6 * CHUNK_SIZE), metadata=False)
        for i in range(4)
    ]
    for f in slow:
        server.fail(f.url_path, Stall(2 * CHUNK_SIZE + 10, stall))
    return quick + slow


def default_sigint() -> None:
    """A ``preexec_fn`` for a child that must stop on SIGINT: a shell without job control starts
    background jobs (the test run among them) with SIGINT ignored, a child inherits that, and
    Python then installs no handler of its own.  This gives it what a terminal's foreground job
    has."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(
    condition: Callable[[], object], timeout: float = 20.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout:g}s")
        time.sleep(0.05)


def parts_with_data(root: Path) -> list[Path]:
    """The ``.part`` files under ``root`` holding at least one chunk (kept for resume); a part
    published (renamed) between the listing and its ``stat`` is not one."""
    found = []
    for part in root.rglob(".pypidl-*.part"):
        try:
            if part.stat().st_size >= CHUNK_SIZE:
                found.append(part)
        except FileNotFoundError:
            continue
    return found
