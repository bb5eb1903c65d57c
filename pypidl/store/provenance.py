"""PEP 740 provenance kept beside the mirror's files, so clients inside can verify again.

After a download, each file the plan checked a provenance for gets it as ``<file>.provenance``:
fetched again, kept only when its sha256 is the one the planner checked, written atomically.
The index builder lists a file's provenance when the document is there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from pypidl._fs import atomic_write_bytes
from pypidl.errors import UnsafeFilenameError
from pypidl.hashing import bytes_sha256, file_sha256
from pypidl.session import describe_error, new_session

if TYPE_CHECKING:
    from pypidl.config import NetworkSettings
    from pypidl.manifest import Entry

__all__ = ["PROVENANCE_SUFFIX", "KeptProvenance", "keep_provenance", "provenance_path"]

log = logging.getLogger(__name__)

PROVENANCE_SUFFIX = ".provenance"
_MAX_BYTES = 4 * 1024 * 1024


@dataclass
class KeptProvenance:
    written: int = 0
    present: int = 0
    #: (filename, why) of every provenance that could not be kept
    failed: list[tuple[str, str]] = field(default_factory=list)


def provenance_path(path: Path) -> Path:
    """Where the provenance of the file at ``path`` lives."""
    return path.parent / (path.name + PROVENANCE_SUFFIX)


def keep_provenance(
    entries: Iterable[Entry], root: str | os.PathLike[str], net: NetworkSettings
) -> KeptProvenance:
    """Fetch and keep the checked provenance of every entry the mirror at ``root`` holds."""
    result = KeptProvenance()
    todo = [e for e in entries if e.provenance_url and e.provenance_sha256]
    if not todo:
        return result
    session = new_session(net)
    try:
        for entry in todo:
            try:
                path = entry.path_in(root)
            except UnsafeFilenameError:
                continue
            if not path.is_file():
                continue  # the file itself failed: its own failure says so
            target = provenance_path(path)
            if target.is_file() and file_sha256(target) == entry.provenance_sha256:
                result.present += 1
                continue
            problem = _fetch_checked(session, entry, net, target)
            if problem is None:
                result.written += 1
            else:
                result.failed.append((entry.filename, problem))
    finally:
        session.close()
    return result


def _fetch_checked(
    session: requests.Session, entry: Entry, net: NetworkSettings, target: Path
) -> str | None:
    assert entry.provenance_url is not None  # noqa: S101 - filtered by the caller
    try:
        with session.get(
            entry.provenance_url, timeout=(net.connect_timeout, net.read_timeout), stream=True
        ) as resp:
            resp.raise_for_status()
            data = resp.raw.read(_MAX_BYTES + 1, decode_content=True)
    except (requests.RequestException, OSError) as exc:
        return describe_error(exc)
    if len(data) > _MAX_BYTES:
        return "larger than 4 MiB"
    digest = bytes_sha256(data)
    if digest != entry.provenance_sha256:
        return f"sha256 is {digest}, the plan checked {entry.provenance_sha256}"
    atomic_write_bytes(target, data)
    return None
