"""Units of the downloader: Retry-After, back-off, result arithmetic, and one-file behaviour that
needs no process pool (a trickling server, cancelling, replacing a wrong file)."""

from __future__ import annotations

import email.utils
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypidl.config import NetworkSettings
from pypidl.fetch import downloader as download
from pypidl.fetch import retry
from pypidl.fetch._response import content_range_start
from pypidl.fetch.downloader import Downloader, FileResult
from pypidl.fetch.part import part_path
from pypidl.fetch.pool import RunReport
from pypidl.fetch.retry import MirrorStats, backoff_delay, retry_after_seconds
from pypidl.hashing import CHUNK_SIZE, file_sha256
from pypidl.manifest import Entry
from pypidl.store.catalog import Catalog
from tests.lib.mirror import entry_for
from tests.lib.server import Stall

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("3", 3.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-4", 0.0),
        ("100000", retry.MAX_RETRY_AFTER),
        ("nan", None),
        ("soon", None),
        (email.utils.formatdate(NOW + 10, usegmt=True), 10.0),
        (email.utils.formatdate(NOW - 10, usegmt=True), 0.0),
        (email.utils.formatdate(NOW + 3600, usegmt=True), retry.MAX_RETRY_AFTER),
    ],
)
def test_retry_after(header, expected):
    assert retry_after_seconds(header, now=NOW) == expected


def test_backoff_grows_with_jitter_and_respects_retry_after():
    firsts = {backoff_delay(1, 1.0) for _ in range(50)}
    assert all(0.5 <= d <= 1.0 for d in firsts)
    assert len(firsts) > 1  # jitter
    assert all(2.0 <= backoff_delay(3, 1.0) <= 4.0 for _ in range(20))
    assert backoff_delay(40, 1.0) <= retry.MAX_BACKOFF
    assert backoff_delay(1, 0.01, retry_after=2.0) == 2.0


@pytest.mark.parametrize(
    ("value", "start"),
    [
        ("bytes 100-199/200", 100),
        ("bytes 0-0/1", 0),
        ("bytes */200", None),
        (None, None),
        ("items 1-2/3", None),
    ],
)
def test_content_range_start(value, start):
    assert content_range_start(value) == start


def test_failure_text_lists_each_mirror_only_when_several():
    assert download._all_failed({"a:1": "404 Not Found"}) == "All mirrors failed: 404 Not Found"
    assert download._all_failed({"a:1": "404 Not Found", "b": "timed out"}) == (
        "All mirrors failed: a:1: 404 Not Found; b: timed out"
    )
    assert download._all_failed({}).startswith("All mirrors failed:")


def test_mirror_key_never_carries_credentials():
    assert (
        retry.mirror_key("https://user:pw@host.example:8443/packages/x.whl") == "host.example:8443"
    )


def entry(
    name: str = "demo", data: bytes = b"payload", url: str = "http://127.0.0.1:9/x", **kw
) -> Entry:
    fields = {
        "project": name,
        "version": "1.0",
        "filename": f"{name}-1.0-py3-none-any.whl",
        "urls": (url,),
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    fields.update(kw)
    return Entry(**fields)  # type: ignore[arg-type]


def test_reports_add_up():
    a, b = entry("a"), entry("b")
    left = RunReport([FileResult(a, "downloaded", 7)], {"m": MirrorStats(1, 7, 0)})
    right = RunReport(
        [FileResult(b, "failed", error="x")],
        {"m": MirrorStats(0, 3, 2, True), "n": MirrorStats(1)},
        interrupted=True,
    )
    total = left + right
    assert total.mirrors == {"m": MirrorStats(1, 10, 2, True), "n": MirrorStats(1)}
    assert [r.entry.project for r in total.downloaded] == ["a"]
    assert total.failed_projects == ["b"]
    assert total.skipped == []
    assert total.interrupted
    assert not total.ok
    assert left.ok


def test_part_path_is_hidden_beside_the_file(tmp_path):
    assert part_path(tmp_path / "x-1.0.tar.gz") == tmp_path / ".pypidl-x-1.0.tar.gz.part"


# --------------------------------------------------------------------------- with a server


@pytest.fixture
def trickler() -> Iterator[str]:
    """An HTTP server that promises 100 kB and sends one byte every 50 ms, forever."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            while not stop.wait(0.05):
                try:
                    conn.sendall(b"x")
                except OSError:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/trickle-1.0-py3-none-any.whl"
    stop.set()
    thread.join(5)
    listener.close()


def test_a_trickling_server_cannot_hold_a_thread(trickler, tmp_path):
    # Each byte arrives well within the read timeout; only the stall watchdog can end this.
    net = NetworkSettings(backoff=0.01, retries=2, read_timeout=1, stall_timeout=0.5)
    e = entry("trickle", data=b"y" * 100_000, url=trickler)
    started = time.monotonic()
    with Downloader(tmp_path, net) as dl:
        result = dl.fetch(e)
    assert result is not None
    assert result.status == "failed"
    assert "stalled" in (result.error or "")
    assert result.attempts == 2
    assert time.monotonic() - started < 5


def blob(directory: Path, name: str, size: int) -> Path:
    path = directory / f"{name}-1.0-py3-none-any.whl"
    path.write_bytes(bytes(i % 251 for i in range(size)))
    return path


def test_cancel_stops_a_transfer_mid_body_and_keeps_the_part(index_server, tmp_path):
    server = index_server()
    served = server.add_file(blob(tmp_path, "big", 3 * CHUNK_SIZE), metadata=False)
    server.fail(served.url_path, Stall(CHUNK_SIZE + 10, 30))
    net = NetworkSettings(backoff=0.01, read_timeout=30, stall_timeout=30)
    root = tmp_path / "m"
    with Downloader(root, net) as dl:
        timer = threading.Timer(0.5, dl.cancel)
        timer.start()
        started = time.monotonic()
        result = dl.fetch(entry_for(served))
        timer.join()
        assert dl.fetch(entry_for(served)) is None  # nothing new starts once cancelled
    assert time.monotonic() - started < 5
    assert result is not None
    assert result.status == "interrupted"
    assert result.error == "interrupted (partial download kept for resume)"
    final = root / "packages" / "big" / served.filename
    assert not final.exists()
    assert part_path(final).stat().st_size == CHUNK_SIZE


def test_a_wrong_file_under_the_final_name_is_replaced_and_forgotten(index_server, tmp_path):
    server = index_server()
    served = server.add_file(blob(tmp_path, "demo", 5000), metadata=False)
    e = entry_for(served)
    root = tmp_path / "m"
    final = root / "packages" / "demo" / served.filename
    final.parent.mkdir(parents=True)
    final.write_bytes(b"short")
    Catalog(root).add(e, final)  # a record that no longer matches what is on disk
    final.write_bytes(b"other bytes, other size")

    with Downloader(root, NetworkSettings(backoff=0.01)) as dl:
        result = dl.fetch(e)

    assert result is not None
    assert result.status == "downloaded"
    assert file_sha256(final) == served.sha256
    assert Catalog(root).current(e)


def test_an_empty_file_is_downloaded(index_server, tmp_path):
    server = index_server()
    path = tmp_path / "empty-1.0-py3-none-any.whl"
    path.write_bytes(b"")
    served = server.add_file(path, metadata=False)
    root = tmp_path / "m"
    with Downloader(root, NetworkSettings(backoff=0.01)) as dl:
        result = dl.fetch(entry_for(served))
    assert result is not None
    assert result.status == "downloaded"
    assert (root / "packages" / "empty" / path.name).read_bytes() == b""
    assert list(root.rglob(".pypidl-*")) == []
