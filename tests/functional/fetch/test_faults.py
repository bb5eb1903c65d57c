"""The engine on a hostile network: every injected fault ends with every file verified,
no temporary file left behind, and a re-run that sends no request."""

from __future__ import annotations

import random
from pathlib import Path

from pypidl.config import NetworkSettings
from pypidl.fetch import pool as engine
from pypidl.fetch.downloader import FileResult
from pypidl.fetch.part import part_path
from pypidl.hashing import CHUNK_SIZE, file_sha256
from pypidl.manifest import Entry
from tests.lib.mirror import entry_for
from tests.lib.server import Corrupt, Cut, Drop, IndexServer, ServedFile, Stall, Status

SIZE = 4 * CHUNK_SIZE + 12_345  # several chunks, and a ragged end
FAST = NetworkSettings(backoff=0.01, retries=4, connect_timeout=5, read_timeout=5, stall_timeout=5)


def blob_wheel(directory: Path, name: str, size: int = SIZE) -> Path:
    """A file the server serves as a wheel: incompressible bytes, exactly ``size`` long."""
    path = directory / f"{name}-1.0-py3-none-any.whl"
    path.write_bytes(random.Random(name).randbytes(size))  # noqa: S311 - test data
    return path


def serve(server: IndexServer, directory: Path, *names: str) -> list[ServedFile]:
    return [server.add_file(blob_wheel(directory, n), metadata=False) for n in names]


class Recorder:
    def __init__(self) -> None:
        self.bytes = 0
        self.files: list[FileResult] = []
        self.logs: list[tuple[int, str]] = []

    def on_start(self, total_files: int, total_bytes: int) -> None:
        pass

    def on_bytes(self, n: int) -> None:
        self.bytes += n

    def on_file(self, result: FileResult) -> None:
        self.files.append(result)

    def on_log(self, level: int, message: str) -> None:
        self.logs.append((level, message))


def run(entries, root, net=FAST, concurrency=8, events=None):
    return engine.run(
        entries,
        root,
        options=engine.EngineOptions(concurrency=concurrency, processes=1, net=net),
        events=events,
    )


def assert_complete(root: Path, entries: list[Entry], *servers: IndexServer) -> None:
    """Every file verified under its final name, no temp file, and a re-run asks nothing."""
    for e in entries:
        assert file_sha256(root / "packages" / e.project / e.filename) == e.sha256
    assert sorted(p.name for p in root.rglob(".pypidl-*")) == []
    for s in servers:
        s.clear_faults()
        s.clear_requests()
    again = run(entries, root)
    assert [r.status for r in again.results] == ["skipped"] * len(entries)
    assert [r for s in servers for r in s.requests] == []


def test_503_bursts_are_retried(index_server, tmp_path):
    server = index_server()
    files = serve(server, tmp_path, "a", "b", "c")
    for f in files:
        server.fail(f.url_path, Status(503), Status(502), Status(503, body=b"busy"))
    entries = [entry_for(f) for f in files]

    report = run(entries, tmp_path / "m")

    assert [r.status for r in report.results] == ["downloaded"] * 3
    assert {r.attempts for r in report.results} == {4}
    assert report.mirrors[f"127.0.0.1:{server.port}"].failures == 9
    assert_complete(tmp_path / "m", entries, server)


def test_too_many_503_fail_with_the_last_reason(index_server, tmp_path):
    server = index_server()
    (f,) = serve(server, tmp_path, "a")
    server.fail_always(f.url_path, Status(503))
    report = run([entry_for(f)], tmp_path / "m", net=NetworkSettings(backoff=0.01, retries=3))
    assert report.failed[0].error == "All mirrors failed: 503 Service Unavailable"
    assert report.failed[0].attempts == 3
    assert len(server.requests) == 3
    assert list((tmp_path / "m").rglob(".pypidl-*")) == []


def test_retry_after_is_honoured(index_server, tmp_path):
    server = index_server()
    (f,) = serve(server, tmp_path, "a")
    server.fail(f.url_path, Status(429, {"Retry-After": "1"}))

    report = run([entry_for(f)], tmp_path / "m")

    assert report.downloaded
    first, second = server.requests
    assert second.time - first.time >= 0.95  # the back-off base is 10 ms: only Retry-After waits
    assert_complete(tmp_path / "m", [entry_for(f)], server)


