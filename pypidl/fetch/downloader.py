"""Fetch one manifest entry into the mirror: stream, hash, verify, publish.

One :class:`Downloader` lives in each worker process and is shared by that worker's threads.
For every :class:`~pypidl.manifest.Entry` it:

1. trusts a file already under its final name when the catalog's record still matches its
   ``stat`` (no request, no rehash); otherwise rehashes it when its size is right, and records
   it or removes it;
2. streams the file into ``packages/<project>/.pypidl-<filename>.part``, hashing every chunk as
   it is written, resuming an existing part with ``Range``/``If-Range`` after hashing what it
   already holds;
3. retries with exponential back-off and jitter (honouring ``Retry-After``), rotates through
   the entry's URLs best first, and sets aside a mirror that keeps failing;
4. fsyncs, compares the sha256 and only then ``os.replace``-s the part to its final name and
   appends the file to the catalog.  Nothing reaches a final name unverified.

Memory stays flat: one chunk (:data:`pypidl.hashing.CHUNK_SIZE`) per stream.
"""

from __future__ import annotations

import contextlib
import email.utils
import errno
import json
import logging
import os
import random
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import urlsplit

import requests

from pypidl._fs import TEMP_PREFIX, atomic_write_text
from pypidl.config import NetworkSettings
from pypidl.errors import UnsafeFilenameError
from pypidl.store.catalog import STATE_DIR, Catalog, Record

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt
else:
    import fcntl
from pypidl.hashing import CHUNK_SIZE, file_sha256, new_hasher
from pypidl.manifest import PACKAGES_DIR, Entry
from pypidl.session import abort_response, describe_error, new_session
from pypidl.sources import redact_url, strip_credentials

if TYPE_CHECKING:
    import hashlib

__all__ = [
    "DOWNLOADED",
    "FAILED",
    "INTERRUPTED",
    "MAX_RETRY_AFTER",
    "PART_SUFFIX",
    "SET_ASIDE_AFTER",
    "SKIPPED",
    "Downloader",
    "FileResult",
    "MirrorStats",
    "backoff_delay",
    "mirror_key",
    "part_path",
    "retry_after_seconds",
]

log = logging.getLogger(__name__)

DOWNLOADED = "downloaded"
SKIPPED = "skipped"
FAILED = "failed"
#: stopped by Ctrl-C or SIGTERM; the partial download is kept and the next run resumes it
INTERRUPTED = "interrupted"

#: Suffix of a download in progress (after ``TEMP_PREFIX + filename``).
PART_SUFFIX = ".part"
_META_SUFFIX = ".part.json"

#: A mirror that fails this many attempts in a row (without a success between) is set aside.
SET_ASIDE_AFTER = 6
#: The longest ``Retry-After`` pypidl will honour, in seconds.
MAX_RETRY_AFTER = 60.0
#: The longest back-off between two rounds, in seconds.
MAX_BACKOFF = 30.0
#: Attempts that made progress (bytes kept for resume) do not use up a retry, this many times.
MAX_PROGRESS_RETRIES = 16
#: Open flag that refuses a symlink as the last path component (0 where the OS has none).
_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
#: Statuses that mean "this mirror will not give you this file".
_FINAL_STATUSES = frozenset({401, 403, 404, 410})


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
    status: str
    bytes: int = 0
    mirror: str | None = None
    error: str | None = None
    attempts: int = 0


@dataclass
class MirrorStats:
    """What one mirror did during a run: files served, bytes received, failed attempts."""

    files: int = 0
    bytes: int = 0
    failures: int = 0
    set_aside: bool = False

    def __add__(self, other: MirrorStats) -> MirrorStats:
        if not isinstance(other, MirrorStats):
            return NotImplemented
        return MirrorStats(
            files=self.files + other.files,
            bytes=self.bytes + other.bytes,
            failures=self.failures + other.failures,
            set_aside=self.set_aside or other.set_aside,
        )


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


