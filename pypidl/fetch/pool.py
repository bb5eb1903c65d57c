"""The download engine: a process pool of thread pools filling a mirror from manifest entries.

Shape:

* files the catalog already proves (a ``stat`` matches its record) are reported as skipped by the
  parent, with no process started: a re-run over a complete mirror is a few ``stat`` calls;
* the rest is split into whole projects balanced by bytes (:func:`pypidl.manifest.partition`),
  one group per worker process, so only one process ever writes a project's catalog file;
* workers are ``spawn``-ed processes (every OS), each with ``concurrency / workers`` threads
  sharing one :class:`pypidl.fetch.downloader.Downloader`;
* workers never print: every ``progress_interval`` they send one batch (byte count, file results
  as indexes into their group, log lines) through their own pipe, and end with a "done" message
  carrying their mirror statistics; the parent turns these into :class:`Events` calls;
* a worker never outlives its run (:mod:`pypidl.fetch.lifeline`): when its parent dies (even by
  SIGKILL), its pipe breaks, or it gets a SIGTERM, it stops its transfers (parts are kept),
  records what it verified, and exits, which releases its project locks;
* Ctrl-C (and SIGTERM, which the CLI turns into ``KeyboardInterrupt``) in the parent sets a
  shared cancel event: threads stop between chunks, parts stay for resume, and :func:`run`
  returns a report with ``interrupted=True``.  Workers ignore SIGINT; a worker stopped by its own
  SIGTERM reports its files as interrupted and the run as interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from pypidl._fs import check_basename, safe_join
from pypidl.config import NetworkSettings
from pypidl.errors import BadInputError, UnsafeFilenameError
from pypidl.fetch.lifeline import Lifeline
from pypidl.fetch.results import DOWNLOADED, FAILED, INTERRUPTED, SKIPPED, FileResult
from pypidl.fetch.retry import MirrorStats, mirror_key
from pypidl.manifest import PACKAGES_DIR, Entry, partition
from pypidl.store.catalog import Catalog, Record
from pypidl.store.locks import DEFAULT_LOCK_TIMEOUT

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
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
#: Files in flight per worker at the start, at least, and how fast the estimate follows.
_GATE_START = 8
_GATE_MIN = 2
_GATE_SMOOTHING = 0.1
#: Work worth one more process: this many files.
_FILES_PER_PROCESS = 16


@dataclass(frozen=True)
class EngineOptions:
    """How hard to work.

    :param concurrency: total number of simultaneous downloads across all processes.
    :param processes: worker processes; ``None`` picks :func:`default_processes`.
    :param net: network settings (travel to the workers, so they pickle).
    :param progress_interval: seconds between the messages of each worker (byte counts, file
        results and log lines travel in batches).
    :param lock_timeout: seconds to wait for a project another live pypidl run is working on in
        the same mirror, before its files fail (a lock whose holder died never blocks).
    :param indexes: simple index URLs (no credentials), best first: when every URL of a file has
        failed, its name is looked up on these indexes' project pages.
    :param pins: project -> the only indexes its files may come from (a rescue asks no other).
    """

    concurrency: int = 256
    processes: int | None = None
    net: NetworkSettings = field(default_factory=NetworkSettings)
    progress_interval: float = 0.1
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    indexes: tuple[str, ...] = ()
    pins: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


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
    the streams, and what the number of files justifies (3 files get 1 process).

    Files, not bytes: what a process spends per byte (receiving, hashing, writing) happens with
    the interpreter lock released, so one process already spreads a few large files over the
    CPUs; what needs more processes is the Python work each file costs.  (12 files of 100 MB on
    2 CPUs: one process 3.4 s, two 5.3 s, their flushes competing for the disk.)
    """
    if not entries:
        return 1
    projects = len({e.project for e in entries})
    by_files = math.ceil(len(entries) / _FILES_PER_PROCESS)
    return max(1, min(_usable_cpus(), MAX_DEFAULT_PROCESSES, projects, concurrency, by_files))


