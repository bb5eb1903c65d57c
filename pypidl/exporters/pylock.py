"""A PEP 751 ``pylock.toml`` whose files are the mirror's: installers read it instead of an index.

Each file points into the mirror, either as a URL under ``base_url`` (the mirror served over
HTTP, ``https://pypi.internal/`` with ``packages/`` and ``simple/`` below it) or as a path
relative to the directory the lock is written to (a mirror on disk or reached over ``file://``).
Every file carries its sha256 and its size, so an installer checks each byte it takes.

One version per project: a lock names no alternatives, so when the manifest holds several
versions of a project the newest is locked and a warning names the others.  The manifest does not
record which target needs which release, so the only markers are the ones its files prove: a
package whose every file is a wheel for some operating systems (no sdist, no pure wheel) gets
``sys_platform`` markers for those systems, so an installer elsewhere skips it instead of failing
(a Windows-only dependency on Linux).  Every other package is installed everywhere: export a
manifest planned for the environments that will install it.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import Version

from pypidl.errors import BadInputError
from pypidl.exporters._common import clean_url

if TYPE_CHECKING:
    from pypidl.manifest import Entry, Manifest

__all__ = ["PylockExporter", "toml_string"]

log = logging.getLogger(__name__)


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string.

    A JSON string is a TOML basic string when nothing is escaped as ``\\uXXXX`` beyond control
    characters (``ensure_ascii=False`` keeps every other character as itself).
    """
    return json.dumps(text, ensure_ascii=False)


@dataclass(frozen=True)
class PylockExporter:
    """``pylock.toml`` for the files of a manifest, as they lie in the mirror.

    :param base_url: the URL the mirror is served at; files become ``<base_url>/packages/...``
        and each package names ``<base_url>/simple/`` as its index.  Without it, files are paths.
    :param lock_dir: with paths: the directory the lock is written to (default: the mirror root).
    """

    name: str = "pylock"
    base_url: str | None = None
    lock_dir: str | None = None

    def render(self, manifest: Manifest, *, root: str = ".") -> Iterator[str]:
        base = clean_url(self.base_url).rstrip("/") + "/" if self.base_url else None
        if base is not None and not base.startswith(("http://", "https://", "file://")):
            raise BadInputError(f"--base-url {base!r} must start with https://, http:// or file://")
        yield "# a PEP 751 lock of the files of a pypidl mirror\n"
        yield 'lock-version = "1.0"\n'
        yield f"created-by = {toml_string(manifest.generator.split()[0] or 'pypidl')}\n"
        for project, entries in sorted(manifest.by_project().items()):
            versions: dict[str, list[Entry]] = {}
            for entry in entries:
                versions.setdefault(entry.version, []).append(entry)
            ordered = sorted(versions, key=Version, reverse=True)
            if len(ordered) > 1:
                log.warning(
                    "%s: locked %s; also in the manifest but not locked: %s",
                    project,
                    ordered[0],
                    ", ".join(ordered[1:]),
                )
            chosen = versions[ordered[0]]
            yield "\n[[packages]]\n"
            yield f"name = {toml_string(project)}\n"
            yield f"version = {toml_string(ordered[0])}\n"
            marker = _platform_marker(chosen)
            if marker:
                yield f"marker = {toml_string(marker)}\n"
            if base is not None:
                yield f"index = {toml_string(base + 'simple/')}\n"
            sdists = [e for e in chosen if e.kind == "sdist"]
            wheels = [e for e in chosen if e.kind == "wheel"]
            if sdists:
                yield f"sdist = {self._file(sdists[0], base, root)}\n"
            if wheels:
                yield "wheels = [\n"
                for wheel in sorted(wheels, key=lambda e: e.filename):
                    yield f"    {self._file(wheel, base, root)},\n"
                yield "]\n"

    def _file(self, entry: Entry, base: str | None, root: str) -> str:
        if base is not None:
            where = f"url = {toml_string(base + entry.relpath)}"
        else:
            start = os.path.abspath(self.lock_dir or root)
            path = os.path.relpath(os.path.join(os.path.abspath(root), entry.relpath), start)
            where = f"path = {toml_string(posixpath.join(*path.split(os.sep)))}"
        size = f", size = {entry.size}" if entry.size is not None else ""
        upload = (
            f", upload-time = {entry.upload_time}"
            if entry.upload_time and _is_toml_datetime(entry.upload_time)
            else ""
        )
        return (
            f"{{ name = {toml_string(entry.filename)}, {where}{upload}{size}, "
            f"hashes = {{ sha256 = {toml_string(entry.sha256)} }} }}"
        )


#: platform tag prefix -> the sys_platform of the systems that install it
_SYS_PLATFORMS = (
    ("win", "win32"),
    ("macosx", "darwin"),
    ("manylinux", "linux"),
    ("musllinux", "linux"),
    ("linux", "linux"),
)


def _platform_marker(entries: list[Entry]) -> str | None:
    """``sys_platform == ...`` for a release whose files install on some systems only, else None."""
    systems: set[str] = set()
    for entry in entries:
        if entry.kind != "wheel":
            return None  # an sdist builds anywhere
        try:
            tags = parse_wheel_filename(entry.filename)[3]
        except InvalidWheelFilename:
            return None
        for tag in tags:
            found = next(
                (sp for prefix, sp in _SYS_PLATFORMS if tag.platform.startswith(prefix)), None
            )
            if found is None:
                return None  # "any", or a platform this table does not know: no marker
            systems.add(found)
    if not systems:
        return None
    return " or ".join(f"sys_platform == '{sp}'" for sp in sorted(systems))


def _is_toml_datetime(text: str) -> bool:
    """PEP 751 wants ``upload-time`` as a TOML offset date-time, written bare."""
    from datetime import datetime

    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None and all(ch in "0123456789-:.TZ+" for ch in text)