def mirror_key(url: str) -> str:
    """The name a mirror is counted under: the URL's ``host[:port]``, never credentials."""
    parts = urlsplit(strip_credentials(url))
    return parts.netloc or parts.scheme or "?"


def part_path(final: Path) -> Path:
    """Where the download of ``final`` is kept while in progress."""
    return final.with_name(TEMP_PREFIX + final.name + PART_SUFFIX)


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), capped.

    Returns ``None`` when the header is absent or unreadable.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        current = now if now is not None else time.time()
        seconds = when.timestamp() - current
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, MAX_RETRY_AFTER))


def backoff_delay(round_number: int, base: float, *, retry_after: float | None = None) -> float:
    """Delay before retry round ``round_number`` (1 for the first retry): exponential with jitter.

    A ``Retry-After`` the server sent is a floor, not a suggestion.
    """
    exp = min(MAX_BACKOFF, base * 2.0 ** max(0, round_number - 1))
    delay = exp * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not cryptography
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


# --------------------------------------------------------------------------- attempt outcomes


class _Retry(Exception):
    """This attempt failed in a way that may succeed later or on another mirror."""

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        health: bool = True,
        progressed: bool = False,
    ):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        #: counts against the mirror's health (a 416 after our own stale part does not)
        self.health = health
        #: bytes were kept for resume, so the next attempt starts further on
        self.progressed = progressed


class _Final(Exception):
    """This URL will not serve this file (404, 410, 403, a different file)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _Cancelled(Exception):
    """The run is being interrupted."""


class _WriteError(Exception):
    """The part file could not be written (disk full, permissions): not the network's fault."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


def _http_reason(resp: requests.Response) -> str:
    return f"{resp.status_code} {resp.reason}".strip() if resp.reason else str(resp.status_code)


# --------------------------------------------------------------------------- mirror health


class _MirrorBoard:
    """Per-worker health and counts of every mirror, shared by the worker's threads."""

    def __init__(self, set_aside_after: int):
        self._lock = threading.Lock()
        self._stats: dict[str, MirrorStats] = {}
        self._streak: dict[str, int] = {}
        self._set_aside_after = set_aside_after

    def _get(self, key: str) -> MirrorStats:
        stats = self._stats.get(key)
        if stats is None:
            stats = self._stats[key] = MirrorStats()
        return stats

    def usable(self, key: str) -> bool:
        with self._lock:
            stats = self._stats.get(key)
            return stats is None or not stats.set_aside

    def received(self, key: str, nbytes: int) -> None:
        if nbytes:
            with self._lock:
                self._get(key).bytes += nbytes

    def success(self, key: str) -> None:
        with self._lock:
            self._get(key).files += 1
            self._streak[key] = 0

    def failure(self, key: str, *, health: bool, reason: str) -> None:
        with self._lock:
            stats = self._get(key)
            stats.failures += 1
            if not health:
                return
            self._streak[key] = streak = self._streak.get(key, 0) + 1
            if streak >= self._set_aside_after and not stats.set_aside:
                stats.set_aside = True
                log.warning(
                    "Mirror %s set aside for the rest of this run after %d failures in a row (last: %s)",
                    key,
                    streak,
                    reason,
                )

    def snapshot(self) -> dict[str, MirrorStats]:
        with self._lock:
            return {
                k: MirrorStats(v.files, v.bytes, v.failures, v.set_aside)
                for k, v in self._stats.items()
            }


# --------------------------------------------------------------------------- stall watchdog


class _Watch:
    __slots__ = ("deadline", "response", "stalled")

    def __init__(self, response: requests.Response, deadline: float):
        self.response = response
        self.deadline = deadline
        self.stalled = False


