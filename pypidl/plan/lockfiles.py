"""Lockfiles as input: ``uv.lock``, ``pylock.toml`` (PEP 751), ``poetry.lock`` and ``Pipfile.lock``.

A lock already names every version, and usually every file with its hash, so nothing is resolved:
:func:`pypidl.plan.lock_formats.read_lock` turns the file into :class:`LockedPackage` objects, :meth:`Lock.select` says which
of them each target installs (the lock's markers evaluated per target, as the planner does for
requirements), and :func:`locked_files` picks, per selected release, the files of the lock that
those targets need, checked against what the index lists.

What each format records, and so what pypidl can check:

============== ============================== ========================== ==========================
format         which packages a target gets   files                      hashes
============== ============================== ========================== ==========================
uv.lock        the dependency graph, markers  URL, size (wheels, sdist)  sha256
               on its edges, from the
               workspace members (all extras
               and groups)
pylock.toml    one marker per package         URL or name, size          sha256 (and others)
poetry.lock    one marker per package (lock   file name                  sha256
               2.1), else every package
Pipfile.lock   one marker per package         none                       sha256 list
============== ============================== ========================== ==========================

A file the index lists with another sha256 than the lock's is an error naming the file, and is
not mirrored.  Where the lock names only a version (or only hashes), the files come from the
index page and each target with no file is named.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from packaging.markers import Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    parse_sdist_filename,
    parse_wheel_filename,
)

from pypidl._fs import check_basename
from pypidl.errors import BadInputError, RemoteIndexError, UnsafeFilenameError
from pypidl.manifest import Problem
from pypidl.plan.pages import RemoteFile
from pypidl.sources import strip_credentials

if TYPE_CHECKING:
    from pypidl.plan.pages import ProjectPage
    from pypidl.plan.targets import Target

__all__ = [
    "FORMATS",
    "Lock",
    "LockEdge",
    "LockError",
    "LockedFile",
    "LockedPackage",
    "LockedRelease",
    "locked_files",
]

#: the formats pypidl reads, by the name each tool gives its lock
FORMATS = ("uv.lock", "pylock.toml", "poetry.lock", "Pipfile.lock")


class LockError(BadInputError):
    """A lockfile cannot be read; ``context`` is ``file:line`` where known."""


@dataclass(frozen=True)
class LockedFile:
    """One file a lock pins: at least a file name or a URL, usually a sha256."""

    filename: str
    sha256: str | None
    url: str | None = None
    size: int | None = None
    upload_time: str | None = None


@dataclass(frozen=True)
class LockedPackage:
    """One package (one version of one project) of a lock."""

    name: NormalizedName
    version: str
    #: ``file:line`` of its table in the lock
    where: str
    #: the files the lock pins; empty when it names the version only (or only hashes)
    files: tuple[LockedFile, ...] = ()
    #: sha256 digests the lock accepts without naming files (Pipfile.lock)
    hashes: frozenset[str] = frozenset()
    #: the index the lock read it from, if it says
    index: str | None = None
    #: when set, why it cannot come from an index (a VCS checkout, a path, a direct URL)
    not_from_index: str | None = None


@dataclass(frozen=True)
class LockedRelease:
    """A package of a lock and the targets that install it."""

    package: LockedPackage
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class LockEdge:
    to: int
    marker: Marker | None
    extras: tuple[str, ...] = ()


@dataclass
class Lock:
    """A parsed lockfile.

    Flat formats (pylock, poetry, Pipfile) give each package a marker; ``uv.lock`` gives its
    dependency graph (``roots``, ``edges``, ``extra_edges``), whose edges carry the markers.
    """

    path: str
    format: str
    packages: list[LockedPackage]
    markers: dict[int, Marker] = field(default_factory=dict)
    #: uv.lock: packages the walk starts from
    roots: list[int] = field(default_factory=list)
    #: uv.lock: the workspace members themselves (the project being locked, not mirrored)
    members: set[int] = field(default_factory=set)
    #: uv.lock: package -> its dependencies
    edges: dict[int, list[LockEdge]] = field(default_factory=dict)
    #: uv.lock: package -> extra (or dependency group) -> the dependencies it adds
    extra_edges: dict[int, dict[str, list[LockEdge]]] = field(default_factory=dict)
    #: pylock: what markers may test as ``extras`` and ``dependency_groups``
    lock_extras: frozenset[str] = frozenset()
    lock_groups: frozenset[str] = frozenset()

    @property
    def file_urls(self) -> list[str]:
        """Every file URL the lock gives (credentials kept: the network settings take them)."""
        return [f.url for pkg in self.packages for f in pkg.files if f.url]

    @property
    def index_urls(self) -> list[str]:
        """The indexes the lock names, most used first."""
        counts: dict[str, int] = {}
        for pkg in self.packages:
            if pkg.index:
                counts[pkg.index] = counts.get(pkg.index, 0) + 1
        return sorted(counts, key=lambda u: (-counts[u], u))

    def select(self, targets: Sequence[Target]) -> list[LockedRelease]:
        """Every package some target installs, with those targets (lock order)."""
        reached: dict[int, list[Target]] = {}
        for target in targets:
            for index in self._installed_by(target):
                reached.setdefault(index, []).append(target)
        return [
            LockedRelease(self.packages[i], tuple(reached[i]))
            for i in range(len(self.packages))
            if i in reached and i not in self.members
        ]

    def _installed_by(self, target: Target) -> set[int]:
        env: dict[str, Any] = dict(target.marker_environment())
        # a lock repeats a few markers (one object per text) for thousands of packages: each is
        # evaluated once per target. Keyed by identity (hashing a Marker renders its text), which
        # is sound because the dict lives for this call only and self.markers keeps every
        # marker alive meanwhile.
        verdicts: dict[int, bool] = {}

        def holds(marker: Marker, index: int) -> bool:
            verdict = verdicts.get(id(marker))
            if verdict is None:
                verdict = verdicts[id(marker)] = self._holds(marker, env, index)
            return verdict

        if self.format != "uv.lock":
            return {
                i
                for i in range(len(self.packages))
                if i not in self.markers or holds(self.markers[i], i)
            }
        seen: set[tuple[int, str]] = set()
        todo: list[tuple[int, str]] = []
        for root in self.roots:
            # a workspace member: its dependencies, every extra and every dependency group
            todo.append((root, ""))
            todo.extend((root, extra) for extra in self.extra_edges.get(root, {}))
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            index, extra = node
            edges = (
                self.extra_edges.get(index, {}).get(extra, [])
                if extra
                else self.edges.get(index, [])
            )
            for edge in edges:
                if edge.marker is not None and not holds(edge.marker, index):
                    continue
                todo.append((edge.to, ""))
                todo.extend((edge.to, e) for e in edge.extras)
        return {index for index, _ in seen}

    def _holds(self, marker: Marker, env: dict[str, Any], index: int) -> bool:
        where = self.packages[index].where
        if self.format == "pylock.toml":
            lock_env = {
                **env,
                "extras": set(self.lock_extras),
                "dependency_groups": set(self.lock_groups),
            }
            try:
                return marker.evaluate(lock_env, context="lock_file")
            except TypeError:  # packaging before 25: no lock-file context
                pass
            except (UndefinedEnvironmentName, UndefinedComparison) as exc:
                raise LockError(
                    f"marker {str(marker)!r} cannot be evaluated: {exc}", context=where
                ) from None
        try:
            return marker.evaluate(env)
        except (UndefinedEnvironmentName, UndefinedComparison) as exc:
            raise LockError(
                f"marker {str(marker)!r} cannot be evaluated: {exc}", context=where
            ) from None


# -- uv.lock -------------------------------------------------------------------------------------


# -- pylock.toml (PEP 751) ------------------------------------------------------------------------


# -- poetry.lock ----------------------------------------------------------------------------------


# -- Pipfile.lock ---------------------------------------------------------------------------------


# -- the files of a lock ----------------------------------------------------------------------------


#: the planner's file choice: (a release's files, the targets that need it) -> the files to keep
Chooser = Callable[[Sequence[RemoteFile], Sequence["Target"]], list[RemoteFile]]


def locked_files(
    releases: Iterable[LockedRelease],
    *,
    page: Callable[[str], ProjectPage],
    choose: Chooser,
) -> tuple[list[RemoteFile], list[Problem]]:
    """The files the selected releases need, as the index lists them, and what went wrong.

    Per release: the lock's files (all of the version's files on the page where the lock names
    none), narrowed by ``choose`` (the planner's file choice) to those the release's targets
    need.  A file whose index sha256 differs from the lock's is an error and is not mirrored; a
    file the index does not list is taken from the lock's own URL when it has one; a target no
    chosen file serves is named.

    :param page: the project page reader (raises :class:`~pypidl.errors.RemoteIndexError`).
    """
    chosen: list[RemoteFile] = []
    problems: list[Problem] = []
    for release in releases:
        pkg = release.package
        if pkg.not_from_index:
            problems.append(Problem(pkg.name, f"{pkg.where}: {pkg.not_from_index}; not mirrored"))
            continue
        candidates, found = _candidates(pkg, page)
        problems.extend(found)
        picked = choose(candidates, release.targets)
        if candidates and not picked:
            problems.append(
                Problem(
                    pkg.name, f"no file of {pkg.name} {pkg.version} in the lock fits any target"
                )
            )
        elif candidates:
            for target in release.targets:
                if not any(target.can_install(f) for f in picked):
                    problems.append(
                        Problem(
                            pkg.name,
                            f"the lock has no file of {pkg.name} {pkg.version} for {target.label}",
                            target=target.label,
                        )
                    )
        chosen.extend(picked)
    return chosen, problems


def _candidates(
    pkg: LockedPackage, page: Callable[[str], ProjectPage]
) -> tuple[list[RemoteFile], list[Problem]]:
    problems: list[Problem] = []
    try:
        listed = page(pkg.name).release_files(pkg.version)
    except RemoteIndexError as exc:
        if pkg.files and all(f.url and f.sha256 for f in pkg.files):
            listed = []  # the lock's own URLs will do
        else:
            return [], [Problem(pkg.name, exc.message)]
    if not pkg.files:
        files = [f for f in listed if not pkg.hashes or f.sha256 in pkg.hashes]
        if not files:
            what = "a file with one of the lock's hashes" if pkg.hashes else "a file"
            problems.append(
                Problem(
                    pkg.name, f"{pkg.where}: the index lists no {what} of {pkg.name} {pkg.version}"
                )
            )
        return files, problems
    by_name = {f.filename: f for f in listed}
    files = []
    for locked in pkg.files:
        rf = by_name.get(locked.filename)
        if rf is None:
            from_lock = _from_lock(pkg, locked)
            if from_lock is None:
                problems.append(
                    Problem(
                        pkg.name,
                        f"{locked.filename}: not on the index, and the lock has no URL or sha256 for it",
                    )
                )
            else:
                files.append(from_lock)
            continue
        if locked.sha256 and rf.sha256 and locked.sha256 != rf.sha256:
            problems.append(
                Problem(
                    pkg.name,
                    f"{locked.filename}: the index's sha256 {rf.sha256} is not the lock's "
                    f"{locked.sha256} ({pkg.where}); not mirrored",
                )
            )
            continue
        if rf.sha256 is None and locked.sha256:
            rf = replace(rf, sha256=locked.sha256)
        if rf.size is None and locked.size is not None:
            rf = replace(rf, size=locked.size)
        files.append(rf)
    return files, problems


def _from_lock(pkg: LockedPackage, locked: LockedFile) -> RemoteFile | None:
    if not locked.url or not locked.sha256:
        return None
    try:
        check_basename(locked.filename)
        if locked.filename.endswith(".whl"):
            name, _, _, tags = parse_wheel_filename(locked.filename)
            kind = "wheel"
        else:
            name, _ = parse_sdist_filename(locked.filename)
            tags, kind = frozenset(), "sdist"
    except (InvalidWheelFilename, InvalidSdistFilename, UnsafeFilenameError):
        return None
    if name != pkg.name:
        return None
    return RemoteFile(
        project=pkg.name,
        filename=locked.filename,
        # the credentials travel in the network settings (by host), never in the manifest
        url=strip_credentials(locked.url),
        version=pkg.version,
        kind=kind,
        sha256=locked.sha256,
        size=locked.size,
        upload_time=locked.upload_time,
        tags=tags,
        mirror="lock",
    )


def describe(lock: Lock) -> Mapping[str, int]:
    """How many packages of each kind the lock holds (for the log)."""
    return {
        "packages": len(lock.packages),
        "files": sum(len(p.files) for p in lock.packages),
        "not from an index": sum(1 for p in lock.packages if p.not_from_index),
    }
