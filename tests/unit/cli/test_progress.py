"""ProgressEvents: bars on a terminal, periodic lines elsewhere, one log line per file result."""

from __future__ import annotations

import io
import logging
import time

import pytest

from pypidl.cli._progress import ProgressEvents
from pypidl.fetch.downloader import FileResult
from pypidl.manifest import Entry


def result(name: str, status: str, size: int = 1000, error: str | None = None) -> FileResult:
    e = Entry(
        project=name,
        version="1.0",
        filename=f"{name}-1.0.tar.gz",
        urls=("http://127.0.0.1/x",),
        sha256="0" * 64,
        size=size,
    )
    return FileResult(e, status, bytes=size if status == "downloaded" else 0, error=error)


@pytest.fixture
def records(caplog):
    caplog.set_level(logging.DEBUG, logger="pypidl")
    logger = logging.getLogger("pypidl")
    propagate, logger.propagate = logger.propagate, True  # a CLI test's UI may have cut it
    yield caplog
    logger.propagate = propagate


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_file_results_are_logged_at_the_right_levels(records):
    with ProgressEvents(stream=io.StringIO(), interval=3600) as ev:
        ev.on_start(3, 3000)
        ev.on_file(result("a", "downloaded"))
        ev.on_file(result("b", "skipped"))
        ev.on_file(result("c", "failed", error="All mirrors failed: 404 Not Found"))
    seen = [(r.levelname, r.getMessage()) for r in records.records if r.name == "pypidl"]
    assert seen == [
        ("INFO", "Downloaded: a-1.0.tar.gz"),
        ("DEBUG", "Skipped (verified): b-1.0.tar.gz"),
        ("ERROR", "Failed: c-1.0.tar.gz: All mirrors failed: 404 Not Found"),
    ]
    assert ev.files_done == 3
    assert ev.total_bytes == 1000  # skipped and failed files will never be transferred


def test_without_a_terminal_progress_comes_as_periodic_lines(records):
    stream = io.StringIO()
    with ProgressEvents(stream=stream, interval=0.2) as ev:
        assert not ev.bars
        ev.on_start(2, 2 * 1024 * 1024)
        ev.on_bytes(1024 * 1024)
        time.sleep(1.3)
    lines = [r.getMessage() for r in records.records if r.getMessage().startswith("Progress:")]
    assert lines
    assert lines[-1].startswith("Progress: 0/2 files, 1.0 MiB of 2.0 MiB, ")
    assert stream.getvalue() == ""  # no bars drawn


def test_on_a_terminal_bars_are_drawn(records):
    stream = TTY()
    with ProgressEvents(stream=stream) as ev:
        assert ev.bars
        ev.on_start(2, 4096)
        ev.on_bytes(2048)
        ev.on_file(result("a", "downloaded", 2048))
        ev.on_log(logging.WARNING, "Mirror x set aside")
    drawn = stream.getvalue()
    assert "Bytes" in drawn
    assert "Files" in drawn
    assert any(r.getMessage() == "Mirror x set aside" for r in records.records)


def test_on_a_terminal_downloaded_files_are_for_verbose_only(records):
    with ProgressEvents(stream=TTY()) as ev:
        ev.on_start(1, 2048)
        ev.on_file(result("a", "downloaded", 2048))
    (line,) = [r for r in records.records if r.getMessage().startswith("Downloaded:")]
    assert line.levelname == "DEBUG"  # the UI shows DEBUG with -v only


def test_the_bytes_bar_counts_in_kib_and_mib(records):
    stream = TTY()
    with ProgressEvents(stream=stream) as ev:
        ev.on_start(2, 3 * 1024 * 1024)
        ev.on_bytes(1536 * 1024)
        ev._bytes_bar.refresh()
        drawn = stream.getvalue()
    assert "1.5 MiB/3.0 MiB" in drawn
    assert "MB" not in drawn.replace("MiB", "")
    assert "kB" not in drawn


def test_quiet_draws_nothing_and_keeps_errors(records):
    stream = TTY()
    with ProgressEvents(quiet=True, stream=stream, interval=0.05) as ev:
        ev.on_start(1, 10)
        ev.on_bytes(10)
        time.sleep(0.2)
        ev.on_file(result("c", "failed", error="boom"))
    assert stream.getvalue() == ""
    assert not [r for r in records.records if r.getMessage().startswith("Progress:")]
    assert [r.levelname for r in records.records if r.name == "pypidl"] == ["ERROR"]


def test_verify_events(records):
    with ProgressEvents(stream=io.StringIO(), interval=3600) as ev:
        ev.on_start(2, 0)
        ev.on_checked("packages/a/a.whl", None)
        ev.on_checked("packages/b/b.whl", "missing")
    assert ev.files_done == 2
    assert ("WARNING", "Bad: packages/b/b.whl: missing") in [
        (r.levelname, r.getMessage()) for r in records.records
    ]
    assert ev.status_line().startswith("Progress: 2/2 files, 0 B, ")