# --------------------------------------------------------------------------- worker side


@dataclass(frozen=True)
class _WorkerConfig:
    """What every worker is told when it starts (pickled across ``spawn``)."""

    root: str
    net: NetworkSettings
    threads: int
    interval: float
    lock_timeout: float
    indexes: tuple[str, ...]
    pins: dict[str, tuple[str, ...]]
    parent_pid: int
    log_level: int = logging.DEBUG


class _Outbox:
    """A worker's messages to the parent, batched: byte counts, file results, log lines.

    One ``send`` per ``interval`` instead of one per file and per chunk: pickling and the
    parent's wake-ups cost more than a small file's download.  A pipe the parent no longer reads
    (it died) makes ``send`` fail: that too ends the worker.
    """

    def __init__(self, conn: Any, interval: float, on_broken: Callable[[str], None]):
        self._conn = conn
        self._interval = interval
        self._on_broken = on_broken
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._bytes = 0
        self._results: list[tuple[Any, ...]] = []
        self._logs: list[tuple[int, str]] = []
        self.broken = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pypidl-outbox", daemon=True)
        self._thread.start()

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self._bytes += n

    def result(self, index: int, r: FileResult) -> None:
        with self._lock:
            self._results.append((index, r.status, r.bytes, r.mirror, r.error, r.attempts))

    def log(self, level: int, message: str) -> None:
        with self._lock:
            self._logs.append((level, message))

    def flush(self) -> None:
        with self._lock:
            n, results, logs = self._bytes, self._results, self._logs
            self._bytes, self._results, self._logs = 0, [], []
        if n or results or logs:
            self.send(("batch", n, results, logs))

    def send(self, message: tuple[Any, ...]) -> None:
        if self.broken:
            return
        try:
            with self._send_lock:
                self._conn.send(message)
        except (OSError, EOFError, ValueError):
            self.broken = True
            self._on_broken("the run that started this worker is gone (its pipe broke)")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()


class _Cancel:
    """The shared cancel event, or this worker's own reason to stop (SIGTERM, parent gone)."""

    def __init__(self, shared: Any):
        self._shared = shared
        self.reason: str | None = None

    def is_set(self) -> bool:
        return self.reason is not None or bool(self._shared.is_set())


class _OutboxLogHandler(logging.Handler):
    """Forwards a worker's ``pypidl`` log records to the parent as ``(level, message)``."""

    def __init__(self, outbox: _Outbox):
        super().__init__(logging.DEBUG)
        self._outbox = outbox

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._outbox.log(record.levelno, record.getMessage())
        except Exception:  # logging must never break a download
            self.handleError(record)


def _worker_main(
    group: int, entries: list[Entry], conn: Any, shared_cancel: Any, cfg: _WorkerConfig
) -> None:
    """One worker process: download ``entries`` (whole projects) with a pool of threads.

    Always ends with a ``done`` message (unless the parent is gone) carrying the mirror
    statistics and whether this worker was stopped on its own (SIGTERM, dead parent).
    """
    # The parent coordinates Ctrl-C; a worker dying of it would break the run mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from pypidl.fetch.downloader import Downloader  # the HTTP stack: workers only

    cancel = _Cancel(shared_cancel)
    downloader: list[Downloader] = []

    def stop(reason: str) -> None:
        if cancel.reason is None:
            cancel.reason = reason
        for dl in downloader:
            dl.cancel()

    outbox = _Outbox(conn, cfg.interval, stop)
    lifeline = Lifeline(cfg.parent_pid, stop).start()
    logger = logging.getLogger("pypidl")
    logger.handlers[:] = [_OutboxLogHandler(outbox)]
    # records the parent would drop are not even formatted here
    logger.setLevel(cfg.log_level)
    logger.propagate = False
    stats: dict[str, MirrorStats] = {}
    try:
        with Downloader(
            cfg.root,
            cfg.net,
            cancel=cancel,
            on_bytes=outbox.add_bytes,
            pool_size=cfg.threads,
            lock_timeout=cfg.lock_timeout,
            indexes=cfg.indexes,
            pins=cfg.pins,
        ) as dl:
            downloader.append(dl)
            dl.expect(entries)
            if cancel.is_set():
                dl.cancel()

            def one(index: int) -> None:
                entry = entries[index]
                try:
                    result = dl.fetch(entry)
                except Exception as exc:  # one file's bug must not lose the others
                    log.exception("unexpected error on %s", entry.filename)
                    result = FileResult(
                        entry, FAILED, error=f"internal error: {type(exc).__name__}: {exc}"
                    )
                if result is not None:
                    outbox.result(index, result)

            # Largest first: the long transfers start early and do not make the tail.
            order = sorted(range(len(entries)), key=lambda i: -(entries[i].size or 0))
            _run_threads(one, order, cfg.threads)
            stats = dl.mirror_stats()
    finally:
        outbox.close()
        outbox.send(("done", group, stats, cancel.reason))
        lifeline.finished()
        with contextlib.suppress(OSError):
            conn.close()


