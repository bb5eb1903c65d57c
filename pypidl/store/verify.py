"""``pypidl verify``: rehash everything a mirror holds and report, by file, what is wrong.

The download engine trusts a file whose ``stat`` still matches its catalog line, so a re-run is
cheap; this is the on-demand full check.  It finds files the catalog lists that are missing,
have the wrong size or the wrong sha256, and files on disk the catalog does not know.  With
``repair=True`` a bad file is deleted and forgotten by the catalog, so the next download fetches
it again; without it nothing is written.

The work is spread like downloads: whole projects per ``spawn``-ed worker process, balanced by
bytes with :func:`pypidl._shards.partition`.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import queue as queue_module
import signal
import stat
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pypidl._fs import TEMP_PREFIX
from pypidl._shards import partition
from pypidl.dists import METADATA_SUFFIX
from pypidl.errors import BadInputError, UnsafeFilenameError
from pypidl.hashing import copy_hashing
from pypidl.manifest import PACKAGES_DIR
from pypidl.store.catalog import STATE_DIR, Catalog
from pypidl.store.leftovers import IndexLock, find_leftovers

__all__ = ["VerifyEvents", "VerifyReport", "verify_mirror"]

_LEFTOVER = "temporary file left by an interrupted run (pypidl index or verify --repair removes it)"
_BYTES_BATCH = 8 * 1024 * 1024
_BYTES_PER_PROCESS = 64 * 1024 * 1024


@dataclass
class VerifyReport:
    """What a verify pass found.

    :param checked: files the catalog lists that were looked at.
    :param bytes: bytes rehashed.
    :param problems: ``(relpath, what is wrong)``, sorted by path.
    :param repaired: relpaths deleted and forgotten (only with ``repair=True``).
    """

    checked: int = 0
    bytes: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __add__(self, other: VerifyReport) -> VerifyReport:
        if not isinstance(other, VerifyReport):
            return NotImplemented
        return VerifyReport(
            self.checked + other.checked,
            self.bytes + other.bytes,
            sorted(self.problems + other.problems),
            sorted(self.repaired + other.repaired),
        )


class VerifyEvents(Protocol):
    """Progress of a verify pass, called in the parent process."""

    def on_start(self, total_files: int, total_bytes: int) -> None: ...

    def on_bytes(self, n: int) -> None: ...

    def on_checked(self, relpath: str, problem: str | None) -> None: ...


# --------------------------------------------------------------------------- one project


def _hash(path: Path, report_bytes: Any) -> str:
    pending = 0

    def batch(n: int) -> None:  # progress in batches: one message per chunk would flood the queue
        nonlocal pending
        pending += n
        if pending >= _BYTES_BATCH:
            report_bytes(pending)
            pending = 0

    with open(path, "rb") as fh:
        digest, _ = copy_hashing(fh, on_bytes=batch)
    report_bytes(pending)
    return digest


def _verify_project(root: Path, project: str, *, repair: bool, send: Any) -> VerifyReport:
    """Check one project's catalog against its directory; ``send`` receives progress messages."""
    catalog = Catalog(root)
    report = VerifyReport()

    def problem(relpath: str, what: str) -> None:
        report.problems.append((relpath, what))
        send(("checked", relpath, what))

    try:
        records = catalog.load(project)
    except UnsafeFilenameError:
        records = {}
    except OSError as exc:
        records = {}
        problem(f"{STATE_DIR}/catalog/{project}.jsonl", f"cannot read it: {exc.strerror or exc}")

    def count_bytes(n: int) -> None:
        if n:
            report.bytes += n
            send(("bytes", n))

    try:
        catalog.project_dir(project)
    except UnsafeFilenameError as exc:
        report.checked += len(records)
        problem(f"{PACKAGES_DIR}/{project}/", exc.message)
        return report

    for name, record in sorted(records.items()):
        path = root / PACKAGES_DIR / project / name
        relpath = record.entry.relpath
        report.checked += 1
        try:
            st = os.stat(path)
        except FileNotFoundError:
            what: str | None = "missing (the catalog lists it)"
        except OSError as exc:
            what = f"cannot read it: {exc.strerror or exc}"
        else:
            if not stat.S_ISREG(st.st_mode):
                what = "not a regular file"
            elif st.st_size != record.size:
                what = f"wrong size: {st.st_size} bytes, expected {record.size}"
            else:
                try:
                    digest: str | None = _hash(path, count_bytes)
                except OSError as exc:  # unreadable (permissions, I/O error): never "clean"
                    digest, what = None, f"cannot read it: {exc.strerror or exc}"
                else:
                    what = (
                        None
                        if digest == record.entry.sha256
                        else (f"wrong sha256: {digest}, expected {record.entry.sha256}")
                    )
                if what is None and repair and not record.matches_stat(os.stat(path)):
                    catalog.add(record.entry, path)  # verified again just now: trust it by stat
        if what is None:
            send(("checked", relpath, None))
            continue
        problem(relpath, what)
        if repair and not what.startswith("cannot read"):  # unreadable is not damaged
            with contextlib.suppress(FileNotFoundError):
                if path.is_file() or path.is_symlink():
                    path.unlink()
            catalog.forget(project, name)
            report.repaired.append(relpath)

    directory = root / PACKAGES_DIR / project
    try:
        listing = sorted(directory.iterdir()) if directory.is_dir() else []
    except OSError as exc:
        listing = []
        problem(f"{PACKAGES_DIR}/{project}/", f"cannot list it: {exc.strerror or exc}")
    if listing:
        for path in listing:
            name = path.name
            if name.startswith(TEMP_PREFIX) or name in records:
                continue
            if name.endswith(METADATA_SUFFIX) and name[: -len(METADATA_SUFFIX)] in records:
                continue
            problem(f"{PACKAGES_DIR}/{project}/{name}", "not in the catalog")
    return report


