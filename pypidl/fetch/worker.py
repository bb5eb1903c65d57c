"""The worker side of the download engine: one spawned process, a thread pool in it.

A worker gets a :class:`~pypidl.fetch._wire.WorkerConfig` and its share of the run (whole
projects), downloads with one shared :class:`~pypidl.fetch.downloader.Downloader`, and reports
through its own pipe in batches (bytes, results as indexes into its share, log records the parent
shows); :mod:`pypidl.fetch._wire` defines every message.  It never
prints, never outlives its run (:mod:`pypidl.fetch.lifeline`), and adapts how many files it keeps
in flight to what its CPU can take (:class:`_Gate`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection

from pypidl.fetch._wire import (
    Batch,
    Done,
    LogLine,
    Outcome,
    Share,
    Stop,
    ToParent,
    WorkerConfig,
)
from pypidl.fetch.lifeline import Lifeline
from pypidl.fetch.results import FAILED, FileResult
from pypidl.fetch.retry import MirrorStats
from pypidl.manifest import Entry

__all__ = ["worker_main", "worker_process"]

log = logging.getLogger(__name__)

#: Files in flight per worker at the start, at least, and how fast the estimate follows.
_GATE_START = 8
_GATE_MIN = 2
_GATE_SMOOTHING = 0.1


class _Outbox:
    """A worker's messages to the parent, batched: byte counts, file results, log lines.

    One ``send`` per ``interval`` instead of one per file and per chunk: pickling and the
    parent's wake-ups cost more than a small file's download.  A pipe the parent no longer reads
    (it died) makes ``send`` fail: that too ends the worker.
    """

    def __init__(self, conn: Connection, interval: float, on_broken: Callable[[str], None]):
        self._conn = conn
        self._interval = interval
        self._on_broken = on_broken
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._bytes = 0
        self._outcomes: list[Outcome] = []
        self._logs: list[LogLine] = []
        self.broken = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pypidl-outbox", daemon=True)
        self._thread.start()

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self._bytes += n

    def result(self, index: int, r: FileResult) -> None:
        with self._lock:
            self._outcomes.append(Outcome.of(index, r))

    def log(self, level: int, message: str) -> None:
        with self._lock:
            self._logs.append(LogLine(level, message))

    def flush(self) -> None:
        with self._lock:
            n, outcomes, logs = self._bytes, self._outcomes, self._logs
            self._bytes, self._outcomes, self._logs = 0, [], []
        if n or outcomes or logs:
            self.send(Batch(n, outcomes, logs))

    def send(self, message: ToParent) -> None:
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
    """The parent's Ctrl-C (a :class:`Stop` on this worker's control pipe), or this worker's own
    reason to stop (SIGTERM, parent gone).

    A pipe, not a shared ``multiprocessing.Event``: a named semaphore would need the resource
    tracker process, and reading a plain flag between chunks costs nothing.  The end of the pipe
    without a :class:`Stop` means the parent is gone, which the :class:`Lifeline` handles.
    """

    def __init__(self, conn: Connection, on_cancel: Callable[[], None]):
        self._conn = conn
        self._on_cancel = on_cancel
        self._set = False
        self.reason: str | None = None
        self._thread = threading.Thread(target=self._watch, name="pypidl-cancel", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        try:
            while not isinstance(self._conn.recv(), Stop):
                pass  # only a Stop follows the share; anything else is not ours to act on
        except (EOFError, OSError):
            return
        self._set = True
        self._on_cancel()

    def is_set(self) -> bool:
        return self._set or self.reason is not None


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


def worker_main(
    group: int, entries: list[Entry], conn: Connection, control: Connection, cfg: WorkerConfig
) -> None:
    """One worker process: download ``entries`` (whole projects) with a pool of threads.

    :param conn: the writing end of this worker's report pipe to the parent.
    :param control: the reading end of its control pipe, past the share: a :class:`Stop` there
        stops the run.

    Always ends with a :class:`Done` message (unless the parent is gone) carrying the mirror
    statistics and whether this worker was stopped on its own (SIGTERM, dead parent).
    """
    # The parent coordinates Ctrl-C; a worker dying of it would break the run mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from pypidl.fetch.downloader import Downloader  # the HTTP stack: workers only

    downloader: list[Downloader] = []

    def cancel_all() -> None:
        for dl in downloader:
            dl.cancel()

    def stop(reason: str) -> None:
        if cancel.reason is None:
            cancel.reason = reason
        cancel_all()

    cancel = _Cancel(control, cancel_all)

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

            home = _HomeCpu(group, cfg.home_cpus)

            def one(index: int) -> None:
                entry = entries[index]
                home.enter(entry.size)
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
        outbox.send(Done(stats, cancel.reason))
        lifeline.finished()
        with contextlib.suppress(OSError):
            conn.close()
        with contextlib.suppress(OSError):
            control.close()


def worker_process(group: int, conn: Connection, control: Connection, cfg: WorkerConfig) -> None:
    """The target of a worker process: its :class:`Share` from the control pipe,
    :func:`worker_main`, then an immediate exit.

    A pipe that ends before the share (the run was interrupted while starting, or the parent is
    gone) ends the worker at once.

    When :func:`worker_main` returns, everything a worker leaves behind is done: the journal is
    synced, every file is closed, the parent has the "done" message.  Tearing the interpreter
    down (every module of the HTTP stack) would only delay the parent, which waits for the exit;
    the project locks go with the process.  An exception takes the ordinary way out.
    """
    try:
        share = control.recv()
    except (EOFError, OSError):
        os._exit(0)
    if not isinstance(share, Share):  # stopped before it had any work
        os._exit(0)
    worker_main(group, share.entries, conn, control, cfg)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


#: Files smaller than this cost more CPU per file (HTTP, file system, bookkeeping: about 1 ms)
#: than per byte (receiving, hashing and writing: about 1.5 ms per MB).
_SMALL_FILE = 1024 * 1024


class _HomeCpu:
    """On Linux, when there is a worker for every CPU: the threads fetching small files run on
    this worker's own CPU; the others may run on any.

    A small file is mostly Python work done under the interpreter lock, and every system call
    hands the lock to another thread.  Threads spread over several CPUs hand it over with a
    cross-CPU wake-up each time (an expensive exit to the hypervisor on a virtual machine);
    threads sharing one CPU hand it over in place.  On 2 CPUs (``scripts/bench_engine.py``'s
    cases, seven runs each way, taking turns): 919 files of 20 KB at 20 ms, 17,600 voluntary
    context switches down to 7,200 and the median run from 1.20 s to 1.01 s; 10,000 files of
    2 KB, 360,000 down to 175,000 and 8.9 s to 7.8 s.  A large file's time goes to hashing and
    copying with the lock released, which uses every CPU: its thread is left free (tying those
    too made 12 files of 100 MB 40% slower; as it is, they take the same 1.62 s as before).
    The affinity is per thread, set only when a thread moves from one kind of file to the other.
    """

    def __init__(self, worker: int, cpus: tuple[int, ...]):
        """:param worker: this worker's number; it gets ``cpus[worker % len(cpus)]``.
        :param cpus: every CPU the run may use (``WorkerConfig.home_cpus``); empty: tie nothing.
        """
        self._anywhere = set(cpus)
        self._home = {cpus[worker % len(cpus)]} if len(cpus) > 1 else None
        self._where = threading.local()

    def enter(self, size: int | None) -> None:
        """Place the calling thread for a file of ``size`` bytes."""
        if self._home is None:
            return
        wanted = self._home if size is not None and size < _SMALL_FILE else self._anywhere
        if getattr(self._where, "cpus", None) is not wanted:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, wanted)  # type: ignore[attr-defined,unused-ignore]
            self._where.cpus = wanted


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

    The threads are a ``ThreadPoolExecutor``'s, but it runs one long-lived loop per thread, not
    one task per file: with 10,000 small files a future per file (each with its own condition
    variable) costs megabytes and more CPU than the bookkeeping is worth.  Each loop takes the
    next index while the gate lets it; the pool grows a loop at a time as the gate opens.
    """
    pending = iter(order)
    lock = threading.Lock()
    gate = _Gate(min(threads, len(order)))
    loops: list[Future[None]] = []

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
            if limit > len(loops):
                grow(limit)

    with ThreadPoolExecutor(max_workers=gate.ceiling, thread_name_prefix="pypidl-dl") as pool:

        def grow(to: int) -> None:
            with lock:
                while len(loops) < to:
                    loops.append(pool.submit(pull))

        grow(gate.limit)
        done = 0
        while True:  # a loop may add others until the last one has finished
            with lock:
                current = loops[done:]
            if not current:
                break
            for loop in current:
                loop.result()  # a bug in the loop itself is raised here, not lost
            done += len(current)
