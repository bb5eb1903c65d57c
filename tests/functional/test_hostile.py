"""A hostile world: concurrent runs on one mirror, hostile index pages, planted symlinks.

Every test drives real code against real loopback servers and real files.
"""

from __future__ import annotations

import dataclasses
import gzip
import http.server
import random
import threading
import time
from pathlib import Path

import pytest

from pypidl.config import NetworkSettings
from pypidl.errors import RemoteIndexError
from pypidl.fetch.downloader import DOWNLOADED, FAILED, Downloader
from pypidl.fetch.part import part_path
from pypidl.hashing import file_sha256
from pypidl.plan import pages as index_client
from pypidl.plan.pages import IndexClient
from pypidl.sources import Mirror
from tests.lib.mirror import entry_for
from tests.lib.server import Cut, Delay, Stall, Status
from tests.lib.wheels import make_wheel

FAST = NetworkSettings(backoff=0.01, retries=3, connect_timeout=5, read_timeout=5, stall_timeout=5)


def _wheel(wheel_dir: Path, name: str, size: int = 3_000_000) -> Path:
    data = random.Random(name).randbytes(size)  # noqa: S311 - test data
    return make_wheel(wheel_dir, name, "1.0", extra_files={f"{name}/blob.bin": data})


def test_two_runs_on_one_file_never_publish_a_wrong_file(index_server, wheel_dir, tmp_path):
    """Run A pauses half-way; run B takes the same file meanwhile; A must not corrupt it."""
    server = index_server()
    served = server.add_file(_wheel(wheel_dir, "shared"))
    entry = entry_for(served)
    root = tmp_path / "mirror"
    final = root / entry.relpath
    # A gets half the file, then waits a second for the rest: B starts in that second
    server.fail(served.url_path, Cut(served.size // 2), Delay(1.0))
    results = {}

    def run_a() -> None:
        with Downloader(root, FAST) as dl:
            results["a"] = dl.fetch(entry)

    thread = threading.Thread(target=run_a)
    thread.start()
    part = part_path(final)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (part.exists() and part.stat().st_size > 0):
        time.sleep(0.01)
    with Downloader(root, FAST) as dl:
        results["b"] = dl.fetch(entry)
    thread.join(10)
    assert not thread.is_alive()
    # whatever each run reports, the file under the final name is the right one
    assert file_sha256(final) == entry.sha256
    assert results["a"].status == DOWNLOADED
    assert results["b"].status == FAILED
    assert "another pypidl run is working on shared" in (results["b"].error or "")
    # the lock is released with the run: the next run is free to work on the project
    with Downloader(root, FAST) as dl:
        assert dl.fetch(entry).status == "skipped"


def test_a_part_replaced_under_a_download_is_not_published(index_server, wheel_dir, tmp_path):
    """Someone swaps the part file mid-download (a tool that ignores the lock): never published."""
    server = index_server()
    served = server.add_file(_wheel(wheel_dir, "swapped"))
    entry = entry_for(served)
    root = tmp_path / "mirror"
    final = root / entry.relpath
    part = part_path(final)
    server.fail(served.url_path, Stall(served.size // 2, 0.5))
    results = {}

    def run() -> None:
        with Downloader(root, FAST) as dl:
            results["a"] = dl.fetch(entry)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (part.exists() and part.stat().st_size > 0):
        time.sleep(0.01)
    size = part.stat().st_size
    swap = part.with_name("swap")
    swap.write_bytes(b"\0" * size)
    swap.replace(part)
    thread.join(10)
    assert not thread.is_alive()
    assert results["a"].status == FAILED
    assert "changed on disk" in (results["a"].error or "")
    assert not final.exists()
    with Downloader(root, FAST) as dl:  # a re-run completes the job
        assert dl.fetch(entry).status == DOWNLOADED
    assert file_sha256(final) == entry.sha256


def test_a_planted_part_symlink_never_writes_outside(index_server, wheel_dir, tmp_path):
    """``.pypidl-<file>.part`` planted as a symlink to a file outside the mirror."""
    server = index_server()
    served = server.add_file(_wheel(wheel_dir, "planted", size=1000))
    entry = entry_for(served)
    root = tmp_path / "mirror"
    final = root / entry.relpath
    final.parent.mkdir(parents=True)
    outside = tmp_path / "victim.txt"
    outside.write_bytes(b"precious")
    part_path(final).symlink_to(outside)
    with Downloader(root, FAST) as dl:
        result = dl.fetch(entry)
    assert outside.read_bytes() == b"precious"
    assert result.status == DOWNLOADED
    assert file_sha256(final) == entry.sha256
    assert not final.is_symlink()


def test_a_final_name_symlinked_to_another_file_is_left_alone(index_server, wheel_dir, tmp_path):
    """``packages/a/a-1.0...whl`` planted as a symlink to another project's file in the mirror."""
    server = index_server()
    served = server.add_file(_wheel(wheel_dir, "first", size=1000))
    entry = entry_for(served)
    root = tmp_path / "mirror"
    other = root / "packages" / "second" / "second-1.0-py3-none-any.whl"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"someone else's file")
    final = root / entry.relpath
    final.parent.mkdir(parents=True)
    final.symlink_to(other)
    with Downloader(root, FAST) as dl:
        result = dl.fetch(entry)
    assert other.read_bytes() == b"someone else's file"
    assert result.status == FAILED
    assert "symlink" in (result.error or "")


# --------------------------------------------------------------------------- hostile index pages


def _client(url: str) -> IndexClient:
    return IndexClient([Mirror.from_index_url(url)], FAST, workers=1)


def test_a_gzip_bomb_page_is_refused_not_inflated(index_server, monkeypatch):
    """A 64 MiB page sent as 64 KiB of gzip: pypidl stops at its page limit."""
    monkeypatch.setattr(index_client, "MAX_PAGE_BYTES", 1024 * 1024, raising=False)
    bomb = gzip.compress(b" " * (64 * 1024 * 1024), compresslevel=9)
    server = index_server()
    headers = {"Content-Type": "text/html", "Content-Encoding": "gzip"}
    server.fail_always("/simple/bomb/", Status(200, headers, bomb))
    with pytest.raises(RemoteIndexError, match="larger than 1 MiB"):
        _client(server.simple_url).project("bomb")


class _EndlessPage(http.server.BaseHTTPRequestHandler):
    """A project page whose body never ends (up to 256 MiB, to keep a broken client finite)."""

    sent = 0

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        chunk = b"<!-- filler -->" * 4096
        try:
            while type(self).sent < 256 * 1024 * 1024:
                self.wfile.write(chunk)
                type(self).sent += len(chunk)
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_page_that_never_ends_is_read_only_up_to_the_limit(monkeypatch):
    monkeypatch.setattr(index_client, "MAX_PAGE_BYTES", 1024 * 1024, raising=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EndlessPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
        with pytest.raises(RemoteIndexError, match="larger than 1 MiB"):
            _client(url).project("endless")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert _EndlessPage.sent < 64 * 1024 * 1024


class _TricklingPage(http.server.BaseHTTPRequestHandler):
    """A project page that sends a byte every 20 ms, well inside any read timeout, for ever."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        try:
            for _ in range(5000):  # bounded: 100 s at most, should a broken client keep reading
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.02)
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_trickling_page_is_abandoned_after_its_time_limit(monkeypatch):
    monkeypatch.setattr(index_client, "MAX_PAGE_SECONDS", 0.5)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TricklingPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
        with pytest.raises(RemoteIndexError, match=r"did not arrive within 0\.5 s"):
            _client(url).project("slow")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_credentials_do_not_follow_a_redirect_to_another_host(index_server, wheel_dir, tmp_path):
    """The index answers with a redirect to another host: that host never sees the password."""
    other = index_server()
    served = other.add_file(_wheel(wheel_dir, "moved", size=1000))
    index = index_server()
    index.fail_always("/simple/moved/", Status(302, {"Location": other.simple_url + "moved/"}))
    index.fail_always("/files/*", Status(302, {"Location": served.url}))
    net = NetworkSettings(
        backoff=0.01, retries=1, credentials=(((f"127.0.0.1:{index.port}"), "user", "s3cret"),)
    )
    page = IndexClient([Mirror.from_index_url(index.simple_url)], net, workers=1).project("moved")
    assert [f.filename for f in page.files] == [served.filename]
    entry = entry_for(served)
    entry = dataclasses.replace(entry, urls=(f"{index.url}/files/{served.filename}",))
    with Downloader(tmp_path / "mirror", net) as dl:
        assert dl.fetch(entry).status == DOWNLOADED
    assert other.requests
    assert all("Authorization" not in r.headers for r in other.requests)
    assert any("Authorization" in r.headers for r in index.requests)
