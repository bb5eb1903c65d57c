"""Where a command's output goes (issue 20, item 1): every writer (``--report``, ``plan -o``,
``--url-list-path``, ``export -o``, ``merge -o``, ``bundle -o``) writes through a character
device or a FIFO, refuses a symlink, a socket or a directory before any work, and never
replaces what is there with a regular file.

The devices are private ones made with mknod in the test's directory, never the system's.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from pypidl.cli import main
from pypidl.manifest import Manifest, dump
from tests.lib.mirror import add_to_mirror
from tests.lib.server import IndexServer
from tests.lib.wheels import make_wheel

TARGET = ["--python-version", "3.11", "--platform", "linux-x86_64"]
POSIX = os.name == "posix"
pytestmark = pytest.mark.skipif(not POSIX, reason="devices, FIFOs and sockets are POSIX")

WRITERS = ["report", "plan", "url-list", "export", "merge", "bundle"]
#: the writers that read an index (the others read a manifest and a mirror)
PLANNING = {"report", "plan", "url-list"}


class Job:
    """One writer's command line, with ``OUT`` where the output path goes."""

    def __init__(self, tmp_path: Path, server: IndexServer, writer: str) -> None:
        self.writer = writer
        self.server = server
        reqs = tmp_path / "requirements.txt"
        reqs.write_text("alpha\n", encoding="utf-8")
        mirror = tmp_path / "mirror"
        entry = add_to_mirror(mirror, make_wheel(tmp_path / "dists", "alpha", "1.0"))
        manifest = tmp_path / "manifest.json"
        dump(Manifest(entries=(entry,)), manifest)
        plan = ["plan", "-r", str(reqs), "-i", server.simple_url, *TARGET]
        self.argv = {
            "report": [*plan, "-o", str(tmp_path / "m.json"), "--report", "OUT"],
            "plan": [*plan, "-o", "OUT"],
            "url-list": ["sync", "-r", str(reqs), "-i", server.simple_url, "--dry-run",
                         "--url-list-path", "OUT", "--download-dir", str(tmp_path / "d"),
                         *TARGET],
            "export": ["export", str(manifest), "--format", "urls", "-o", "OUT"],
            "merge": ["merge", str(manifest), "-o", "OUT"],
            "bundle": ["bundle", str(manifest), "--download-dir", str(mirror), "-o", "OUT"],
        }[writer]  # fmt: skip

    def run(self, out: Path | str) -> int:
        return main([str(out) if a == "OUT" else a for a in self.argv])

    def check(self, written: bytes) -> None:
        """``written`` is this writer's whole output."""
        if self.writer in {"report", "plan", "merge"}:
            data = json.loads(written)
            assert data["files"][0]["filename"] == "alpha-1.0-py3-none-any.whl"
        elif self.writer == "bundle":
            with tarfile.open(fileobj=__import__("io").BytesIO(written)) as tar:
                assert any(n.endswith("alpha-1.0-py3-none-any.whl") for n in tar.getnames())
        else:
            assert b"alpha-1.0-py3-none-any.whl" in written


@pytest.fixture
def job(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    index_server: Callable[..., IndexServer],
) -> Job:
    server = index_server()
    server.add_file(make_wheel(tmp_path / "served", "alpha", "1.0"))
    return Job(tmp_path, server, request.param)


def _char_device(path: Path, minor: int) -> Path:
    """A private copy of /dev/null (minor 3) or /dev/full (minor 7)."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
        os.close(os.open(path, os.O_WRONLY))
    except (OSError, AttributeError) as exc:
        path.unlink(missing_ok=True)
        pytest.skip(f"cannot make a character device here: {exc}")
    return path


@pytest.mark.parametrize("job", WRITERS, indirect=True)
@pytest.mark.parametrize("kind", ["symlink", "dangling-symlink", "socket"])
def test_a_link_or_socket_is_refused_before_any_work(
    job: Job, kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n", encoding="utf-8")
    out = tmp_path / "out"
    sock = None
    if kind == "symlink":
        out.symlink_to(victim)
    elif kind == "dangling-symlink":
        out.symlink_to(tmp_path / "nowhere" / "file")
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(out))
    try:
        code = job.run(out)
    finally:
        if sock is not None:
            sock.close()
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert str(out) in err
    assert victim.read_text(encoding="utf-8") == "keep me\n"
    mode = out.lstat().st_mode
    assert stat.S_ISLNK(mode) if kind != "socket" else stat.S_ISSOCK(mode)
    assert not (tmp_path / "nowhere").exists()
    assert not job.server.requests  # refused before any work


@pytest.mark.parametrize("job", WRITERS, indirect=True)
def test_a_character_device_is_written_through_and_kept(job: Job, tmp_path: Path) -> None:
    device = _char_device(tmp_path / "null", 3)
    assert job.run(device) == 0
    assert stat.S_ISCHR(device.lstat().st_mode)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".pypidl-")] == []


@pytest.mark.parametrize("job", WRITERS, indirect=True)
def test_a_fifo_is_written_through_and_kept(job: Job, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as fh:  # blocks until the writer opens it
            got.append(fh.read())

    reader = threading.Thread(target=read, daemon=True)  # left blocked if the FIFO is replaced
    reader.start()
    assert job.run(fifo) == 0
    reader.join(30)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert got, "nothing was written through the FIFO"
    job.check(got[0])


@pytest.mark.parametrize("job", ["export", "bundle"], indirect=True)
def test_a_full_device_fails_in_one_line_and_is_kept(
    job: Job, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    device = _char_device(tmp_path / "full", 7)
    code = job.run(device)
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    assert "No space left on device" in err
    assert str(device) in err
    assert stat.S_ISCHR(device.lstat().st_mode)


@pytest.mark.parametrize("job", ["plan", "merge", "bundle", "export"], indirect=True)
def test_a_dash_writes_to_standard_output(
    job: Job,
    tmp_path: Path,
    capfdbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # a file named '-' would land here
    assert job.run("-") == 0
    out = capfdbinary.readouterr().out
    assert not (tmp_path / "-").exists()
    job.check(out)  # the output alone: the summary tables went to stderr


def _as_a_user(argv: list[str]) -> list[str]:
    """``argv`` run so that directory permissions bind, as for any user but root."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop the write-anywhere capability")
    return [setpriv, "--inh-caps=-all", "--bounding-set=-all", "--", *argv]


@pytest.mark.parametrize("job", ["report", "plan"], indirect=True)
@pytest.mark.parametrize("missing_parent", [False, True])
def test_an_unwritable_directory_is_found_before_any_work(
    job: Job, tmp_path: Path, missing_parent: bool
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    out = locked / "sub" / "out.json" if missing_parent else locked / "out.json"
    argv = [str(out) if a == "OUT" else a for a in job.argv]
    try:
        result = subprocess.run(
            _as_a_user([sys.executable, "-m", "pypidl", *argv]),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        locked.chmod(0o755)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert str(out) in output
    assert not job.server.requests  # found before any page was read
    assert list(locked.iterdir()) == []
