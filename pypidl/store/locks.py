"""Cross-run locks: one OS file lock per project under ``<mirror>/.pypidl/locks/``."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pypidl._fs import NOFOLLOW
from pypidl.store.catalog import STATE_DIR

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt
else:
    import fcntl

__all__ = ["DEFAULT_LOCK_TIMEOUT", "ProjectLocks"]

#: How long a run waits for a project another live run is working on (``--lock-timeout``).
DEFAULT_LOCK_TIMEOUT = 300.0

#: Seconds between two tries of a lock another run holds.
_POLL = 0.1
#: Where a holder writes its pid, past the byte Windows locks.
_PID_AT = 16


class ProjectLocks:
    """Keep two pypidl runs (or shards sharing storage) from working on one project at once.

    Each project being worked on holds an exclusive OS lock on
    ``<mirror>/.pypidl/locks/<project>.lock``; the threads of one downloader share it (counted)
    and it is released when none of them needs it.  A run that finds the lock taken waits for it,
    up to ``timeout`` seconds, saying once that it waits and for which process (the holder writes
    its pid into the file); then it gives up on the project.  The OS drops the lock when its
    holder dies, even by kill -9, so a dead run never blocks anyone.
    """

    def __init__(self, root: Path):
        self.dir = root / STATE_DIR / "locks"
        self._lock = threading.Lock()
        self._held: dict[str, list[int]] = {}  # project -> [fd, users]
        self._gates: dict[str, threading.Lock] = {}  # one thread per project waits, not all
        self._given_up: set[str] = set()
        self._dir_made = False

    def acquire(
        self,
        project: str,
        *,
        timeout: float = 0.0,
        on_wait: Callable[[str | None, float], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> bool:
        """Take (or share) the project's lock; ``False`` when another run kept it ``timeout`` s.

        :param on_wait: called once, before waiting, with the holder's pid (as the holder wrote
            it, or ``None``) and the timeout.
        :param stop: polled while waiting; when it returns true the wait ends (``False``).
        """
        with self._lock:
            held = self._held.get(project)
            if held is not None:
                held[1] += 1
                return True
            if project in self._given_up:
                return False
            gate = self._gates.setdefault(project, threading.Lock())
        with gate:
            with self._lock:
                held = self._held.get(project)
                if held is not None:  # another thread took it while this one waited at the gate
                    held[1] += 1
                    return True
                if project in self._given_up:
                    return False
                if not self._dir_made:
                    self.dir.mkdir(parents=True, exist_ok=True)
                    self._dir_made = True
            flags = os.O_RDWR | os.O_CREAT | NOFOLLOW | getattr(os, "O_BINARY", 0)
            fd = os.open(self.dir / f"{project}.lock", flags, 0o644)
            deadline = time.monotonic() + timeout
            told = False
            while True:
                try:
                    _lock_fd(fd)
                    break
                except OSError:
                    if time.monotonic() >= deadline or (stop is not None and stop()):
                        os.close(fd)
                        with self._lock:
                            self._given_up.add(project)
                        return False
                    if not told and on_wait is not None:
                        on_wait(_read_holder(fd), timeout)
                        told = True
                    time.sleep(min(_POLL, max(0.0, deadline - time.monotonic())))
            _write_holder(fd)
            with self._lock:
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


def _write_holder(fd: int) -> None:
    """Write our pid after the locked byte (informational: who a waiting run waits for)."""
    with contextlib.suppress(OSError):
        os.lseek(fd, _PID_AT, os.SEEK_SET)
        data = f"{os.getpid():<20d}".encode("ascii")
        os.write(fd, data)


def _read_holder(fd: int) -> str | None:
    try:
        os.lseek(fd, _PID_AT, os.SEEK_SET)
        text = os.read(fd, 20).decode("ascii", "replace").strip()
    except OSError:
        return None
    return text if text.isdigit() else None


def _lock_fd(fd: int) -> None:
    """Take an exclusive lock on ``fd`` without waiting; OSError when someone else holds it."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        os.lseek(fd, 0, os.SEEK_SET)  # msvcrt locks from the current position: byte 0
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
