"""Crash safety of the real command line: kill -9, Ctrl-C, SIGTERM, a full disk, no network.

``pypidl download`` runs as ``python -m pypidl`` in its own session (so a signal reaches the
whole process tree, as a terminal's Ctrl-C or a service manager's stop does) against the
loopback index of the test process.  The manifest comes from ``pypidl plan`` run in-process
once per module: two quick 1 MiB wheels and two 3 MiB wheels that tests can make stall.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pypidl.cli import main
from pypidl.hashing import CHUNK_SIZE, file_sha256
from tests.lib.interrupts import default_sigint
from tests.lib.server import IndexServer, ServedFile, Stall
from tests.lib.wheels import make_wheel

pytestmark = pytest.mark.skipif(os.name != "posix", reason="process groups and rlimits are POSIX")

TARGET = ["--python-version", "3.11", "--platform", "linux-x86_64"]
QUICK = ("quick-one", "quick-two")
SLOW = ("slow-one", "slow-two")
QUICK_SIZE = 1 << 20
SLOW_SIZE = 3 << 20
#: A stalled response sends this much of its body (two whole chunks are written to the part).
STALL_AFTER = 2 * CHUNK_SIZE + 10
#: The file-size limit of the full-disk test: above the quick wheels, below the slow ones.
FSIZE_LIMIT = 2 << 20


@dataclass
class Setup:
    server: IndexServer
    manifest: Path
    files: dict[str, ServedFile]  # by filename

    @property
    def quick(self) -> list[ServedFile]:
        return [f for f in self.files.values() if f.project in QUICK]

    @property
    def slow(self) -> list[ServedFile]:
        return [f for f in self.files.values() if f.project in SLOW]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """One index and one planned manifest for the module (planning is the slow part)."""
    base = tmp_path_factory.mktemp("crash")
    dists = base / "dists"
    for name, size in [(n, QUICK_SIZE) for n in QUICK] + [(n, SLOW_SIZE) for n in SLOW]:
        payload = random.Random(name).randbytes(size)  # noqa: S311 - incompressible test data
        make_wheel(dists, name, "1.0", extra_files={f"{name.replace('-', '_')}/blob.bin": payload})
    server = IndexServer().start()
    try:
        served = server.add_dir(dists)
        reqs = base / "requirements.txt"
        reqs.write_text("".join(f"{n}\n" for n in QUICK + SLOW), encoding="utf-8")
        manifest = base / "manifest.json"
        code = main(
            [
                "plan",
                "-q",
                "-r",
                str(reqs),
                "--index-url",
                server.simple_url,
                "-o",
                str(manifest),
                *TARGET,
            ]
        )
        assert code == 0
        planned = {f["filename"] for f in json.loads(manifest.read_text())["files"]}
        assert planned == {f.filename for f in served}
        yield Setup(server, manifest, {f.filename: f for f in served})
    finally:
        server.stop()


@pytest.fixture
def srv(setup: Setup) -> Iterator[Setup]:
    """The module's index with no faults and an empty request log, before and after a test."""
    setup.server.clear_faults()
    setup.server.clear_requests()
    yield setup
    setup.server.clear_faults()


@pytest.fixture
def env(clean_env: dict[str, str]) -> dict[str, str]:
    env = dict(clean_env)
    env["PYPIDL_CACHE_DIR"] = os.environ["PYPIDL_CACHE_DIR"]  # set by the autouse fixture
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _limit_file_size() -> None:
    default_sigint()
    # Writes past the limit fail with EFBIG ("File too large") instead of killing the process
    # when SIGXFSZ is ignored.  CPython ignores it at start-up anyway (in the CLI process and in
    # every spawned worker, whatever the parent's disposition), so this only makes it explicit.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))


def start(
    cwd: Path, env: dict[str, str], *args: str, preexec: Callable[[], None] = default_sigint
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pypidl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=preexec,  # only signal and rlimit calls: nothing that takes a lock
    )


def finish(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, str]:
    """Wait for ``proc``; kill its whole group if it does not end in time."""
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return proc.returncode, out, err


