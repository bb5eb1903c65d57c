"""Core metadata of releases, for the resolver: dependencies, Requires-Python, extras.

Where it comes from, cheapest first:

1. the PEP 658/714 sidecar ``<file url>.metadata`` when the index advertises one (its sha256 is
   checked when the index gives it);
2. ``METADATA`` read out of the remote wheel with HTTP range requests: the zip's end records and
   central directory from the tail, then the member itself.  :class:`RangeFile` is a seekable file
   object over HTTP, so :mod:`zipfile` does the zip parsing (ZIP64 included);
3. the whole file, streamed to a temporary file, when the server ignores ``Range``;
4. for sdist-only releases, ``PKG-INFO`` from the sdist, trusted for dependencies only when it is
   Metadata-Version 2.2 or later and does not list ``Requires-Dist`` as ``Dynamic``.

Results are cached in memory for the run (one fetch per release, however many targets and
threads ask) and, when a cache directory is given, on disk keyed by the file's sha256: the
metadata of a given file never changes.  ``file:`` URLs (a local mirror, for ``pypidl check``)
are read in place, using a ``.metadata`` sidecar beside the file when there is one.
"""

from __future__ import annotations

import io
import logging
import os
import tarfile
import threading
import zipfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol, TypeVar
from urllib.parse import urlsplit
from urllib.request import url2pathname

import requests
from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from pypidl._fs import read_checked, write_checked
from pypidl.config import NetworkSettings, user_agent
from pypidl.dists import (
    MAX_METADATA,
    METADATA_SUFFIX,
    read_sdist_pkg_info,
    read_wheel_metadata,
)
from pypidl.errors import RemoteIndexError
from pypidl.hashing import bytes_sha256, is_sha256, sha256_mismatch
from pypidl.plan._http_files import (
    RangeFile,
    RangeIgnored,
    ResponseStream,
    SpooledDownload,
    content_range,
    read_bounded,
    spool,
)
from pypidl.session import ARTIFACT_HEADERS, new_session
from pypidl.sources import Mirror, derive_file_url, redact_url

if TYPE_CHECKING:
    from pypidl.plan.pages import RemoteFile

__all__ = [
    "METADATA_SUFFIX",
    "CoreMetadata",
    "MetadataError",
    "MetadataFetcher",
    "MetadataSource",
    "parse_core_metadata",
    "probe_order",
]

log = logging.getLogger(__name__)

#: PEP 658: a wheel's METADATA is served at the wheel's URL plus this suffix.
#: Bytes fetched from the end of a wheel by the first range request: enough for the end
#: records and the central directory of almost every wheel, so most reads take two requests.
TAIL_SIZE = 64 * 1024
#: Largest file downloaded whole to read its metadata (server ignores Range, or an sdist).
MAX_DOWNLOAD = 2 * 1024 * 1024 * 1024


T = TypeVar("T")


class MetadataError(RemoteIndexError):
    """The metadata of a release could not be read from any of its files."""


@dataclass(frozen=True)
class CoreMetadata:
    """What the resolver needs from one release's core metadata."""

    project: NormalizedName
    version: str
    requires_dist: tuple[Requirement, ...]
    requires_python: str | None
    provides_extra: frozenset[NormalizedName]
    #: False when only an sdist with dynamic (or pre-2.2) metadata was available
    dependencies_known: bool = True
    #: why the dependencies are unknown, for the summary
    unknown_reason: str | None = None
    #: the file the metadata was read from
    filename: str = ""


class MetadataSource(Protocol):
    """Something that gives the core metadata of a release (the resolver's only way to get it)."""

    def release(
        self, project: NormalizedName, version: str, files: Sequence[RemoteFile]
    ) -> CoreMetadata:
        """Metadata of ``project`` ``version``, read from one of ``files`` (that release's files).

        :raises MetadataError: when none of the files could be read.
        """
        ...


def probe_order(files: Iterable[RemoteFile]) -> list[RemoteFile]:
    """Files of a release in the order their metadata is tried.

    Wheels with a sidecar first, then other wheels (metadata is per release in practice, so any
    wheel will do), then sdists; within a group, not yanked before yanked, then by file name, so
    every target and every run reads the same file.
    """
    return sorted(
        files,
        key=lambda f: (f.kind != "wheel", not f.has_core_metadata, f.yanked, f.filename),
    )


