"""An sdist's build system, read with the smallest read that works.

``[build-system]`` comes from the sdist's top-level ``pyproject.toml``.  A ``.tar.gz`` has no
index, so the read streams the archive and stops at that member; only when there is no
``pyproject.toml`` (or for a ``.zip`` sdist) is the whole file read, and then checked against the
index's sha256.  Without ``pyproject.toml`` or without a ``[build-system]`` table, pip and uv use
the legacy setuptools backend with ``setuptools>=40.8.0``.

A setuptools backend also asks for the ``setup_requires`` of ``setup.cfg`` when pip or uv set up
the build (``get_requires_for_build_wheel``), so for those the read goes on to a top-level
``setup.cfg``: up to it, or to the first top-level name that sorts after it (setuptools writes
sdists in sorted order).  ``setup_requires`` passed to ``setup()`` in ``setup.py`` is code, and
not read.  Results are cached by sha256.
"""

from __future__ import annotations

import configparser
import json
import logging
import os
import tarfile
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol
from urllib.parse import urlsplit
from urllib.request import url2pathname

import requests
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pypidl import _json, _toml
from pypidl._fs import read_checked, write_checked
from pypidl.config import NetworkSettings, user_agent
from pypidl.errors import RemoteIndexError
from pypidl.hashing import CHUNK_SIZE, is_sha256, sha256_mismatch
from pypidl.plan._http_files import ResponseStream
from pypidl.plan._requirement_line import comparable
from pypidl.session import ARTIFACT_HEADERS, new_session
from pypidl.sources import redact_url

if TYPE_CHECKING:
    from pypidl.plan.pages import RemoteFile

