"""The download engine: a process pool of thread pools filling a mirror from manifest entries.

Shape:

* entries are split into whole projects balanced by bytes (:func:`pypidl.manifest.partition`),
  one group per worker process, so only one process ever writes a project's catalog file;
* processes are started with ``spawn`` on every OS; each runs a ``ThreadPoolExecutor`` whose
  threads share one :class:`pypidl.fetch.downloader.Downloader`; ``concurrency`` is the total number
  of streams across all processes;
* workers never print: they send byte counts (batched), file results, log records and a final
  "done" message with their mirror statistics through one queue, which the parent drains and
  turns into :class:`Events` calls;
* Ctrl-C (and SIGTERM, which the CLI turns into ``KeyboardInterrupt``) in the parent sets a
  shared cancel event: threads stop between chunks, parts stay for resume, and :func:`run`
  returns a report with ``interrupted=True``.  Workers ignore SIGINT; a SIGTERM sent to a
  worker directly cancels the run too.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import queue as queue_module
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import requests

from pypidl.config import NetworkSettings
from pypidl.errors import BadInputError, UnsafeFilenameError
from pypidl.fetch.downloader import (
    DOWNLOADED,
    FAILED,
    INTERRUPTED,
    SKIPPED,
    Downloader,
    FileResult,
)
from pypidl.fetch.retry import MirrorStats, mirror_key
from pypidl.manifest import Entry, partition
from pypidl.session import describe_error, new_session
from pypidl.store.catalog import Catalog, Record

__all__ = [
    "EngineOptions",
    "Events",
    "FileResult",
    "MirrorStats",
    "RunReport",
    "default_processes",
    "run",
]

log = logging.getLogger(__name__)

#: How long the parent waits for workers to wind down after an interrupt before killing them.
SHUTDOWN_GRACE = 15.0
#: Most worker processes the engine starts on its own (more rarely helps: the network is slower).
MAX_DEFAULT_PROCESSES = 8
#: Work worth one more process: this many files, or this many bytes.
_FILES_PER_PROCESS = 16
_BYTES_PER_PROCESS = 32 * 1024 * 1024


@dataclass(frozen=True)
class EngineOptions:
    """How hard to work.

    :param concurrency: total number of simultaneous downloads across all processes.
    :param processes: worker processes; ``None`` picks :func:`default_processes`.
    :param net: network settings (travel to the workers, so they pickle).
    :param progress_interval: seconds between byte-count messages from each worker.
    """

    concurrency: int = 256
    processes: int | None = None
    net: NetworkSettings = field(default_factory=NetworkSettings)
    progress_interval: float = 0.2


@dataclass
class RunReport:
    """Everything a run did; reports of partial runs add up with ``+``."""

    results: list[FileResult] = field(default_factory=list)
    mirrors: dict[str, MirrorStats] = field(default_factory=dict)
    interrupted: bool = False

    def __add__(self, other: RunReport) -> RunReport:
        if not isinstance(other, RunReport):
            return NotImplemented
        mirrors = dict(self.mirrors)
        for key, stats in other.mirrors.items():
            mirrors[key] = mirrors[key] + stats if key in mirrors else stats
        return RunReport(
            self.results + other.results, mirrors, self.interrupted or other.interrupted
        )

    def _with(self, status: str) -> list[FileResult]:
        return [r for r in self.results if r.status == status]

    @property
    def downloaded(self) -> list[FileResult]:
        return self._with(DOWNLOADED)

    @property
    def skipped(self) -> list[FileResult]:
        return self._with(SKIPPED)

    @property
    def failed(self) -> list[FileResult]:
        return self._with(FAILED)

    @property
    def stopped(self) -> list[FileResult]:
        """Files a Ctrl-C or SIGTERM stopped mid-transfer (their parts are kept)."""
        return self._with(INTERRUPTED)

    @property
    def failed_projects(self) -> list[str]:
        """Projects with at least one failed file, sorted."""
        return sorted({r.entry.project for r in self.failed})

    @property
    def ok(self) -> bool:
        return not self.interrupted and not self.failed


class Events(Protocol):
    """What the engine tells its caller (in the parent process, from the calling thread)."""

    def on_start(self, total_files: int, total_bytes: int) -> None: ...

    def on_bytes(self, n: int) -> None: ...

    def on_file(self, result: FileResult) -> None: ...

    def on_log(self, level: int, message: str) -> None: ...


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # type: ignore[attr-defined,unused-ignore]
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_processes(entries: Sequence[Entry], concurrency: int) -> int:
    """Worker processes worth starting for ``entries``: no more than the CPUs, the projects,
    the streams, and what the amount of work justifies (3 small files get 1 process)."""
    if not entries:
        return 1
    projects = len({e.project for e in entries})
    by_files = math.ceil(len(entries) / _FILES_PER_PROCESS)
    total = sum(e.size or 0 for e in entries)
    by_bytes = math.ceil(total / _BYTES_PER_PROCESS) if total else by_files
    return max(
        1,
        min(_usable_cpus(), MAX_DEFAULT_PROCESSES, projects, concurrency, max(by_files, by_bytes)),
    )


# --------------------------------------------------------------------------- worker side

_worker: _WorkerState | None = None


class _WorkerState:
    """What a worker process keeps between the initializer and its tasks."""

    def __init__(
        self, out: Any, cancel: Any, root: str, net: NetworkSettings, threads: int, interval: float
    ):
        self.out = out
        self.cancel = cancel
        self.root = root
        self.net = net
        self.threads = threads
        self.interval = interval
        self.terminated = False
        self._bytes = 0
        self._lock = threading.Lock()

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self._bytes += n

    def flush_bytes(self) -> None:
        with self._lock:
            n, self._bytes = self._bytes, 0
        if n:
            self.out.put(("bytes", n))


class _Cancel:
    """The shared cancel event, or a SIGTERM this worker received itself."""

    def __init__(self, state: _WorkerState):
        self._state = state

    def is_set(self) -> bool:
        return self._state.terminated or bool(self._state.cancel.is_set())


class _QueueLogHandler(logging.Handler):
    """Forwards a worker's ``pypidl`` log records to the parent as ``(level, message)``."""

    def __init__(self, out: Any):
        super().__init__(logging.DEBUG)
        self._out = out

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._out.put(("log", record.levelno, record.getMessage()))
        except Exception:  # logging must never break a download
            self.handleError(record)


