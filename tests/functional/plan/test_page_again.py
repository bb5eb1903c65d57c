"""An older release's files, made after the page was read: from the page store the client
kept the page in, or from the index when the store no longer holds that page."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from pypidl.config import NetworkSettings
from pypidl.hashing import bytes_sha256
from pypidl.plan import page_files
from pypidl.plan.page_store import PageStore
from pypidl.plan.pages import IndexClient
from pypidl.sources import Mirror
from tests.lib.server import IndexServer
from tests.lib.wheels import make_wheel

NET = NetworkSettings(user_agent="pypidl-tests", retries=0, connect_timeout=5, read_timeout=10)
RELEASES = page_files.RELEASES_AT_READ + page_files.RELEASES_PER_READ + 1


def served(index_server: Callable[..., IndexServer], wheel_dir: Path) -> IndexServer:
    server = index_server()
    for n in range(RELEASES):
        server.add_file(make_wheel(wheel_dir, "demo", f"1.{n}"))
    return server


def page_reads(server: IndexServer) -> int:
    return len(server.requests_matching("/simple/demo/"))


def test_the_body_comes_back_from_the_store_not_from_memory_nor_the_index(
    index_server: Callable[..., IndexServer], wheel_dir: Path, tmp_path: Path
) -> None:
    server = served(index_server, wheel_dir)
    client = IndexClient([Mirror.from_index_url(server.simple_url)], NET, store=PageStore(tmp_path))
    page = client.project("demo")
    assert page._body is not None
    assert page._body.data == b""  # the page keeps no copy of its own
    assert page_reads(server) == 1
    oldest = page.release_files("1.0")
    assert [f.filename for f in oldest] == ["demo-1.0-py3-none-any.whl"]
    assert oldest[0].sha256 == server.files[0].sha256
    assert page_reads(server) == 1


def test_a_page_the_store_lost_or_replaced_is_read_from_the_index_again(
    index_server: Callable[..., IndexServer], wheel_dir: Path, tmp_path: Path
) -> None:
    server = served(index_server, wheel_dir)
    store = PageStore(tmp_path)
    client = IndexClient([Mirror.from_index_url(server.simple_url)], NET, store=store)
    page = client.project("demo")
    url = f"{server.simple_url}demo/"
    # another run replaced the stored page with another one (valid, with its own digest)
    kept = store.get(url)
    assert kept is not None
    body = b'{"meta": {"api-version": "1.1"}, "name": "demo", "files": []}'
    store.put(url, replace(kept, body=body, digest=bytes_sha256(body), etag='"other"'))
    newer = RELEASES - page_files.RELEASES_AT_READ - 1  # the newest release not made yet
    assert [f.filename for f in page.release_files(f"1.{newer}")] == [
        f"demo-1.{newer}-py3-none-any.whl"
    ]
    assert page_reads(server) == 2
    assert store.get(url) == kept  # the index's page, stored again
    # then the cache was cleared: the oldest release, in the next batch, is read again too
    for path in tmp_path.rglob("*.page"):
        path.unlink()
    assert [f.filename for f in page.release_files("1.0")] == ["demo-1.0-py3-none-any.whl"]
    assert page_reads(server) == 3


def test_without_a_store_the_page_keeps_its_body_compressed(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = served(index_server, wheel_dir)
    client = IndexClient([Mirror.from_index_url(server.simple_url)], NET)
    page = client.project("demo")
    assert page._body is not None
    assert page._body.again is None
    assert page._body.data
    assert page.release_files("1.0")[0].filename == "demo-1.0-py3-none-any.whl"
    assert page_reads(server) == 1
