"""Render a manifest for other tools: aria2c input files, URL lists, hash-pinned requirements,
PEP 751 locks.

Each format is one module with one exporter object behind the :class:`Exporter` protocol.  An
exporter only renders text (it yields lines); writing them somewhere is the caller's job, so the
same exporter serves a file, standard output or a test.

Exports are handed around and kept, so they never carry credentials: every URL goes through
:func:`clean_url`, which drops ``user:password@`` and refuses characters that would break a
line-based format.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

from pypidl.errors import BadInputError
from pypidl.exporters._common import clean_url
from pypidl.exporters.aria2c import Aria2cExporter
from pypidl.exporters.pylock import PylockExporter
from pypidl.exporters.requirements import RequirementsExporter
from pypidl.exporters.urls import UrlsExporter

if TYPE_CHECKING:
    from pypidl.manifest import Manifest

__all__ = [
    "EXPORTERS",
    "Aria2cExporter",
    "Exporter",
    "PylockExporter",
    "RequirementsExporter",
    "UrlsExporter",
    "clean_url",
    "get_exporter",
]


class Exporter(Protocol):
    """One output format."""

    @property
    def name(self) -> str:
        """The ``--format`` value that selects it."""
        ...

    def render(self, manifest: Manifest, *, root: str) -> Iterator[str]:
        """Yield the export, line by line, each ending with a newline.

        :param root: the mirror directory the consumer should download into (used by formats
            that place files, such as aria2c's ``dir=``).
        """
        ...


#: Every built-in format by name, with default options.
EXPORTERS: Mapping[str, Exporter] = {
    exporter.name: exporter
    for exporter in (Aria2cExporter(), UrlsExporter(), RequirementsExporter(), PylockExporter())
}


def get_exporter(name: str, /, **options: object) -> Exporter:
    """The exporter called ``name``, with ``options`` (such as ``all_urls=True``) applied.

    :raises BadInputError: for an unknown format or an option the format does not have.
    """
    try:
        exporter = EXPORTERS[name]
    except KeyError:
        known = ", ".join(sorted(EXPORTERS))
        raise BadInputError(
            f"unknown export format {name!r}", hint=f"choose one of: {known}"
        ) from None
    if not options:
        return exporter
    try:
        fields = {f.name for f in dataclasses.fields(exporter)}  # type: ignore[arg-type]
    except TypeError:  # a plugin exporter that is not a dataclass takes no options
        fields = set()
    unknown = sorted(set(options) - fields - {"name"})
    if unknown or "name" in options:
        bad = ", ".join(unknown or ["name"])
        raise BadInputError(f"export format {name!r} has no option {bad}")
    return dataclasses.replace(exporter, **options)  # type: ignore[type-var]
