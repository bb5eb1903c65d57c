"""Build the mirror's static simple index: PEP 503/592/629/658/714 HTML, PEP 691/700 JSON.

The index describes everything the mirror's catalog says it holds (not only the last run), so runs
with different requirement sets accumulate into one index.  A file the catalog lists but the disk
lacks is dropped from the pages and from the catalog; a file whose ``stat`` changed since it was
verified is hashed again and listed only if its bytes still match.

Layout (all links relative, so ``file://`` and any static server work)::

    simple/index.html, simple/index.json                  every project
    simple/<project>/index.html, simple/<project>/index.json
    packages/<project>/<wheel>.metadata                   PEP 658 sidecar, the wheel's METADATA

The pages are rendered by :mod:`pypidl.store.render` (pure functions returning strings);
:func:`build_index` writes only the pages whose text changed, each one atomically.  The original
tool's back end, pip2pi's dir2pi, is :mod:`pypidl.store.dir2pi`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    parse_wheel_filename,
)

from pypidl._fs import TEMP_PREFIX, atomic_write, safe_join
from pypidl.dists import METADATA_SUFFIX, read_wheel_metadata
from pypidl.errors import BadInputError, UnsafeFilenameError
from pypidl.hashing import bytes_sha256, file_sha256
from pypidl.store.catalog import Catalog, Record
from pypidl.store.dir2pi import require_pip2pi, run_dir2pi
from pypidl.store.leftovers import INDEX_TEMP_PREFIX, IndexLock, find_leftovers
from pypidl.store.provenance import provenance_path
from pypidl.store.render import (
    HTML_PAGE,
    JSON_PAGE,
    SIMPLE_DIR,
    IndexFile,
    render_project_html,
    render_project_json,
    render_root_html,
    render_root_json,
)
from pypidl.store.status import load_statuses

__all__ = [
    "BACKENDS",
    "IndexReport",
    "build_index",
    "collect",
    "wheel_metadata",
]

log = logging.getLogger(__name__)

BACKENDS = ("pypidl", "dir2pi")


@dataclass
class IndexReport:
    """What one :func:`build_index` call did."""

    projects: int
    files: int
    pages_written: int
    pages_unchanged: int
    sidecars_written: int
    removed_projects: list[str] = field(default_factory=list)
    #: files the catalog lists that were left out (missing on disk, or changed bytes)
    dropped_files: list[str] = field(default_factory=list)
    backend: str = "pypidl"

    def summary(self) -> str:
        """One line for a person."""
        text = (
            f"index ({self.backend}): {self.projects} project(s), {self.files} file(s); "
            f"{self.pages_written} page(s) written, {self.pages_unchanged} unchanged, "
            f"{self.sidecars_written} metadata sidecar(s) written"
        )
        if self.removed_projects:
            text += f"; removed {len(self.removed_projects)} project(s)"
        if self.dropped_files:
            text += f"; dropped {len(self.dropped_files)} missing or changed file(s)"
        return text


# --------------------------------------------------------------------------------------------
# Collecting what the mirror holds


def collect(root: str | os.PathLike[str]) -> tuple[dict[str, list[IndexFile]], list[str]]:
    """Read the catalog of the mirror at ``root`` and check each file against the disk.

    Writes PEP 658 sidecars for wheels that lack one.  Files missing on disk are dropped and the
    project's catalog is compacted; files whose ``stat`` changed are hashed again and dropped
    (with a warning) if the bytes no longer match.

    :returns: files by project (projects with no file left are absent, files sorted by version
        then filename), and the ``project/filename`` of every dropped file.
    """
    by_project, dropped, _ = _collect(Path(root))
    return by_project, dropped


def _collect(root: Path) -> tuple[dict[str, list[IndexFile]], list[str], int]:
    catalog = Catalog(root)
    by_project: dict[str, list[IndexFile]] = {}
    dropped: list[str] = []
    sidecars_written = 0
    for project in catalog.projects():
        files: list[IndexFile] = []
        missing = False
        for filename, record in sorted(catalog.load(project).items()):
            if filename.startswith(TEMP_PREFIX):  # a temp file is never listed
                continue
            try:
                path = catalog.file_path(record.entry)
            except UnsafeFilenameError as exc:
                log.warning("%s: %s; left out of the index", project, exc.message)
                dropped.append(f"{project}/{filename}")
                continue
            checked = _check_file(catalog, record, path)
            if checked is None:
                dropped.append(f"{project}/{filename}")
                if not path.is_file():
                    missing = True
                    _remove_sidecar(path)
                continue
            sidecar_sha, written = _sidecar(path) if filename.endswith(".whl") else (None, False)
            sidecars_written += written
            provenance = provenance_path(path).is_file()
            files.append(IndexFile(record.entry, checked, sidecar_sha, provenance))
        if missing:
            log.info("%s: compacting the catalog (files missing on disk)", project)
            catalog.compact(project)
        if files:
            by_project[project] = sorted(files, key=IndexFile.sort_key)
    return by_project, dropped, sidecars_written


def _check_file(catalog: Catalog, record: Record, path: Path) -> int | None:
    """Size of the file if it is still the one the catalog verified, else ``None``."""
    try:
        st = path.stat()
    except OSError:
        log.warning("%s: listed in the catalog but missing on disk; dropped from the index", path)
        return None
    if not path.is_file():
        log.warning("%s: not a regular file; dropped from the index", path)
        return None
    if record.matches_stat(st):
        return st.st_size
    # Touched, copied to another disk, restored from a backup: trust the bytes, not the stat.
    actual = file_sha256(path)
    if actual != record.entry.sha256:
        log.warning(
            "%s: sha256 is %s, the catalog verified %s; left out of the index (see pypidl verify)",
            path,
            actual,
            record.entry.sha256,
        )
        return None
    log.debug("%s: stat changed but the bytes still match; catalog refreshed", path)
    return catalog.add(record.entry, path).size


def _remove_sidecar(path: Path) -> None:
    with contextlib.suppress(OSError):
        (path.parent / (path.name + METADATA_SUFFIX)).unlink()


def wheel_metadata(path: str | os.PathLike[str]) -> bytes:
    """The ``*.dist-info/METADATA`` bytes of the wheel at ``path`` (:func:`pypidl.dists.metadata_member`).

    :raises ValueError: when the wheel has no (unambiguous) METADATA.
    :raises zipfile.BadZipFile: when it is not a zip archive.
    :raises OSError: when it cannot be read.
    """
    path = Path(path)
    try:
        project: NormalizedName | None = parse_wheel_filename(path.name)[0]
    except InvalidWheelFilename:
        project = None
    with open(path, "rb") as fh:
        try:
            return read_wheel_metadata(fh, project)
        except ValueError as exc:
            raise ValueError(f"{path.name}: {exc}") from None


def _sidecar(wheel: Path) -> tuple[str | None, bool]:
    """Make sure the wheel's PEP 658 sidecar exists; return its sha256 and whether it was written.

    A sidecar is written once and reused; it is rewritten only when the wheel is newer than it
    (the wheel was replaced).
    """
    sidecar = wheel.parent / (wheel.name + METADATA_SUFFIX)
    with contextlib.suppress(OSError):
        if sidecar.stat().st_mtime_ns >= wheel.stat().st_mtime_ns:
            _make_public(sidecar)
            return bytes_sha256(sidecar.read_bytes()), False
    try:
        data = wheel_metadata(wheel)
    except (OSError, ValueError, zipfile.BadZipFile, KeyError, RuntimeError) as exc:
        log.warning("%s: cannot read its METADATA (%s); listed without a metadata file", wheel, exc)
        _remove_sidecar(wheel)
        return None, False
    try:
        _publish(sidecar, data)
    except OSError as exc:  # a full disk: the index can still list the wheel, without it
        log.warning(
            "%s: cannot write its metadata file (%s); listed without one", wheel, exc.strerror
        )
        return None, False
    log.debug("%s: wrote its PEP 658 metadata file", wheel.name)
    return bytes_sha256(data), True


# --------------------------------------------------------------------------------------------
# Writing


#: Pages and sidecars are as public as the files they describe: the web server's user must read
#: them (a temporary file starts out readable by its owner only).
PUBLIC_MODE = 0o644


def _publish(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by everyone before it appears."""
    with atomic_write(path, "wb", prefix=INDEX_TEMP_PREFIX) as fh:
        fh.write(data)  # type: ignore[arg-type]  # binary mode
        if hasattr(os, "fchmod"):  # POSIX; on Windows the directory's ACL decides
            os.fchmod(fh.fileno(), PUBLIC_MODE)


