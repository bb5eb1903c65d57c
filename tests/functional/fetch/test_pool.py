"""The download engine against a real loopback index: the happy path, re-runs, unsafe names,
files missing everywhere, and credentials."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import pytest

from pypidl.config import NetworkSettings
from pypidl.fetch import pool as engine
from pypidl.fetch.downloader import FileResult
from pypidl.hashing import file_sha256
from pypidl.manifest import Entry
from pypidl.store.catalog import Catalog
from tests.lib.mirror import entry_for
from tests.lib.server import ServedFile
from tests.lib.wheels import make_wheel

FAST = NetworkSettings(backoff=0.01, retries=3, connect_timeout=5, read_timeout=5, stall_timeout=5)


def build(wheel_dir: Path, name: str, version: str = "1.0", size: int = 50_000) -> Path:
    data = random.Random(f"{name}-{version}").randbytes(size)  # noqa: S311 - test data
    return make_wheel(
        wheel_dir, name, version, extra_files={f"{name.replace('-', '_')}/blob.bin": data}
    )


class Recorder:
    """An Events implementation that keeps everything it is told."""

    def __init__(self) -> None:
        self.started: tuple[int, int] | None = None
        self.bytes = 0
        self.files: list[FileResult] = []
        self.logs: list[tuple[int, str]] = []

    def on_start(self, total_files: int, total_bytes: int) -> None:
        self.started = (total_files, total_bytes)

    def on_bytes(self, n: int) -> None:
        self.bytes += n

    def on_file(self, result: FileResult) -> None:
        self.files.append(result)

    def on_log(self, level: int, message: str) -> None:
        self.logs.append((level, message))


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "packages").rglob(".pypidl-*"))


def test_many_projects_across_processes(index_server, wheel_dir, tmp_path):
    server = index_server()
    files = [
        server.add_file(build(wheel_dir, f"proj{i}", size=20_000 + i * 1000)) for i in range(12)
    ]
    files.append(server.add_file(build(wheel_dir, "proj0", "2.0")))
    entries = [entry_for(f) for f in files]
    root = tmp_path / "mirror"
    events = Recorder()

    report = engine.run(
        entries,
        root,
        options=engine.EngineOptions(concurrency=6, processes=2, net=FAST),
        events=events,
    )

    assert not report.failed
    assert not report.interrupted
    assert len(report.downloaded) == len(entries)
    assert events.started == (len(entries), sum(f.size for f in files))
    assert events.bytes == sum(f.size for f in files)
    assert {r.entry.filename for r in events.files} == {f.filename for f in files}
    for f in files:
        path = root / "packages" / f.project / f.filename
        assert file_sha256(path) == f.sha256
    assert Catalog(root).load("proj0").keys() == {files[0].filename, files[-1].filename}
    stats = report.mirrors[f"127.0.0.1:{server.port}"]
    assert stats.files == len(files)
    assert stats.bytes == sum(f.size for f in files)
    assert leftovers(root) == []


def test_rerun_over_complete_mirror_sends_nothing_and_rehashes_nothing(
    index_server, wheel_dir, tmp_path
):
    server = index_server()
    files = [server.add_file(build(wheel_dir, f"p{i}")) for i in range(3)]
    entries = [entry_for(f) for f in files]
    root = tmp_path / "mirror"
    assert not engine.run(entries, root, options=engine.EngineOptions(net=FAST)).failed

    # Corrupt one file in place, keeping its size, inode and mtime: only a rehash could notice.
    path = root / "packages" / files[0].project / files[0].filename
    before = os.stat(path)
    with open(path, "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_ino == before.st_ino
    server.clear_requests()

    report = engine.run(entries, root, options=engine.EngineOptions(net=FAST))

    assert server.requests == []
    assert [r.status for r in report.results] == ["skipped"] * 3
    assert file_sha256(path) != files[0].sha256  # trusted on stat alone: it was not rehashed


def test_existing_file_without_record_is_rehashed_not_fetched(index_server, wheel_dir, tmp_path):
    server = index_server()
    good, bad = (server.add_file(build(wheel_dir, n)) for n in ("good", "bad"))
    root = tmp_path / "mirror"
    for f in (good, bad):
        (root / "packages" / f.project).mkdir(parents=True)
    (root / "packages" / "good" / good.filename).write_bytes(good.data)
    (root / "packages" / "bad" / bad.filename).write_bytes(
        b"x" * bad.size
    )  # right size, wrong bytes

    report = engine.run(
        [entry_for(good), entry_for(bad)], root, options=engine.EngineOptions(net=FAST)
    )

    by_name = {r.entry.project: r.status for r in report.results}
    assert by_name == {"good": "skipped", "bad": "downloaded"}
    assert [r.path for r in server.requests] == [urlpath(bad)]
    assert file_sha256(root / "packages" / "bad" / bad.filename) == bad.sha256
    assert Catalog(root).current(entry_for(good))


def urlpath(served: ServedFile) -> str:
    return served.url_path


def test_missing_everywhere_fails_that_file_only(index_server, wheel_dir, tmp_path):
    one, two = index_server(), index_server()
    files = [f for name in ("here", "gone") for f in (one.add_file(build(wheel_dir, name)),)]
    for f in files:
        two.add_file(wheel_dir / f.filename)
    entries = [entry_for(f, one, two) for f in files]
    one.remove_file(files[1].filename)
    two.remove_file(files[1].filename)

    report = engine.run(entries, tmp_path / "m", options=engine.EngineOptions(net=FAST))

    assert [r.entry.project for r in report.downloaded] == ["here"]
    assert report.failed_projects == ["gone"]
    error = report.failed[0].error or ""
    assert error.startswith("All mirrors failed:")
    assert error.count("404 Not Found") == 2
    assert f"127.0.0.1:{one.port}" in error
    assert f"127.0.0.1:{two.port}" in error
    # 404 is final for a URL: one request per mirror, no retries.
    assert len(one.requests_matching("*gone*")) == 1
    assert len(two.requests_matching("*gone*")) == 1
    assert leftovers(tmp_path / "m") == []


def test_single_mirror_404_reads_like_the_seed(index_server, wheel_dir, tmp_path):
    server = index_server()
    f = server.add_file(build(wheel_dir, "gone"))
    entry = entry_for(f)
    server.remove_file(f.filename)
    report = engine.run([entry], tmp_path / "m", options=engine.EngineOptions(net=FAST))
    assert report.failed[0].error == "All mirrors failed: 404 Not Found"
    assert not (tmp_path / "m" / "packages" / "gone" / f.filename).exists()


@pytest.mark.parametrize(
    ("project", "filename"),
    [
        ("ok", "../evil-1.0-py3-none-any.whl"),
        ("ok", "..\\evil-1.0-py3-none-any.whl"),
        ("..", "evil-1.0-py3-none-any.whl"),
        ("ok", ".pypidl-evil.part"),
        ("ok", "/etc/evil-1.0-py3-none-any.whl"),
    ],
)
def test_unsafe_names_are_refused_without_writing(
    index_server, wheel_dir, tmp_path, project, filename
):
    server = index_server()
    f = server.add_file(build(wheel_dir, "ok"))
    evil = Entry(project=project, version="1.0", filename=filename, urls=(f.url,), sha256=f.sha256)
    root = tmp_path / "deep" / "mirror"
    root.mkdir(parents=True)

    report = engine.run([evil, entry_for(f)], root, options=engine.EngineOptions(net=FAST))

    assert [r.status for r in report.results if r.entry is evil] == ["failed"]
    assert "unsafe" in (report.failed[0].error or "")
    assert server.requests_matching(f.url_path)
    assert len(server.requests) == 1
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert all(p.startswith("deep/mirror/") for p in written if not p.startswith("dists/"))


def test_credentials_are_sent_and_never_shown(index_server, wheel_dir, tmp_path, caplog):
    server = index_server(auth=("u", "s3cret-pw"))
    good = server.add_file(build(wheel_dir, "private"))
    gone = server.add_file(build(wheel_dir, "gone"))
    entries = [entry_for(good), entry_for(gone)]
    server.remove_file(gone.filename)
    net = NetworkSettings(
        backoff=0.01, retries=2, credentials=((f"127.0.0.1:{server.port}", "u", "s3cret-pw"),)
    )
    events = Recorder()
    caplog.set_level(logging.DEBUG)

    report = engine.run(
        entries, tmp_path / "m", options=engine.EngineOptions(net=net), events=events
    )

    assert [r.entry.project for r in report.downloaded] == ["private"]
    assert all(r.headers.get("Authorization", "").startswith("Basic ") for r in server.requests)
    shown = [m for _, m in events.logs] + [r.getMessage() for r in caplog.records]
    shown += [repr(r) for r in report.results] + [repr(report.mirrors), repr(net)]
    assert events.logs  # the worker did log (retries, failures) ...
    assert not [s for s in shown if "s3cret" in s]  # ... and never the password


def test_without_credentials_a_private_index_fails_cleanly(index_server, wheel_dir, tmp_path):
    server = index_server(auth=("u", "p"))
    f = server.add_file(build(wheel_dir, "private"))
    report = engine.run([entry_for(f)], tmp_path / "m", options=engine.EngineOptions(net=FAST))
    assert report.failed[0].error == "All mirrors failed: 401 Unauthorized"


def test_default_processes_fit_the_work():
    def entries(n: int, projects: int, size: int) -> list[Entry]:
        return [
            Entry(
                project=f"p{i % projects}",
                version="1.0",
                filename=f"p{i}-1.0.tar.gz",
                urls=("http://127.0.0.1/x",),
                sha256="0" * 64,
                size=size,
            )
            for i in range(n)
        ]

    assert engine.default_processes(entries(3, 3, 1000), 256) == 1
    assert engine.default_processes([], 256) == 1
    assert engine.default_processes(entries(400, 1, 10**8), 256) == 1  # one project: one process
    # a few large files: one process already hashes and writes them on every CPU
    assert engine.default_processes(entries(12, 12, 10**8), 256) == 1
    many = engine.default_processes(entries(400, 100, 10**8), 256)
    assert 1 <= many <= min(os.cpu_count() or 1, engine.MAX_DEFAULT_PROCESSES)
    assert engine.default_processes(entries(400, 100, 10**8), 1) == 1  # not more than the streams


def test_bad_options_are_bad_input(tmp_path):
    from pypidl.errors import BadInputError

    with pytest.raises(BadInputError):
        engine.run([], tmp_path, options=engine.EngineOptions(concurrency=0))
    with pytest.raises(BadInputError):
        engine.run([], tmp_path, options=engine.EngineOptions(processes=0))
    assert engine.run([], tmp_path).results == []


def test_workers_start_without_a_resource_tracker(index_server, wheel_dir, tmp_path):
    """The engine shares no semaphore with its workers, so no tracker process is started for
    them (another interpreter, about 13 MB, for nothing); in a fresh interpreter, as the CLI is."""
    import subprocess
    import sys

    from pypidl.manifest import Manifest, dump

    server = index_server()
    files = [server.add_file(build(wheel_dir, f"solo{i}", size=5_000)) for i in range(3)]
    manifest = tmp_path / "m.json"
    dump(Manifest(entries=tuple(entry_for(f) for f in files)), manifest)
    script = (
        "import sys\n"
        "from multiprocessing import resource_tracker\n"
        "from pypidl.fetch import pool\n"
        "from pypidl.manifest import load\n"
        "entries = load(sys.argv[1]).entries\n"
        "opts = pool.EngineOptions(concurrency=4, processes=2)\n"
        "report = pool.run(entries, sys.argv[2], options=opts)\n"
        "assert len(report.downloaded) == len(entries), report\n"
        "tracker = resource_tracker._resource_tracker\n"
        "print(tracker._pid, tracker._fd)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(manifest), str(tmp_path / "mirror")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.split() == ["None", "None"]
