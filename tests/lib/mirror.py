"""Filling a mirror directly, the way the download engine leaves it: file, catalog line."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from pypidl.manifest import Entry
from pypidl.store.catalog import Catalog
from tests.lib.server import IndexServer, ServedFile
from tests.lib.wheels import wheel_metadata

__all__ = ["add_to_mirror", "entry_for", "find_uv"]


def add_to_mirror(root: Path, dist: Path, *, sidecar: bool = False, **facts: Any) -> Entry:
    """Copy ``dist`` into the mirror at ``root`` and record it in the catalog, as the engine does.

    :param sidecar: also write the PEP 658 ``.metadata`` file (the index builder makes them too).
    :param facts: more :class:`~pypidl.manifest.Entry` fields (requires_python, yanked, ...).
    """
    if dist.name.endswith(".whl"):
        name, version, _, _ = parse_wheel_filename(dist.name)
        kind = "wheel"
    else:
        name, version = parse_sdist_filename(dist.name)
        kind = "sdist"
    project = canonicalize_name(name)
    dest = root / "packages" / project / dist.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(dist, dest)
    entry = Entry(
        project=project,
        version=str(version),
        filename=dist.name,
        urls=(f"http://127.0.0.1:9/{dist.name}",),
        sha256=hashlib.sha256(dest.read_bytes()).hexdigest(),
        kind=kind,
        **facts,
    )
    Catalog(root).add(entry, dest)
    if sidecar and kind == "wheel":
        dest.with_name(dest.name + ".metadata").write_bytes(wheel_metadata(dest))
    return entry


def find_uv() -> str | None:
    """The uv binary the ``uv`` package ships, if it is installed."""
    try:
        import uv  # type: ignore[import-not-found]

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        return None


def entry_for(served: ServedFile, *servers: IndexServer, size: bool = True) -> Entry:
    """The manifest entry of a file a test server serves.

    :param servers: list the file on each of these servers (in order) instead of its own server,
        as a manifest lists every mirror's URL.
    :param size: leave the size out when false (indexes need not publish it).
    """
    urls = tuple(s.file_url(served.filename) for s in servers) or (served.url,)
    return Entry(
        project=served.project,
        version=served.version,
        filename=served.filename,
        urls=urls,
        sha256=served.sha256,
        size=served.size if size else None,
    )