def parse_core_metadata(
    data: bytes,
    *,
    project: NormalizedName,
    version: str,
    filename: str = "",
    from_sdist: bool = False,
) -> CoreMetadata:
    """Parse METADATA or PKG-INFO bytes, leniently: a broken Requires-Dist line is skipped.

    :param from_sdist: apply the sdist rule: dependencies count only with Metadata-Version >= 2.2
        and ``Requires-Dist`` not listed in ``Dynamic``.
    """
    raw, _unparsed = parse_email(data)
    requirements: list[Requirement] = []
    for line in raw.get("requires_dist", []):
        try:
            requirements.append(Requirement(line))
        except InvalidRequirement as exc:
            log.warning("%s: ignoring invalid Requires-Dist %r: %s", filename or project, line, exc)
    extras = frozenset(canonicalize_name(e) for e in raw.get("provides_extra", []))
    requires_python = raw.get("requires_python") or None
    known, reason = True, None
    if from_sdist:
        meta_version = raw.get("metadata_version", "1.0")
        dynamic = {d.strip().lower() for d in raw.get("dynamic", [])}
        try:
            too_old = Version(meta_version) < Version("2.2")
        except ValueError:  # InvalidVersion, or a number too long for int()
            too_old = True
        if too_old:
            known = False
            shown = meta_version if len(meta_version) <= 32 else f"{meta_version[:29]}..."
            reason = (
                f"dependencies unknown: only an sdist with Metadata-Version {shown} "
                f"({filename}); its Requires-Dist may be computed at build time"
            )
        elif "requires-dist" in dynamic:
            known = False
            reason = f"dependencies unknown: {filename} declares Requires-Dist as dynamic"
    return CoreMetadata(
        project=project,
        version=version,
        requires_dist=tuple(requirements) if known else (),
        requires_python=requires_python,
        provides_extra=extras,
        dependencies_known=known,
        unknown_reason=reason,
        filename=filename,
    )


