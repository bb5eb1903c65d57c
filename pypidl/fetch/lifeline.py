"""A worker's tie to the run that started it: a dead parent or a SIGTERM ends the worker.

A worker whose parent was killed with SIGKILL must not finish its share and then sleep forever
holding the project locks: the next run would find them taken.  :class:`Lifeline` notices, within
a fraction of a second, any of:

* the parent's end of a pipe closing (``multiprocessing.parent_process().sentinel``, on every OS);
* the parent pid changing (a re-parented orphan, where no sentinel exists);
* a SIGTERM sent to the worker (on Linux the kernel also sends one when the parent dies:
  ``PR_SET_PDEATHSIG``);

and then calls ``on_end(reason)`` once.  The caller stops its transfers (parts are kept for
resume) and returns; if it has not returned after ``grace`` seconds the process ends itself with
``os._exit``, which also drops its OS file locks.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from collections.abc import Callable

__all__ = ["EXIT_ORPHANED", "Lifeline"]

log = logging.getLogger(__name__)

#: Exit status of a worker that ended itself because its parent was gone.
EXIT_ORPHANED = 3
_PR_SET_PDEATHSIG = 1


class Lifeline:
    """Watches the parent and SIGTERM from a daemon thread; see the module docstring.

    :param parent_pid: the pid of the process that started this worker.
    :param on_end: called once, from the watching thread, with why the worker must stop.
    :param grace: seconds between ``on_end`` and ``os._exit`` if the worker has not finished.
    :param poll: seconds between checks of the SIGTERM flag and the parent pid.
    """

    def __init__(
        self,
        parent_pid: int,
        on_end: Callable[[str], None],
        *,
        grace: float = 1.5,
        poll: float = 0.1,
    ):
        self.parent_pid = parent_pid
        self.reason: str | None = None
        self.terminated = False
        self._on_end = on_end
        self._grace = grace
        self._poll = poll
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="pypidl-lifeline", daemon=True)

    def start(self) -> Lifeline:
        """Install the SIGTERM handler (main thread only) and start watching."""
        if hasattr(signal, "SIGTERM"):
            signal.signal(signal.SIGTERM, self._on_sigterm)
        if sys.platform == "linux":
            _parent_death_signal(signal.SIGTERM)
        self._thread.start()
        return self

    def finished(self) -> None:
        """The worker is done: stop watching (its own exit needs no help)."""
        self._finished.set()

    @property
    def orphaned(self) -> bool:
        return self.reason is not None and not self.terminated

    def _on_sigterm(self, signum: int, frame: object) -> None:
        # a plain attribute write: safe in a signal handler; the watching thread acts on it
        self.terminated = True

    def _parent_gone(self, sentinel: int | None) -> bool:
        if os.getppid() != self.parent_pid:
            return True
        if sentinel is None:
            return False
        try:
            return bool(multiprocessing.connection.wait([sentinel], timeout=0))
        except OSError:
            return True

    def _watch(self) -> None:
        parent = multiprocessing.parent_process()
        sentinel = getattr(parent, "sentinel", None) if parent is not None else None
        while not self._finished.is_set():
            if self.terminated:
                reason = "stopped by SIGTERM"
            elif self._parent_gone(sentinel):
                reason = "the run that started this worker has ended"
            else:
                if sentinel is not None:
                    with contextlib.suppress(OSError):
                        multiprocessing.connection.wait([sentinel], timeout=self._poll)
                else:
                    self._finished.wait(self._poll)
                continue
            self.reason = reason
            # SIGTERM after the parent's death on Linux: it is still an orphan
            if self.terminated and self._parent_gone(sentinel):
                self.terminated = False
                self.reason = "the run that started this worker has ended"
            log.debug("worker %d stopping: %s", os.getpid(), self.reason)
            self._on_end(self.reason)
            if not self._finished.wait(self._grace):
                os._exit(EXIT_ORPHANED if self.orphaned else 128 + int(signal.SIGTERM))
            return


def _parent_death_signal(signum: int) -> None:
    """Ask Linux to send ``signum`` to this process when its parent dies (best effort)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        pass