class _Gate:
    """How many files a worker has in flight: enough to keep its CPU busy, no more.

    Every thread that runs at once costs CPU when the work is CPU-bound: on loopback a small
    file costs about 1 ms of CPU with one thread and 2 ms with 128 (the interpreter lock changes
    hands at every system call).  Little's law gives the concurrency that keeps one CPU busy:
    wall time per file over CPU time per file (``time.thread_time``).  Network latency makes that
    ratio large (20 ms per request, 1 ms of CPU: about 20 in flight); when the CPU is the limit the
    ratio equals the number in flight, and the 0.9 factor lets the limit settle down.  The limit
    stays between :data:`_GATE_MIN` and ``ceiling`` (the streams ``--concurrency`` gives this
    worker); threads are started only as the limit grows.
    """

    def __init__(self, ceiling: int):
        self.ceiling = max(1, ceiling)
        self.limit = min(self.ceiling, _GATE_START)
        self._cond = threading.Condition()
        self._active = 0
        self._wall = 0.0
        self._cpu = 0.0

    def enter(self) -> None:
        with self._cond:
            while self._active >= self.limit:
                self._cond.wait()
            self._active += 1

    def leave_idle(self) -> None:
        """A thread found no more work."""
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def leave(self, wall: float, cpu: float) -> int:
        """One file done after ``wall`` seconds using ``cpu``; returns the new limit."""
        with self._cond:
            self._active -= 1
            if self._wall:
                self._wall += (wall - self._wall) * _GATE_SMOOTHING
                self._cpu += (cpu - self._cpu) * _GATE_SMOOTHING
            else:
                self._wall, self._cpu = wall, cpu
            if self._cpu > 0:
                wanted = math.ceil(0.9 * self._wall / self._cpu)
                self.limit = max(min(_GATE_MIN, self.ceiling), min(self.ceiling, wanted))
            self._cond.notify_all()
            return self.limit