def test_cut_body_resumes_with_range(index_server, tmp_path):
    server = index_server()
    (f,) = serve(server, tmp_path, "a")
    server.fail(f.url_path, Cut(2 * CHUNK_SIZE + 5000))
    events = Recorder()

    report = run([entry_for(f)], tmp_path / "m", events=events)

    assert report.downloaded[0].attempts == 2
    first, second = server.requests
    assert "Range" not in first.headers
    kept = int(second.headers["Range"].removeprefix("bytes=").rstrip("-"))
    assert kept > 0
    assert kept % CHUNK_SIZE == 0  # whole chunks were kept, the torn one was not
    assert second.headers["If-Range"] == f'"{f.sha256}"'  # the server's ETag
    assert second.headers["Accept-Encoding"] == "identity"
    # Resume fetched only the rest: the bytes add up to the file exactly once.
    assert events.bytes == f.size
    assert report.mirrors[f"127.0.0.1:{server.port}"].bytes == f.size
    assert_complete(tmp_path / "m", [entry_for(f)], server)


def test_server_ignoring_range_gets_a_full_download(index_server, tmp_path):
    server = index_server()
    server.ignore_range = True
    (f,) = serve(server, tmp_path, "a")
    server.fail(f.url_path, Cut(2 * CHUNK_SIZE + 5000))
    events = Recorder()

    report = run([entry_for(f)], tmp_path / "m", events=events)

    assert report.downloaded
    assert "Range" in server.requests[1].headers  # asked for a range, got the whole file
    assert events.bytes == 2 * CHUNK_SIZE + f.size
    assert_complete(tmp_path / "m", [entry_for(f)], server)


def test_corrupt_body_goes_to_the_next_mirror(index_server, tmp_path):
    bad, good = index_server(), index_server()
    files = serve(bad, tmp_path, "a", "b")
    for f in files:
        good.add_file(tmp_path / f.filename, metadata=False)
    bad.fail_always("/packages/*", Corrupt())
    entries = [entry_for(f, bad, good) for f in files]

    report = run(entries, tmp_path / "m")

    assert {r.mirror for r in report.downloaded} == {f"127.0.0.1:{good.port}"}
    assert len(report.downloaded) == 2
    assert report.mirrors[f"127.0.0.1:{bad.port}"].failures == 2
    assert report.mirrors[f"127.0.0.1:{bad.port}"].files == 0
    # each file tried there once, then moved on (the HEAD is the engine's reachability probe)
    assert len([r for r in bad.requests if r.method == "GET"]) == 2
    assert_complete(tmp_path / "m", entries, bad, good)


def test_one_corrupt_answer_is_retried_on_a_single_mirror(index_server, tmp_path):
    server = index_server()
    (f,) = serve(server, tmp_path, "a")
    server.fail(f.url_path, Corrupt())
    report = run([entry_for(f)], tmp_path / "m")
    assert report.downloaded[0].attempts == 2
    assert "Range" not in server.requests[1].headers  # the bad part was thrown away
    assert_complete(tmp_path / "m", [entry_for(f)], server)


def test_a_mirror_that_is_down_is_set_aside(index_server, tmp_path):
    down, up = index_server(), index_server()
    names = [f"p{i}" for i in range(12)]
    files = [up.add_file(blob_wheel(tmp_path, n, size=3000), metadata=False) for n in names]
    for f in files:
        down.add_file(tmp_path / f.filename, metadata=False)
    down.down = True
    entries = [entry_for(f, down, up) for f in files]
    events = Recorder()

    report = run(entries, tmp_path / "m", concurrency=2, events=events)

    assert len(report.downloaded) == 12
    assert {r.mirror for r in report.downloaded} == {f"127.0.0.1:{up.port}"}
    stats = report.mirrors[f"127.0.0.1:{down.port}"]
    assert stats.set_aside
    assert stats.files == 0
    assert len(down.requests) < 12  # once set aside, files no longer try it first
    assert any("set aside" in m for _, m in events.logs)
    assert_complete(tmp_path / "m", entries, up)


def test_a_stalled_transfer_is_abandoned_and_resumed(index_server, tmp_path):
    server = index_server()
    (f,) = serve(server, tmp_path, "a")
    server.fail(f.url_path, Stall(CHUNK_SIZE + 100, 30))
    net = NetworkSettings(backoff=0.01, retries=3, read_timeout=30, stall_timeout=0.5)

    report = run([entry_for(f)], tmp_path / "m", net=net)

    assert report.downloaded[0].attempts == 2
    first, second = server.requests
    assert second.time - first.time < 5
    assert second.headers["Range"] == f"bytes={CHUNK_SIZE}-"
    assert_complete(tmp_path / "m", [entry_for(f)], server)


def test_dropped_connections_are_retried(index_server, tmp_path):

    server = index_server()
    (f,) = serve(server, tmp_path, "a")
    server.fail(f.url_path, Drop(), Drop())
    report = run([entry_for(f)], tmp_path / "m")
    assert report.downloaded[0].attempts == 3
    assert_complete(tmp_path / "m", [entry_for(f)], server)


