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
   the entry's URLs best first, and sets aside a mirror that keeps failing; when every listed URL
   failed, looks the file up by name on the configured indexes' project pages
   (:mod:`pypidl.fetch.rescue`) and tries what they list;
4. compares the sha256 and only then ``os.replace``-s the part to its final name; the catalog
   records it through the :class:`~pypidl.fetch.journal.Journal`, after the batch it belongs
   to is durable.  Nothing reaches a final name unverified.

Each project's run lock is taken once and held until its last file is done (see
:meth:`Downloader.expect`); a lock another live run holds is waited for, up to ``lock_timeout``.

Memory stays flat: one chunk (:data:`pypidl.hashing.CHUNK_SIZE`) per stream.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Protocol

import requests

from pypidl._fs import check_basename, safe_join
from pypidl.config import NetworkSettings
from pypidl.errors import UnsafeFilenameError
from pypidl.fetch._response import check_response
from pypidl.fetch.journal import Journal
from pypidl.fetch.part import RESUME_NOTE_MIN, PartFile
from pypidl.fetch.rescue import IndexLookup
from pypidl.fetch.results import DOWNLOADED, FAILED, INTERRUPTED, SKIPPED, FileResult
from pypidl.fetch.retry import (
    MAX_PROGRESS_RETRIES,
    SET_ASIDE_AFTER,
    AttemptFailed,
    Cancelled,
    MirrorBoard,
    MirrorStats,
    StallWatchdog,
    UrlRefused,
    backoff_delay,
    mirror_key,
)
from pypidl.hashing import CHUNK_SIZE, file_sha256, sha256_mismatch
from pypidl.manifest import PACKAGES_DIR, Entry
from pypidl.session import ARTIFACT_HEADERS, describe_error, new_session
from pypidl.sources import redact_url
from pypidl.store.catalog import Catalog, Record
from pypidl.store.locks import ProjectLocks

__all__ = [
    "DOWNLOADED",
    "FAILED",
    "INTERRUPTED",
    "SKIPPED",
    "Downloader",
    "FileResult",
]

