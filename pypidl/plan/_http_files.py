"""Remote files as file objects, for reading a little of a distribution without all of it.

:class:`ResponseStream` is a streamed response body as a non-seekable file (what ``tarfile``'s
stream mode reads): it counts and hashes what arrives and refuses more than a limit.
:class:`RangeFile` is a seekable view whose reads become HTTP range requests (what ``zipfile``
needs to read a wheel's central directory and one member).  :func:`spool` keeps a whole body in
an anonymous temporary file when nothing smaller works.
"""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
from collections.abc import Iterator
from typing import IO

import requests

from pypidl.errors import RemoteIndexError
from pypidl.hashing import CHUNK_SIZE
from pypidl.session import ARTIFACT_HEADERS
from pypidl.sources import redact_url

__all__ = [
    "MIN_FETCH",
    "RangeFile",
    "RangeIgnored",
    "ResponseStream",
    "SpooledDownload",
    "content_range",
    "read_bounded",
    "spool",
]

#: The smallest range a :class:`RangeFile` asks for: zipfile reads in many small pieces.
MIN_FETCH = 32 * 1024


class ResponseStream(io.RawIOBase):
    """A response body as a non-seekable file, counting and hashing what it received.

    :param limit: refuse a body larger than this many bytes.
    :param purpose: what the read is for, as the refusal says it ("its metadata").
    :param error: the error to raise on refusal.
    """

    def __init__(
        self,
        resp: requests.Response,
        limit: int,
        url: str,
        *,
        purpose: str,
        error: type[RemoteIndexError] = RemoteIndexError,
    ):
        super().__init__()
        self._chunks: Iterator[bytes] = resp.iter_content(CHUNK_SIZE)
        self._buffer = b""
        self._limit = limit
        self._url = url
        self._purpose = purpose
        self._error = error
        self.received = 0
        self.ended = False
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer and not self.ended:
            chunk = next(self._chunks, b"")
            if not chunk:
                self.ended = True
                break
            self.received += len(chunk)
            self.sha256.update(chunk)
            if self.received > self._limit:
                raise self._error(
                    f"file larger than {self._limit} bytes; not reading it for {self._purpose}",
                    context=redact_url(self._url),
                )
            self._buffer = chunk
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


class RangeIgnored(Exception):
    """A later range request got a whole (possibly changed) file instead of a part."""


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file; reads become HTTP range requests.

    Fetched spans are kept (a few, small) so zipfile's many small reads cost few requests.
    """

    def __init__(
        self,
        session: requests.Session,
        timeout: tuple[float, float],
        url: str,
        size: int,
        validator: str | None,
        first: tuple[int, bytes],
        *,
        max_read: int,
    ):
        super().__init__()
        self._session = session
        self._timeout = timeout
        self._url = url
        self._size = size
        self._validator = validator
        self._pos = 0
        self._max_read = max_read
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
        if end - pos + 1 > self._max_read + MIN_FETCH:
            raise RemoteIndexError("refusing a huge range read", context=redact_url(self._url))
        headers = {**ARTIFACT_HEADERS, "Range": f"bytes={pos}-{end}"}
        if self._validator:
            headers["If-Range"] = self._validator
        self.requests += 1
        with self._session.get(
            self._url, headers=headers, timeout=self._timeout, stream=True
        ) as resp:
            if resp.status_code == 200:
                raise RangeIgnored
            resp.raise_for_status()
            got_start, _total = content_range(resp.headers.get("Content-Range", ""))
            data = read_bounded(resp, end - pos + 1, self._url)
        if got_start != pos or not data:
            raise RemoteIndexError(
                "server answered a different range", context=redact_url(self._url)
            )
        self._spans.append((pos, data))
        del self._spans[1:-4]  # keep the tail (central directory) and the latest few spans
        return data[:want]


def content_range(value: str) -> tuple[int, int]:
    """``(first byte, total size)`` of a ``Content-Range: bytes a-b/n`` header."""
    m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+)\s*", value)
    if not m:
        raise RemoteIndexError(f"cannot use Content-Range {value!r}")
    return int(m.group(1)), int(m.group(3))


def read_bounded(resp: requests.Response, limit: int, url: str) -> bytes:
    out = bytearray()
    for chunk in resp.iter_content(CHUNK_SIZE):
        out += chunk
        if len(out) > limit:
            raise RemoteIndexError(f"response larger than {limit} bytes", context=redact_url(url))
    return bytes(out)


class SpooledDownload:
    """A temporary file holding a streamed response body; deleted on exit."""

    def __init__(self, fh: IO[bytes]):
        self.fh = fh

    def __enter__(self) -> IO[bytes]:
        return self.fh

    def __exit__(self, *exc: object) -> None:
        self.fh.close()


def spool(resp: requests.Response, limit: int, url: str) -> SpooledDownload:
    """Stream ``resp`` into an anonymous temporary file, never holding more than a chunk."""
    fh = tempfile.TemporaryFile(prefix=".pypidl-")  # noqa: SIM115 - closed by SpooledDownload
    try:
        with resp:
            written = 0
            for chunk in resp.iter_content(CHUNK_SIZE):
                written += len(chunk)
                if written > limit:
                    raise RemoteIndexError(
                        f"file larger than {limit} bytes; not downloading it for its metadata",
                        context=redact_url(url),
                    )
                fh.write(chunk)
        fh.seek(0)
    except BaseException:
        fh.close()
        raise
    return SpooledDownload(fh)
