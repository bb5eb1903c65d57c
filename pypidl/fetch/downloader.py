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

import logging
import os
import socket
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import requests

from pypidl.config import NetworkSettings
from pypidl.errors import UnsafeFilenameError
from pypidl.fetch.part import PartFile
from pypidl.fetch.retry import (
    FINAL_STATUSES,
    MAX_PROGRESS_RETRIES,
    SET_ASIDE_AFTER,
    AttemptFailed,
    Cancelled,
    MirrorBoard,
    MirrorStats,
    StallWatchdog,
    UrlRefused,
    backoff_delay,
    http_reason,
    mirror_key,
    retry_after_seconds,
)
from pypidl.hashing import CHUNK_SIZE, file_sha256
from pypidl.manifest import PACKAGES_DIR, Entry
from pypidl.session import describe_error, new_session
from pypidl.sources import redact_url
from pypidl.store.catalog import Catalog, Record
from pypidl.store.locks import ProjectLocks

if TYPE_CHECKING:
    pass

__all__ = [
    "DOWNLOADED",
    "FAILED",
    "INTERRUPTED",
    "SKIPPED",
    "Downloader",
    "FileResult",
]

log = logging.getLogger(__name__)

DOWNLOADED = "downloaded"
SKIPPED = "skipped"
FAILED = "failed"
#: stopped by Ctrl-C or SIGTERM; the partial download is kept and the next run resumes it
INTERRUPTED = "interrupted"


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


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


