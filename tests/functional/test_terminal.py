"""What a person sees on a terminal: a 300-project download shows bars, the problems and the
totals, not 300 rows and a line per file; ``-v`` shows everything. Run under a real pty."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pypidl.manifest import Manifest, dump
from tests.lib.mirror import entry_for
from tests.lib.server import IndexServer, Status
from tests.lib.wheels import make_wheel

PROJECTS = 300
BROKEN = ("proj-007", "proj-150", "proj-299")


def run_on_a_terminal(argv: list[str], *, lines: int = 40) -> tuple[int, str]:
    """Run ``python -m pypidl argv`` with stdout and stderr on a pty of ``lines`` rows."""
    main_fd, child_fd = pty.openpty()
    # a real terminal has a size: tqdm asks the tty, shutil.get_terminal_size the environment
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", lines, 120, 0, 0))
    env = {**os.environ, "LINES": str(lines), "COLUMNS": "120", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pypidl", *argv],
        stdin=subprocess.DEVNULL, stdout=child_fd, stderr=child_fd, env=env, close_fds=True,
    )  # fmt: skip
    os.close(child_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main_fd], [], [], 0.5)
            if ready:
                try:
                    data = os.read(main_fd, 65536)
                except OSError:  # EIO: the child side is closed
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main_fd)
    return code, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


@pytest.fixture
def manifest(index_server: Callable[..., IndexServer], wheel_dir: Path, tmp_path: Path) -> Path:
    index = index_server()
    for n in range(PROJECTS):
        index.add_file(make_wheel(wheel_dir, f"proj-{n:03d}", "1.0"))
    for name in BROKEN:
        index.fail_always(f"*/{name.replace('-', '_')}-1.0-py3-none-any.whl", Status(404))
    entries = tuple(entry_for(f) for f in index.files)
    path = tmp_path / "manifest.json"
    dump(Manifest(entries=entries, projects={e.project: (e.version,) for e in entries}), path)
    return path


@pytest.mark.slow
def test_a_300_project_download_on_a_terminal_fits_a_screen(manifest: Path, tmp_path: Path) -> None:
    code, out = run_on_a_terminal(
        ["download", str(manifest), "--download-dir", str(tmp_path / "m"), "--retries", "1"]
    )
    assert code == 1, out
    lines = out.split("\n")
    rows = [line for line in lines if line.startswith("| proj-")]
    assert "Bytes:" in out  # the bars were drawn
    assert "Downloaded:" not in out
    assert {r.split("|")[1].strip() for r in rows} >= set(BROKEN)
    assert len(rows) <= 40
    assert f"Total: {PROJECTS} project(s), {PROJECTS} file(s)" in out
    assert f"; {len(BROKEN)} with problems" in out
    assert "more project(s) without problems (-v lists every one)" in out
    assert len(lines) < 100, f"{len(lines)} lines"
    assert " MB" not in out
    assert "kB" not in out

    # -v: every project and every file
    code, out = run_on_a_terminal(
        ["download", str(manifest), "--download-dir", str(tmp_path / "v"), "--retries", "1", "-v"]
    )
    assert code == 1
    assert len([line for line in out.split("\n") if line.startswith("| proj-")]) == PROJECTS
    assert out.count("Downloaded:") == PROJECTS - len(BROKEN)