# --------------------------------------------------------------------------- worker side

_out: Any = None


def _init_worker(out: Any) -> None:
    global _out
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the pool
    _out = out


def _work(group: int, root: str, projects: list[str], repair: bool) -> None:
    total = VerifyReport()
    try:
        for project in projects:
            total = total + _verify_project(Path(root), project, repair=repair, send=_out.put)
    finally:
        _out.put(("done", group, total))


# --------------------------------------------------------------------------- parent side


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # type: ignore[attr-defined,unused-ignore]
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def verify_mirror(
    root: str | os.PathLike[str],
    *,
    processes: int | None = None,
    repair: bool = False,
    events: VerifyEvents | None = None,
) -> VerifyReport:
    """Rehash every file the mirror's catalog lists and look for files it does not list.

    :param processes: worker processes (default: what the CPUs and the amount of data justify).
    :param repair: delete bad files and remove them (and missing ones) from the catalog.
    :raises BadInputError: when ``root`` is not a directory.
    """
    base = Path(root).resolve()
    if not base.is_dir():
        raise BadInputError(
            f"{root} is not a directory", hint="give the mirror's download directory"
        )
    if processes is not None and processes < 1:
        raise BadInputError("processes must be at least 1")
    catalog = Catalog(base)
    entries = [r.entry for p in catalog.projects() for r in _safe_load(catalog, p).values()]
    packages = base / PACKAGES_DIR
    on_disk = (
        sorted(p.name for p in packages.iterdir() if p.is_dir() and not p.name.startswith("."))
        if packages.is_dir()
        else []
    )
    stray_files = (
        sorted(
            p.name
            for p in packages.iterdir()
            if not p.is_dir() and not p.name.startswith(TEMP_PREFIX)
        )
        if packages.is_dir()
        else []
    )
    total_bytes = sum(e.size or 0 for e in entries)
    if events is not None:
        events.on_start(len(entries), total_bytes)

    report = VerifyReport(
        problems=[(f"{PACKAGES_DIR}/{n}", "not in the catalog") for n in stray_files]
    )
    with IndexLock(base) as index_lock_held:  # held: no index build is writing right now
        for path in find_leftovers(base, index_lock_held=index_lock_held):
            relpath = path.relative_to(base).as_posix()
            report.problems.append((relpath, _LEFTOVER))
            if repair:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                report.repaired.append(relpath)
    known = {e.project for e in entries}
    projects_by_group = [
        sorted({e.project for e in g}) for g in _groups(entries, processes, total_bytes)
    ]
    extra = [p for p in on_disk if p not in known]  # only a directory listing: cheap
    if extra:
        if not projects_by_group:
            projects_by_group = [[]]
        projects_by_group[0] = sorted(projects_by_group[0] + extra)
    if not projects_by_group:
        return report

    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    pending = set(range(len(projects_by_group)))
    with ProcessPoolExecutor(
        len(projects_by_group), mp_context=ctx, initializer=_init_worker, initargs=(out,)
    ) as pool:
        futures = [
            pool.submit(_work, i, str(base), group, repair)
            for i, group in enumerate(projects_by_group)
        ]
        try:
            while pending:
                try:
                    msg = out.get(timeout=0.1)
                except queue_module.Empty:
                    for i, future in enumerate(futures):
                        if i in pending and future.done():
                            future.result()  # a worker that died raises here
                    continue
                if msg[0] == "done":
                    futures[msg[1]].result()  # a worker that failed raises here, not silently
                if msg[0] == "bytes" and events is not None:
                    events.on_bytes(msg[1])
                elif msg[0] == "checked" and events is not None:
                    events.on_checked(msg[1], msg[2])
                elif msg[0] == "done":
                    pending.discard(msg[1])
                    report = report + msg[2]
        except BaseException:
            for future in futures:
                future.cancel()
            for proc in list(getattr(pool, "_processes", {}).values()):  # no public terminate
                proc.terminate()
            raise
    out.close()
    out.join_thread()
    return report


def _safe_load(catalog: Catalog, project: str) -> dict[str, Any]:
    try:
        return catalog.load(project)
    except (UnsafeFilenameError, OSError):  # the worker that checks the project says why
        return {}


def _groups(entries: list[Any], processes: int | None, total_bytes: int) -> list[list[Any]]:
    if not entries:
        return []
    projects = len({e.project for e in entries})
    wanted = processes or max(
        1, min(_usable_cpus(), projects, math.ceil(total_bytes / _BYTES_PER_PROCESS) or 1)
    )
    return [g for g in partition(entries, min(wanted, projects)) if g]
