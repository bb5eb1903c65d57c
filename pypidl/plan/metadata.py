"""Core metadata of releases, for the resolver: dependencies, Requires-Python, extras.

Where it comes from, cheapest first:

1. the PEP 658/714 sidecar ``<file url>.metadata`` when the index advertises one (its sha256 is
   checked when the index gives it);
2. ``METADATA`` read out of the remote wheel with HTTP range requests: the zip's end records and
   central directory from the tail, then the member itself.  :class:`_RangeFile` is a seekable file
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
import re
import tarfile
import tempfile
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
from packaging.version import InvalidVersion, Version

from pypidl._fs import atomic_write_bytes
from pypidl.config import NetworkSettings, user_agent
from pypidl.dists import (
    METADATA_SUFFIX,
    read_sdist_pkg_info,
    read_wheel_metadata,
)
from pypidl.errors import RemoteIndexError
from pypidl.hashing import CHUNK_SIZE, bytes_sha256, is_sha256
from pypidl.session import new_session
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
#: Smallest range fetched after the first; a local header and METADATA usually fit in it.
MIN_FETCH = 32 * 1024
#: A METADATA/PKG-INFO larger than this is refused (real ones are a few KiB to a few 100 KiB).
MAX_METADATA = 16 * 1024 * 1024
#: Largest file downloaded whole to read its metadata (server ignores Range, or an sdist).
MAX_DOWNLOAD = 2 * 1024 * 1024 * 1024

_HEADERS = {"Accept-Encoding": "identity"}  # byte ranges are of the stored file, never re-encoded

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
        except InvalidVersion:
            too_old = True
        if too_old:
            known = False
            reason = (
                f"dependencies unknown: only an sdist with Metadata-Version {meta_version} "
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
                MetadataError,
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
        if cached is not None:
            try:
                data = cached.read_bytes()
            except OSError:
                pass
            else:
                self.how[rf.filename] = "cache"
                return data
        if urlsplit(rf.url).scheme == "file":
            data, how = _read_local(rf), "local"
        else:
            data, how = self._read_rotating(rf)
        self.how[rf.filename] = how
        if cached is not None:
            try:
                atomic_write_bytes(cached, data)
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
            except (requests.RequestException, MetadataError) as exc:
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
        with self.session.get(rf.url, headers=_HEADERS, timeout=self._timeout, stream=True) as resp:
            resp.raise_for_status()
            body = _CountingStream(resp, self.max_download, rf.url)
            try:
                data = _sdist_pkg_info(body, rf.filename)  # type: ignore[arg-type]
            finally:
                self.body_bytes[rf.filename] = body.count
            whole = body.count >= int(resp.headers.get("Content-Length") or 0) > 0 or body.ended
        return data, "download" if whole else "partial"

    def _read_sidecar(self, rf: RemoteFile) -> bytes:
        url = rf.url + METADATA_SUFFIX
        with self.session.get(url, headers=_HEADERS, timeout=self._timeout, stream=True) as resp:
            resp.raise_for_status()
            data = _read_bounded(resp, MAX_METADATA, url)
        if rf.core_metadata_sha256:
            actual = bytes_sha256(data)
            if actual != rf.core_metadata_sha256:
                raise MetadataError(
                    f"sha256 mismatch for {rf.filename}.metadata: expected "
                    f"{rf.core_metadata_sha256}, got {actual}",
                    context=redact_url(url),
                )
        return data

    def _read_wheel(self, rf: RemoteFile) -> tuple[bytes, str]:
        headers = {**_HEADERS, "Range": f"bytes=-{TAIL_SIZE}"}
        resp = self.session.get(rf.url, headers=headers, timeout=self._timeout, stream=True)
        with resp:
            if resp.status_code == 200:
                # The server ignores Range: this response is the whole file.
                log.debug("%s ignores Range; downloading %s whole", redact_url(rf.url), rf.filename)
                with _spool(resp, self.max_download, rf.url) as fh:
                    self._count_whole(rf, fh)
                    return _wheel_metadata(fh, rf), "download"
            resp.raise_for_status()
            if resp.status_code != 206:
                raise MetadataError(
                    f"unexpected HTTP {resp.status_code}", context=redact_url(rf.url)
                )
            start, total = _content_range(resp.headers.get("Content-Range", ""))
            tail = _read_bounded(resp, TAIL_SIZE + 1, rf.url)
            validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
        ranged = _RangeFile(self, rf.url, total, validator, (start, tail))
        try:
            return _wheel_metadata(ranged, rf), "range"
        except _RangeIgnored:
            with self._download(rf) as fh:
                self._count_whole(rf, fh)
                return _wheel_metadata(fh, rf), "download"

    def _download(self, rf: RemoteFile) -> _SpooledDownload:
        resp = self.session.get(rf.url, headers=_HEADERS, timeout=self._timeout, stream=True)
        try:
            resp.raise_for_status()
        except BaseException:
            resp.close()
            raise
        return _spool(resp, self.max_download, rf.url)


class _CountingStream(io.RawIOBase):
    """A response body as a file (what tarfile's stream mode reads), counting and bounding bytes."""

    def __init__(self, resp: requests.Response, limit: int, url: str):
        super().__init__()
        self._chunks = resp.iter_content(CHUNK_SIZE)
        self._buffer = b""
        self._limit = limit
        self._url = url
        self.count = 0
        self.ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer and not self.ended:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                self.ended = True
                break
            self.count += len(self._buffer)
            if self.count > self._limit:
                raise MetadataError(
                    f"file larger than {self._limit} bytes; not reading it for its metadata",
                    context=redact_url(self._url),
                )
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


class _RangeIgnored(Exception):
    """A later range request got a whole (possibly changed) file instead of a part."""


class _RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file; reads become HTTP range requests.

    Fetched spans are kept (a few, small) so zipfile's many small reads cost few requests.
    """

    def __init__(
        self,
        fetcher: MetadataFetcher,
        url: str,
        size: int,
        validator: str | None,
        first: tuple[int, bytes],
    ):
        super().__init__()
        self._fetcher = fetcher
        self._url = url
        self._size = size
        self._validator = validator
        self._pos = 0
        self._spans: list[tuple[int, bytes]] = [first]
        self.requests = 1

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise OSError("negative seek position")
        self._pos = pos
        return pos

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._size - self._pos
        size = max(0, min(size, self._size - self._pos))
        out = bytearray()
        while len(out) < size:
            chunk = self._chunk_at(self._pos, size - len(out))
            out += chunk
            self._pos += len(chunk)
        return bytes(out)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)

    def _chunk_at(self, pos: int, want: int) -> bytes:
        for start, data in self._spans:
            if start <= pos < start + len(data):
                return data[pos - start : pos - start + want]
        end = min(self._size, pos + max(want, MIN_FETCH)) - 1
        if end - pos + 1 > MAX_METADATA + MIN_FETCH:
            raise MetadataError("refusing a huge range read", context=redact_url(self._url))
        headers = {**_HEADERS, "Range": f"bytes={pos}-{end}"}
        if self._validator:
            headers["If-Range"] = self._validator
        session = self._fetcher.session
        self.requests += 1
        with session.get(
            self._url, headers=headers, timeout=self._fetcher._timeout, stream=True
        ) as resp:
            if resp.status_code == 200:
                raise _RangeIgnored
            resp.raise_for_status()
            got_start, _total = _content_range(resp.headers.get("Content-Range", ""))
            data = _read_bounded(resp, end - pos + 1, self._url)
        if got_start != pos or not data:
            raise MetadataError("server answered a different range", context=redact_url(self._url))
        self._spans.append((pos, data))
        del self._spans[1:-4]  # keep the tail (central directory) and the latest few spans
        return data[:want]


def _content_range(value: str) -> tuple[int, int]:
    """``(first byte, total size)`` of a ``Content-Range: bytes a-b/n`` header."""
    m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+)\s*", value)
    if not m:
        raise MetadataError(f"cannot use Content-Range {value!r}")
    return int(m.group(1)), int(m.group(3))


def _read_bounded(resp: requests.Response, limit: int, url: str) -> bytes:
    out = bytearray()
    for chunk in resp.iter_content(CHUNK_SIZE):
        out += chunk
        if len(out) > limit:
            raise MetadataError(f"response larger than {limit} bytes", context=redact_url(url))
    return bytes(out)


class _SpooledDownload:
    """A temporary file holding a streamed response body; deleted on exit."""

    def __init__(self, fh: IO[bytes]):
        self.fh = fh

    def __enter__(self) -> IO[bytes]:
        return self.fh

    def __exit__(self, *exc: object) -> None:
        self.fh.close()


def _spool(resp: requests.Response, limit: int, url: str) -> _SpooledDownload:
    """Stream ``resp`` into an anonymous temporary file, never holding more than a chunk."""
    fh = tempfile.TemporaryFile(prefix=".pypidl-")  # noqa: SIM115 - closed by _SpooledDownload
    try:
        with resp:
            written = 0
            for chunk in resp.iter_content(CHUNK_SIZE):
                written += len(chunk)
                if written > limit:
                    raise MetadataError(
                        f"file larger than {limit} bytes; not downloading it for its metadata",
                        context=redact_url(url),
                    )
                fh.write(chunk)
        fh.seek(0)
    except BaseException:
        fh.close()
        raise
    return _SpooledDownload(fh)


def _wheel_metadata(fh: IO[bytes] | _RangeFile, rf: RemoteFile) -> bytes:
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
