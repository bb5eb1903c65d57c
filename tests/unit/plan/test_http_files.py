"""_http_files: remote files as file objects, over a real loopback index server."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from pypidl.config import NetworkSettings
from pypidl.errors import RemoteIndexError
from pypidl.plan._http_files import (
    MIN_FETCH,
    RangeFile,
    RangeIgnored,
    ResponseStream,
    content_range,
    read_bounded,
    spool,
)
from pypidl.session import ARTIFACT_HEADERS, new_session
from tests.lib.server import IndexServer, ServedFile
from tests.lib.wheels import make_sdist, make_wheel

TIMEOUT = (5.0, 5.0)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with new_session(NetworkSettings()) as s:
        yield s


@pytest.fixture
def served(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> tuple[IndexServer, ServedFile, ServedFile]:
    """A server with a wheel much larger than a range read, and an sdist."""
    index = index_server()
    wheel = make_wheel(wheel_dir, "alpha", "1.0", extra_files={"alpha/big.bin": b"x" * 400_000})
    sdist = make_sdist(wheel_dir, "beta", "2.0")
    return index, index.add_file(wheel), index.add_file(sdist)


def get(session: requests.Session, url: str, **headers: str) -> requests.Response:
    return session.get(url, headers={**ARTIFACT_HEADERS, **headers}, timeout=TIMEOUT, stream=True)


def range_file(
    session: requests.Session, wheel: ServedFile, *, validator: str | None = None
) -> RangeFile:
    """A view of ``wheel`` that holds its tail, as the metadata reader starts one."""
    start = wheel.size - MIN_FETCH
    with get(session, wheel.url, Range=f"bytes={start}-{wheel.size - 1}") as resp:
        assert resp.status_code == 206
        tail = resp.content
        etag = resp.headers["ETag"]
    return RangeFile(
        session,
        TIMEOUT,
        wheel.url,
        wheel.size,
        validator or etag,
        (start, tail),
        max_read=wheel.size,
    )


def test_a_wheels_metadata_costs_a_few_range_reads(
    served: tuple[IndexServer, ServedFile, ServedFile], session: requests.Session
) -> None:
    _, wheel, _ = served
    view = range_file(session, wheel)
    with zipfile.ZipFile(view) as zf:
        assert zf.read("alpha-1.0.dist-info/METADATA") == wheel.metadata
    assert view.requests <= 3  # the tail, then the member: never the 400 kB beside it


def test_seek_and_read_anywhere_match_the_file(
    served: tuple[IndexServer, ServedFile, ServedFile], session: requests.Session
) -> None:
    _, wheel, _ = served
    view = range_file(session, wheel)
    assert view.seek(-10, io.SEEK_END) == wheel.size - 10
    assert view.read() == wheel.data[-10:]
    view.seek(100)
    assert view.read(50) == wheel.data[100:150]
    assert view.tell() == 150
    with pytest.raises(OSError, match="negative"):
        view.seek(-1)


def test_a_server_that_stops_honouring_ranges_is_said(
    served: tuple[IndexServer, ServedFile, ServedFile], session: requests.Session
) -> None:
    index, wheel, _ = served
    view = range_file(session, wheel)
    index.ignore_range = True
    with pytest.raises(RangeIgnored):
        view.read(10)


def test_a_file_that_changed_since_the_first_read_is_not_mixed_in(
    served: tuple[IndexServer, ServedFile, ServedFile], session: requests.Session
) -> None:
    _, wheel, _ = served
    view = range_file(session, wheel, validator='"another-version"')
    with pytest.raises(RangeIgnored):  # If-Range did not match: the whole file came back
        view.read(10)


def test_a_huge_range_read_is_refused(
    served: tuple[IndexServer, ServedFile, ServedFile], session: requests.Session
) -> None:
    _, wheel, _ = served
    view = RangeFile(session, TIMEOUT, wheel.url, wheel.size, None, (0, b"P"), max_read=MIN_FETCH)
    view.seek(10)
    with pytest.raises(RemoteIndexError, match="huge range"):
        view.read(3 * MIN_FETCH)
    assert view.requests == 1  # the first read only: nothing was asked


def test_a_stream_counts_and_hashes_what_tarfile_reads(
    served: tuple[IndexServer, ServedFile, ServedFile], session: requests.Session
) -> None:
    _, _, sdist = served
    with get(session, sdist.url) as resp:
        stream = ResponseStream(resp, sdist.size, sdist.url, purpose="its metadata")
        with tarfile.open(fileobj=stream, mode="r|gz") as tar:
            names = [member.name for member in tar]
        while stream.read(64 * 1024):
            pass
    assert "beta-2.0/PKG-INFO" in names
    assert (stream.received, stream.sha256.hexdigest()) == (sdist.size, sdist.sha256)


def test_a_stream_refuses_more_than_its_limit_without_credentials_in_the_message(
    served: tuple[IndexServer, ServedFile, ServedFile], session: requests.Session
) -> None:
    _, wheel, _ = served
    secret_url = wheel.url.replace("http://", "http://user:s3cret@")
    with get(session, wheel.url) as resp:
        stream = ResponseStream(resp, 1000, secret_url, purpose="its metadata")
        with pytest.raises(RemoteIndexError) as caught:
            stream.read()
    assert "not reading it for its metadata" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_spool_keeps_the_whole_body_and_removes_it(
    served: tuple[IndexServer, ServedFile, ServedFile], session: requests.Session
) -> None:
    _, wheel, _ = served
    with spool(get(session, wheel.url), wheel.size, wheel.url) as fh:
        assert fh.read() == wheel.data
    assert fh.closed
    with pytest.raises(RemoteIndexError, match="larger than 1000 bytes"):
        spool(get(session, wheel.url), 1000, wheel.url)
    with get(session, wheel.url) as resp, pytest.raises(RemoteIndexError):
        read_bounded(resp, 1000, wheel.url)


@pytest.mark.parametrize(
    ("header", "parsed"),
    [("bytes 0-99/1000", (0, 1000)), (" bytes 900-999/1000 ", (900, 1000))],
)
def test_content_range(header: str, parsed: tuple[int, int]) -> None:
    assert content_range(header) == parsed


@pytest.mark.parametrize("header", ["", "bytes */1000", "bytes 0-99/*", "items 0-1/2"])
def test_an_unusable_content_range_is_refused(header: str) -> None:
    with pytest.raises(RemoteIndexError, match="Content-Range"):
        content_range(header)