def _init_worker(
    out: Any, cancel: Any, root: str, net: NetworkSettings, threads: int, interval: float
) -> None:
    global _worker
    # The parent coordinates Ctrl-C; a worker dying of it would break the pool mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker = state = _WorkerState(out, cancel, root, net, threads, interval)
    if hasattr(signal, "SIGTERM"):

        def on_term(signum: int, frame: object) -> None:
            state.terminated = True  # a plain flag: safe in a signal handler; threads poll it

        signal.signal(signal.SIGTERM, on_term)
    logger = logging.getLogger("pypidl")
    logger.handlers[:] = [_QueueLogHandler(out)]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False


def _work(group: int, entries: list[Entry]) -> None:
    """Download one group of whole projects in this worker; always ends with a "done" message."""
    state = _worker
    if state is None:  # pragma: no cover - the initializer always runs first
        raise RuntimeError("worker not initialised")
    stats: dict[str, MirrorStats] = {}
    stop_flusher = threading.Event()

    def flusher() -> None:
        while not stop_flusher.wait(state.interval):
            state.flush_bytes()

    flush_thread = threading.Thread(target=flusher, name="pypidl-progress", daemon=True)
    flush_thread.start()
    try:
        with Downloader(
            state.root,
            state.net,
            cancel=_Cancel(state),
            on_bytes=state.add_bytes,
            pool_size=state.threads,
        ) as dl:

            def one(entry: Entry) -> None:
                try:
                    result = dl.fetch(entry)
                except Exception as exc:  # one file's bug must not lose the others
                    logging.getLogger(__name__).exception("unexpected error on %s", entry.filename)
                    result = FileResult(
                        entry, FAILED, error=f"internal error: {type(exc).__name__}: {exc}"
                    )
                if result is not None:
                    state.flush_bytes()  # bytes before the file, so the bar never lags the count
                    state.out.put(("file", result))

            # Largest first: the long transfers start early and do not make the tail.
            ordered = sorted(entries, key=lambda e: -(e.size or 0))
            with ThreadPoolExecutor(max(1, min(state.threads, len(ordered))), "pypidl-dl") as pool:
                for future in [pool.submit(one, e) for e in ordered]:
                    future.result()
            stats = dl.mirror_stats()
    finally:
        stop_flusher.set()
        flush_thread.join()
        state.flush_bytes()
        state.out.put(("done", group, stats))


