"""The garbage collector's pace while planning, and the memory a finished plan gives back."""

from __future__ import annotations

import contextlib
import gc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["PLANNING_GC_THRESHOLD", "fewer_collections", "give_back_plan_memory"]

#: Allocations between two collections of the youngest generation while planning (Python's
#: default is 700).
PLANNING_GC_THRESHOLD = 50_000


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while planning.

    Planning allocates millions of small objects that live until the plan is written (the
    parsed pages, a RemoteFile per file, tables, candidates) and makes little cyclic garbage;
    with the default threshold the collector ran so often, each time walking the survivors,
    that it took about a sixth of the planner's CPU time on a 145-project, 42-target plan.
    """
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], PLANNING_GC_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def give_back_plan_memory() -> None:
    """Once a plan is done and the process goes on (``sync`` downloads next, for hours maybe):
    collect what the plan left, and return the C allocator's free memory to the system.

    At 1,000 projects of ``scripts/bench_plan.py``'s corpus, ``sync`` held 247 MiB when its
    download started, 203 MiB with this (about 20 MiB of it live: the rest is Python's own
    arenas, each kept by a few objects that outlive the plan, such as the manifest).
    """
    from pypidl._malloc import give_back

    gc.collect()
    give_back()