class _WriteError(Exception):
    """The part file could not be written (disk full, permissions): not the network's fault."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


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
        self._board = MirrorBoard(set_aside_after)
        # One session for the process, its pool as large as the threads sharing it: connections
        # to a mirror are reused across files. The engine retries and rotates itself.
        self._session = new_session(net, pool_size=pool_size, retry_statuses=False)
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Record]] = {}
        # one thread loads a project's catalog while the others wait for it
        self._catalog_loading: dict[str, threading.Lock] = {}
        self._read_timeout = min(net.read_timeout, net.stall_timeout)
        self._watchdog = StallWatchdog(net.stall_timeout, self._cancel_requested, self._stop.set)
        # held across threads and released when none needs it: keeps other runs off a project
        self._run_locks = ProjectLocks(self.root)

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
        self._run_locks.close()

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def mirror_stats(self) -> dict[str, MirrorStats]:
        return self._board.snapshot()

    def _project_records(self, project: str) -> dict[str, Record]:
        """The project's catalog, read once per downloader however many files it has."""
        with self._lock:
            lock = self._catalog_loading.setdefault(project, threading.Lock())
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
            locked = self._run_locks.acquire(entry.project)
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
            self._run_locks.release(entry.project)

    def _fetch_locked(self, entry: Entry, final: Path) -> FileResult:
        try:
            present = self._check_present(entry, final)
        except OSError as exc:
            return FileResult(
                entry, FAILED, error=f"cannot check the existing file: {exc.strerror or exc}"
            )
        if present is not None:
            return present
        part = PartFile(final, entry)
        try:
            return self._download(entry, final, part)
        except Cancelled:
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

    def _download(self, entry: Entry, final: Path, part: PartFile) -> FileResult:
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
                    raise Cancelled
                key = mirror_key(url)
                attempts += 1
                try:
                    self._attempt(entry, url, key, part)
                except UrlRefused as exc:
                    dead.add(url)
                    reasons[key] = exc.reason
                    self._board.failure(key, health=False, reason=exc.reason)
                    log.debug("%s: %s from %s", entry.filename, exc.reason, redact_url(url))
                except AttemptFailed as exc:
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
                raise Cancelled
        part.cleanup_if_empty()
        return FileResult(entry, FAILED, error=_all_failed(reasons), attempts=attempts)

    def _publish(
        self, entry: Entry, final: Path, part: PartFile, *, mirror: str | None, attempts: int
    ) -> FileResult:
        size = part.offset
        part.finish(final)
        records = self._project_records(entry.project)
        records[entry.filename] = self.catalog.add(entry, final)
        return FileResult(entry, DOWNLOADED, bytes=size, mirror=mirror, attempts=attempts)

    def _attempt(self, entry: Entry, url: str, key: str, part: PartFile) -> None:
        """One HTTP request for ``entry`` from ``url``, resuming ``part``; returns when verified.

        :raises AttemptFailed: worth another try (here later, or on another mirror).
        :raises UrlRefused: this URL will not serve the file.
        :raises Cancelled: the run is stopping.
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
            raise AttemptFailed("timed out") from None
        except requests.exceptions.SSLError as exc:  # before ConnectionError, its base class
            raise AttemptFailed(describe_error(exc)) from None
        except requests.ConnectionError:
            if self._cancel_requested():
                raise Cancelled from None
            raise AttemptFailed("connection failed") from None
        except requests.RequestException as exc:
            raise AttemptFailed(type(exc).__name__) from None
        kept = part.offset
        with resp:
            start = self._check_response(entry, resp, part)
            part.remember(resp, key)
            try:
                self._stream(entry, resp, key, part, start)
            except AttemptFailed as exc:
                if start < kept:
                    # the server ignored Range and started over: bytes we already had are no
                    # progress, or a server that always breaks off gets endless free restarts
                    exc.progressed = False
                raise

    def _check_response(self, entry: Entry, resp: requests.Response, part: PartFile) -> int:
        """Decide what the response means for the part; returns the byte it starts at."""
        code = resp.status_code
        if code in FINAL_STATUSES:
            raise UrlRefused(http_reason(resp))
        if code == 429 or code >= 500:
            raise AttemptFailed(
                http_reason(resp), retry_after=retry_after_seconds(resp.headers.get("Retry-After"))
            )
        if code == 416:
            # Our part is longer than the server's file, or the server is confused: start over.
            part.discard()
            raise AttemptFailed(http_reason(resp), health=False)
        if code == 206:
            first = _content_range_start(resp.headers.get("Content-Range"))
            if first != part.offset:
                part.discard()
                raise AttemptFailed(f"unusable Content-Range {resp.headers.get('Content-Range')!r}")
        elif code == 200:
            if part.offset:
                log.debug(
                    "%s: the server sent the whole file instead of a range; starting over",
                    entry.filename,
                )
                part.reset()
        else:
            raise UrlRefused(f"unexpected answer {http_reason(resp)}")
        length = resp.headers.get("Content-Length")
        if entry.size is not None and length is not None and length.isdigit():
            total = part.offset + int(length)
            if total != entry.size:
                if code == 206:
                    part.discard()
                    raise AttemptFailed(
                        f"the server's file has {total} bytes, expected {entry.size}"
                    )
                raise UrlRefused(f"the server's file has {total} bytes, expected {entry.size}")
        return part.offset

    def _stream(
        self, entry: Entry, resp: requests.Response, key: str, part: PartFile, start: int
    ) -> None:
        length = resp.headers.get("Content-Length")
        expected = start + int(length) if length is not None and length.isdigit() else entry.size
        watch = self._watchdog.watch(resp)
        received = 0
        try:
            try:
                for chunk in resp.iter_content(CHUNK_SIZE):
                    if self._stop.is_set():  # the watchdog sets it when the run is cancelled
                        raise Cancelled
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
                        raise AttemptFailed(
                            f"the server sent more than the expected {entry.size} bytes"
                        )
            except (requests.RequestException, OSError, ValueError) as exc:
                if self._cancel_requested():
                    raise Cancelled from None
                if watch.stalled:
                    raise AttemptFailed(
                        f"stalled: no progress for {self._watchdog.stall_timeout:g}s",
                        progressed=received > 0,
                    ) from None
                if isinstance(exc, (requests.Timeout, socket.timeout)) or "timed out" in str(exc):
                    raise AttemptFailed(
                        f"timed out after {part.offset} bytes", progressed=received > 0
                    ) from None
                raise AttemptFailed(
                    f"connection lost after {part.offset} bytes", progressed=received > 0
                ) from None
        finally:
            self._watchdog.unwatch(watch)
            self._board.received(key, received)
        if self._cancel_requested():
            raise Cancelled
        part.sync()
        if watch.stalled or (expected is not None and part.offset < expected):
            why = "stalled" if watch.stalled else "truncated"
            raise AttemptFailed(
                f"{why}: got {part.offset} of {expected} bytes", progressed=received > 0
            )
        digest = part.hasher.hexdigest()
        if digest != entry.sha256:
            part.discard()
            raise AttemptFailed(f"sha256 mismatch: expected {entry.sha256}, got {digest}")


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
