"""The C allocator's arenas, and giving its free memory back, where it is glibc's."""

from __future__ import annotations

import ctypes
import functools
import logging
import os

__all__ = ["ARENAS", "give_back", "limit_arenas"]

log = logging.getLogger(__name__)

#: Arenas glibc's malloc may keep while planning (its default is eight per core).
ARENAS = 2

#: ``mallopt``'s parameter for the most arenas (glibc's ``malloc.h``)
_M_ARENA_MAX = -8


@functools.cache
def limit_arenas() -> bool:
    """Let glibc's malloc keep at most :data:`ARENAS` arenas in this process (once; True when
    it took the setting).

    The planner's threads each read pages: each body and each parse tree is allocated by the
    thread that reads it, and glibc gives threads arenas of their own, up to eight per core,
    whose freed space serves only later allocations in the same arena.  Over a large plan that
    left about a tenth of the peak RSS free but held (1,000 projects on two cores: 374 MiB,
    340 MiB with two arenas, no more CPU).  Nothing is done elsewhere than on glibc, or when
    ``MALLOC_ARENA_MAX`` already says how many.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not _glibc():
        return False
    return bool(_libc("mallopt", _M_ARENA_MAX, ARENAS))


def give_back() -> bool:
    """Return the free memory glibc's malloc holds to the system (``malloc_trim``); True when
    some was returned.

    glibc gives back on its own only what is free at the top of its heap; a page here and
    there between live blocks stays held until this asks for it.  Nothing is done elsewhere
    than on glibc.
    """
    return _glibc() and bool(_libc("malloc_trim", 0))


def _libc(function: str, *args: int) -> int:
    """What the C library's ``function`` returns for ``args``; 0 when it has no such
    function."""
    try:
        return int(getattr(ctypes.CDLL(None), function)(*args))
    except (OSError, AttributeError):  # no such symbol: some other C library after all
        log.debug("%s is not there", function, exc_info=True)
        return 0


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (AttributeError, ValueError, OSError):  # Windows; a name the platform lacks
        return False
