"""A worker's lifeline: a changed parent pid or a SIGTERM calls ``on_end`` once with the reason;
a worker that finishes first is never told anything.

The watching loop runs in a thread of the test process, without :meth:`Lifeline.start` (which
would install a SIGTERM handler and a parent-death signal in pytest itself).
"""

from __future__ import annotations

import os
import signal
import threading

from pypidl.fetch.lifeline import Lifeline


def _watch(parent_pid: int) -> tuple[Lifeline, list[str], threading.Event]:
    reasons: list[str] = []
    told = threading.Event()
    lifeline: Lifeline

    def on_end(reason: str) -> None:
        reasons.append(reason)
        lifeline.finished()  # the worker has wound down: no os._exit after the grace
        told.set()

    lifeline = Lifeline(parent_pid, on_end, grace=30, poll=0.01)
    lifeline._thread.start()
    return lifeline, reasons, told


def test_a_changed_parent_ends_the_worker_as_an_orphan() -> None:
    lifeline, reasons, told = _watch(parent_pid=os.getppid() + 1_000_000)
    assert told.wait(5)
    lifeline._thread.join(5)
    assert reasons == ["the run that started this worker has ended"]
    assert lifeline.orphaned


def test_a_sigterm_ends_the_worker_but_not_as_an_orphan() -> None:
    lifeline, reasons, told = _watch(parent_pid=os.getppid())
    lifeline._on_sigterm(int(signal.SIGTERM), None)  # what the handler start() installs does
    assert told.wait(5)
    lifeline._thread.join(5)
    assert reasons == ["stopped by SIGTERM"]
    assert lifeline.terminated
    assert not lifeline.orphaned


def test_a_worker_that_finishes_is_told_nothing() -> None:
    lifeline, reasons, told = _watch(parent_pid=os.getppid())
    assert not told.wait(0.1)  # several polls with the parent in place
    lifeline.finished()
    lifeline._thread.join(5)
    assert not lifeline._thread.is_alive()
    assert reasons == []
    assert lifeline.reason is None