def download_args(setup: Setup, mirror: Path, *extra: str) -> list[str]:
    return [
        "download",
        str(setup.manifest),
        "--download-dir",
        str(mirror),
        "--processes",
        "2",
        "--concurrency",
        "4",
        *extra,
    ]


def run_download(
    setup: Setup, mirror: Path, env: dict[str, str], *extra: str
) -> tuple[int, str, str]:
    return finish(start(mirror.parent, env, *download_args(setup, mirror, *extra)))


def wait_for(
    condition: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"pypidl ended early: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def temp_files(mirror: Path) -> list[Path]:
    packages = mirror / "packages"
    return sorted(p for p in packages.rglob(".*") if p.is_file()) if packages.exists() else []


def parts_with_data(mirror: Path) -> list[Path]:
    return [
        p for p in temp_files(mirror) if p.name.endswith(".part") and p.stat().st_size >= CHUNK_SIZE
    ]


def final_files(mirror: Path) -> list[Path]:
    packages = mirror / "packages"
    if not packages.exists():
        return []
    return sorted(p for p in packages.rglob("*") if p.is_file() and not p.name.startswith("."))


def check_final_files(setup: Setup, mirror: Path) -> set[str]:
    """Every file under a final name is byte-exact; returns the names of the distributions."""
    names = set()
    for path in final_files(mirror):
        if path.name.endswith(".metadata"):
            served = setup.files[path.name[: -len(".metadata")]]
            assert served.metadata_sha256 == file_sha256(path), path
            continue
        assert file_sha256(path) == setup.files[path.name].sha256, path
        assert path.parent.name == setup.files[path.name].project
        names.add(path.name)
    return names


def summary_rows(out: str) -> dict[str, str]:
    """The summary table's rows by project (the first column)."""
    assert "Package Synchronization Summary" in out, out
    return {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}


def stall_slow_files(setup: Setup) -> None:
    for f in setup.slow:
        setup.server.fail(f.url_path, Stall(STALL_AFTER, 60))


def whole_parts(setup: Setup, mirror: Path) -> set[str]:
    """The distributions whose ``.part`` already holds every byte."""
    sizes = {p.name: p.stat().st_size for p in temp_files(mirror) if p.name.endswith(".part")}
    return {
        name
        for name, served in setup.files.items()
        if sizes.get(f".pypidl-{name}.part") == len(served.data)
    }


def file_requests(setup: Setup, filename: str) -> list:  # type: ignore[type-arg]
    return setup.server.requests_matching(setup.files[filename].url_path)


def rerun_resumes(setup: Setup, mirror: Path, env: dict[str, str], done: set[str]) -> None:
    """A plain re-run completes and verifies; it asks for nothing already complete.

    A kill can land after a file's last byte reached its part but before the rename: the re-run
    verifies such a whole part without a request, as it does a file under its final name.
    """
    whole = whole_parts(setup, mirror)
    setup.server.clear_faults()
    setup.server.clear_requests()
    code, out, err = run_download(setup, mirror, env)
    assert code == 0, out + err
    assert "Traceback" not in err
    assert check_final_files(setup, mirror) == set(setup.files)
    assert temp_files(mirror) == []
    for name in done | whole:  # completed before the crash: not fetched again
        assert file_requests(setup, name) == [], name
    for name in set(setup.files) - done - whole:
        requests = file_requests(setup, name)
        assert requests, name
        if name in {f.filename for f in setup.slow}:  # a part with data: resumed with a range
            # (the resumed request; a retry after it may start over, which costs bytes only)
            assert "Range" in requests[0].headers, (name, [dict(r.headers) for r in requests])
    code, out, err = finish(start(mirror.parent, env, "verify", str(mirror)))
    assert code == 0, out + err


# --------------------------------------------------------------------------- tests


def test_kill_9_leaves_only_verified_files_and_a_rerun_resumes(srv, tmp_path, env):
    stall_slow_files(srv)
    mirror = tmp_path / "mirror"
    proc = start(tmp_path, env, *download_args(srv, mirror, "--timeout", "30"))
    try:
        wait_for(
            lambda: len(parts_with_data(mirror)) == len(srv.slow) and final_files(mirror) != [],
            proc,
        )
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        finish(proc, timeout=10)
    assert proc.returncode == -signal.SIGKILL
    done = check_final_files(srv, mirror)
    assert done
    assert done <= {f.filename for f in srv.quick}
    assert len(parts_with_data(mirror)) == len(srv.slow)
    rerun_resumes(srv, mirror, env, done)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_prints_the_summary_keeps_parts_and_exits_130(srv, tmp_path, env, signum):
    stall_slow_files(srv)
    mirror = tmp_path / "mirror"
    proc = start(tmp_path, env, *download_args(srv, mirror, "--timeout", "30"))
    try:
        wait_for(
            lambda: (
                len(parts_with_data(mirror)) == len(srv.slow)
                and len(final_files(mirror)) == len(srv.quick)
            ),
            proc,
        )
        os.killpg(proc.pid, signum)
    finally:
        code, out, err = finish(proc)
    assert code == 130, out + err
    assert "Traceback" not in err
    assert "Package Synchronization Summary" in out
    rows = summary_rows(out)
    for name in SLOW:
        assert "Interrupted" in rows[name]
    for name in QUICK:
        assert "Synchronized" in rows[name]
    assert "partial downloads are kept" in err
    assert len(parts_with_data(mirror)) == len(srv.slow)
    done = check_final_files(srv, mirror)
    assert done == {f.filename for f in srv.quick}
    rerun_resumes(srv, mirror, env, done)


def test_full_disk_fails_the_big_files_only_and_a_rerun_completes(srv, tmp_path, env):
    mirror = tmp_path / "mirror"
    proc = start(
        tmp_path,
        env,
        *download_args(srv, mirror, "--timeout", "5", "--retries", "2"),
        preexec=_limit_file_size,
    )
    code, out, err = finish(proc)
    assert code == 1, out + err
    assert "Traceback" not in err
    rows = summary_rows(out)
    for name in SLOW:
        assert "Failed" in rows[name], out
        assert "File too large" in rows[name], out
    for name in QUICK:
        assert "Synchronized" in rows[name], out
    assert check_final_files(srv, mirror) == {f.filename for f in srv.quick}
    parts = parts_with_data(mirror)  # what was written up to the limit stays for resume
    assert len(parts) == len(srv.slow)
    assert all(p.stat().st_size <= FSIZE_LIMIT for p in parts)
    srv.server.clear_requests()
    code, out, err = run_download(srv, mirror, env)
    assert code == 0, out + err
    assert check_final_files(srv, mirror) == set(srv.files)
    assert temp_files(mirror) == []
    for f in srv.quick:
        assert file_requests(srv, f.filename) == []
    for f in srv.slow:
        assert file_requests(srv, f.filename)
        assert all("Range" in r.headers for r in file_requests(srv, f.filename))


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_mirror_fails_each_file_quickly(srv, tmp_path, env):
    dead = f"http://127.0.0.1:{_unused_port()}"
    manifest = tmp_path / "dead.json"
    manifest.write_text(srv.manifest.read_text().replace(srv.server.url.rstrip("/"), dead))
    assert dead in manifest.read_text()
    mirror = tmp_path / "mirror"
    started = time.monotonic()
    code, out, err = finish(
        start(
            tmp_path,
            env,
            "download",
            str(manifest),
            "--download-dir",
            str(mirror),
            "--timeout",
            "2",
            "--retries",
            "2",
        )
    )
    assert code == 1, out + err
    assert time.monotonic() - started < 10  # refused at once; no long timeouts waited out
    assert "Traceback" not in err
    rows = summary_rows(out)
    for name in QUICK + SLOW:
        assert "All mirrors failed: connection failed" in rows[name], out
    assert srv.server.requests == []
    assert final_files(mirror) == []
    assert temp_files(mirror) == []
