"""Everything that crosses between the engine's parent process and its workers, defined once.

Each worker has two pipes and one start-up argument:

* :class:`WorkerConfig`, the argument of the worker process: the same for every worker;
* the control pipe, parent to worker: first a :class:`Share` (the worker's entries), then, only
  on Ctrl-C, a :class:`Stop`;
* the report pipe, worker to parent: a :class:`Batch` every interval (bytes, an
  :class:`Outcome` per finished file, :class:`LogLine` records), then one :class:`Done`.

The messages are ``NamedTuple`` classes: immutable, pickled under ``spawn`` as a reference to
their class plus their fields, and as cheap to build and send as the plain tuples they replace
(thousands of outcomes per second on small files).  Frozen dataclasses would pickle a state
object per message, and ``slots=True`` needs Python 3.10.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Union

from pypidl.config import NetworkSettings
from pypidl.fetch.results import FileResult, Status

if TYPE_CHECKING:
    from pypidl.fetch.retry import MirrorStats
    from pypidl.manifest import Entry

__all__ = [
    "Batch",
    "Done",
    "LogLine",
    "Outcome",
    "Share",
    "Stop",
    "ToParent",
    "ToWorker",
    "WorkerConfig",
]


@dataclass(frozen=True)
class WorkerConfig:
    """What every worker is told when it starts (the process's argument)."""

    root: str
    net: NetworkSettings
    threads: int
    interval: float
    lock_timeout: float
    indexes: tuple[str, ...]
    pins: dict[str, tuple[str, ...]]
    parent_pid: int
    log_level: int = logging.DEBUG
    #: the CPUs the workers share out, one each, for their small files (see ``worker._HomeCpu``);
    #: empty: no worker is tied to a CPU
    home_cpus: tuple[int, ...] = ()


class Share(NamedTuple):
    """A worker's part of the run (whole projects): the first message on its control pipe.

    It travels on the pipe rather than as a process argument so that starting one worker does
    not wait for the previous one to read its share (see ``pool._Workers.hand_out``).
    """

    entries: list[Entry]


class Stop(NamedTuple):
    """Ctrl-C in the parent: stop transfers between chunks, keep the parts, report, exit.

    Sent only after a whole :class:`Share`: a send cut short by Ctrl-C leaves half a message in
    the pipe, and anything written after it would be read as the rest of the share.
    """


#: What the parent sends a worker.
ToWorker = Union[Share, Stop]


class LogLine(NamedTuple):
    """A worker's log record, shown by the parent."""

    level: int
    message: str


class Outcome(NamedTuple):
    """What happened to one file of a worker's share: a :class:`FileResult` without its entry,
    which the parent already holds (``position`` is its place in the share)."""

    position: int
    status: Status
    nbytes: int
    mirror: str | None
    error: str | None
    attempts: int

    @classmethod
    def of(cls, position: int, result: FileResult) -> Outcome:
        return cls(
            position, result.status, result.bytes, result.mirror, result.error, result.attempts
        )

    def result(self, entry: Entry) -> FileResult:
        """The result again, for ``entry`` (the one at ``position`` in the share)."""
        return FileResult(entry, self.status, self.nbytes, self.mirror, self.error, self.attempts)


class Batch(NamedTuple):
    """What a worker did since its last message."""

    nbytes: int
    outcomes: list[Outcome]
    logs: list[LogLine]


class Done(NamedTuple):
    """A worker's last message: it has finished (or stopped) and recorded what it verified.

    :param stats: what each mirror (by ``host:port``) did for this worker.
    :param stopped: why the worker stopped on its own (SIGTERM, its parent gone), its files then
        being interrupted rather than failed; ``None`` when it finished or the parent stopped it.
    """

    stats: dict[str, MirrorStats]
    stopped: str | None


#: What a worker sends the parent.
ToParent = Union[Batch, Done]
