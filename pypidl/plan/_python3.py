"""Python 3 or not: which files and Requires-Python values a Python 3 mirror can use.

pypidl mirrors for Python 3 only: a wheel tagged for Python 2 alone, or a release whose
Requires-Python excludes every Python 3, is skipped.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import TYPE_CHECKING

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from packaging.tags import Tag

__all__ = ["allows_any_python3", "is_python3_wheel", "requires_python_specifier"]

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4096)
def requires_python_specifier(requires_python: str | None) -> SpecifierSet | None:
    """``Requires-Python`` as a specifier; ``None`` when it is missing or invalid (then it
    allows everything, as in pip)."""
    if requires_python is None or not requires_python.strip():
        return None
    try:
        return SpecifierSet(requires_python)
    except InvalidSpecifier:
        logger.debug("ignoring invalid Requires-Python %r", requires_python)
        return None


_INTERPRETER_RE = re.compile(r"[a-z]+?(\d)")


def is_python3_wheel(tags: Iterable[Tag]) -> bool:
    """False when every tag is for Python 2 (``py2``, ``cp27``, ``pp27``...): such files are skipped.

    A tag whose interpreter carries no version counts as Python 3.
    """
    for tag in tags:
        match = _INTERPRETER_RE.match(tag.interpreter)
        if match is None or match.group(1) != "2":
            return True
    return False


def _candidate_versions(spec: SpecifierSet) -> Iterator[Version]:
    for minor in range(21):
        yield Version(f"3.{minor}.0")
        yield Version(f"3.{minor}.999")
    # Versions named by the specifier, and their neighbours, catch narrow windows like
    # ">=3.6.2,<3.6.4".
    for item in spec:
        text = item.version.replace(".*", "")
        try:
            named = Version(text)
        except ValueError:  # InvalidVersion, or a number too long for int()
            continue
        if named.major != 3 or named.minor > 20:
            continue
        release = list(named.release) + [0] * (3 - len(named.release))
        base = release[:3]
        for delta in (-1, 0, 1):
            patch = base[2] + delta
            if patch >= 0:
                yield Version(f"3.{base[1]}.{patch}")
        yield named


@functools.lru_cache(maxsize=4096)
def allows_any_python3(requires_python: str | None) -> bool:
    """False only when ``Requires-Python`` excludes every Python 3 release (3.0 to 3.20).

    Missing or invalid specifiers allow everything.  (Remembered by text: a plan asks it for
    every file it considers, and a page repeats a few texts thousands of times.)
    """
    spec = requires_python_specifier(requires_python)
    if spec is None:
        return True
    return any(spec.contains(v, prereleases=True) for v in _candidate_versions(spec))
