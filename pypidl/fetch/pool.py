"""The download engine: a process pool of thread pools filling a mirror from manifest entries.

Shape:

* files the catalog already proves (a ``stat`` matches its record) are reported as skipped by the
  parent, with no process started: a re-run over a complete mirror is a few ``stat`` calls;
* the rest is split into whole projects balanced by bytes (:func:`pypidl._shards.partition`),
  one group per worker process, so only one process ever writes a project's catalog file;
* workers are ``spawn``-ed processes (every OS), each with ``concurrency / workers`` threads
  sharing one :class:`pypidl.fetch.downloader.Downloader`;
* workers never print: every ``progress_interval`` they send one batch (byte count, file results
  as indexes into their group, log lines) through their own pipe, and end with a "done" message
  carrying their mirror statistics; the parent (:mod:`pypidl.fetch._workers`) turns these into
  :class:`Events` calls; :mod:`pypidl.fetch._wire` defines every message;
* a worker never outlives its run (:mod:`pypidl.fetch.lifeline`): when its parent dies (even by
  SIGKILL), its pipe breaks, or it gets a SIGTERM, it stops its transfers (parts are kept),
  records what it verified, and exits, which releases its project locks;
* Ctrl-C (and SIGTERM, which the CLI turns into ``KeyboardInterrupt``) in the parent sends
  each worker a "stop" message on its control pipe: threads stop between chunks, parts stay for
  resume, and :func:`run` returns a report with ``interrupted=True``.  Workers ignore SIGINT; a worker stopped by its own
  SIGTERM reports its files as interrupted and the run as interrupted.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from pypidl._fs import check_basename, safe_join
from pypidl._shards import partition
from pypidl.config import DEFAULT_CONCURRENCY, NetworkSettings
from pypidl.errors import BadInputError, UnsafeFilenameError
from pypidl.fetch._wire import WorkerConfig
from pypidl.fetch._workers import Workers
from pypidl.fetch.results import DOWNLOADED, FAILED, INTERRUPTED, SKIPPED, FileResult
from pypidl.fetch.retry import MirrorStats, mirror_key
from pypidl.manifest import PACKAGES_DIR, Entry
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

#: Most worker processes the engine starts on its own (more rarely helps: the network is slower).
MAX_DEFAULT_PROCESSES = 8
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

    concurrency: int = DEFAULT_CONCURRENCY
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
        total = RunReport(
            self.results + other.results, dict(self.mirrors), self.interrupted or other.interrupted
        )
        total.add_mirrors(other.mirrors)
        return total

    def add_mirrors(self, stats: Mapping[str, MirrorStats]) -> None:
        """Count what each mirror did (for some worker) in this report's ``mirrors``."""
        for key, s in stats.items():
            self.mirrors[key] = self.mirrors[key] + s if key in self.mirrors else s

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


def _allowed_cpus() -> tuple[int, ...]:
    """The CPUs this process may run on; empty where the OS does not say (macOS, Windows)."""
    try:
        return tuple(sorted(os.sched_getaffinity(0)))  # type: ignore[attr-defined,unused-ignore]
    except (AttributeError, OSError):
        return ()


def _usable_cpus() -> int:
    return len(_allowed_cpus()) or os.cpu_count() or 1


def _home_cpus(workers: int) -> tuple[int, ...]:
    """The CPUs to share out among ``workers`` (see ``worker._HomeCpu``): only when there is a
    worker for each, so that no CPU is left without one; none where affinity is unknown."""
    cpus = _allowed_cpus()
    return cpus if 1 < len(cpus) <= workers else ()


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
    entries: Sequence[Entry], net: NetworkSettings
) -> tuple[list[Entry], dict[str, str]]:
    """Put the URLs of mirrors that cannot be reached at the end of every entry's list.

    A manifest lists every mirror of a file, and many hosts cannot reach some of them (the
    ``--cn`` set from outside China, a public index from inside a company): without this, every
    file's first attempts would wait on each dead mirror in turn.  One request per mirror, all at
    once, settles it; a mirror that fails is kept, only tried last.  Nothing is asked when every
    file is already verified (a re-run over a complete mirror makes no request) or when there is
    only one mirror.

    :param entries: files the catalog does not prove (:func:`run` sets the others aside first).
    :returns: the entries, reordered, and why each unreachable mirror (by ``host:port``) failed.
    """
    key = _MirrorKeys()
    sample: dict[str, str] = {}
    for entry in entries:
        for url in entry.urls:
            sample.setdefault(key(url), url)
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
            urls=tuple(u for u in e.urls if key(u) not in dead)
            + tuple(u for u in e.urls if key(u) in dead),
        )
        for e in entries
    ]
    return reordered, dead


