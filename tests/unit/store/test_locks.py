"""Run locks: a live holder is waited for (bounded, said once), a dead one never blocks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from pypidl.store.locks import ProjectLocks

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the holder uses flock")

HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.lseek(fd, 16, 0)
os.write(fd, str(os.getpid()).encode())
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold(tmp_path, seconds: float) -> subprocess.Popen[str]:
    lock = tmp_path / ".pypidl" / "locks" / "proj.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    proc.stdout.close()
    return proc


def test_a_live_holder_is_waited_for_and_named(tmp_path):
    proc = hold(tmp_path, 1.0)
    waits: list[tuple[str | None, float]] = []
    locks = ProjectLocks(tmp_path)
    try:
        started = time.monotonic()
        assert locks.acquire("proj", timeout=30, on_wait=lambda pid, t: waits.append((pid, t)))
        assert 0.5 < time.monotonic() - started < 20
        assert waits == [(str(proc.pid), 30)]
    finally:
        locks.close()
        proc.wait(10)


def test_the_wait_is_bounded_and_remembered(tmp_path):
    proc = hold(tmp_path, 30)
    locks = ProjectLocks(tmp_path)
    try:
        started = time.monotonic()
        assert not locks.acquire("proj", timeout=0.3)
        assert time.monotonic() - started < 5
        started = time.monotonic()
        assert not locks.acquire("proj", timeout=30)  # given up once: no second wait
        assert time.monotonic() - started < 1
    finally:
        locks.close()
        proc.kill()
        proc.wait(10)


def test_a_dead_holder_never_blocks(tmp_path):
    proc = hold(tmp_path, 60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    locks = ProjectLocks(tmp_path)
    waited: list[object] = []
    try:
        assert locks.acquire("proj", timeout=0, on_wait=lambda *a: waited.append(a))
        assert waited == []
    finally:
        locks.close()


def test_a_stopped_run_stops_waiting(tmp_path):
    proc = hold(tmp_path, 30)
    locks = ProjectLocks(tmp_path)
    try:
        started = time.monotonic()
        assert not locks.acquire("proj", timeout=30, stop=lambda: time.monotonic() - started > 0.3)
        assert time.monotonic() - started < 5
    finally:
        locks.close()
        proc.kill()
        proc.wait(10)