__all__ = [
    "DEFAULT_BUILD_SYSTEM",
    "DEFAULT_REQUIRES",
    "BrokenPyprojectError",
    "BuildSystem",
    "BuildSystemSource",
    "ReadStats",
    "SdistReadError",
    "SdistReader",
    "parse_pyproject",
    "parse_setup_cfg",
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


_CACHE_FORMAT = 2  # 2: setup_requires


class SdistReadError(RemoteIndexError):
    """An sdist's build system could not be read (network, archive or TOML trouble)."""


class BrokenPyprojectError(SdistReadError):
    """The sdist's ``pyproject.toml`` was read, and pip and uv would refuse to build with it."""


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
    #: ``[options] setup_requires`` of the sdist's ``setup.cfg`` (a setuptools backend only)
    setup_requires: tuple[str, ...] = ()

    @property
    def uses_setuptools(self) -> bool:
        backend = self.backend or LEGACY_BACKEND
        return backend.split(":", 1)[0].strip() == "setuptools.build_meta"

    def requirements(self) -> tuple[str, ...]:
        """What the isolated build environment gets: ``requires``, plus, for a setuptools
        backend, ``wheel`` (older setuptools asks for it before building a wheel) and
        ``setup.cfg``'s ``setup_requires``."""
        out = list(self.requires)
        names = {_name_of(r) for r in out}
        if self.uses_setuptools:
            out.extend(r for r in SETUPTOOLS_WHEEL_REQUIRES if _name_of(r) not in names)
            out.extend(r for r in self.setup_requires if r not in out)
        return tuple(out)

    def to_json(self) -> dict[str, object]:
        return {
            "format": _CACHE_FORMAT,
            "requires": list(self.requires),
            "backend": self.backend,
            "declared": self.declared,
            "setup_requires": list(self.setup_requires),
        }

    @classmethod
    def from_json(cls, data: object) -> BuildSystem | None:
        if not isinstance(data, dict) or data.get("format") != _CACHE_FORMAT:
            return None
        requires, backend = data.get("requires"), data.get("backend")
        setup = data.get("setup_requires", [])
        if not isinstance(requires, list) or not isinstance(setup, list):
            return None
        if not _valid_requirements([*requires, *setup]):
            return None  # what the resolver would trip on (issue 20): a cache miss
        if backend is not None and not isinstance(backend, str):
            return None
        return cls(tuple(requires), backend, bool(data.get("declared")), tuple(setup))


DEFAULT_BUILD_SYSTEM = BuildSystem(DEFAULT_REQUIRES, None, declared=False)


def _valid_requirements(values: list[object]) -> bool:
    """Whether every one of ``values`` is a valid requirement string."""
    try:
        for text in values:
            if not isinstance(text, str) or not comparable(Requirement(text)):
                return False
    except InvalidRequirement:
        return False
    return True


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
        doc = _toml.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BrokenPyprojectError(
            f"pyproject.toml is not UTF-8: {exc.reason}", context=filename
        ) from None
    except _toml.UntrustedTOMLError as exc:  # issue 20: deep nesting, 5,000-digit numbers
        at = f" (line {exc.line})" if exc.line else ""
        raise BrokenPyprojectError(f"pyproject.toml{at}: {exc}", context=filename) from None
    table = doc.get("build-system")
    if not isinstance(table, dict) or "requires" not in table:
        return DEFAULT_BUILD_SYSTEM
    requires = table["requires"]
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise BrokenPyprojectError(
            "pyproject.toml: build-system.requires is not a list of strings", context=filename
        )
    for text in requires:
        try:
            if not comparable(Requirement(text)):
                raise InvalidRequirement("a version number too long to compare")
        except InvalidRequirement as exc:
            raise BrokenPyprojectError(
                f"pyproject.toml: invalid build requirement {text[:80]!r}: {exc}",
                context=filename,
            ) from None
    backend = table.get("build-backend")
    return BuildSystem(
        tuple(requires), backend if isinstance(backend, str) else None, declared=True
    )


def parse_setup_cfg(data: bytes | None, *, filename: str = "") -> tuple[str, ...]:
    """The ``[options] setup_requires`` of a ``setup.cfg``, as setuptools splits it (one per
    line, or separated by ``;`` on one line); entries that are not requirements are left out."""
    if not data:
        return ()
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(data.decode("utf-8"))
    except (UnicodeDecodeError, configparser.Error) as exc:
        log.debug("%s: setup.cfg not read (%s)", filename, exc)
        return ()
    value = parser.get("options", "setup_requires", fallback="").strip()
    items = value.splitlines() if "\n" in value else value.split(";")
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item or item.startswith("#"):
            continue
        try:
            requirement = Requirement(item)
            if comparable(requirement):
                out.append(str(requirement))
        except InvalidRequirement:
            log.debug("%s: setup.cfg setup_requires entry %r is not a requirement", filename, item)
    return tuple(dict.fromkeys(out))


def _with_setup_cfg(system: BuildSystem, setup_cfg: bytes | None, filename: str) -> BuildSystem:
    if not system.uses_setuptools:
        return system
    return replace(system, setup_requires=parse_setup_cfg(setup_cfg, filename=filename))


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
            raw = read_checked(cached)  # a torn or altered entry is read again
            try:
                known = BuildSystem.from_json(_json.loads(raw)) if raw is not None else None
            except _json.UntrustedJSONError:  # nested too deeply, say: a miss (issue 20)
                known = None
            if known is not None:
                self._count(cached=1)
                return known
        if urlsplit(rf.url).scheme == "file":
            path = Path(url2pathname(urlsplit(rf.url).path))
            with open(path, "rb") as fh:
                files, _complete = _build_files(fh, rf.filename)
            self._count(local=1)
        else:
            files = self._read_mirrors(rf)
        result = parse_pyproject(files.pyproject, filename=rf.filename)
        result = _with_setup_cfg(result, files.setup_cfg, rf.filename)
        if cached is not None:
            try:
                write_checked(cached, json.dumps(result.to_json()).encode("utf-8"))
            except OSError as exc:
                log.debug("cannot cache the build system of %s in %s: %s", rf.filename, cached, exc)
        return result

    def _read_mirrors(self, rf: RemoteFile) -> _BuildFiles:
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

    def _read_remote(self, rf: RemoteFile, url: str) -> _BuildFiles:
        timeout = (self.net.connect_timeout, self.net.read_timeout)
        with self.session.get(url, headers=ARTIFACT_HEADERS, timeout=timeout, stream=True) as resp:
            resp.raise_for_status()
            stream = ResponseStream(
                resp, self.max_size, url, purpose="its build system", error=SdistReadError
            )
            try:
                if rf.filename.lower().endswith(".zip"):
                    # a zip's directory is at its end: spool it (zip sdists are rare and old)
                    with tempfile.TemporaryFile(prefix=".pypidl-") as spool:
                        for chunk in iter(lambda: stream.read(CHUNK_SIZE), b""):
                            spool.write(chunk)
                        spool.seek(0)
                        found, complete = _build_files(spool, rf.filename)
                    complete = True
                else:
                    found, complete = _build_files(stream, rf.filename)
                if complete:
                    stream.read()  # the rest, if any, so that the digest covers the whole file
            finally:
                self._count(bytes=stream.received)
            if complete:
                actual = stream.sha256.hexdigest()
                if rf.sha256 and actual != rf.sha256:
                    raise SdistReadError(
                        sha256_mismatch(rf.sha256, actual, name=rf.filename),
                        context=redact_url(url),
                    )
        if complete:
            self._count(whole=1)
            log.debug("read %s whole (%d bytes) for its build system", rf.filename, stream.received)
        else:
            self._count(partial=1)
        return found


@dataclass
class _BuildFiles:
    """The top-level files of an sdist that say how it is built."""

    pyproject: bytes | None = None
    setup_cfg: bytes | None = None


def _build_files(fh: IO[bytes] | ResponseStream, filename: str) -> tuple[_BuildFiles, bool]:
    """``(the sdist's top-level pyproject.toml and setup.cfg, whether the archive was read to
    its end)``; see the module docstring for where a streamed read stops."""
    found = _BuildFiles()
    if filename.lower().endswith(".zip"):
        with zipfile.ZipFile(fh) as zf:
            for info in zf.infolist():
                which = _top_level_file(info.filename)
                if which is not None and info.file_size <= MAX_PYPROJECT:
                    setattr(found, which, zf.read(info))
        return found, True
    wants_setup_cfg: bool | None = None  # known once pyproject.toml is read
    with tarfile.open(fileobj=fh, mode="r|*") as tar:
        for member in tar:
            if found.pyproject is not None:
                if wants_setup_cfg is None:
                    wants_setup_cfg = _setuptools_backend(found.pyproject)
                if not wants_setup_cfg or _sorts_after_setup_cfg(member.name):
                    return found, False
            which = _top_level_file(member.name) if member.isfile() else None
            if which is None:
                continue
            if member.size > MAX_PYPROJECT:
                if which == "pyproject":
                    raise SdistReadError(f"{filename}: pyproject.toml is {member.size} bytes")
                continue
            extracted = tar.extractfile(member)
            if extracted is None:  # pragma: no cover - isfile() members always extract
                continue
            setattr(found, which, extracted.read())
            if found.pyproject is not None and found.setup_cfg is not None:
                return found, False
    return found, True


def _setuptools_backend(pyproject: bytes) -> bool:
    """Whether the sdist builds with setuptools (which reads ``setup.cfg``'s setup_requires)."""
    try:
        return parse_pyproject(pyproject).uses_setuptools
    except SdistReadError:
        return False  # the error is raised where the file is parsed for good


def _sorts_after_setup_cfg(name: str) -> bool:
    """A member whose top-level name sorts after ``setup.cfg``: in an archive written in sorted
    order, as setuptools writes sdists, a top-level setup.cfg would have come before it."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return len(parts) >= 2 and parts[1] > "setup.cfg"


def _top_level_file(name: str) -> str | None:
    """``"pyproject"`` or ``"setup_cfg"`` for those files at the sdist's top level."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if len(parts) != 2:
        return None
    return {"pyproject.toml": "pyproject", "setup.cfg": "setup_cfg"}.get(parts[1])