class _MirrorKeys:
    """:func:`mirror_key` of many URLs, parsed once per distinct text before the path: a
    manifest of 10,000 files has a handful of mirrors, and parsing every URL cost more than the
    rest of the work before the workers start."""

    def __init__(self) -> None:
        self._known: dict[str, str] = {}

    def __call__(self, url: str) -> str:
        start = url.find("//")
        end = url.find("/", start + 2) if start >= 0 else -1
        origin = url if end < 0 else url[:end]  # the netloc ends within it, if not before
        found = self._known.get(origin)
        if found is None:
            found = self._known[origin] = mirror_key(url)
        return found


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
    _check_options(options)
    root_path = Path(root).resolve()
    report = RunReport()
    ev: Events = events if events is not None else _LogEvents()
    work, opening = _sort_out(entries, root_path, report, ev)
    if not work:
        opening.tell()
        return report
    work, opening.unreachable = order_by_reachability(work, options.net)
    groups, config = _share_out(work, options, root_path)
    workers = Workers(groups, config, report, ev)
    try:
        try:
            workers.start()
            workers.hand_out()
            opening.tell()  # once the workers are starting: their start-up overlaps the caller's
            workers.drain()
        except KeyboardInterrupt:
            opening.tell()
            workers.interrupt()
    finally:
        opening.tell()  # if starting a worker failed
        workers.close()
    if not report.interrupted:
        workers.fail_unreported()
    return report


def _check_options(options: EngineOptions) -> None:
    if options.concurrency < 1:
        raise BadInputError("concurrency must be at least 1")
    if options.processes is not None and options.processes < 1:
        raise BadInputError("processes must be at least 1")


def _share_out(
    work: list[Entry], options: EngineOptions, root: Path
) -> tuple[list[list[Entry]], WorkerConfig]:
    """The workers' shares (whole projects, balanced by bytes) and what every worker is told."""
    processes = options.processes or default_processes(work, options.concurrency)
    groups = [g for g in partition(work, processes) if g]
    threads = math.ceil(options.concurrency / len(groups))
    log.debug(
        "downloading %d file(s) with %d process(es) x %d thread(s)", len(work), len(groups), threads
    )
    config = WorkerConfig(
        root=str(root),
        net=options.net,
        threads=threads,
        interval=options.progress_interval,
        lock_timeout=options.lock_timeout,
        indexes=tuple(options.indexes),
        pins=dict(options.pins),
        parent_pid=os.getpid(),
        log_level=logging.getLogger("pypidl").getEffectiveLevel(),
        home_cpus=_home_cpus(len(groups)),
    )
    return groups, config


def _sort_out(
    entries: Sequence[Entry], root: Path, report: RunReport, events: Events
) -> tuple[list[Entry], _Opening]:
    """The entries left to fetch, and what to tell the caller before any download: unsafe names
    refused, duplicates dropped, files the catalog proves set aside as skipped."""
    work, refused = _precheck(entries, root)
    totals = (len(work) + len(refused), sum(e.size or 0 for e in work))
    work, verified = _split_verified(work, root)
    return work, _Opening(events, report, totals, refused, verified)


@dataclass
class _Opening:
    """What is known before any download, told to the caller once (:meth:`tell`): the totals,
    the refused names, the files already verified, the mirrors set aside as unreachable."""

    events: Events
    report: RunReport
    totals: tuple[int, int]
    refused: list[FileResult]
    verified: list[Entry]
    unreachable: dict[str, str] = field(default_factory=dict)
    told: bool = False

    def tell(self) -> None:
        if self.told:
            return
        self.told = True
        ev, report = self.events, self.report
        ev.on_start(*self.totals)
        for result in self.refused:
            report.results.append(result)
            ev.on_file(result)
        for entry in self.verified:
            skipped = FileResult(entry, SKIPPED)
            report.results.append(skipped)
            ev.on_file(skipped)
        for key, reason in sorted(self.unreachable.items()):
            report.mirrors[key] = MirrorStats(failures=1, set_aside=True)
            ev.on_log(
                logging.WARNING, f"Mirror {key} is unreachable ({reason}); set aside: tried last"
            )