# --------------------------------------------------------------------------- parent side


class _LogEvents:
    """Used when the caller passes no events: worker log records go to this module's logger."""

    def on_start(self, total_files: int, total_bytes: int) -> None:
        pass

    def on_bytes(self, n: int) -> None:
        pass

    def on_file(self, result: FileResult) -> None:
        pass

    def on_log(self, level: int, message: str) -> None:
        log.log(level, "%s", message)


def _precheck(entries: Sequence[Entry], root: Path) -> tuple[list[Entry], list[FileResult]]:
    """Refuse unsafe names before any process starts; drop exact duplicates."""
    work: list[Entry] = []
    refused: list[FileResult] = []
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        key = (entry.project, entry.filename)
        if key in seen:
            continue
        seen.add(key)
        try:
            entry.path_in(root)
        except UnsafeFilenameError as exc:
            refused.append(FileResult(entry, FAILED, error=exc.message))
            continue
        work.append(entry)
    return work, refused


def order_by_reachability(
    entries: Sequence[Entry], root: Path, net: NetworkSettings
) -> tuple[list[Entry], dict[str, str]]:
    """Put the URLs of mirrors that cannot be reached at the end of every entry's list.

    A manifest lists every mirror of a file, and many hosts cannot reach some of them (the
    ``--cn`` set from outside China, a public index from inside a company): without this, every
    file's first attempts would wait on each dead mirror in turn.  One request per mirror, all at
    once, settles it; a mirror that fails is kept, only tried last.  Nothing is asked when every
    file is already verified (a re-run over a complete mirror makes no request) or when there is
    only one mirror.

    :returns: the entries, reordered, and why each unreachable mirror (by ``host:port``) failed.
    """
    sample: dict[str, str] = {}
    for entry in _needing_fetch(entries, root):
        for url in entry.urls:
            sample.setdefault(mirror_key(url), url)
    if len(sample) < 2:
        return list(entries), {}
    session = new_session(net, pool_size=len(sample), retry_statuses=False)

    def probe(url: str) -> str | None:
        try:
            session.head(
                url, timeout=(net.connect_timeout, net.read_timeout), allow_redirects=False
            )
        except requests.RequestException as exc:
            return describe_error(exc)
        return None  # any answer, even 404 or 405, means the mirror is there

    try:
        with ThreadPoolExecutor(max_workers=len(sample), thread_name_prefix="pypidl-probe") as pool:
            reasons = dict(zip(sample, pool.map(probe, sample.values())))
    finally:
        session.close()
    dead = {key: reason for key, reason in reasons.items() if reason is not None}
    if not dead or len(dead) == len(sample):
        return list(entries), {}  # nothing better to prefer
    reordered = [
        replace(
            e,
            urls=tuple(u for u in e.urls if mirror_key(u) not in dead)
            + tuple(u for u in e.urls if mirror_key(u) in dead),
        )
        for e in entries
    ]
    return reordered, dead


def _needing_fetch(entries: Sequence[Entry], root: Path) -> list[Entry]:
    """The entries the mirror does not already hold verified (stat calls only, no hashing)."""
    catalog = Catalog(root)
    records: dict[str, dict[str, Record]] = {}
    needed = []
    for entry in entries:
        if entry.project not in records:
            records[entry.project] = catalog.load(entry.project)
        if not catalog.current(entry, records[entry.project]):
            needed.append(entry)
    return needed