class _Watchdog:
    """One thread per downloader that ends stalled transfers and aborts them all on cancel.

    The socket read timeout catches a silent server; this also catches one that trickles a byte
    now and then, because a transfer must complete a whole chunk every ``stall_timeout``
    seconds.
    """

    def __init__(
        self, stall_timeout: float, cancel: Callable[[], bool], on_cancel: Callable[[], None]
    ):
        self.stall_timeout = max(0.05, stall_timeout)
        self._cancel = cancel
        self._on_cancel = on_cancel
        self._lock = threading.Lock()
        self._active: set[_Watch] = set()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pypidl-watchdog", daemon=True)
        self._thread.start()

    def watch(self, response: requests.Response) -> _Watch:
        w = _Watch(response, time.monotonic() + self.stall_timeout)
        with self._lock:
            self._active.add(w)
        return w

    def touch(self, w: _Watch) -> None:
        w.deadline = time.monotonic() + self.stall_timeout

    def unwatch(self, w: _Watch) -> None:
        with self._lock:
            self._active.discard(w)

    def abort_all(self) -> None:
        with self._lock:
            active = list(self._active)
        for w in active:
            abort_response(w.response)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)

    def _loop(self) -> None:
        tick = min(0.1, self.stall_timeout / 4)
        cancelled = False
        while not self._closed.wait(tick):
            if not cancelled and self._cancel():
                cancelled = True
                self._on_cancel()
            if cancelled:
                self.abort_all()
                continue
            now = time.monotonic()
            with self._lock:
                expired = [w for w in self._active if now > w.deadline and not w.stalled]
            for w in expired:
                w.stalled = True
                log.debug(
                    "no progress for %.1fs on %s; abandoning the transfer",
                    self.stall_timeout,
                    redact_url(w.response.url or ""),
                )
                abort_response(w.response)


# --------------------------------------------------------------------------- the part file


