"""The messages between the engine's parent and its workers: they survive pickling (``spawn``),
an outcome gives back the result it was made from, and a worker's control pipe acts on a Stop
that follows its share, and on nothing else."""

from __future__ import annotations

import multiprocessing
import pickle
import threading

import pytest

from pypidl.config import NetworkSettings
from pypidl.fetch._wire import Batch, Done, LogLine, Outcome, Share, Stop, WorkerConfig
from pypidl.fetch.results import DOWNLOADED, FAILED, FileResult
from pypidl.fetch.retry import MirrorStats
from pypidl.fetch.worker import _Cancel
from pypidl.manifest import Entry

ENTRY = Entry(
    project="demo",
    version="1.0",
    filename="demo-1.0-py3-none-any.whl",
    urls=("http://127.0.0.1:1/demo-1.0-py3-none-any.whl",),
    sha256="a" * 64,
    size=10,
)


@pytest.mark.parametrize(
    "message",
    [
        Share([ENTRY]),
        Stop(),
        Batch(5, [Outcome(0, FAILED, 0, None, "HTTP 404", 2)], [LogLine(30, "careful")]),
        Done({"127.0.0.1:1": MirrorStats(files=1, bytes=10)}, "stopped by SIGTERM"),
        Done({}, None),
        WorkerConfig(
            root="/m",
            net=NetworkSettings(),
            threads=4,
            interval=0.1,
            lock_timeout=1.0,
            indexes=("http://127.0.0.1:1/simple/",),
            pins={"demo": ("http://127.0.0.1:1/simple/",)},
            parent_pid=1,
        ),
    ],
    ids=lambda m: type(m).__name__,
)
def test_every_message_pickles_to_an_equal_one(message: object) -> None:
    back = pickle.loads(pickle.dumps(message))  # noqa: S301  # bytes this test just made
    assert back == message
    assert type(back) is type(message)


def test_an_outcome_gives_back_its_result() -> None:
    result = FileResult(ENTRY, DOWNLOADED, 10, "127.0.0.1:1", None, 1)
    outcome = Outcome.of(3, result)
    assert outcome.position == 3
    assert outcome.result(ENTRY) == result


def test_a_stop_after_the_share_cancels_the_worker() -> None:
    reader, writer = multiprocessing.Pipe(duplex=False)
    cancelled = threading.Event()
    try:
        writer.send(Share([ENTRY]))
        assert isinstance(reader.recv(), Share)  # what worker_process reads first
        cancel = _Cancel(reader, cancelled.set)
        assert not cancel.is_set()
        writer.send(Stop())
        assert cancelled.wait(5)
        assert cancel.is_set()
        assert cancel.reason is None  # the parent stopped it: not a reason of its own
    finally:
        writer.close()
        reader.close()


def test_a_closed_control_pipe_is_not_a_stop() -> None:
    """The parent's end closing means the parent is gone: the lifeline's business, not a Ctrl-C."""
    reader, writer = multiprocessing.Pipe(duplex=False)
    cancelled = threading.Event()
    try:
        cancel = _Cancel(reader, cancelled.set)
        writer.close()
        cancel._thread.join(5)
        assert not cancel._thread.is_alive()
        assert not cancelled.is_set()
        assert not cancel.is_set()
    finally:
        reader.close()
