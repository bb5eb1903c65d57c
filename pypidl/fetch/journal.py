"""Record verified files in the catalog in batches, each batch made durable before it is recorded.

Publishing a file used to cost two ``fsync`` calls (the file, then its catalog line): on a
virtual disk about a millisecond, more than everything else a small file costs.  What the
catalog promises is weaker and cheaper to keep: *a file it records is on disk, verified*.  So:

1. a verified part is renamed to its final name at once (the name still only ever holds bytes
   whose sha256 matched);
2. the :class:`Journal` collects those files; every ``max_batch`` files, every ``max_delay``
   seconds, at the end of a project and at the end of the worker, it makes the whole batch
   durable (one ``syncfs`` of the mirror's file system on Linux, one ``fsync`` per file
   elsewhere) and only then appends the batch's catalog lines, one write per project.

A crash (even a power cut) therefore loses at most catalog lines, never a file a line records; a
file without its line is rehashed by the next run, not fetched again.  Large files are synced by
the thread that downloaded them (``synced=True``): their writeback is long, and a batch should not
wait for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pypidl.manifest import Entry
from pypidl.store.catalog import Catalog, Record

__all__ = ["Journal"]

log = logging.getLogger(__name__)

#: Windows refuses to flush a file opened read-only.
_FSYNC_OPEN = os.O_RDWR | getattr(os, "O_BINARY", 0) if sys.platform == "win32" else os.O_RDONLY


@dataclass(frozen=True)
class _Pending:
    record: Record
    path: Path
    synced: bool


class Journal:
    """Batches catalog records of one worker; thread-safe.

    :param catalog: the mirror's catalog (only this worker writes its projects' files).
    :param max_batch: files per batch.
    :param max_delay: seconds a file may wait for its batch.
    """

    def __init__(self, catalog: Catalog, *, max_batch: int = 512, max_delay: float = 0.5):
        self.catalog = catalog
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._closed = threading.Event()
        self._syncfs = _syncfs_function()
        self.batches = 0
        self._timer = threading.Thread(target=self._tick, name="pypidl-journal", daemon=True)
        self._timer.start()

    def add(self, entry: Entry, path: Path, st: os.stat_result, *, synced: bool = False) -> Record:
        """Queue the record of ``entry``, verified and published at ``path`` with stat ``st``."""
        record = Record(
            entry=entry if entry.size == st.st_size else replace(entry, size=st.st_size),
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            inode=st.st_ino,
        )
        with self._lock:
            self._pending.append(_Pending(record, path, synced))
            full = len(self._pending) >= self.max_batch
        if full:
            self.commit()
        return record

    def commit(self) -> None:
        """Make every queued file durable, then append its catalog line."""
        with self._commit_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            self._make_durable([p.path for p in batch if not p.synced])
            by_project: dict[str, list[Record]] = {}
            for p in batch:
                by_project.setdefault(p.record.entry.project, []).append(p.record)
            for project, records in by_project.items():
                try:
                    self.catalog.add_records(project, records)
                except OSError as exc:  # the files are fine; the next run rehashes them
                    log.warning("Cannot record %s in the catalog: %s", project, exc)
            self.batches += 1

    def close(self) -> None:
        self._closed.set()
        self._timer.join(5)
        self.commit()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tick(self) -> None:
        while not self._closed.wait(self.max_delay):
            try:
                self.commit()
            except Exception:  # the worker's own commit reports it; keep ticking
                log.debug("journal commit failed", exc_info=True)

    def _make_durable(self, paths: list[Path]) -> None:
        if not paths:
            return
        if self._syncfs is not None:
            try:
                fd = os.open(self.catalog.root, os.O_RDONLY)
            except OSError:
                pass
            else:
                try:
                    if self._syncfs(fd) == 0:
                        return
                finally:
                    os.close(fd)
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                fd = os.open(path, _FSYNC_OPEN)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)


def _syncfs_function() -> Any:
    """Linux's ``syncfs(fd)``: one call makes every file of the mirror's file system durable."""
    if sys.platform != "linux":
        return None
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):  # pragma: no cover - a libc without syncfs
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn
