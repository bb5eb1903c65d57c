"""Build requirements: what a target needs from the mirror to build the sdists the mirror keeps.

pip and uv build an sdist in an isolated environment whose packages come from the same index
as everything else.  Behind an air gap that index is the mirror, so a mirror holding an sdist
but not its build backend cannot install it ("pip subprocess to install build dependencies did
not run successfully").  This module closes that gap:

1. For every sdist the plan keeps for a target that has no wheel of that release (a target that
   will build it), read ``[build-system] requires`` from the sdist's top-level
   ``pyproject.toml``.  A ``.tar.gz`` has no index, so the read streams the archive and stops at
   that member; only when there is no ``pyproject.toml`` (or a ``.zip`` sdist) is the whole file
   read.  Results are cached by the file's sha256.
2. Without ``pyproject.toml`` or without a ``[build-system]`` table, pip and uv use the legacy
   setuptools backend with ``setuptools>=40.8.0``; setuptools before 70.1 then asks for ``wheel``
   through ``get_requires_for_build_wheel``, so a setuptools backend (legacy or declared) gets
   ``wheel`` too: a small pure-Python wheel that makes the build work with any setuptools.
3. Each distinct set of build requirements is resolved for the targets that build with it, as an
   environment of its own (two sdists may want incompatible backends), by the resolver the
   planner hands in.  What that resolution chooses is added to those targets' closure, and the
   sdists it brings in get the same treatment, until nothing new appears.

The planner owns the resolver and the index; this module owns the reading and the fixed point.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import sys
import tarfile
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol
from urllib.parse import urlsplit
from urllib.request import url2pathname

import requests
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from pypidl._fs import atomic_write_text
from pypidl.config import NetworkSettings, user_agent
from pypidl.errors import RemoteIndexError
from pypidl.hashing import CHUNK_SIZE, is_sha256
from pypidl.manifest import Entry, Problem
from pypidl.plan.targets import allows_any_python3, is_python3_wheel
from pypidl.session import new_session
from pypidl.sources import redact_url

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.9/3.10 only
    import tomli as tomllib

if TYPE_CHECKING:
    from pypidl.plan.pages import RemoteFile
    from pypidl.plan.targets import Target

__all__ = [
    "DEFAULT_REQUIRES",
    "WHY_BUILD",
    "WHY_DEPENDENCY",
    "WHY_REQUIREMENT",
    "BuildClosure",
    "BuildSystem",
    "ReadStats",
    "SdistReadError",
    "SdistReader",
    "complete_build_closure",
    "parse_pyproject",
    "report_build_closure",
    "why_of",
]

log = logging.getLogger(__name__)

#: What pip and uv install to build a source tree that declares no ``[build-system]``.
DEFAULT_REQUIRES = ("setuptools>=40.8.0",)
#: The backend they then use.
LEGACY_BACKEND = "setuptools.build_meta:__legacy__"
#: setuptools before 70.1 answers ``get_requires_for_build_wheel`` with this.
SETUPTOOLS_WHEEL_REQUIRES = ("wheel",)
#: A ``pyproject.toml`` larger than this is refused (real ones are a few KiB).
MAX_PYPROJECT = 1024 * 1024
#: Largest sdist read for its ``pyproject.toml``.
MAX_SDIST = 1024 * 1024 * 1024

#: Why a release is in the plan (the manifest's ``why`` field), in this order.
WHY_REQUIREMENT = "requirement"
WHY_DEPENDENCY = "dependency"
WHY_BUILD = "build"

_HEADERS = {"Accept-Encoding": "identity"}
_CACHE_FORMAT = 1


class SdistReadError(RemoteIndexError):
    """An sdist's build system could not be read (network, archive or TOML trouble)."""


@dataclass(frozen=True)
class BuildSystem:
    """The build system of one sdist, as pip and uv would set it up.

    ``requires`` are the ``[build-system] requires`` strings (or the defaults), ``backend`` the
    ``build-backend`` (``None`` for the legacy default), ``declared`` whether the sdist has a
    ``pyproject.toml`` with ``build-system.requires``.
    """

    requires: tuple[str, ...]
    backend: str | None = None
    declared: bool = False

    @property
    def uses_setuptools(self) -> bool:
        backend = self.backend or LEGACY_BACKEND
        return backend.split(":", 1)[0].strip() == "setuptools.build_meta"

    def requirements(self) -> tuple[str, ...]:
        """What the isolated build environment gets: ``requires``, plus ``wheel`` for a
        setuptools backend (older setuptools asks for it before building a wheel)."""
        out = list(self.requires)
        names = {_name_of(r) for r in out}
        if self.uses_setuptools:
            out.extend(r for r in SETUPTOOLS_WHEEL_REQUIRES if _name_of(r) not in names)
        return tuple(out)

    def to_json(self) -> dict[str, object]:
        return {
            "format": _CACHE_FORMAT,
            "requires": list(self.requires),
            "backend": self.backend,
            "declared": self.declared,
        }

    @classmethod
    def from_json(cls, data: object) -> BuildSystem | None:
        if not isinstance(data, dict) or data.get("format") != _CACHE_FORMAT:
            return None
        requires, backend = data.get("requires"), data.get("backend")
        if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
            return None
        if backend is not None and not isinstance(backend, str):
            return None
        return cls(tuple(requires), backend, bool(data.get("declared")))


DEFAULT_BUILD_SYSTEM = BuildSystem(DEFAULT_REQUIRES, None, declared=False)


def _name_of(requirement: str) -> str:
    try:
        return canonicalize_name(Requirement(requirement).name)
    except InvalidRequirement:
        return requirement


def parse_pyproject(data: bytes | None, *, filename: str = "") -> BuildSystem:
    """The build system a ``pyproject.toml`` (``None``: the sdist has none) declares.

    Like pip and uv: no file, or no ``[build-system]`` table, or no ``requires`` in it, means
    the legacy setuptools defaults; ``requires`` without ``build-backend`` means the legacy
    backend with exactly those requirements.

    :raises SdistReadError: when the file is not valid TOML or ``requires`` is malformed.
    """
    if data is None:
        return DEFAULT_BUILD_SYSTEM
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SdistReadError(f"pyproject.toml is not valid TOML: {exc}", context=filename) from None
    table = doc.get("build-system")
    if not isinstance(table, dict) or "requires" not in table:
        return DEFAULT_BUILD_SYSTEM
    requires = table["requires"]
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise SdistReadError(
            "pyproject.toml: build-system.requires is not a list of strings", context=filename
        )
    for text in requires:
        try:
            Requirement(text)
        except InvalidRequirement as exc:
            raise SdistReadError(
                f"pyproject.toml: invalid build requirement {text!r}: {exc}", context=filename
            ) from None
    backend = table.get("build-backend")
    return BuildSystem(
        tuple(requires), backend if isinstance(backend, str) else None, declared=True
    )


# ---------------------------------------------------------------------------------- reading


@dataclass
class ReadStats:
    """How the build systems of a run's sdists were read."""

    #: sdists whose pyproject.toml was found before the end of the archive
    partial: int = 0
    #: sdists read to the end (no pyproject.toml, or a .zip sdist)
    whole: int = 0
    #: answered from the on-disk cache
    cached: int = 0
    #: read from a ``file:`` URL
    local: int = 0
    #: bytes received over the network for these reads
    bytes: int = 0

    def __add__(self, other: ReadStats) -> ReadStats:
        return ReadStats(
            self.partial + other.partial,
            self.whole + other.whole,
            self.cached + other.cached,
            self.local + other.local,
            self.bytes + other.bytes,
        )

    @property
    def read(self) -> int:
        return self.partial + self.whole + self.cached + self.local


class BuildSystemSource(Protocol):
    """Something that tells the build system of an sdist."""

    def build_system(self, rf: RemoteFile) -> BuildSystem:
        """:raises SdistReadError: when it cannot be read."""
        ...