def test_a_part_from_an_earlier_run_is_hashed_and_resumed(index_server, tmp_path):
    server = index_server()
    (f,) = serve(server, tmp_path, "a")
    final = tmp_path / "m" / "packages" / f.project / f.filename
    final.parent.mkdir(parents=True)
    part_path(final).write_bytes(f.data[:100_000])

    report = run([entry_for(f)], tmp_path / "m")

    assert report.downloaded
    assert [r.headers.get("Range") for r in server.requests] == ["bytes=100000-"]
    assert_complete(tmp_path / "m", [entry_for(f)], server)


def test_a_part_with_wrong_bytes_is_replaced_by_a_full_download(index_server, tmp_path):
    server = index_server()
    (f,) = serve(server, tmp_path, "a")
    final = tmp_path / "m" / "packages" / f.project / f.filename
    final.parent.mkdir(parents=True)
    part_path(final).write_bytes(b"\0" * 100_000)

    report = run([entry_for(f)], tmp_path / "m")

    assert report.downloaded
    assert [r.headers.get("Range") for r in server.requests] == ["bytes=100000-", None]
    assert_complete(tmp_path / "m", [entry_for(f)], server)


def test_a_complete_part_is_published_without_a_request(index_server, tmp_path):
    server = index_server()
    (f,) = serve(server, tmp_path, "a")
    final = tmp_path / "m" / "packages" / f.project / f.filename
    final.parent.mkdir(parents=True)
    part_path(final).write_bytes(f.data)

    report = run([entry_for(f)], tmp_path / "m")

    assert report.downloaded[0].attempts == 0
    assert server.requests == []
    assert_complete(tmp_path / "m", [entry_for(f)], server)


def test_416_drops_the_part_and_starts_over(index_server, tmp_path):
    server = index_server()
    (f,) = serve(server, tmp_path, "a")
    final = tmp_path / "m" / "packages" / f.project / f.filename
    final.parent.mkdir(parents=True)
    part_path(final).write_bytes(f.data + b"extra")  # longer than the file; size unknown to us

    report = run([entry_for(f, size=False)], tmp_path / "m")

    assert report.downloaded
    assert [r.headers.get("Range") for r in server.requests] == [f"bytes={f.size + 5}-", None]
    assert_complete(tmp_path / "m", [entry_for(f, size=False)], server)


def test_a_file_whose_size_differs_from_the_manifest_is_never_published(index_server, tmp_path):
    server = index_server()
    (f,) = serve(server, tmp_path, "a")
    entry = Entry(
        project=f.project,
        version=f.version,
        filename=f.filename,
        urls=(f.url,),
        sha256=f.sha256,
        size=f.size + 1,
    )
    report = run([entry], tmp_path / "m")
    assert report.failed[0].error == (
        f"All mirrors failed: the server's file has {f.size} bytes, expected {f.size + 1}"
    )
    assert len(server.requests) == 1
    assert list((tmp_path / "m").rglob("*.whl")) == []


def test_unreachable_mirrors_are_tried_last_and_a_complete_mirror_probes_nothing(
    index_server, tmp_path
):
    """A manifest may list mirrors this host cannot reach: one probe each, then they go last."""
    dead1, dead2, up = index_server(), index_server(), index_server()
    files = [up.add_file(blob_wheel(tmp_path, n, size=3000), metadata=False) for n in ("a", "b")]
    for f in files:
        dead1.add_file(tmp_path / f.filename, metadata=False)
        dead2.add_file(tmp_path / f.filename, metadata=False)
    dead1.down = dead2.down = True
    entries = [entry_for(f, dead1, dead2, up) for f in files]
    events = Recorder()

    report = run(entries, tmp_path / "m", events=events)

    assert len(report.downloaded) == 2
    for dead in (dead1, dead2):
        assert [r.method for r in dead.requests] == ["HEAD"]  # the probe, and nothing else
        assert report.mirrors[f"127.0.0.1:{dead.port}"].set_aside
    assert sum("unreachable" in m for _, m in events.logs) == 2
    # a re-run over the complete mirror asks nobody anything, not even a probe
    for server in (dead1, dead2, up):
        server.clear_requests()
    again = run(entries, tmp_path / "m")
    assert len(again.skipped) == 2
    assert dead1.requests == dead2.requests == up.requests == []


def test_the_only_mirror_is_never_set_aside(index_server, tmp_path):
    """Transient failures on a lone mirror are retried, never turned into 'set aside'."""
    server = index_server()
    files = [
        server.add_file(blob_wheel(tmp_path, f"s{i}", size=2000), metadata=False) for i in range(8)
    ]
    for f in files:
        server.fail(f.url_path, Drop())
    # eight streams: every first attempt fails before any succeeds, eight failures in a row
    report = run([entry_for(f) for f in files], tmp_path / "m", concurrency=8)
    assert len(report.downloaded) == 8
    stats = report.mirrors[f"127.0.0.1:{server.port}"]
    assert stats.failures == 8
    assert not stats.set_aside
