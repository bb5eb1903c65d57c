"""The mirror's own record of every file it holds and has verified.

For each project, ``<mirror>/.pypidl/catalog/<project>.jsonl`` holds one JSON line per verified
file: the file's index facts (version, sha256, size, requires-python, yanked, upload time, core
metadata hash) and what ``os.stat`` said right after the hash matched (size, mtime_ns, inode).

* The download engine appends a line the moment a file reaches its final name, so a kill -9 loses
  at most the line being written (a torn last line is ignored when read).
* A re-run trusts a file whose ``stat`` still matches its line: no request, no rehash.
* The index builder renders pages from the catalog (not from the last run's manifest), so runs
  with different requirement sets accumulate into one index.

A project's lines are only ever written by the one worker that owns the project in a run
(the engine partitions by project), so appends need no cross-process lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pypidl import _json as untrusted_json
from pypidl._fs import NOFOLLOW, atomic_write_text, check_basename
from pypidl.errors import UnsafeFilenameError
from pypidl.hashing import hash_stream
from pypidl.manifest import PACKAGES_DIR, Entry

__all__ = ["STATE_DIR", "Catalog", "Held", "Record"]

log = logging.getLogger(__name__)

#: pypidl's own bookkeeping inside a mirror
STATE_DIR = ".pypidl"
_CATALOG_DIR = "catalog"
_FORMAT = 1


@dataclass(frozen=True)
class Record:
    """A file the mirror holds, verified, with the stat that proves it is unchanged."""

    entry: Entry
    size: int
    mtime_ns: int
    inode: int

    def matches_stat(self, st: os.stat_result) -> bool:
        return (
            st.st_size == self.size and st.st_mtime_ns == self.mtime_ns and st.st_ino == self.inode
        )

    def proves(self, entry: Entry, st: os.stat_result) -> bool:
        """True when this record says ``entry``'s bytes were verified and ``st`` shows the file
        unchanged since: the whole "already have it" check, with no hashing."""
        return self.entry.sha256 == entry.sha256 and self.matches_stat(st)

    def to_json(self) -> dict[str, Any]:
        data = self.entry.to_json()
        data.update(
            {
                "format": _FORMAT,
                "stat": {"size": self.size, "mtime_ns": self.mtime_ns, "inode": self.inode},
            }
        )
        return data

    @classmethod
    def from_json(cls, data: Any, *, proofs_only: bool = False) -> Record | None:
        """The record a catalog line holds, or None for a line that is not one.

        :param proofs_only: check the fields' types only, not their meaning (versions, names,
            URLs): enough for the stat proof a re-run makes, and about ten times cheaper.
        """
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            return None
        stat = data.get("stat")
        if not isinstance(stat, dict):
            return None
        if proofs_only:
            entry: Entry | None = _typed_entry(data)
        else:
            entry, problems = Entry.from_json(data, "catalog")
            if problems:
                return None
        if entry is None:
            return None
        try:
            return cls(entry, int(stat["size"]), int(stat["mtime_ns"]), int(stat["inode"]))
        except (KeyError, TypeError, ValueError):
            return None


def _typed_entry(data: dict[str, Any]) -> Entry | None:
    texts = [data.get(key) for key in ("project", "version", "filename", "sha256")]
    if not all(isinstance(t, str) and t for t in texts):
        return None
    project, version, filename, sha256 = texts
    size = data.get("size")
    urls = data.get("urls")
    return Entry(
        project=project,  # type: ignore[arg-type]
        version=version,  # type: ignore[arg-type]
        filename=filename,  # type: ignore[arg-type]
        urls=tuple(u for u in urls if isinstance(u, str)) if isinstance(urls, list) else (),
        sha256=sha256,  # type: ignore[arg-type]
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
    )


class Catalog:
    """Read and append the per-project catalog files of the mirror at ``root``."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.dir = self.root / STATE_DIR / _CATALOG_DIR
        self._lock = threading.Lock()
        self._dir_made = False
        #: project -> whether packages/<project> stays inside the mirror
        self._inside: dict[str, bool] = {}

    def path_for(self, project: str) -> Path:
        check_basename(project)
        return self.dir / f"{project}.jsonl"

    def _checked_path(self, project: str) -> Path:
        """:meth:`path_for`, refused when a symlink takes the catalog directory out of the mirror.

        The file itself is opened with ``O_NOFOLLOW``, so a symlink planted in its place is
        refused too: the catalog never reads or writes a file outside the mirror.
        """
        path = self.path_for(project)
        if self.dir.exists() and self.root.resolve() not in self.dir.resolve().parents:
            raise OSError(
                errno.ELOOP, f"{STATE_DIR}/{_CATALOG_DIR} leads out of the mirror", str(self.dir)
            )
        return path

    def file_path(self, entry: Entry) -> Path:
        """Where ``entry`` lives in the mirror.

        :raises UnsafeFilenameError: when ``packages/<project>`` leads out of the mirror.
        """
        return self.project_dir(entry.project) / entry.filename

    def project_dir(self, project: str) -> Path:
        """``packages/<project>``, refused when a symlink takes it out of the mirror (as
        ``serve`` and ``bundle`` refuse it; ``verify``, ``index`` and ``check`` followed it).

        :raises UnsafeFilenameError: naming the directory.
        """
        inside = self._inside.get(project)
        directory = self.root / PACKAGES_DIR / project
        if inside is None:
            try:
                resolved = directory.resolve()
            except (OSError, RuntimeError):  # a symlink loop
                inside = False
            else:
                inside = self.root.resolve() in resolved.parents
            self._inside[project] = inside
        if not inside:
            raise UnsafeFilenameError(
                f"{PACKAGES_DIR}/{project} leads out of the mirror: not followed"
            )
        return directory

    def projects(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.name[: -len(".jsonl")] for p in self.dir.glob("*.jsonl"))

    def load(self, project: str, *, proofs_only: bool = False) -> dict[str, Record]:
        """Records of ``project`` by filename; the last line about a file wins.

        :param proofs_only: the records serve only to prove files unchanged (see
            :meth:`Record.from_json`); what renders pages or reports must not pass it.
        """
        records: dict[str, Record] = {}
        try:
            fd = os.open(self._checked_path(project), os.O_RDONLY | NOFOLLOW)
        except FileNotFoundError:
            return records
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            # a symlink planted in the mirror: its records are not trusted (files are rehashed)
            log.warning("Ignoring the catalog of %s: %s", project, exc.strerror)
            return records
        with open(fd, "rb") as fh:
            # errors="replace": a crash can tear the last line anywhere, even inside a character
            text = fh.read().decode("utf-8", errors="replace")
        for line in text.splitlines():
            try:
                data = untrusted_json.loads(line)
            except untrusted_json.UntrustedJSONError:
                continue  # a line torn by a crash mid-append, or one no catalog write makes
            if (
                isinstance(data, dict)
                and data.get("removed")
                and isinstance(data.get("filename"), str)
            ):
                records.pop(data["filename"], None)
                continue
            record = Record.from_json(data, proofs_only=proofs_only)
            if record is not None and record.entry.project == project:
                records[record.entry.filename] = record
        return records

    def add(self, entry: Entry, path: str | os.PathLike[str]) -> Record:
        """Record that ``path`` holds ``entry``, verified just now."""
        st = os.stat(path)
        record = Record(
            entry=replace(entry, size=st.st_size),
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            inode=st.st_ino,
        )
        self._append(entry.project, record.to_json())
        return record

    def add_records(self, project: str, records: list[Record]) -> None:
        """Append ``records`` (files verified and already durable) in one write."""
        if records:
            self._append_lines(project, [r.to_json() for r in records], sync=False)

    def forget(self, project: str, filename: str) -> None:
        self._append(project, {"removed": True, "filename": filename})

    def _append(self, project: str, data: dict[str, Any]) -> None:
        self._append_lines(project, [data], sync=True)

    def _append_lines(self, project: str, items: list[dict[str, Any]], *, sync: bool) -> None:
        data = "".join(json.dumps(item, sort_keys=True) + "\n" for item in items).encode("utf-8")
        with self._lock:
            if not self._dir_made:
                self.dir.mkdir(parents=True, exist_ok=True)
                self._dir_made = True
            flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | NOFOLLOW | getattr(os, "O_BINARY", 0)
            fd = os.open(self._checked_path(project), flags, 0o666)
            with open(fd, "a+b", buffering=0) as fh:
                # after a crash tore the last line, start on a fresh line: glued to the torn
                # one, this record would be unreadable too
                if fh.seek(0, os.SEEK_END) > 0:
                    fh.seek(-1, os.SEEK_END)
                    if fh.read(1) != b"\n":
                        data = b"\n" + data
                fh.write(data)
                if sync:
                    os.fsync(fh.fileno())

    def compact(self, project: str) -> dict[str, Record]:
        """Rewrite ``project``'s file with one line per file it still holds on disk."""
        records = {}
        for name, record in self.load(project).items():
            with contextlib.suppress(OSError, UnsafeFilenameError):
                if self.file_path(record.entry).is_file():
                    records[name] = record
        text = "".join(
            json.dumps(r.to_json(), sort_keys=True) + "\n" for _, r in sorted(records.items())
        )
        with self._lock:
            if records:
                atomic_write_text(self._checked_path(project), text)
            else:
                with contextlib.suppress(FileNotFoundError):
                    self._checked_path(project).unlink()
        return records

    def current(self, entry: Entry, records: Mapping[str, Record] | None = None) -> bool:
        """True when the mirror holds ``entry`` verified and unchanged since: stat calls only.

        :param records: the project's records, already loaded (callers checking many entries
            load each project once).
        """
        try:
            found = records if records is not None else self.load(entry.project)
            record = found.get(entry.filename)
            return record is not None and record.proves(entry, os.stat(self.file_path(entry)))
        except (OSError, UnsafeFilenameError):
            return False

    def held(self, entry: Entry) -> Held:
        """What the mirror holds at ``entry``'s place, by its bytes (the file is hashed).

        For callers about to put other bytes there: a copy with other stat data is still the
        same file, and a file the catalog verified is not to be replaced lightly.

        :raises OSError: when the file is there but cannot be read.
        """
        path = self.file_path(entry)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below; fstat needs the open file
        except (FileNotFoundError, IsADirectoryError):
            return Held(None, verified=False)
        with fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return Held(None, verified=False)
            digest = hash_stream(fh)[0]
        try:
            record = self.load(entry.project).get(entry.filename)
        except UnsafeFilenameError:
            record = None
        return Held(digest, verified=record is not None and record.entry.sha256 == digest)


@dataclass(frozen=True)
class Held:
    """The file at an entry's place: its sha256 (None: no regular file there), and whether the
    catalog verified exactly those bytes."""

    sha256: str | None
    verified: bool