def _run_threads(work: Callable[[int], None], order: list[int], threads: int) -> None:
    """Run ``work`` on every index of ``order``, at most ``threads`` at once (see :class:`_Gate`).

    No future per file: with 10,000 small files a ThreadPoolExecutor's futures (each with its
    own condition variable) cost megabytes and more CPU than the bookkeeping is worth.
    """
    pending = iter(order)
    lock = threading.Lock()
    gate = _Gate(min(threads, len(order)))
    started: list[threading.Thread] = []

    def grow(to: int) -> None:
        with lock:
            while len(started) < to:
                t = threading.Thread(target=pull, name=f"pypidl-dl-{len(started)}", daemon=True)
                started.append(t)
                t.start()

    def pull() -> None:
        while True:
            gate.enter()
            with lock:
                index = next(pending, None)
            if index is None:
                gate.leave_idle()
                return
            wall, cpu = time.monotonic(), time.thread_time()
            try:
                work(index)
            finally:
                limit = gate.leave(time.monotonic() - wall, time.thread_time() - cpu)
            if limit > len(started):
                grow(limit)

    grow(gate.limit)
    while True:
        with lock:
            current = list(started)
        for t in current:
            t.join()
        with lock:
            if len(started) == len(current):
                return


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
    """Refuse unsafe names before any process starts; drop exact duplicates.

    Each project's directory is resolved once (a symlink leading out of the mirror is refused
    there); file names are checked as plain names, without a system call each.
    """
    work: list[Entry] = []
    refused: list[FileResult] = []
    seen: set[tuple[str, str]] = set()
    projects: dict[str, str | None] = {}
    for entry in entries:
        key = (entry.project, entry.filename)
        if key in seen:
            continue
        seen.add(key)
        if entry.project not in projects:
            try:
                safe_join(root, PACKAGES_DIR, entry.project)
                projects[entry.project] = None
            except UnsafeFilenameError as exc:
                projects[entry.project] = exc.message
        problem = projects[entry.project]
        if problem is None:
            try:
                check_basename(entry.filename)
            except UnsafeFilenameError as exc:
                problem = exc.message
        if problem is not None:
            refused.append(FileResult(entry, FAILED, error=problem))
            continue
        work.append(entry)
    return work, refused


def order_by_reachability(
    entries: Sequence[Entry], root: Path, net: NetworkSettings, *, checked: bool = False
) -> tuple[list[Entry], dict[str, str]]:
    """Put the URLs of mirrors that cannot be reached at the end of every entry's list.

    A manifest lists every mirror of a file, and many hosts cannot reach some of them (the
    ``--cn`` set from outside China, a public index from inside a company): without this, every
    file's first attempts would wait on each dead mirror in turn.  One request per mirror, all at
    once, settles it; a mirror that fails is kept, only tried last.  Nothing is asked when every
    file is already verified (a re-run over a complete mirror makes no request) or when there is
    only one mirror.

    :param checked: ``entries`` hold only files the catalog does not prove (no need to look).
    :returns: the entries, reordered, and why each unreachable mirror (by ``host:port``) failed.
    """
    sample: dict[str, str] = {}
    for entry in entries if checked else _split_verified(entries, root)[0]:
        for url in entry.urls:
            sample.setdefault(mirror_key(url), url)
    if len(sample) < 2:
        return list(entries), {}
    import requests

    from pypidl.session import describe_error, new_session

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


