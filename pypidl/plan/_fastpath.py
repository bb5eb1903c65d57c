"""The common case without backtracking: take each project's first candidate, check at the end.

resolvelib re-checks every pinned project against its requirements in every round, so one
resolution of a few hundred projects costs a few hundred thousand checks, most of them for
projects where nothing could ever conflict.  Most real closures never backtrack: each project's
first candidate (the preferred version, else the newest the target installs) satisfies every
requirement that will ever be placed on it.  :func:`first_fit` walks the requirements breadth
first, takes that first candidate for each project, and checks each later requirement against
what it took.  When every requirement holds, the result is a valid resolution in which each
project has the first candidate that satisfies all the requirements of the final graph, which is
what resolvelib returns when it does not backtrack; otherwise (a conflict, no candidate, an
interpreter the release refuses) it returns None and the caller runs resolvelib, which
backtracks and explains.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from pypidl.plan.provider import PYTHON

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pypidl.plan.provider import Candidate, Req, TargetProvider

__all__ = ["first_fit"]


def first_fit(provider: TargetProvider, requirements: Sequence[Req]) -> dict[str, Candidate] | None:
    """A resolution that takes each project's first candidate, or None when that conflicts.

    :returns: identifier -> candidate (the interpreter left out), as resolvelib's mapping.
    """
    chosen: dict[str, Candidate] = {}
    placed: dict[str, list[Req]] = {}
    queue: deque[Req] = deque(requirements)
    while queue:
        req = queue.popleft()
        if req.name == PYTHON:
            if not provider.find_matches(PYTHON, {PYTHON: iter([req])}, {PYTHON: iter(())}):
                return None
            continue
        key = req.identifier
        placed.setdefault(key, []).append(req)
        taken = chosen.get(key)
        if taken is not None:
            if not provider.is_satisfied_by(req, taken):
                return None
            continue
        matches = provider.find_matches(key, {key: iter(placed[key])}, {key: iter(())})
        if not matches:
            return None
        first = matches[0]
        chosen[key] = first
        queue.extend(provider.get_dependencies(first))
    return chosen