class _Part:
    """The temporary file of one download, its running hash and its resume validator."""

    def __init__(self, final: Path, entry: Entry):
        self.path = part_path(final)
        self.meta_path = self.path.with_name(TEMP_PREFIX + final.name + _META_SUFFIX)
        self.entry = entry
        self.offset = 0
        self.hasher: hashlib._Hash = new_hasher()
        self.validator: str | None = None
        self.validator_mirror: str | None = None
        self._fh: BinaryIO | None = None

    def load(self) -> None:
        """Take over a part left by an earlier run: hash it (validating what it holds)."""
        try:
            st = os.lstat(self.path)  # a symlink planted here is discarded, never followed
        except FileNotFoundError:
            self._drop_meta()
            return
        meta = self._read_meta()
        if meta.get("sha256") not in (None, self.entry.sha256) or not stat.S_ISREG(st.st_mode):
            log.debug("discarding %s: it belongs to another version of the file", self.path.name)
            self.discard()
            return
        if self.entry.size is not None and st.st_size > self.entry.size:
            log.debug("discarding %s: longer than the file it should become", self.path.name)
            self.discard()
            return
        with open(self.path, "rb") as fh:
            while chunk := fh.read(CHUNK_SIZE):
                self.hasher.update(chunk)
                self.offset += len(chunk)
        validator, mirror = meta.get("validator"), meta.get("mirror")
        self.validator = validator if isinstance(validator, str) else None
        self.validator_mirror = mirror if isinstance(mirror, str) else None
        if self.offset:
            log.debug("resuming %s from byte %d", self.entry.filename, self.offset)

    def _read_meta(self) -> dict[str, Any]:
        try:
            with open(self.meta_path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def remember(self, response: requests.Response, mirror: str) -> None:
        """Keep what ``If-Range`` needs to resume against the same mirror after a crash."""
        etag = response.headers.get("ETag")
        validator = (
            etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified")
        )
        if validator == self.validator and mirror == self.validator_mirror:
            return
        self.validator, self.validator_mirror = validator, mirror
        data = {"sha256": self.entry.sha256, "validator": validator, "mirror": mirror}
        atomic_write_text(self.meta_path, json.dumps(data, sort_keys=True) + "\n")

    def write(self, chunk: bytes) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | getattr(os, "O_BINARY", 0)
            # kept open across chunks and attempts
            self._fh = os.fdopen(os.open(self.path, flags, 0o644), "ab")
        self._fh.write(chunk)
        self.hasher.update(chunk)
        self.offset += len(chunk)

    def sync(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self.sync()
            self._fh.close()
            self._fh = None

    def reset(self) -> None:
        """Start the part over from byte 0 (the server sent the whole file)."""
        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
        elif self.offset:
            with open(self.path, "r+b") as fh:
                fh.truncate()
        self.offset = 0
        self.hasher = new_hasher()

    def discard(self) -> None:
        """Delete the part and everything known about it."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._drop_meta()
        self.offset = 0
        self.hasher = new_hasher()
        self.validator = self.validator_mirror = None

    def _drop_meta(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.meta_path)

    def finish(self, final: Path) -> None:
        """Publish the verified part under its final name.

        The bytes were hashed as they were written through our own handle; the part is published
        only while it is still that file and that long, so a part another process renamed,
        replaced or extended meanwhile never reaches the final name.

        :raises OSError: the part on disk is no longer the file that was verified.
        """
        opened = os.fstat(self._fh.fileno()) if self._fh is not None else None
        self.close()
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            if self.offset:
                raise FileNotFoundError(
                    errno.ENOENT, "the partial download vanished before it was published"
                ) from None
            # a zero-byte file never opened its part
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
            st = os.lstat(self.path)
        changed = (
            not stat.S_ISREG(st.st_mode)
            or st.st_size != self.offset
            or (opened is not None and (st.st_dev, st.st_ino) != (opened.st_dev, opened.st_ino))
        )
        if changed:
            self.discard()
            raise OSError(
                errno.EBUSY, "the partial download changed on disk before it was published"
            )
        os.replace(self.path, final)
        self._drop_meta()

    def cleanup_if_empty(self) -> None:
        if self.offset == 0:
            self.discard()
        else:
            self.close()


# --------------------------------------------------------------------------- cross-run locks


class _ProjectLocks:
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
            flags = os.O_RDWR | os.O_CREAT | _NOFOLLOW | getattr(os, "O_BINARY", 0)
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


# --------------------------------------------------------------------------- the downloader


class Downloader:
    """Downloads entries into the mirror at ``root``; thread-safe, one per worker process.

    :param root: the mirror directory.
    :param net: network settings (timeouts, TLS, credentials, retry policy).
    :param cancel: when set, transfers stop between chunks and in-flight parts are kept.
    :param on_bytes: called with the size of every chunk received (from any thread).
    :param pool_size: connections each thread's session keeps per host.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        net: NetworkSettings,
        *,
        cancel: CancelFlag | None = None,
        on_bytes: Callable[[int], None] | None = None,
        set_aside_after: int = SET_ASIDE_AFTER,
        pool_size: int = 10,
    ):
        self.root = Path(root).resolve()
        self.net = net
        self.catalog = Catalog(self.root)
        self._external_cancel = cancel
        self._stop = threading.Event()
        self._on_bytes = on_bytes or (lambda n: None)
        self._board = _MirrorBoard(set_aside_after)
        # One session for the process, its pool as large as the threads sharing it: connections
        # to a mirror are reused across files. The engine retries and rotates itself.
        self._session = new_session(net, pool_size=pool_size, retry_statuses=False)
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Record]] = {}
        self._project_locks: dict[str, threading.Lock] = {}
        self._read_timeout = min(net.read_timeout, net.stall_timeout)
        self._watchdog = _Watchdog(net.stall_timeout, self._cancel_requested, self._stop.set)
        self._locks = _ProjectLocks(self.root)

    # ------------------------------------------------------------------ lifecycle

    def _cancel_requested(self) -> bool:
        return self._stop.is_set() or (
            self._external_cancel is not None and self._external_cancel.is_set()
        )

    @property
    def cancelled(self) -> bool:
        return self._cancel_requested()

    def cancel(self) -> None:
        """Stop every transfer between chunks; parts stay for the next run."""
        self._stop.set()
        self._watchdog.abort_all()

    def close(self) -> None:
        self._watchdog.close()
        self._session.close()
        self._locks.close()

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def mirror_stats(self) -> dict[str, MirrorStats]:
        return self._board.snapshot()

    def _project_records(self, project: str) -> dict[str, Record]:
        """The project's catalog, read once per downloader however many files it has."""
        with self._lock:
            lock = self._project_locks.setdefault(project, threading.Lock())
        with lock:
            records = self._records.get(project)
            if records is None:
                records = self._records[project] = self.catalog.load(project)
            return records

    # ------------------------------------------------------------------ one entry

    def fetch(self, entry: Entry) -> FileResult | None:
        """Make the mirror hold ``entry``, verified.

        :returns: the result, or ``None`` when the run was cancelled before this entry started.
        """
        if self._cancel_requested():
            return None
        try:
            resolved = entry.path_in(self.root)
        except UnsafeFilenameError as exc:
            return FileResult(entry, FAILED, error=exc.message)
        final = self.root / PACKAGES_DIR / entry.project / entry.filename
        if resolved != final:
            # a symlink inside the mirror would make this file overwrite another one
            return FileResult(
                entry,
                FAILED,
                error=f"{entry.relpath} leads through a symlink; pypidl does not follow "
                "symlinks inside a mirror",
            )
        try:
            locked = self._locks.acquire(entry.project)
        except OSError as exc:
            return FileResult(
                entry, FAILED, error=f"cannot lock {entry.project}: {exc.strerror or exc}"
            )
        if not locked:
            return FileResult(
                entry,
                FAILED,
                error=f"another pypidl run is working on {entry.project} in this mirror; "
                "run again when it has finished",
            )
        try:
            return self._fetch_locked(entry, final)
        finally:
            self._locks.release(entry.project)

    def _fetch_locked(self, entry: Entry, final: Path) -> FileResult:
        try:
            present = self._check_present(entry, final)
        except OSError as exc:
            return FileResult(
                entry, FAILED, error=f"cannot check the existing file: {exc.strerror or exc}"
            )
        if present is not None:
            return present
        part = _Part(final, entry)
        try:
            return self._download(entry, final, part)
        except _Cancelled:
            part.close()
            return FileResult(
                entry, INTERRUPTED, error="interrupted (partial download kept for resume)"
            )
        except _WriteError as exc:
            part.close()
            return FileResult(
                entry, FAILED, error=f"cannot write {entry.relpath}: {exc.error.strerror or exc}"
            )
        except OSError as exc:
            part.close()
            return FileResult(
                entry, FAILED, error=f"cannot write {entry.relpath}: {exc.strerror or exc}"
            )

    def _check_present(self, entry: Entry, final: Path) -> FileResult | None:
        """A result when the final file is already right; removes it when it is wrong."""
        try:
            st = os.stat(final)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return FileResult(
                entry, FAILED, error=f"{entry.relpath} exists and is not a regular file"
            )
        records = self._project_records(entry.project)
        record = records.get(entry.filename)
        if record is not None and record.proves(entry, st):
            return FileResult(entry, SKIPPED)
        if entry.size is None or st.st_size == entry.size:
            digest = file_sha256(final)
            if digest == entry.sha256:
                records[entry.filename] = self.catalog.add(entry, final)
                log.debug("verified existing %s by rehashing it", entry.filename)
                return FileResult(entry, SKIPPED)
            why = f"sha256 {digest} instead of {entry.sha256}"
        else:
            why = f"{st.st_size} bytes instead of {entry.size}"
        log.warning("Replacing %s: %s", entry.relpath, why)
        os.unlink(final)
        if record is not None:
            self.catalog.forget(entry.project, entry.filename)
            records.pop(entry.filename, None)
        return None

    def _download(self, entry: Entry, final: Path, part: _Part) -> FileResult:
        part.load()
        if entry.size is not None and part.offset == entry.size:
            # A complete part left by an interrupted run: verify it without a request.
            if part.hasher.hexdigest() == entry.sha256:
                return self._publish(entry, final, part, mirror=part.validator_mirror, attempts=0)
            part.discard()

        urls = list(dict.fromkeys(entry.urls))
        dead: set[str] = set()
        reasons: dict[str, str] = {}
        attempts = rounds = free_rounds = 0
        while True:
            live = [u for u in urls if u not in dead]
            healthy = [u for u in live if self._board.usable(mirror_key(u))]
            # a failure counts against a mirror's health only where another mirror could serve
            # the file: setting aside the one mirror there is would gain nothing
            alternatives = len({mirror_key(u) for u in live}) > 1
            progressed = False
            wait_at_least: float | None = None
            # Mirrors set aside are used only when no other mirror could serve the file.
            for url in healthy or live:
                if self._cancel_requested():
                    raise _Cancelled
                key = mirror_key(url)
                attempts += 1
                try:
                    self._attempt(entry, url, key, part)
                except _Final as exc:
                    dead.add(url)
                    reasons[key] = exc.reason
                    self._board.failure(key, health=False, reason=exc.reason)
                    log.debug("%s: %s from %s", entry.filename, exc.reason, redact_url(url))
                except _Retry as exc:
                    reasons[key] = exc.reason
                    self._board.failure(key, health=exc.health and alternatives, reason=exc.reason)
                    progressed = progressed or exc.progressed
                    if exc.retry_after is not None:
                        wait_at_least = max(wait_at_least or 0.0, exc.retry_after)
                    log.debug(
                        "%s: attempt %d from %s failed: %s",
                        entry.filename,
                        attempts,
                        redact_url(url),
                        exc.reason,
                    )
                else:
                    self._board.success(key)
                    return self._publish(entry, final, part, mirror=key, attempts=attempts)
            if progressed and free_rounds < MAX_PROGRESS_RETRIES:
                free_rounds += 1
            else:
                rounds += 1
            if rounds >= max(1, self.net.retries) or all(u in dead for u in urls):
                break
            delay = backoff_delay(rounds, self.net.backoff, retry_after=wait_at_least)
            if progressed and wait_at_least is None:
                delay = min(delay, self.net.backoff)  # the server was working: resume promptly
            if self._stop.wait(delay) or self._cancel_requested():
                raise _Cancelled
        part.cleanup_if_empty()
        return FileResult(entry, FAILED, error=_all_failed(reasons), attempts=attempts)

    def _publish(
        self, entry: Entry, final: Path, part: _Part, *, mirror: str | None, attempts: int
    ) -> FileResult:
        size = part.offset
        part.finish(final)
        records = self._project_records(entry.project)
        records[entry.filename] = self.catalog.add(entry, final)
        return FileResult(entry, DOWNLOADED, bytes=size, mirror=mirror, attempts=attempts)

    def _attempt(self, entry: Entry, url: str, key: str, part: _Part) -> None:
        """One HTTP request for ``entry`` from ``url``, resuming ``part``; returns when verified.

        :raises _Retry: worth another try (here later, or on another mirror).
        :raises _Final: this URL will not serve the file.
        :raises _Cancelled: the run is stopping.
        """
        headers = {"Accept-Encoding": "identity"}
        if part.offset:
            headers["Range"] = f"bytes={part.offset}-"
            if part.validator and part.validator_mirror == key:
                headers["If-Range"] = part.validator
        try:
            resp = self._session.get(
                url,
                headers=headers,
                stream=True,
                timeout=(self.net.connect_timeout, self._read_timeout),
            )
        except requests.Timeout:
            raise _Retry("timed out") from None
        except requests.exceptions.SSLError as exc:  # before ConnectionError, its base class
            raise _Retry(describe_error(exc)) from None
        except requests.ConnectionError:
            if self._cancel_requested():
                raise _Cancelled from None
            raise _Retry("connection failed") from None
        except requests.RequestException as exc:
            raise _Retry(type(exc).__name__) from None
        with resp:
            start = self._check_response(entry, resp, part)
            part.remember(resp, key)
            self._stream(entry, resp, key, part, start)

    def _check_response(self, entry: Entry, resp: requests.Response, part: _Part) -> int:
        """Decide what the response means for the part; returns the byte it starts at."""
        code = resp.status_code
        if code in _FINAL_STATUSES:
            raise _Final(_http_reason(resp))
        if code == 429 or code >= 500:
            raise _Retry(
                _http_reason(resp), retry_after=retry_after_seconds(resp.headers.get("Retry-After"))
            )
        if code == 416:
            # Our part is longer than the server's file, or the server is confused: start over.
            part.discard()
            raise _Retry(_http_reason(resp), health=False)
        if code == 206:
            first = _content_range_start(resp.headers.get("Content-Range"))
            if first != part.offset:
                part.discard()
                raise _Retry(f"unusable Content-Range {resp.headers.get('Content-Range')!r}")
        elif code == 200:
            if part.offset:
                log.debug(
                    "%s: the server sent the whole file instead of a range; starting over",
                    entry.filename,
                )
                part.reset()
        else:
            raise _Final(f"unexpected answer {_http_reason(resp)}")
        length = resp.headers.get("Content-Length")
        if entry.size is not None and length is not None and length.isdigit():
            total = part.offset + int(length)
            if total != entry.size:
                if code == 206:
                    part.discard()
                    raise _Retry(f"the server's file has {total} bytes, expected {entry.size}")
                raise _Final(f"the server's file has {total} bytes, expected {entry.size}")
        return part.offset

    def _stream(
        self, entry: Entry, resp: requests.Response, key: str, part: _Part, start: int
    ) -> None:
        length = resp.headers.get("Content-Length")
        expected = start + int(length) if length is not None and length.isdigit() else entry.size
        watch = self._watchdog.watch(resp)
        received = 0
        try:
            try:
                for chunk in resp.iter_content(CHUNK_SIZE):
                    if self._stop.is_set():  # the watchdog sets it when the run is cancelled
                        raise _Cancelled
                    if not chunk:
                        continue
                    try:
                        part.write(chunk)
                    except OSError as exc:
                        raise _WriteError(exc) from exc
                    received += len(chunk)
                    self._on_bytes(len(chunk))
                    self._watchdog.touch(watch)
                    if entry.size is not None and part.offset > entry.size:
                        part.discard()
                        raise _Retry(f"the server sent more than the expected {entry.size} bytes")
            except (requests.RequestException, OSError, ValueError) as exc:
                if self._cancel_requested():
                    raise _Cancelled from None
                if watch.stalled:
                    raise _Retry(
                        f"stalled: no progress for {self._watchdog.stall_timeout:g}s",
                        progressed=received > 0,
                    ) from None
                if isinstance(exc, (requests.Timeout, socket.timeout)) or "timed out" in str(exc):
                    raise _Retry(
                        f"timed out after {part.offset} bytes", progressed=received > 0
                    ) from None
                raise _Retry(
                    f"connection lost after {part.offset} bytes", progressed=received > 0
                ) from None
        finally:
            self._watchdog.unwatch(watch)
            self._board.received(key, received)
        if self._cancel_requested():
            raise _Cancelled
        part.sync()
        if watch.stalled or (expected is not None and part.offset < expected):
            why = "stalled" if watch.stalled else "truncated"
            raise _Retry(f"{why}: got {part.offset} of {expected} bytes", progressed=received > 0)
        digest = part.hasher.hexdigest()
        if digest != entry.sha256:
            part.discard()
            raise _Retry(f"sha256 mismatch: expected {entry.sha256}, got {digest}")


def _content_range_start(value: str | None) -> int | None:
    """The first byte of a ``Content-Range: bytes a-b/n`` header."""
    if not value:
        return None
    unit, _, spec = value.strip().partition(" ")
    first, sep, _rest = spec.partition("-")
    if unit.lower() != "bytes" or not sep or not first.isdigit():
        return None
    return int(first)


def _all_failed(reasons: dict[str, str]) -> str:
    """``All mirrors failed: ...`` with each mirror's last reason (mirror names only when several)."""
    if not reasons:
        return "All mirrors failed: no usable URL"
    if len(reasons) == 1:
        return "All mirrors failed: " + next(iter(reasons.values()))
    return "All mirrors failed: " + "; ".join(f"{key}: {why}" for key, why in reasons.items())