class _Once:
    """A thread-safe memo: the first caller of a key computes, concurrent callers wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[object, Future[object]] = {}

    def get(self, key: object, compute: Callable[[], T]) -> T:
        with self._lock:
            future = self._futures.get(key)
            owner = future is None
            if future is None:
                future = self._futures[key] = Future()
        if owner:
            try:
                future.set_result(compute())
            except Exception as exc:  # handed to every waiter, raised below
                future.set_exception(exc)
            except BaseException:
                with self._lock:
                    self._futures.pop(key, None)
                future.cancel()
                raise
        return future.result()  # type: ignore[return-value]


class MetadataFetcher:
    """The network (and ``file:``) implementation of :class:`MetadataSource`.

    Thread-safe: each thread uses its own session from :func:`pypidl.session.new_session`.

    :param net: timeouts, TLS, credentials; defaults to :class:`NetworkSettings` with pip's agent.
    :param cache_dir: where metadata is kept between runs, by file sha256 (optional).
    :param workers: threads for :meth:`prefetch`.
    :param session: the session to use (the planner shares its page session: one pool of
        kept-alive connections); by default one is made, its pool sized for ``workers``.
    :param mirrors: the run's mirrors: a file a mirror fails to serve is asked of the others
        (the same ``packages/`` layout), as downloads do.
    """

    def __init__(
        self,
        net: NetworkSettings | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        workers: int = 16,
        max_download: int = MAX_DOWNLOAD,
        session: requests.Session | None = None,
        mirrors: Sequence[Mirror] = (),
    ):
        if net is None:
            net = NetworkSettings(user_agent=user_agent())
        self.net = net
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.workers = workers
        self.max_download = max_download
        self._session: requests.Session | None = session
        self._session_lock = threading.Lock()
        self.mirrors = list(mirrors)
        self._releases = _Once()
        self._files = _Once()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        #: how each file's metadata was obtained: "cache", "sidecar", "range", "partial" (an
        #: sdist read up to its PKG-INFO), "download" (the whole file), "local"
        self.how: dict[str, str] = {}
        #: bytes of file bodies read for "partial" and "download" reads, by file name
        self.body_bytes: dict[str, int] = {}

    # ------------------------------------------------------------------ public

    def release(
        self, project: NormalizedName, version: str, files: Sequence[RemoteFile]
    ) -> CoreMetadata:
        return self._releases.get(
            (project, version), lambda: self._read_release(project, version, files)
        )

    def prefetch(
        self, releases: Iterable[tuple[NormalizedName, str, Sequence[RemoteFile]]]
    ) -> None:
        """Start reading these releases' metadata in the background (errors surface later)."""
        pool = self._executor()
        for project, version, files in releases:
            pool.submit(self._quiet_release, project, version, tuple(files))

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def __enter__(self) -> MetadataFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def file_metadata(self, rf: RemoteFile) -> bytes:
        """The raw METADATA (wheel) or PKG-INFO (sdist) bytes of one file, cached."""
        key = rf.sha256 or rf.url
        return self._files.get(key, lambda: self._read_file(rf))

    # ------------------------------------------------------------------ internals

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=max(1, self.workers), thread_name_prefix="pypidl-metadata"
                )
            return self._pool

    def _quiet_release(
        self, project: NormalizedName, version: str, files: Sequence[RemoteFile]
    ) -> None:
        try:
            self.release(project, version, files)
        except Exception:  # the resolver asks again and gets the error itself
            log.debug("prefetching metadata of %s %s failed", project, version, exc_info=True)

    @property
    def session(self) -> requests.Session:
        """One session for every metadata thread, its pool sized for them (made on first use)."""
        with self._session_lock:  # not _pool_lock: close() holds that while pool threads finish
            if self._session is None:
                self._session = new_session(self.net, pool_size=self.workers)
            return self._session

    @property
    def _timeout(self) -> tuple[float, float]:
        return (self.net.connect_timeout, self.net.read_timeout)

    def _read_release(
        self, project: NormalizedName, version: str, files: Sequence[RemoteFile]
    ) -> CoreMetadata:
        reasons: list[str] = []
        ordered = probe_order(files)
        if not ordered:
            raise MetadataError(f"{project} {version} has no files", context=project)
        for rf in ordered[:3]:
            try:
                data = self.file_metadata(rf)
            except (
                RemoteIndexError,  # MetadataError, or a read refused by plan._http_files
                OSError,
                requests.RequestException,
                zipfile.BadZipFile,
                tarfile.TarError,
                ValueError,
            ) as exc:
                reasons.append(f"{rf.filename}: {exc}")
                log.debug("cannot read metadata of %s: %s", rf.filename, exc)
                continue
            return parse_core_metadata(
                data,
                project=project,
                version=version,
                filename=rf.filename,
                from_sdist=rf.kind == "sdist",
            )
        raise MetadataError(
            f"cannot read the metadata of {project} {version}: " + "; ".join(reasons),
            context=project,
        )

    def _cache_path(self, rf: RemoteFile) -> Path | None:
        if self.cache_dir is None or not is_sha256(rf.sha256):
            return None
        sha = str(rf.sha256)
        return self.cache_dir / sha[:2] / f"{sha}.metadata"

    def _read_file(self, rf: RemoteFile) -> bytes:
        cached = self._cache_path(rf)
        # a torn or altered entry fails its check and is fetched again; so does one that is not
        # the metadata the index publishes a sha256 for (a rewritten entry, its own hash
        # matching, silently changed a dependency: issue 20)
        if cached is not None and (data := read_checked(cached)) is not None:
            if rf.core_metadata_sha256 is None or bytes_sha256(data) == rf.core_metadata_sha256:
                self.how[rf.filename] = "cache"
                return data
            log.debug("cached metadata of %s is not the index's; read again", rf.filename)
        if urlsplit(rf.url).scheme == "file":
            data, how = _read_local(rf), "local"
        else:
            data, how = self._read_rotating(rf)
        self.how[rf.filename] = how
        if cached is not None:
            try:
                write_checked(cached, data)
            except OSError as exc:
                log.debug("cannot cache metadata in %s: %s", cached, exc)
        return data

    def _read_rotating(self, rf: RemoteFile) -> tuple[bytes, str]:
        """Read from the mirror that listed the file, then from each other mirror."""
        urls = [rf.url]
        # a file listed by an index outside the mirror set (a project kept to its own index)
        # is never asked of the others
        if any(m.name == rf.mirror for m in self.mirrors):
            for mirror in self.mirrors:
                url = derive_file_url(rf.url, mirror)
                if url and url not in urls:
                    urls.append(url)
        for n, url in enumerate(urls):
            try:
                return self._read_remote(rf if n == 0 else replace(rf, url=url))
            except (requests.RequestException, RemoteIndexError) as exc:
                if n == len(urls) - 1:
                    raise
                log.debug("metadata of %s from %s failed (%s)", rf.filename, redact_url(url), exc)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _read_remote(self, rf: RemoteFile) -> tuple[bytes, str]:
        if rf.has_core_metadata and rf.kind == "wheel":
            try:
                return self._read_sidecar(rf), "sidecar"
            except (MetadataError, requests.RequestException) as exc:
                log.debug("sidecar of %s unusable (%s); reading the wheel", rf.filename, exc)
        if rf.kind == "wheel":
            return self._read_wheel(rf)
        if rf.filename.endswith(".zip"):
            with self._download(rf) as fh:
                self._count_whole(rf, fh)
                return _sdist_pkg_info(fh, rf.filename), "download"
        return self._read_sdist_head(rf)

    def _count_whole(self, rf: RemoteFile, fh: IO[bytes]) -> None:
        self.body_bytes[rf.filename] = fh.seek(0, io.SEEK_END)
        fh.seek(0)

    def stats(self) -> dict[str, tuple[int, int]]:
        """How the metadata was read: kind -> (files, body bytes read for them)."""
        out: dict[str, tuple[int, int]] = {}
        for filename, how in list(self.how.items()):
            files, size = out.get(how, (0, 0))
            out[how] = (files + 1, size + self.body_bytes.get(filename, 0))
        return out

    def _read_sdist_head(self, rf: RemoteFile) -> tuple[bytes, str]:
        """PKG-INFO of a ``.tar.gz`` sdist, streaming the archive only up to that member.

        A tar has no index, so this is the smallest read that works: build back ends write
        PKG-INFO near the start, and the rest of the body is never read (the connection is
        closed instead).  Only a PKG-INFO at the end costs the whole file.
        """
        with self.session.get(
            rf.url, headers=ARTIFACT_HEADERS, timeout=self._timeout, stream=True
        ) as resp:
            resp.raise_for_status()
            body = ResponseStream(
                resp, self.max_download, rf.url, purpose="its metadata", error=MetadataError
            )
            try:
                data = _sdist_pkg_info(body, rf.filename)  # type: ignore[arg-type]
            finally:
                self.body_bytes[rf.filename] = body.received
            whole = body.received >= int(resp.headers.get("Content-Length") or 0) > 0 or body.ended
        return data, "download" if whole else "partial"

    def _read_sidecar(self, rf: RemoteFile) -> bytes:
        url = rf.url + METADATA_SUFFIX
        with self.session.get(
            url, headers=ARTIFACT_HEADERS, timeout=self._timeout, stream=True
        ) as resp:
            resp.raise_for_status()
            data = read_bounded(resp, MAX_METADATA, url)
        if rf.core_metadata_sha256:
            actual = bytes_sha256(data)
            if actual != rf.core_metadata_sha256:
                raise MetadataError(
                    sha256_mismatch(
                        rf.core_metadata_sha256, actual, name=f"{rf.filename}.metadata"
                    ),
                    context=redact_url(url),
                )
        return data

    def _read_wheel(self, rf: RemoteFile) -> tuple[bytes, str]:
        headers = {**ARTIFACT_HEADERS, "Range": f"bytes=-{TAIL_SIZE}"}
        resp = self.session.get(rf.url, headers=headers, timeout=self._timeout, stream=True)
        with resp:
            if resp.status_code == 200:
                # The server ignores Range: this response is the whole file.
                log.debug("%s ignores Range; downloading %s whole", redact_url(rf.url), rf.filename)
                with spool(resp, self.max_download, rf.url) as fh:
                    self._count_whole(rf, fh)
                    return _wheel_metadata(fh, rf), "download"
            resp.raise_for_status()
            if resp.status_code != 206:
                raise MetadataError(
                    f"unexpected HTTP {resp.status_code}", context=redact_url(rf.url)
                )
            start, total = content_range(resp.headers.get("Content-Range", ""))
            tail = read_bounded(resp, TAIL_SIZE + 1, rf.url)
            validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
        ranged = RangeFile(
            self.session,
            self._timeout,
            rf.url,
            total,
            validator,
            (start, tail),
            max_read=MAX_METADATA,
        )
        try:
            return _wheel_metadata(ranged, rf), "range"
        except RangeIgnored:
            with self._download(rf) as fh:
                self._count_whole(rf, fh)
                return _wheel_metadata(fh, rf), "download"

    def _download(self, rf: RemoteFile) -> SpooledDownload:
        resp = self.session.get(
            rf.url, headers=ARTIFACT_HEADERS, timeout=self._timeout, stream=True
        )
        try:
            resp.raise_for_status()
        except BaseException:
            resp.close()
            raise
        return spool(resp, self.max_download, rf.url)


def _wheel_metadata(fh: IO[bytes] | RangeFile, rf: RemoteFile) -> bytes:
    try:
        return read_wheel_metadata(fh, rf.project, max_size=MAX_METADATA)  # type: ignore[arg-type]
    except ValueError as exc:
        raise MetadataError(f"{rf.filename}: {exc}") from None


def _sdist_pkg_info(fh: IO[bytes], filename: str) -> bytes:
    try:
        return read_sdist_pkg_info(fh, filename, max_size=MAX_METADATA)
    except ValueError as exc:
        raise MetadataError(str(exc)) from None


def _read_local(rf: RemoteFile) -> bytes:
    parts = urlsplit(rf.url)
    path = Path(url2pathname(parts.path))
    sidecar = path.with_name(path.name + METADATA_SUFFIX)
    if rf.kind == "wheel":
        if sidecar.is_file() and sidecar.stat().st_size <= MAX_METADATA:
            return sidecar.read_bytes()
        with open(path, "rb") as fh:
            return _wheel_metadata(fh, rf)
    with open(path, "rb") as fh:
        return _sdist_pkg_info(fh, rf.filename)
