"""Progress for a person: tqdm bars on a terminal, periodic log lines elsewhere, nothing with -q.

:class:`ProgressEvents` implements both :class:`pypidl.fetch.pool.Events` (downloads) and
:class:`pypidl.store.verify.VerifyEvents` (verify passes); the engine calls it in the parent process
only, from the thread that called :func:`pypidl.fetch.pool.run`::

    with ProgressEvents(quiet=ui.quiet, verbose=ui.verbose) as events:
        report = engine.run(entries, root, options=options, events=events)
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, TextIO

from pypidl.cli._output import format_bytes

if TYPE_CHECKING:
    from pypidl.fetch.downloader import FileResult

__all__ = ["ProgressEvents"]

log = logging.getLogger("pypidl")


#: the bytes bar in the units of every other figure pypidl prints (KiB, MiB: powers of 1024);
#: tqdm's own scaling would write "MB" for mebibytes
BYTES_BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {done_bytes}/{total_bytes} "
    "[{elapsed}<{remaining}, {rate_bytes}]"
)


def _bytes_bar_class() -> type[Any]:
    """A tqdm bar that fills :data:`BYTES_BAR_FORMAT`'s fields with :func:`format_bytes`."""
    from tqdm import tqdm

    class BytesBar(tqdm):  # type: ignore[type-arg]
        @property
        def format_dict(self) -> MutableMapping[str, Any]:
            d = super().format_dict
            rate = d.get("rate")
            if rate is None and d.get("elapsed"):
                rate = d["n"] / d["elapsed"]
            d["done_bytes"] = format_bytes(d["n"])
            d["total_bytes"] = format_bytes(d["total"]) if d.get("total") else "?"
            d["rate_bytes"] = f"{format_bytes(rate)}/s" if rate else "? B/s"
            return d

    return BytesBar


class ProgressEvents:
    """Bars (bytes with rate and ETA; files) when ``stream`` is a terminal, else a log line
    every ``interval`` seconds; per-file log lines either way.

    :param quiet: no bars and no periodic lines (failures are still logged as errors).
    :param verbose: above 0, skipped and verified files get a line too (at DEBUG), and so do
        downloaded files while bars are drawn (without bars they are logged at INFO).
    :param stream: where bars go (default ``sys.stderr``).
    :param interval: seconds between progress lines when there are no bars.
    :param bars: force bars on or off (default: when ``stream`` is a terminal).
    """

    def __init__(
        self,
        *,
        quiet: bool = False,
        verbose: int = 0,
        stream: TextIO | None = None,
        interval: float = 10.0,
        bars: bool | None = None,
    ):
        self.quiet = quiet
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.bars = (not quiet) and (bars if bars is not None else bool(isatty()))
        self.total_files = 0
        self.total_bytes = 0
        self.files_done = 0
        self.bytes_done = 0
        self._started = time.monotonic()
        self._last_line = self._started
        self._lock = threading.Lock()
        self._bytes_bar: Any = None
        self._files_bar: Any = None
        self._exit = contextlib.ExitStack()
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._redirected = False

    # ------------------------------------------------------------------ context

    def __enter__(self) -> ProgressEvents:
        # bars (and tqdm, slow to import) wait for on_start: the engine calls it once its
        # workers are starting, so the two overlap
        if not self.bars and not self.quiet:
            self._ticker = threading.Thread(
                target=self._tick, name="pypidl-progress-lines", daemon=True
            )
            self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(2)
            self._ticker = None
        for bar in (self._files_bar, self._bytes_bar):
            if bar is not None:
                bar.close()
        self._files_bar = self._bytes_bar = None
        self._exit.close()

    # ------------------------------------------------------------------ engine events

    def on_start(self, total_files: int, total_bytes: int) -> None:
        with self._lock:
            self.total_files, self.total_bytes = total_files, total_bytes
            self._started = self._last_line = time.monotonic()
        if self.bars:
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            if not self._redirected:  # log lines go through tqdm.write: they do not tear the bars
                self._redirected = True
                self._exit.enter_context(logging_redirect_tqdm(loggers=[log]))
            self._bytes_bar = _bytes_bar_class()(
                total=total_bytes or None,
                unit="B",
                desc="Bytes",
                bar_format=BYTES_BAR_FORMAT,
                file=self.stream,
                position=0,
                leave=False,
                dynamic_ncols=True,
            )
            self._files_bar = tqdm(
                total=total_files,
                unit="file",
                desc="Files",
                file=self.stream,
                position=1,
                leave=False,
                dynamic_ncols=True,
            )

    def on_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes_done += n
        if self._bytes_bar is not None:
            self._bytes_bar.update(n)

    def on_file(self, result: FileResult) -> None:
        name = result.entry.filename
        if result.status == "downloaded":
            # with bars the count is on screen; one line a file is for logs, or for -v
            log.log(logging.DEBUG if self.bars else logging.INFO, "Downloaded: %s", name)
        elif result.status == "skipped":
            log.debug("Skipped (verified): %s", name)
            self._shrink(result.entry.size or 0)  # no transfer will count these bytes
        elif result.status == "interrupted":
            log.warning("Interrupted: %s (the partial download is kept)", name)
            self._shrink(result.entry.size or 0)
        else:
            log.error("Failed: %s: %s", name, result.error)
            self._shrink(result.entry.size or 0)
        self._file_done()

    def on_log(self, level: int, message: str) -> None:
        logging.getLogger("pypidl.fetch.pool").log(level, "%s", message)

    # ------------------------------------------------------------------ verify events

    def on_checked(self, relpath: str, problem: str | None) -> None:
        if problem is None:
            log.debug("Verified: %s", relpath)
        else:
            log.warning("Bad: %s: %s", relpath, problem)
        self._file_done()

    # ------------------------------------------------------------------ internals

    def _shrink(self, nbytes: int) -> None:
        with self._lock:
            self.total_bytes = max(0, self.total_bytes - nbytes)
        bar = self._bytes_bar
        if bar is not None and bar.total:
            bar.total = max(bar.n, bar.total - nbytes)
            bar.refresh()

    def _file_done(self) -> None:
        with self._lock:
            self.files_done += 1
        if self._files_bar is not None:
            self._files_bar.update(1)

    def _tick(self) -> None:
        while not self._stop.wait(min(1.0, self.interval)):
            now = time.monotonic()
            if now - self._last_line >= self.interval:
                self._last_line = now
                log.info("%s", self.status_line(now))

    def status_line(self, now: float | None = None) -> str:
        """``Progress: 3/10 files, 1.2 MiB of 4.0 MiB, 300.0 KiB/s``."""
        now = now if now is not None else time.monotonic()
        with self._lock:
            files, total_files = self.files_done, self.total_files
            done, total = self.bytes_done, self.total_bytes
        rate = done / max(now - self._started, 1e-6)
        of = f" of {format_bytes(total)}" if total else ""
        return f"Progress: {files}/{total_files} files, {format_bytes(done)}{of}, {format_bytes(rate)}/s"
