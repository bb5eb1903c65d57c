"""The parent's side of the engine's worker processes: start them, hand out their shares, read
their reports, stop them on Ctrl-C, and make sure none outlives the run.

The messages are defined in :mod:`pypidl.fetch._wire`; the worker's side is
:mod:`pypidl.fetch.worker`.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pypidl.fetch._wire import Batch, Done, Share, Stop, ToParent, ToWorker, WorkerConfig
from pypidl.fetch.results import FAILED, FileResult
from pypidl.fetch.worker import worker_process

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from pypidl.fetch.pool import Events, RunReport
    from pypidl.manifest import Entry

__all__ = ["SHUTDOWN_GRACE", "Workers"]

log = logging.getLogger(__name__)

#: How long the parent waits for workers to wind down after an interrupt before killing them.
SHUTDOWN_GRACE = 15.0


@dataclass(eq=False)
class _Worker:
    """The parent's side of one worker process, and what the worker has said so far."""

    group: int
    share: list[Entry]
    process: BaseProcess
    #: the reading end of its report pipe; the worker holds the only writing end, so the end of
    #: the pipe means the worker is gone
    reports: Connection[Any, ToParent]
    #: the writing end of its control pipe
    control: Connection[ToWorker, Any]
    #: its whole :class:`Share` is in the pipe: only then may a :class:`Stop` follow it
    share_sent: bool = False
    #: its :class:`Done` arrived
    finished: bool = False
    #: its pipe ended without a :class:`Done` (killed, out of memory)
    lost: bool = False
    #: the indexes into ``share`` of the files it reported
    reported: set[int] = field(default_factory=set)

    @property
    def running(self) -> bool:
        return not self.finished and not self.lost


class Workers:
    """The worker processes of one run: started, given their shares, read until they are done
    (or lost), stopped on Ctrl-C, shut down.  Their messages become ``events`` calls and lines
    of ``report``."""

    def __init__(
        self,
        groups: list[list[Entry]],
        config: WorkerConfig,
        report: RunReport,
        events: Events,
    ):
        """:param groups: each worker's share: whole projects (``_shards.partition``).
        :param config: what every worker is told when it starts.
        """
        self._groups = groups
        self._config = config
        self._report = report
        self._events = events
        self.members: list[_Worker] = []

    def start(self) -> None:
        """Start a process per group; each waits for its share on its control pipe."""
        ctx = multiprocessing.get_context("spawn")
        with _without_resource_tracker():
            for i, share in enumerate(self._groups):
                reports, writer = ctx.Pipe(duplex=False)
                control_reader, control = ctx.Pipe(duplex=False)
                proc = ctx.Process(
                    target=worker_process,
                    args=(i, writer, control_reader, self._config),
                    name=f"pypidl-worker-{i}",
                    daemon=True,
                )
                try:
                    proc.start()
                except BaseException:
                    reports.close()
                    control.close()
                    raise
                finally:
                    writer.close()  # the worker holds the only writing end: EOF means it is gone
                    control_reader.close()
                self.members.append(_Worker(i, share, proc, reports, control))

    def hand_out(self) -> None:
        """Send each worker its share, now that every worker is starting: as an argument of the
        process it would be written before the next one started, and that write waits until the
        new interpreter is up and reading (30 ms each here)."""
        for worker in self.members:
            try:
                worker.control.send(Share(worker.share))
            except OSError:  # it died starting up: drain() reports its files as failed
                continue
            worker.share_sent = True

    def drain(self, *, deadline: float | None = None) -> None:
        """Turn worker messages into events until every worker is done (or ``deadline``, a
        ``time.monotonic()`` value, passes)."""
        readers = {w.reports: w for w in self.members if w.running}
        while readers and any(w.running for w in self.members):
            if deadline is not None and time.monotonic() > deadline:
                return
            for ready in multiprocessing.connection.wait(list(readers), timeout=0.2):
                worker = readers[ready]  # type: ignore[index]  # wait() returns what it was given
                try:
                    message = worker.reports.recv()
                except (EOFError, OSError):
                    del readers[worker.reports]
                    if worker.running:
                        self._lose(worker)
                    continue
                if isinstance(message, Batch):
                    self._take_batch(worker, message)
                else:
                    self._take_done(worker, message)

    def interrupt(self) -> None:
        """Ctrl-C: stop every worker, then wait (a while) for them to report and keep their
        partial downloads; a second Ctrl-C stops the waiting."""
        self._report.interrupted = True
        for worker in self.members:
            if worker.share_sent:
                with contextlib.suppress(OSError):  # a worker that already ended
                    worker.control.send(Stop())
        log.debug("interrupted: waiting for workers to keep their partial downloads")
        with contextlib.suppress(KeyboardInterrupt):
            self.drain(deadline=time.monotonic() + SHUTDOWN_GRACE)

    def close(self) -> None:
        """Wait for the processes to exit (end those that do not); close the parent's ends."""
        _shutdown([w.process for w in self.members])
        for worker in self.members:
            worker.reports.close()
            worker.control.close()

    def fail_unreported(self) -> None:
        """Whatever a worker that never finished did not report has failed."""
        for worker in self.members:
            if worker.finished:
                continue
            for index, entry in enumerate(worker.share):
                if index not in worker.reported:
                    self._file(FileResult(entry, FAILED, error="worker process died"))

    def _file(self, result: FileResult) -> None:
        self._report.results.append(result)
        self._events.on_file(result)

    def _take_batch(self, worker: _Worker, batch: Batch) -> None:
        for line in batch.logs:
            self._events.on_log(line.level, line.message)
        if batch.nbytes:
            self._events.on_bytes(batch.nbytes)
        for outcome in batch.outcomes:
            worker.reported.add(outcome.position)
            self._file(outcome.result(worker.share[outcome.position]))

    def _take_done(self, worker: _Worker, done: Done) -> None:
        worker.finished = True
        self._report.add_mirrors(done.stats)
        if done.stopped is not None:
            # a worker stopped on its own (SIGTERM): its files were interrupted, not failed
            self._report.interrupted = True
            self._events.on_log(logging.WARNING, f"A worker stopped: {done.stopped}")

    def _lose(self, worker: _Worker) -> None:
        """Its pipe ended without its :class:`Done` (killed, out of memory)."""
        worker.process.join(1)
        log.error(
            "worker process %d ended without finishing (exit %s)",
            worker.group,
            worker.process.exitcode,
        )
        worker.lost = True


@contextlib.contextmanager
def _without_resource_tracker() -> Iterator[None]:
    """Start ``spawn`` workers without multiprocessing's resource tracker process.

    On POSIX, starting a ``spawn`` process starts that tracker (another interpreter, about 13 MB)
    so that it can unlink named semaphores and shared memory a crashed process leaves behind.
    The engine creates neither (its workers talk through pipes), so while the workers start, the
    tracker's pipe is ``/dev/null``: the liveness probe succeeds and nothing is started.  A tracker
    that already runs is left as it is, and afterwards a later user of semaphores in this process
    gets a real tracker again.
    """
    tracker: Any = None
    if os.name == "posix":
        with contextlib.suppress(ImportError):
            from multiprocessing import resource_tracker

            tracker = getattr(resource_tracker, "_resource_tracker", None)
    if tracker is None or getattr(tracker, "_fd", 0) is not None:
        yield
        return
    fd = os.open(os.devnull, os.O_WRONLY)
    tracker._fd = fd
    try:
        yield
    finally:
        if tracker._fd == fd:
            tracker._fd = None
        os.close(fd)


def _shutdown(processes: list[BaseProcess]) -> None:
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