class SdistReader:
    """Reads ``pyproject.toml`` out of remote (or ``file:``) sdists, the smallest read that works.

    Thread-safe; each sdist is read at most once per reader, and with ``cache_dir`` at most once
    per machine (by sha256: a file's contents never change).  A read that reaches the end of the
    file is checked against the index's sha256; when a mirror fails (or serves other bytes), the
    next mirror's URL of the same file is tried.

    :param mirror_urls: the other mirrors' URLs of a file, best first (``None``: only its own).
    """

    def __init__(
        self,
        net: NetworkSettings | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        workers: int = 16,
        max_size: int = MAX_SDIST,
        mirror_urls: Callable[[RemoteFile], Sequence[str]] | None = None,
    ):
        if net is None:
            net = NetworkSettings(user_agent=user_agent())
        self.net = net
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.workers = workers
        self.max_size = max_size
        self.mirror_urls = mirror_urls
        self.stats = ReadStats()
        self._lock = threading.Lock()
        self._done: dict[str, BuildSystem | SdistReadError] = {}
        self._session: requests.Session | None = None

    # public

    def build_system(self, rf: RemoteFile) -> BuildSystem:
        key = rf.sha256 or rf.url
        with self._lock:
            found = self._done.get(key)
        if found is None:
            try:
                found = self._read(rf)
            except SdistReadError as exc:
                found = exc
            except (
                OSError,
                EOFError,
                zlib.error,
                requests.RequestException,
                tarfile.TarError,
                zipfile.BadZipFile,
            ) as e:
                found = SdistReadError(
                    f"cannot read {rf.filename}: {type(e).__name__}: {e}",
                    context=redact_url(rf.url),
                )
            with self._lock:
                self._done[key] = found
        if isinstance(found, SdistReadError):
            raise found
        return found

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    # internals

    @property
    def session(self) -> requests.Session:
        with self._lock:
            if self._session is None:
                self._session = new_session(self.net, pool_size=self.workers)
            return self._session

    def _count(self, **changes: int) -> None:
        with self._lock:
            for name, n in changes.items():
                setattr(self.stats, name, getattr(self.stats, name) + n)

    def _cache_path(self, rf: RemoteFile) -> Path | None:
        if self.cache_dir is None or not is_sha256(rf.sha256):
            return None
        sha = str(rf.sha256)
        return self.cache_dir / sha[:2] / f"{sha}.json"

    def _read(self, rf: RemoteFile) -> BuildSystem:
        cached = self._cache_path(rf)
        if cached is not None:
            try:
                found = BuildSystem.from_json(json.loads(cached.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                found = None
            if found is not None:
                self._count(cached=1)
                return found
        if urlsplit(rf.url).scheme == "file":
            path = Path(url2pathname(urlsplit(rf.url).path))
            with open(path, "rb") as fh:
                data, _complete = _pyproject_member(fh, rf.filename)
            self._count(local=1)
        else:
            data = self._read_mirrors(rf)
        result = parse_pyproject(data, filename=rf.filename)
        if cached is not None:
            try:
                atomic_write_text(cached, json.dumps(result.to_json()))
            except OSError as exc:
                log.debug("cannot cache the build system of %s in %s: %s", rf.filename, cached, exc)
        return result

    def _read_mirrors(self, rf: RemoteFile) -> bytes | None:
        urls = [rf.url]
        if self.mirror_urls is not None:
            urls += [u for u in self.mirror_urls(rf) if u and u not in urls]
        failure: Exception | None = None
        for url in urls:
            try:
                return self._read_remote(rf, url)
            except (
                SdistReadError,
                OSError,
                EOFError,
                zlib.error,
                requests.RequestException,
                tarfile.TarError,
                zipfile.BadZipFile,
            ) as exc:
                log.debug("reading %s from %s failed: %s", rf.filename, redact_url(url), exc)
                failure = exc
        assert failure is not None  # noqa: S101 - urls is never empty
        raise failure

    def _read_remote(self, rf: RemoteFile, url: str) -> bytes | None:
        timeout = (self.net.connect_timeout, self.net.read_timeout)
        with self.session.get(url, headers=_HEADERS, timeout=timeout, stream=True) as resp:
            resp.raise_for_status()
            stream = _ResponseStream(resp, self.max_size, url)
            try:
                if rf.filename.lower().endswith(".zip"):
                    # a zip's directory is at its end: spool it (zip sdists are rare and old)
                    with tempfile.TemporaryFile(prefix=".pypidl-") as spool:
                        for chunk in iter(lambda: stream.read(CHUNK_SIZE), b""):
                            spool.write(chunk)
                        spool.seek(0)
                        data, complete = _pyproject_member(spool, rf.filename)
                    complete = True
                else:
                    data, complete = _pyproject_member(stream, rf.filename)
                if complete:
                    stream.read()  # the rest, if any, so that the digest covers the whole file
            finally:
                self._count(bytes=stream.received)
            if complete:
                actual = stream.sha256.hexdigest()
                if rf.sha256 and actual != rf.sha256:
                    raise SdistReadError(
                        f"sha256 mismatch for {rf.filename}: expected {rf.sha256}, got {actual}",
                        context=redact_url(url),
                    )
        if complete or data is None:
            self._count(whole=1)
            log.debug("read %s whole (%d bytes) for its build system", rf.filename, stream.received)
        else:
            self._count(partial=1)
        return data


class _ResponseStream(io.RawIOBase):
    """A non-seekable file over a streamed response body, counting what it received."""

    def __init__(self, resp: requests.Response, limit: int, url: str):
        super().__init__()
        self._chunks: Iterator[bytes] = resp.iter_content(CHUNK_SIZE)
        self._buffer = b""
        self._limit = limit
        self._url = url
        self.received = 0
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._buffer:
            chunk = next(self._chunks, b"")
            self.received += len(chunk)
            self.sha256.update(chunk)
            if self.received > self._limit:
                raise SdistReadError(
                    f"sdist larger than {self._limit} bytes; not reading it for its build system",
                    context=redact_url(self._url),
                )
            self._buffer = chunk
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def _pyproject_member(fh: IO[bytes] | _ResponseStream, filename: str) -> tuple[bytes | None, bool]:
    """``(pyproject.toml bytes or None, whether the archive was read to its end)``.

    The member looked for is ``<base>/pyproject.toml``, the sdist's top level.
    """
    if filename.lower().endswith(".zip"):
        with zipfile.ZipFile(fh) as zf:
            for info in zf.infolist():
                if _top_level_pyproject(info.filename):
                    if info.file_size > MAX_PYPROJECT:
                        break
                    return zf.read(info), True
        return None, True
    with tarfile.open(fileobj=fh, mode="r|*") as tar:
        for member in tar:
            if member.isfile() and _top_level_pyproject(member.name):
                if member.size > MAX_PYPROJECT:
                    raise SdistReadError(f"{filename}: pyproject.toml is {member.size} bytes")
                extracted = tar.extractfile(member)
                if extracted is None:  # pragma: no cover - isfile() members always extract
                    break
                return extracted.read(), False
    return None, True


def _top_level_pyproject(name: str) -> bool:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return len(parts) == 2 and parts[1] == "pyproject.toml"


# ---------------------------------------------------------------------------------- closure


class ResolveBuild(Protocol):
    """The planner's resolver, for one build environment.

    Given requirements and the targets that build with them, return project -> version ->
    labels of the targets that need that release, and the problems found.
    """

    def __call__(
        self,
        requirements: Sequence[Requirement],
        targets: Sequence[Target],
        preferred: Mapping[NormalizedName, str],
    ) -> tuple[Mapping[NormalizedName, Mapping[str, Iterable[str]]], Sequence[Problem]]: ...


@dataclass(frozen=True)
class BuildClosure:
    """What building the mirror's sdists needs.

    ``versions``: project -> version -> labels of the targets whose build environments need
    that release (whether or not the runtime closure has it too).  ``sdists``: how many sdists'
    build systems were read; ``environments``: how many distinct build environments were
    resolved; ``stats``: how the reads went.
    """

    versions: dict[NormalizedName, dict[str, frozenset[str]]] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()
    sdists: int = 0
    environments: int = 0
    stats: ReadStats = field(default_factory=ReadStats)


def builders(files: Sequence[RemoteFile], targets: Sequence[Target]) -> list[Target]:
    """The targets among ``targets`` that would build this release from its sdist: those with
    no wheel of it that they can install, and whose Python the sdist admits."""
    sdists = [f for f in files if f.kind == "sdist" and allows_any_python3(f.requires_python)]
    if not sdists:
        return []
    wheels = [f for f in files if f.kind == "wheel" and is_python3_wheel(f.tags)]
    out = []
    for target in targets:
        if any(target.allows_python(w.requires_python) and target.supports(w.tags) for w in wheels):
            continue
        if any(target.allows_python(s.requires_python) for s in sdists):
            out.append(target)
    return out


def kept_sdist(files: Sequence[RemoteFile]) -> RemoteFile | None:
    """The sdist the planner keeps of a release (``.tar.gz`` before a legacy ``.zip``)."""
    sdists = [f for f in files if f.kind == "sdist" and allows_any_python3(f.requires_python)]
    sdists.sort(key=lambda f: (not f.filename.endswith(".tar.gz"), f.filename))
    return sdists[0] if sdists else None


def complete_build_closure(
    selected: Mapping[NormalizedName, Mapping[str, Iterable[str]]],
    *,
    targets: Sequence[Target],
    release_files: Callable[[NormalizedName, str], Sequence[RemoteFile]],
    reader: BuildSystemSource,
    resolve: ResolveBuild,
    workers: int = 16,
) -> BuildClosure:
    """Add the build requirements of every kept sdist, for every target that builds it.

    :param selected: project -> version -> labels of the targets that need the release (the
        runtime closure).
    :param release_files: the index's files of one release (the same the planner chooses from).
    :param reader: reads an sdist's build system (:class:`SdistReader`).
    :param resolve: resolves one build environment for some targets (see :class:`ResolveBuild`).
    """
    by_label = {t.label: t for t in targets}
    closure: dict[NormalizedName, dict[str, set[str]]] = {}
    problems: list[Problem] = []
    #: (project, version, label) whose build needs were looked at
    examined: set[tuple[NormalizedName, str, str]] = set()
    #: (requirements, label) environments resolved already
    resolved: set[tuple[tuple[str, ...], str]] = set()
    sdists_read: set[str] = set()
    frontier: dict[NormalizedName, dict[str, set[str]]] = {
        name: {v: set(labels) for v, labels in versions.items()}
        for name, versions in selected.items()
    }
    rounds = 0
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="pypidl-sdist") as pool:
        while frontier:
            rounds += 1
            # which sdists get built, and by whom
            jobs: list[tuple[RemoteFile, list[Target]]] = []
            for name in sorted(frontier):
                for version, labels in sorted(frontier[name].items()):
                    fresh = [
                        by_label[label]
                        for label in sorted(labels)
                        if label in by_label and (name, version, label) not in examined
                    ]
                    examined.update((name, version, t.label) for t in fresh)
                    files = release_files(name, version)
                    building = builders(files, fresh)
                    sdist = kept_sdist(files)
                    if building and sdist is not None:
                        jobs.append((sdist, building))
            frontier = {}
            systems = list(pool.map(lambda job: _build_system(reader, job[0]), jobs))
            # one environment per distinct requirement set, for the targets that build with it
            envs: dict[tuple[str, ...], dict[str, list[str]]] = {}
            for (sdist, building), system in zip(jobs, systems):
                sdists_read.add(sdist.filename)
                if isinstance(system, SdistReadError):
                    problems.extend(_read_problem(sdist, system, t.label) for t in building)
                    system = DEFAULT_BUILD_SYSTEM
                requires = tuple(sorted(set(system.requirements())))
                if not requires:
                    continue
                for target in building:
                    if (requires, target.label) in resolved:
                        continue
                    envs.setdefault(requires, {}).setdefault(target.label, []).append(
                        sdist.filename
                    )
            for requires, users in sorted(envs.items()):
                env_targets = [by_label[label] for label in sorted(users)]
                resolved.update((requires, label) for label in users)
                preferred = _newest_chosen(selected, closure)
                versions, found = resolve(
                    [Requirement(r) for r in requires], env_targets, preferred
                )
                for problem in found:
                    who = sorted({f for label in users for f in users[label]})
                    problems.append(_build_problem(problem, who))
                for name, chosen in versions.items():
                    for version, needing in chosen.items():
                        for label in needing:
                            closure.setdefault(name, {}).setdefault(version, set()).add(label)
                            if (name, version, label) not in examined:
                                frontier.setdefault(name, {}).setdefault(version, set()).add(label)
    log.debug("build closure: %d round(s), %d environment(s)", rounds, len(resolved))
    stats = reader.stats if isinstance(reader, SdistReader) else ReadStats()
    unique = list(dict.fromkeys(problems))
    return BuildClosure(
        versions={
            name: {v: frozenset(labels) for v, labels in sorted(vs.items())}
            for name, vs in sorted(closure.items())
        },
        problems=tuple(unique),
        sdists=len(sdists_read),
        environments=len({requires for requires, _label in resolved}),
        stats=stats,
    )


def _build_system(reader: BuildSystemSource, sdist: RemoteFile) -> BuildSystem | SdistReadError:
    try:
        return reader.build_system(sdist)
    except SdistReadError as exc:
        return exc


def _read_problem(sdist: RemoteFile, exc: SdistReadError, label: str) -> Problem:
    # The defaults are mirrored instead, which is what most unreadable sdists need: a possible
    # gap, not a known one.
    return Problem(
        sdist.project,
        f"build requirements of {sdist.filename} unknown ({exc.message}); "
        f"mirroring the setuptools defaults for it",
        f"{sdist.project}=={sdist.version}",
        label,
        severity="warning",
    )


def _build_problem(problem: Problem, sdists: Sequence[str]) -> Problem:
    shown = ", ".join(sdists[:3]) + (f" and {len(sdists) - 3} more" if len(sdists) > 3 else "")
    return Problem(
        problem.project,
        f"building {shown} needs {problem.requirement or problem.project}: {problem.reason}",
        problem.requirement,
        problem.target,
        severity=problem.severity,
    )


def _newest_chosen(
    *selections: Mapping[NormalizedName, Mapping[str, Iterable[str]]],
) -> dict[NormalizedName, str]:
    """Per project, the newest version some closure chose already: preferred, so a build
    environment reuses what the mirror holds anyway."""
    newest: dict[NormalizedName, Version] = {}
    for selection in selections:
        for name, versions in selection.items():
            for version in versions:
                try:
                    parsed = Version(version)
                except InvalidVersion:
                    continue
                if name not in newest or parsed > newest[name]:
                    newest[name] = parsed
    return {name: str(v) for name, v in newest.items()}


def why_of(
    project: str,
    version: str,
    *,
    requirements: Iterable[str],
    runtime: Mapping[NormalizedName, Mapping[str, object]],
    build: Mapping[NormalizedName, Mapping[str, object]],
) -> tuple[str, ...]:
    """Why a release is in the plan: named by the requirements, a dependency, needed to build.

    A release the build closure did not choose is there for the runtime closure.
    """
    name = NormalizedName(project)
    wanted = _normalized(version)
    built = any(_normalized(v) == wanted for v in build.get(name, {}))
    run = any(_normalized(v) == wanted for v in runtime.get(name, {}))
    out: list[str] = []
    if run or not built:
        out.append(WHY_REQUIREMENT if name in set(requirements) else WHY_DEPENDENCY)
    if built:
        out.append(WHY_BUILD)
    return tuple(out)


def _normalized(version: str) -> str:
    try:
        return str(Version(version))
    except InvalidVersion:
        return version


def report_build_closure(build: BuildClosure, entries: Sequence[Entry]) -> None:
    """Log what reading the sdists cost and what the build closure added to the plan."""
    stats = build.stats
    if not build.sdists:
        return
    only_build = [e for e in entries if e.why == (WHY_BUILD,)]
    projects = {e.project for e in only_build} - {
        e.project for e in entries if e.why != (WHY_BUILD,)
    }
    log.info(
        "Build requirements: %d sdist(s) read (%d stopped at pyproject.toml, %d read whole, "
        "%d from the cache, %.1f MiB received); %d build environment(s)",
        build.sdists,
        stats.partial + stats.local,
        stats.whole,
        stats.cached,
        stats.bytes / 2**20,
        build.environments,
    )
    log.info(
        "The build closure added %d project(s) and %d file(s), %.1f MiB",
        len(projects),
        len(only_build),
        sum(e.size or 0 for e in only_build) / 2**20,
    )
