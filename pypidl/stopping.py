"""Whether the run is stopping: one flag every retry wait watches (no HTTP stack imported).

The CLI sets it from its SIGINT and SIGTERM handlers; :mod:`pypidl.session` re-exports these
names.  A module of its own so that the process that only coordinates (the CLI's parent) need
not load ``requests`` to install its handlers.
"""

from __future__ import annotations

import threading

__all__ = ["RequestCancelled", "allow_waits", "interrupt_waits"]

#: Set when the run is stopping (Ctrl-C, SIGTERM): every retry wait ends at once.
_STOPPING = threading.Event()


class RequestCancelled(Exception):
    """A retry wait was cut short because the run is stopping.

    Not a :class:`requests.RequestException`: nothing should take it for a network failure and
    try the next mirror.
    """


def interrupt_waits() -> None:
    """End every retry wait of every session in this process now, and any that would start.

    The CLI calls it from its SIGINT and SIGTERM handlers, before the main thread unwinds, so
    threads sleeping on a ``Retry-After`` wake up instead of keeping the process alive.
    """
    _STOPPING.set()


def allow_waits() -> None:
    """Undo :func:`interrupt_waits` (a new run in the same process)."""
    _STOPPING.clear()