log = logging.getLogger(__name__)


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
        lock_timeout: float = 0.0,
        indexes: Sequence[str] = (),
        pins: Mapping[str, Sequence[str]] | None = None,
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
        self._lock_timeout = lock_timeout
        # verified files reach the catalog in durable batches, not one fsync pair per file
        self._journal = Journal(self.catalog)
        # the last resort for a file whose every URL failed: the indexes' project pages
        pins = dict(pins or {})
        self._lookup = (
            IndexLookup(indexes, self._session, net, pins=pins) if indexes or pins else None
        )
        # project -> its directory in the mirror, or why it cannot be used
        self._dirs: dict[str, Path | str] = {}
        # project -> files still to do (see expect): the project's lock is held until then
        self._remaining: dict[str, int] = {}
        self._holding: set[str] = set()

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
        self._journal.close()  # before the locks go: the records of what this run verified
        self._session.close()
        self._run_locks.close()

    def expect(self, entries: Sequence[Entry]) -> None:
        """Say which entries :meth:`fetch` will be given: each project's lock is then taken
        once and kept until its last file is done, instead of once per file."""
        with self._lock:
            for entry in entries:
                self._remaining[entry.project] = self._remaining.get(entry.project, 0) + 1

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
                records = self._records[project] = self.catalog.load(project, proofs_only=True)
            return records

    # ------------------------------------------------------------------ one entry

    def fetch(self, entry: Entry) -> FileResult | None:
        """Make the mirror hold ``entry``, verified.

        :returns: the result, or ``None`` when the run was cancelled before this entry started.
        """
        if self._cancel_requested():
            return None
        try:
            final = self._final_path(entry)
        except UnsafeFilenameError as exc:
            return FileResult(entry, FAILED, error=exc.message)
        try:
            locked = self._take_lock(entry.project)
        except OSError as exc:
            return FileResult(
                entry, FAILED, error=f"cannot lock {entry.project}: {exc.strerror or exc}"
            )
        if not locked:
            if self._cancel_requested():
                return None  # stopped while waiting for another run: nothing started
            return FileResult(
                entry,
                FAILED,
                error=f"another pypidl run is working on {entry.project} in this mirror "
                f"(waited {self._lock_timeout:g}s, --lock-timeout); run again when it has finished",
            )
        try:
            return self._fetch_locked(entry, final)
        finally:
            self._run_locks.release(entry.project)
            self._done_with(entry.project)

    def _final_path(self, entry: Entry) -> Path:
        """The file's place in the mirror; its project directory is resolved once per project.

        :raises UnsafeFilenameError: a name that leaves the mirror, or a symlink inside it.
        """
        found = self._dirs.get(entry.project)
        if found is None:
            try:
                resolved = safe_join(self.root, PACKAGES_DIR, entry.project)
                expected = self.root / PACKAGES_DIR / entry.project
                found = (
                    expected
                    if resolved == expected
                    else (
                        f"{PACKAGES_DIR}/{entry.project} leads through a symlink; pypidl does not "
                        "follow symlinks inside a mirror"
                    )
                )
            except UnsafeFilenameError as exc:
                found = exc.message
            self._dirs[entry.project] = found
        if isinstance(found, str):
            raise UnsafeFilenameError(found)
        return found / check_basename(entry.filename)

    def _take_lock(self, project: str) -> bool:
        with self._lock:
            first = self._remaining.get(project, 0) > 0 and project not in self._holding
        locked = self._run_locks.acquire(
            project,
            timeout=self._lock_timeout,
            on_wait=partial(_say_waiting, project),
            stop=self._cancel_requested,
        )
        if locked and first:
            with self._lock:
                if project not in self._holding:
                    self._holding.add(project)
                    return self._run_locks.acquire(project)  # the hold until the last file
        return locked

    def _done_with(self, project: str) -> None:
        with self._lock:
            left = self._remaining.get(project)
            if left is None:
                return
            self._remaining[project] = left = left - 1
            release = left <= 0 and project in self._holding
            if release:
                self._holding.discard(project)
        if release:
            self._run_locks.release(project)

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
            st = os.lstat(final)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            # a symlink inside the mirror would make this file overwrite another one
            return FileResult(
                entry,
                FAILED,
                error=f"{entry.relpath} leads through a symlink; pypidl does not follow "
                "symlinks inside a mirror",
            )
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
                records[entry.filename] = self._journal.add(entry, final, st)
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
        reasons: dict[str, str] = {}
        tried = _Tries()
        result = self._rounds(entry, final, part, urls, reasons, tried, rescue=False)
        if result is None and self._lookup is not None and not self._cancel_requested():
            # every listed URL failed: the indexes may list the file elsewhere (another layout)
            extra = [
                u
                for u in self._lookup.urls_for(entry.project, entry.filename, entry.sha256)
                if u not in urls
            ]
            if extra:
                log.debug(
                    "%s: trying %d URL(s) from the indexes' pages", entry.filename, len(extra)
                )
                result = self._rounds(entry, final, part, extra, reasons, tried, rescue=True)
        if result is not None:
            return result
        part.cleanup_if_empty()
        return FileResult(entry, FAILED, error=_all_failed(reasons), attempts=tried.attempts)

    def _rounds(
        self,
        entry: Entry,
        final: Path,
        part: PartFile,
        urls: list[str],
        reasons: dict[str, str],
        tried: _Tries,
        *,
        rescue: bool,
    ) -> FileResult | None:
        """Rounds of attempts over ``urls`` with back-off; the result, or None when all failed."""
        dead: set[str] = set()
        rounds = free_rounds = 0
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
                tried.attempts += 1
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
                        tried.attempts,
                        redact_url(url),
                        exc.reason,
                    )
                else:
                    self._board.success(key, rescued=rescue)
                    if rescue:
                        log.info(
                            "Rescued %s from %s (found on its project page)", entry.filename, key
                        )
                    return self._publish(entry, final, part, mirror=key, attempts=tried.attempts)
            if progressed and free_rounds < MAX_PROGRESS_RETRIES:
                free_rounds += 1
            else:
                rounds += 1
            if rounds >= max(1, self.net.retries) or all(u in dead for u in urls):
                return None
            delay = backoff_delay(rounds, self.net.backoff, retry_after=wait_at_least)
            if progressed and wait_at_least is None:
                delay = min(delay, self.net.backoff)  # the server was working: resume promptly
            if self._stop.wait(delay) or self._cancel_requested():
                raise Cancelled

    def _publish(
        self, entry: Entry, final: Path, part: PartFile, *, mirror: str | None, attempts: int
    ) -> FileResult:
        size = part.offset
        # a large file is flushed by its own thread (its writeback is long); small ones are made
        # durable together, before the catalog records them (see pypidl.fetch.journal)
        synced = size >= RESUME_NOTE_MIN
        if synced:
            part.sync()
        st = part.finish(final)
        records = self._project_records(entry.project)
        records[entry.filename] = self._journal.add(entry, final, st, synced=synced)
        return FileResult(entry, DOWNLOADED, bytes=size, mirror=mirror, attempts=attempts)

    def _attempt(self, entry: Entry, url: str, key: str, part: PartFile) -> None:
        """One HTTP request for ``entry`` from ``url``, resuming ``part``; returns when verified.

        :raises AttemptFailed: worth another try (here later, or on another mirror).
        :raises UrlRefused: this URL will not serve the file.
        :raises Cancelled: the run is stopping.
        """
        headers = dict(ARTIFACT_HEADERS)
        if part.offset:
            headers["Range"] = f"bytes={part.offset}-"
            if part.validator and part.validator_mirror == key:
                headers["If-Range"] = part.validator
        try:
            resp = self._session.stream_get(
                url, headers, (self.net.connect_timeout, self._read_timeout)
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
            start = check_response(entry, resp, part)
            part.remember(resp, key)
            try:
                self._stream(entry, resp, key, part, start)
            except AttemptFailed as exc:
                if start < kept:
                    # the server ignored Range and started over: bytes we already had are no
                    # progress, or a server that always breaks off gets endless free restarts
                    exc.progressed = False
                raise

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
        if watch.stalled or (expected is not None and part.offset < expected):
            why = "stalled" if watch.stalled else "truncated"
            raise AttemptFailed(
                f"{why}: got {part.offset} of {expected} bytes", progressed=received > 0
            )
        digest = part.hasher.hexdigest()
        if digest != entry.sha256:
            part.discard()
            raise AttemptFailed(sha256_mismatch(entry.sha256, digest))


class _Tries:
    """Attempts made for one file, across the listed URLs and a rescue."""

    __slots__ = ("attempts",)

    def __init__(self) -> None:
        self.attempts = 0


def _say_waiting(project: str, holder: str | None, timeout: float) -> None:
    who = f" (pid {holder})" if holder else ""
    log.warning(
        "Waiting for another pypidl run%s working on %s in this mirror (up to %gs, --lock-timeout)",
        who,
        project,
        timeout,
    )


def _all_failed(reasons: dict[str, str]) -> str:
    """``All mirrors failed: ...`` with each mirror's last reason (mirror names only when several)."""
    if not reasons:
        return "All mirrors failed: no usable URL"
    if len(reasons) == 1:
        return "All mirrors failed: " + next(iter(reasons.values()))
    return "All mirrors failed: " + "; ".join(f"{key}: {why}" for key, why in reasons.items())
