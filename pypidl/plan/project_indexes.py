"""Per-project indexes: a project pinned to a named index is read from that index only.

``--index NAME=URL`` declares an index; ``--project-index PROJECT=NAME`` pins a project to it.
The same two can be written in a requirements file as comments, which pip ignores::

    # pypidl: index pytorch=https://download.example/whl/cu124/
    # pypidl: project-index torch=pytorch
    torch==2.5.1+cu124

A pinned project is never read from another index, even one that has it: this is the rule uv
applies to explicit indexes, and what keeps a private or vendor project from being replaced by
a same-named upload elsewhere (dependency confusion).  Every other project follows the usual
order of ``--index-url`` and its fall-backs; a declared index serves pinned projects only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name

from pypidl._fs import read_input
from pypidl.errors import BadInputError, RequirementsError
from pypidl.sources import Mirror, check_index_url

__all__ = ["ProjectIndexes", "parse_project_indexes", "read_directives"]

_DIRECTIVE = re.compile(r"^\s*#\s*pypidl:\s*(index|project-index)\s+(.*?)\s*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: names pypidl gives indexes itself (-i, the default, --extra-index-url, a lock's file URLs):
#: a declared index by one of these names would pass for that index, and the metadata and
#: sdist readers would ask the other for its pinned projects (issue 20)
_BUILT_IN = re.compile(r"^(primary|default|lock|index[0-9]+|extra[0-9]+)$", re.IGNORECASE)


@dataclass(frozen=True)
class ProjectIndexes:
    """Declared indexes by name, and the projects pinned to them."""

    indexes: Mapping[str, Mirror] = field(default_factory=dict)
    pins: Mapping[NormalizedName, str] = field(default_factory=dict)
    #: every URL as given (credentials kept: the network settings take them from here)
    raw_urls: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.pins)

    def check_names(self, taken: Iterable[str]) -> None:
        """Refuse a declared index whose name is also the name of another index of the run.

        :raises BadInputError: naming it.
        """
        others = set(taken)
        for name in self.indexes:
            if name in others:
                raise BadInputError(
                    f"index name {name!r} is already the name of another index of this run",
                    hint="give the index another name in --index / '# pypidl: index'",
                )

    def mirrors_for(self, project: str, default: Sequence[Mirror]) -> list[Mirror]:
        """The mirrors ``project`` may be read from: its pinned index alone, else ``default``."""
        name = self.pins.get(canonicalize_name(project))
        return [self.indexes[name]] if name is not None else list(default)

    def routes(self) -> dict[str, list[Mirror]]:
        """Pinned project -> its one mirror."""
        return {p: [self.indexes[n]] for p, n in self.pins.items()}


def _split(value: str, what: str, where: str | None) -> tuple[str, str]:
    name, sep, rest = value.partition("=")
    name, rest = name.strip(), rest.strip()
    if not sep or not name or not rest:
        raise BadInputError(f"{what} {value!r} is not of the form NAME=VALUE", context=where)
    return name, rest


def parse_project_indexes(
    indexes: Iterable[tuple[str, str | None]], pins: Iterable[tuple[str, str | None]]
) -> ProjectIndexes:
    """Build the routing from ``NAME=URL`` and ``PROJECT=NAME`` values.

    :param indexes: ``(value, where)`` pairs; ``where`` is ``file:line`` or None for a flag.
    :raises BadInputError: a malformed value, a URL that is not http(s)/file, a name declared
        twice with different URLs, a pin to an undeclared index, or a project pinned twice.
    """
    declared: dict[str, Mirror] = {}
    raw: list[str] = []
    for value, where in indexes:
        name, url = _split(value, "index", where)
        if not _NAME.match(name):
            raise BadInputError(
                f"index name {name!r} must be letters, digits, '.', '_' or '-'", context=where
            )
        if _BUILT_IN.match(name):
            raise BadInputError(
                f"index name {name!r} is one pypidl gives its own indexes (primary, default, "
                "lock, indexN, extraN); choose another",
                context=where,
            )
        check_index_url(url, context=where)
        mirror = Mirror.from_index_url(url, name=name)
        if name in declared and declared[name].simple_url != mirror.simple_url:
            raise BadInputError(
                f"index {name!r} is declared twice with different URLs", context=where
            )
        declared[name] = mirror
        raw.append(url)
    pinned: dict[NormalizedName, str] = {}
    for value, where in pins:
        project, name = _split(value, "project index", where)
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none declared"
            raise BadInputError(
                f"project {project!r} is pinned to index {name!r}, which is not declared ({known})",
                context=where,
                hint="declare it with --index NAME=URL",
            )
        key = canonicalize_name(project)
        if pinned.get(key, name) != name:
            raise BadInputError(
                f"project {project!r} is pinned to two indexes ({pinned[key]!r} and {name!r})",
                context=where,
            )
        pinned[key] = name
    return ProjectIndexes(indexes=declared, pins=pinned, raw_urls=tuple(raw))


def read_directives(
    paths: Iterable[str | Path],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The ``# pypidl: index`` and ``# pypidl: project-index`` lines of requirements files.

    :returns: ``(indexes, pins)`` as ``(value, "file:line")`` pairs, for
        :func:`parse_project_indexes`.
    :raises RequirementsError: a file that cannot be read.
    """
    indexes: list[tuple[str, str]] = []
    pins: list[tuple[str, str]] = []
    for path in paths:
        try:
            text = read_input(path).decode("utf-8", errors="replace")
        except OSError as exc:
            raise RequirementsError(
                f"cannot read: {exc.strerror or exc}", context=str(path)
            ) from None
        for n, line in enumerate(text.splitlines(), start=1):
            found = _DIRECTIVE.match(line)
            if found:
                kind, value = found.groups()
                (indexes if kind == "index" else pins).append((value, f"{path}:{n}"))
    return indexes, pins