def run(
    entries: Sequence[Entry],
    root: str | os.PathLike[str],
    *,
    options: EngineOptions | None = None,
    events: Events | None = None,
) -> RunReport:
    """Make the mirror at ``root`` hold every entry, verified.

    Never raises for a file that cannot be fetched: it is a failed :class:`FileResult`.
    A ``KeyboardInterrupt`` in the caller's thread stops the run; the report says
    ``interrupted=True`` and in-flight downloads stay as ``.part`` files for the next run.

    :raises BadInputError: for impossible options (no streams, no processes).
    """
    options = options or EngineOptions()
    if options.concurrency < 1:
        raise BadInputError("concurrency must be at least 1")
    if options.processes is not None and options.processes < 1:
        raise BadInputError("processes must be at least 1")
    ev: Events = events if events is not None else _LogEvents()
    root_path = Path(root).resolve()
    work, refused = _precheck(entries, root_path)
    report = RunReport()
    ev.on_start(len(work) + len(refused), sum(e.size or 0 for e in work))
    for result in refused:
        report.results.append(result)
        ev.on_file(result)
    if not work:
        return report
    work, unreachable = order_by_reachability(work, root_path, options.net)
    for key, reason in sorted(unreachable.items()):
        report.mirrors[key] = MirrorStats(failures=1, set_aside=True)
        ev.on_log(logging.WARNING, f"Mirror {key} is unreachable ({reason}); set aside: tried last")

    processes = options.processes or default_processes(work, options.concurrency)
    groups = [g for g in partition(work, processes) if g]
    threads = math.ceil(options.concurrency / len(groups))
    log.debug(
        "downloading %d file(s) with %d process(es) x %d thread(s)", len(work), len(groups), threads
    )

    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    cancel = ctx.Event()
    pool = ProcessPoolExecutor(
        max_workers=len(groups),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(out, cancel, str(root_path), options.net, threads, options.progress_interval),
    )
    futures: dict[int, Future[None]] = {}
    pending = set(range(len(groups)))
    reported: set[tuple[str, str]] = set()
    dead: set[int] = set()
    try:
        try:
            for i, group in enumerate(groups):
                futures[i] = pool.submit(_work, i, group)
            _drain(out, futures, pending, report, reported, dead, ev, deadline=None)
        except KeyboardInterrupt:
            report.interrupted = True
            cancel.set()
            log.debug("interrupted: waiting for workers to keep their partial downloads")
            with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: stop waiting
                grace = time.monotonic() + SHUTDOWN_GRACE
                _drain(out, futures, pending, report, reported, dead, ev, deadline=grace)
    finally:
        _shutdown(pool, clean=not pending)
        out.close()
        out.join_thread()
    # Whatever a dead worker never reported has failed (unless the run was interrupted).
    if not report.interrupted:
        for i in sorted(dead | pending):
            for entry in groups[i]:
                if (entry.project, entry.filename) not in reported:
                    result = FileResult(entry, FAILED, error="worker process died")
                    report.results.append(result)
                    ev.on_file(result)
    return report


def _drain(
    out: Any,
    futures: dict[int, Future[None]],
    pending: set[int],
    report: RunReport,
    reported: set[tuple[str, str]],
    dead: set[int],
    ev: Events,
    *,
    deadline: float | None,
) -> None:
    """Turn worker messages into events until every group is done (or ``deadline`` passes)."""
    while pending:
        if deadline is not None and time.monotonic() > deadline:
            return
        try:
            msg = out.get(timeout=0.1)
        except queue_module.Empty:
            for i in list(pending):
                future = futures[i]
                if future.done() and future.exception() is not None:
                    # The worker died (killed, out of memory) without its "done" message.
                    log.error("a worker process failed: %s", future.exception())
                    pending.discard(i)
                    dead.add(i)
            continue
        kind = msg[0]
        if kind == "bytes":
            ev.on_bytes(msg[1])
        elif kind == "file":
            result: FileResult = msg[1]
            reported.add((result.entry.project, result.entry.filename))
            report.results.append(result)
            ev.on_file(result)
        elif kind == "log":
            ev.on_log(msg[1], msg[2])
        elif kind == "done":
            pending.discard(msg[1])
            for key, stats in msg[2].items():
                report.mirrors[key] = (
                    report.mirrors[key] + stats if key in report.mirrors else stats
                )


def _shutdown(pool: ProcessPoolExecutor, *, clean: bool) -> None:
    if clean:
        pool.shutdown(wait=True)
        return
    # Workers that did not finish in the grace period hold nothing that matters: parts are
    # resumable and final names only ever hold verified files.  End them.
    processes = list(getattr(pool, "_processes", {}).values())  # no public way to terminate
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(5)
