"""When to wait, when to move on, when to give up: the download engine's retry policy.

Back-off with jitter that honours (a capped) ``Retry-After``; the outcomes an attempt can end in;
the per-worker board that counts what each mirror did and sets aside one that keeps failing; and
the watchdog that ends transfers which stall or trickle.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pypidl.config import MAX_RETRY_AFTER
from pypidl.sources import redact_url, strip_credentials

if TYPE_CHECKING:  # the parent process imports this module without the HTTP stack
    import requests

__all__ = [
    "FINAL_STATUSES",
    "MAX_BACKOFF",
    "MAX_PROGRESS_RETRIES",
    "MAX_RETRY_AFTER",
    "SET_ASIDE_AFTER",
    "AttemptFailed",
    "Cancelled",
    "MirrorBoard",
    "MirrorStats",
    "StallWatchdog",
    "UrlRefused",
    "backoff_delay",
    "http_reason",
    "mirror_key",
    "retry_after_seconds",
]

log = logging.getLogger(__name__)


#: A mirror that fails this many attempts in a row (without a success between) is set aside.
SET_ASIDE_AFTER = 6


#: The longest back-off between two rounds, in seconds.
MAX_BACKOFF = 30.0


#: Attempts that made progress (bytes kept for resume) do not use up a retry, this many times.
MAX_PROGRESS_RETRIES = 16


#: Statuses that mean "this mirror will not give you this file".
FINAL_STATUSES = frozenset({401, 403, 404, 410})


@dataclass
class MirrorStats:
    """What one mirror did during a run: files served, bytes received, failed attempts, and how
    many of its files were rescues (found on its project page after every listed URL failed)."""

    files: int = 0
    bytes: int = 0
    failures: int = 0
    set_aside: bool = False
    rescued: int = 0

    def __add__(self, other: MirrorStats) -> MirrorStats:
        if not isinstance(other, MirrorStats):
            return NotImplemented
        return MirrorStats(
            files=self.files + other.files,
            bytes=self.bytes + other.bytes,
            failures=self.failures + other.failures,
            set_aside=self.set_aside or other.set_aside,
            rescued=self.rescued + other.rescued,
        )


def mirror_key(url: str) -> str:
    """The name a mirror is counted under: the URL's ``host[:port]``, never credentials."""
    parts = urlsplit(strip_credentials(url))
    return parts.netloc or parts.scheme or "?"


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


class AttemptFailed(Exception):
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


class UrlRefused(Exception):
    """This URL will not serve this file (404, 410, 403, a different file)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Cancelled(Exception):
    """The run is being interrupted."""


def http_reason(resp: requests.Response) -> str:
    return f"{resp.status_code} {resp.reason}".strip() if resp.reason else str(resp.status_code)


class MirrorBoard:
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

    def success(self, key: str, *, rescued: bool = False) -> None:
        with self._lock:
            stats = self._get(key)
            stats.files += 1
            stats.rescued += rescued
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
                k: MirrorStats(v.files, v.bytes, v.failures, v.set_aside, v.rescued)
                for k, v in self._stats.items()
            }


def _abort(response: requests.Response) -> None:
    from pypidl.session import abort_response  # only workers, which have the HTTP stack, get here

    abort_response(response)


class _Watch:
    __slots__ = ("deadline", "response", "stalled")

    def __init__(self, response: requests.Response, deadline: float):
        self.response = response
        self.deadline = deadline
        self.stalled = False


class StallWatchdog:
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
            _abort(w.response)

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
                _abort(w.response)