def _make_public(path: Path) -> None:
    """Add read permission for everyone to an existing page (older pypidl wrote them 0600)."""
    with contextlib.suppress(OSError):
        mode = path.stat().st_mode
        if os.name != "nt" and mode & 0o444 != 0o444:
            path.chmod(mode | 0o444)


def _write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` atomically unless it already holds exactly that."""
    try:
        if path.read_text(encoding="utf-8") == text:
            _make_public(path)
            return False
    except (OSError, UnicodeDecodeError):
        pass
    _publish(path, text.encode("utf-8"))
    return True


def _render_all(
    by_project: Mapping[str, Sequence[IndexFile]],
    statuses: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[tuple[str, ...], str]:
    """Every page by its path inside ``simple/`` (``statuses``: PEP 792, by project)."""
    statuses = statuses or {}
    pages: dict[tuple[str, ...], str] = {
        (HTML_PAGE,): render_root_html(by_project),
        (JSON_PAGE,): render_root_json(by_project),
    }
    for project, files in by_project.items():
        status = statuses.get(project)
        pages[(project, HTML_PAGE)] = render_project_html(project, files, status)
        pages[(project, JSON_PAGE)] = render_project_json(project, files, status)
    return pages


def _prune(simple: Path, keep: Iterable[str]) -> list[str]:
    """Remove project directories not in ``keep`` and stray entries in kept ones."""
    keep = set(keep)
    removed: list[str] = []
    if not simple.is_dir():
        return removed
    for child in sorted(simple.iterdir()):
        if child.name in {HTML_PAGE, JSON_PAGE} or child.name.startswith(TEMP_PREFIX):
            continue
        if child.is_dir() and not child.is_symlink() and child.name in keep:
            # Leftovers of another backend (dir2pi puts links to the files here) or old pages.
            for inner in child.iterdir():
                if inner.name in {HTML_PAGE, JSON_PAGE} or inner.name.startswith(TEMP_PREFIX):
                    continue
                _remove(inner)
            continue
        if child.is_dir() and not child.is_symlink():
            removed.append(child.name)
            log.info("%s: no files left; its pages are removed", child.name)
        _remove(child)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def build_index(root: str | os.PathLike[str], *, backend: str = "pypidl") -> IndexReport:
    """Build (or refresh) the simple index of the mirror at ``root`` from its catalog.

    :param root: the mirror directory (holding ``packages/`` and ``.pypidl/``).
    :param backend: ``"pypidl"`` (HTML + JSON + metadata sidecars) or ``"dir2pi"`` (pip2pi's
        plain HTML pages, for parity with the original tool).
    :raises BadInputError: when ``root`` is not a directory, ``backend`` is unknown, or pip2pi
        is missing for the dir2pi backend.
    """
    root = Path(root)
    if backend not in BACKENDS:
        raise BadInputError(
            f"unknown index backend {backend!r}", hint=f"choose one of: {', '.join(BACKENDS)}"
        )
    if not root.is_dir():
        raise BadInputError("not a directory", context=str(root), hint="give the mirror directory")
    with IndexLock(root) as held:
        _remove_leftovers(root, index_lock_held=held)
        if backend == "dir2pi":
            return _build_with_dir2pi(root)
        return _build(root)


def _remove_leftovers(root: Path, *, index_lock_held: bool) -> None:
    """Delete the temporary files an earlier, killed run left in ``packages/`` and ``simple/``."""
    removed = 0
    for path in find_leftovers(root, index_lock_held=index_lock_held):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    if removed:
        log.warning("Removed %d temporary file(s) left by an interrupted run", removed)


def _build(root: Path) -> IndexReport:
    by_project, dropped, sidecars = _collect(root)
    simple = root / SIMPLE_DIR
    written = unchanged = 0
    for parts, text in _render_all(by_project, load_statuses(root)).items():
        if _write_if_changed(safe_join(simple, *parts), text):
            written += 1
        else:
            unchanged += 1
    removed = _prune(simple, by_project)
    report = IndexReport(
        projects=len(by_project),
        files=sum(len(files) for files in by_project.values()),
        pages_written=written,
        pages_unchanged=unchanged,
        sidecars_written=sidecars,
        removed_projects=removed,
        dropped_files=dropped,
    )
    log.debug("%s", report.summary())
    return report


def _build_with_dir2pi(root: Path) -> IndexReport:
    require_pip2pi()  # before anything is collected (collecting may rehash and drop files)
    by_project, dropped, _ = _collect(root)
    simple = root / SIMPLE_DIR
    before = {p.name for p in simple.iterdir() if p.is_dir()} if simple.is_dir() else set()
    files = {f.entry.filename: f.entry.relpath for fs in by_project.values() for f in fs}
    pages, projects = run_dir2pi(root, files)
    report = IndexReport(
        projects=len(projects),
        files=len(files),
        pages_written=pages,
        pages_unchanged=0,
        sidecars_written=0,
        removed_projects=sorted(before - set(projects)),
        dropped_files=dropped,
        backend="dir2pi",
    )
    log.debug("%s", report.summary())
    return report