def _split_verified(entries: Sequence[Entry], root: Path) -> tuple[list[Entry], list[Entry]]:
    """``(to fetch, already verified)``: the catalog's records and ``stat`` calls, no hashing."""
    catalog = Catalog(root)
    records: dict[str, dict[str, Record]] = {}
    needed: list[Entry] = []
    verified: list[Entry] = []
    packages = os.path.join(root, PACKAGES_DIR)
    for entry in entries:
        found = records.get(entry.project)
        if found is None:
            try:
                found = records[entry.project] = catalog.load(entry.project, proofs_only=True)
            except (OSError, UnsafeFilenameError):
                found = records[entry.project] = {}
        record = found.get(entry.filename)
        if record is not None:
            try:
                # lstat: a symlink planted under a final name is never trusted
                st = os.lstat(os.path.join(packages, entry.project, entry.filename))
            except OSError:
                pass
            else:
                if record.proves(entry, st):
                    verified.append(entry)
                    continue
        needed.append(entry)
    return needed, verified


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
    Files the catalog already proves (a ``stat`` matches its record) are reported as skipped
    here, without starting a worker: a re-run over a complete mirror starts no process.

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
    work, verified = _split_verified(work, root_path)
    for entry in verified:
        result = FileResult(entry, SKIPPED)
        report.results.append(result)
        ev.on_file(result)
    if not work:
        return report
    work, unreachable = order_by_reachability(work, root_path, options.net, checked=True)
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
    cancel = ctx.Event()
    config = _WorkerConfig(
        root=str(root_path),
        net=options.net,
        threads=threads,
        interval=options.progress_interval,
        lock_timeout=options.lock_timeout,
        indexes=tuple(options.indexes),
        pins=dict(options.pins),
        parent_pid=os.getpid(),
        log_level=logging.getLogger("pypidl").getEffectiveLevel(),
    )
    workers: dict[Any, tuple[int, Any]] = {}  # the parent's end of each worker's pipe
    pending = set(range(len(groups)))
    reported: set[tuple[str, str]] = set()
    dead: set[int] = set()
    try:
        try:
            for i, group in enumerate(groups):
                reader, writer = ctx.Pipe(duplex=False)
                proc = ctx.Process(
                    target=_worker_main,
                    args=(i, group, writer, cancel, config),
                    name=f"pypidl-worker-{i}",
                    daemon=True,
                )
                proc.start()
                writer.close()  # the worker holds the only writing end: EOF means it is gone
                workers[reader] = (i, proc)
            _drain(workers, groups, pending, report, reported, dead, ev, deadline=None)
        except KeyboardInterrupt:
            report.interrupted = True
            cancel.set()
            log.debug("interrupted: waiting for workers to keep their partial downloads")
            with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: stop waiting
                grace = time.monotonic() + SHUTDOWN_GRACE
                _drain(workers, groups, pending, report, reported, dead, ev, deadline=grace)
    finally:
        _shutdown([proc for _, proc in workers.values()])
        for reader in workers:
            reader.close()
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
    workers: dict[Any, tuple[int, Any]],
    groups: list[list[Entry]],
    pending: set[int],
    report: RunReport,
    reported: set[tuple[str, str]],
    dead: set[int],
    ev: Events,
    *,
    deadline: float | None,
) -> None:
    """Turn worker messages into events until every group is done (or ``deadline`` passes)."""
    open_readers = [r for r, (i, _) in workers.items() if i in pending]
    while pending and open_readers:
        if deadline is not None and time.monotonic() > deadline:
            return
        for ready in multiprocessing.connection.wait(open_readers, timeout=0.2):
            reader: Any = ready
            i, proc = workers[reader]
            try:
                msg: Any = reader.recv()
            except (EOFError, OSError):
                open_readers.remove(reader)
                if i in pending:  # gone without its "done" message (killed, out of memory)
                    proc.join(1)
                    log.error(
                        "worker process %d ended without finishing (exit %s)", i, proc.exitcode
                    )
                    pending.discard(i)
                    dead.add(i)
                continue
            if msg[0] == "batch":
                _, nbytes, results, logs = msg
                for level, message in logs:
                    ev.on_log(level, message)
                if nbytes:
                    ev.on_bytes(nbytes)
                for index, status, size, mirror, error, attempts in results:
                    entry = groups[i][index]
                    result = FileResult(entry, status, size, mirror, error, attempts)
                    reported.add((entry.project, entry.filename))
                    report.results.append(result)
                    ev.on_file(result)
            elif msg[0] == "done":
                _, group, stats, stopped = msg
                pending.discard(group)
                for key, s in stats.items():
                    report.mirrors[key] = report.mirrors[key] + s if key in report.mirrors else s
                if stopped is not None:
                    # a worker stopped on its own (SIGTERM): its files were interrupted, not failed
                    report.interrupted = True
                    ev.on_log(logging.WARNING, f"A worker stopped: {stopped}")


def _shutdown(processes: list[Any]) -> None:
    """Wait for the workers to exit; end the ones that do not (parts are resumable and final
    names only ever hold verified files, so nothing they hold matters)."""
    deadline = time.monotonic() + 5
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in processes:
        if proc.is_alive():
            proc.terminate()  # SIGTERM: the worker stops its transfers and exits
    for proc in processes:
        proc.join(3)
        if proc.is_alive():
            proc.kill()
            proc.join(1)
