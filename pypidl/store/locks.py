"""Cross-run locks: one OS file lock per project under ``<mirror>/.pypidl/locks/``."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

from pypidl._fs import NOFOLLOW
from pypidl.store.catalog import STATE_DIR

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt
else:
    import fcntl

__all__ = ["ProjectLocks"]


class ProjectLocks:
    """Keep two pypidl runs (or shards sharing storage) from working on one project at once.

    Each project being worked on holds an exclusive, non-blocking OS lock on
    ``<mirror>/.pypidl/locks/<project>.lock``; the threads of one downloader share it (counted)
    and it is released when none of them needs it.  A run that finds the lock taken fails that
    file with a clear reason instead of waiting, so two runs can never wait for each other, and
    a re-run completes the job.  The OS drops the lock when its holder dies (even kill -9).
    """

    def __init__(self, root: Path):
        self.dir = root / STATE_DIR / "locks"
        self._lock = threading.Lock()
        self._held: dict[str, list[int]] = {}  # project -> [fd, users]

    def acquire(self, project: str) -> bool:
        with self._lock:
            held = self._held.get(project)
            if held is not None:
                held[1] += 1
                return True
            self.dir.mkdir(parents=True, exist_ok=True)
            flags = os.O_RDWR | os.O_CREAT | NOFOLLOW | getattr(os, "O_BINARY", 0)
            fd = os.open(self.dir / f"{project}.lock", flags, 0o644)
            try:
                _lock_fd(fd)
            except OSError:
                os.close(fd)
                return False
            self._held[project] = [fd, 1]
            return True

    def release(self, project: str) -> None:
        with self._lock:
            held = self._held.get(project)
            if held is None:
                return
            held[1] -= 1
            if held[1] <= 0:
                del self._held[project]
                os.close(held[0])  # closing the descriptor drops the lock

    def close(self) -> None:
        with self._lock:
            for fd, _users in self._held.values():
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._held.clear()


def _lock_fd(fd: int) -> None:
    """Take an exclusive lock on ``fd`` without waiting; OSError when someone else holds it."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
