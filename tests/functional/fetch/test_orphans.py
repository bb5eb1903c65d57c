"""Workers never outlive their run: kill -9 of the parent, SIGTERM to one worker, a second run.

``pypidl download`` runs in a subprocess (its own session) against the loopback server of the test
process; worker pids are read from ``/proc`` so the test can check each one is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pypidl.hashing import file_sha256
from pypidl.manifest import Manifest, dump
from tests.lib.interrupts import parts_with_data, stalling_files, wait_for
from tests.lib.mirror import entry_for
from tests.lib.server import IndexServer, ServedFile

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads worker pids from /proc")


def children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != b"Z":
            found.append(int(name))
    return found


def workers_of(pid: int) -> list[int]:
    """The worker processes among ``pid``'s children (not multiprocessing's resource tracker)."""
    return [
        child
        for child in children(pid)
        if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] != b"Z"


def cli(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return subprocess.Popen(
        [sys.executable, "-m", "pypidl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        cwd=tmp_path,
    )


def scenario(
    index_server, tmp_path: Path, *, stall: float = 60
) -> tuple[IndexServer, list[ServedFile], Path]:
    """Four quick files, four that stall after two chunks; a manifest of all eight."""
    server = index_server()
    files = stalling_files(server, tmp_path, stall=stall)
    manifest = tmp_path / "manifest.json"
    dump(Manifest(entries=tuple(entry_for(f) for f in files)), manifest)
    return server, files, manifest


def download_args(manifest: Path, root: Path, *extra: str) -> list[str]:
    return [
        "download",
        str(manifest),
        "--download-dir",
        str(root),
        "--processes",
        "2",
        "--concurrency",
        "8",
        "--stall-timeout",
        "60",
        *extra,
    ]


def test_kill_9_of_the_parent_ends_its_workers_and_a_rerun_completes(index_server, tmp_path):
    server, files, manifest = scenario(index_server, tmp_path)
    root = tmp_path / "mirror"
    proc = cli(tmp_path, *download_args(manifest, root))
    workers: list[int] = []
    try:
        wait_for(lambda: len(parts_with_data(root)) == 4, what="four stalled parts")
        workers = children(proc.pid)  # the workers and multiprocessing's resource tracker
        assert len(workers_of(proc.pid)) == 2, workers
        os.kill(proc.pid, signal.SIGKILL)  # the parent alone: its workers become orphans
        proc.wait(timeout=10)
        killed_at = time.monotonic()
        server.clear_faults()
        # an immediate re-run: it may find the orphans' locks, waits for them, and completes
        rerun = cli(tmp_path, *download_args(manifest, root))
        _out, err = rerun.communicate(timeout=60)
        assert rerun.returncode == 0, err
        wait_for(lambda: not any(alive(p) for p in workers), timeout=5, what="orphans gone")
        assert time.monotonic() - killed_at < 30
    finally:
        for pid in [proc.pid, *workers]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    for f in files:
        assert file_sha256(root / "packages" / f.project / f.filename) == f.sha256
    assert list(root.rglob(".pypidl-*.part")) == []
    assert [r for r in server.requests if "Range" in r.headers]  # the parts were resumed


def test_an_orphan_stops_within_two_seconds(index_server, tmp_path):
    _server, _files, manifest = scenario(index_server, tmp_path)
    root = tmp_path / "mirror"
    proc = cli(tmp_path, *download_args(manifest, root))
    workers: list[int] = []
    try:
        wait_for(lambda: len(parts_with_data(root)) == 4, what="four stalled parts")
        workers = children(proc.pid)
        assert len(workers_of(proc.pid)) == 2
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(lambda: not any(alive(p) for p in workers), timeout=10, what="orphans gone")
        assert time.monotonic() - killed_at < 2.5
    finally:
        for pid in [proc.pid, *workers]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.communicate(timeout=10)
    assert len(parts_with_data(root)) == 4  # kept for resume


def test_sigterm_to_a_worker_ends_it(index_server, tmp_path):
    server, files, manifest = scenario(index_server, tmp_path)
    root = tmp_path / "mirror"
    proc = cli(tmp_path, *download_args(manifest, root))
    try:
        wait_for(lambda: len(parts_with_data(root)) == 4, what="four stalled parts")
        workers = workers_of(proc.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGTERM)
        wait_for(lambda: not alive(workers[0]), timeout=5, what="the worker gone")
        assert alive(workers[1]) or proc.poll() is not None
        os.kill(proc.pid, signal.SIGTERM)  # the rest of the run, as a service stop would
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    server.clear_faults()
    rerun = cli(tmp_path, *download_args(manifest, root))
    _out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    for f in files:
        assert file_sha256(root / "packages" / f.project / f.filename) == f.sha256


def test_a_run_waits_for_a_live_run_holding_its_project(index_server, tmp_path):
    """A second run next to a live one waits (bounded by --lock-timeout) instead of failing."""
    server, files, manifest = scenario(index_server, tmp_path)
    root = tmp_path / "mirror"
    first = cli(tmp_path, *download_args(manifest, root))
    second: subprocess.Popen[str] | None = None
    try:
        wait_for(lambda: len(parts_with_data(root)) == 4, what="four stalled parts")
        second = cli(tmp_path, *download_args(manifest, root, "--lock-timeout", "60"))
        # the stalls last until the second run says it waits: however slow the machine is to
        # start it, the first run still holds its projects then
        said: list[str] = []
        waiting = threading.Event()
        reader = threading.Thread(target=_read_until_waiting, args=(second, said, waiting))
        reader.start()
        saw_it = waiting.wait(60)
        server.release_stalls()
        reader.join(90)
        second.communicate(timeout=90)  # the rest, and the pipes closed
        _out1, err1 = first.communicate(timeout=90)
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    err2 = "".join(said)
    assert saw_it, err2
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    for f in files:
        assert file_sha256(root / "packages" / f.project / f.filename) == f.sha256


def _read_until_waiting(
    proc: subprocess.Popen[str], said: list[str], waiting: threading.Event
) -> None:
    """Collect ``proc``'s stderr; set ``waiting`` once it says it waits for another run."""
    assert proc.stderr is not None
    for line in proc.stderr:
        said.append(line)
        if "waiting" in line.lower():
            waiting.set()


def test_lock_timeout_bounds_the_wait(index_server, tmp_path):
    _server, _files, manifest = scenario(index_server, tmp_path)
    root = tmp_path / "mirror"
    first = cli(tmp_path, *download_args(manifest, root))
    try:
        wait_for(lambda: len(parts_with_data(root)) == 4, what="four stalled parts")
        started = time.monotonic()
        second = cli(tmp_path, *download_args(manifest, root, "--lock-timeout", "1"))
        _out, err = second.communicate(timeout=60)
        took = time.monotonic() - started
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate(timeout=10)
    assert second.returncode == 1, err
    assert "another pypidl run" in err
    assert took < 20
