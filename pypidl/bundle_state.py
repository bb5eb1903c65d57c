"""What a bundle carries besides files: what the inside needs to judge them.

The project statuses (PEP 792) the index builder serves and the advisory snapshot ``pypidl
audit`` reads travel as ``state/<name>`` and land in ``<mirror>/.pypidl/<name>``; only the names
in :data:`CARRIED` are accepted, so a bundle cannot write anything else there.  The PEP 740
provenance of a bundled file travels as ``packages/<project>/<file>.provenance`` and is accepted
only with the sha256 the bundled manifest says the planner checked.  Every member is listed in
the header's ``state`` list with its sha256 and size, and checked before import writes it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pypidl._fs import atomic_write_bytes, safe_join
from pypidl.advisories import SNAPSHOT_NAME
from pypidl.hashing import bytes_sha256, file_sha256, is_sha256
from pypidl.manifest import PACKAGES_DIR, Entry
from pypidl.store.catalog import STATE_DIR
from pypidl.store.provenance import PROVENANCE_SUFFIX, provenance_path
from pypidl.store.status import STATUS_FILE

__all__ = [
    "CARRIED",
    "STATE_PREFIX",
    "carried_state",
    "check_sidecars",
    "check_state_header",
    "publish_state",
    "state_header",
]

#: the state files a bundle may carry
CARRIED = (STATUS_FILE, SNAPSHOT_NAME)
STATE_PREFIX = "state/"


def carried_state(
    root: str | os.PathLike[str],
    files: Iterable[Entry],
    extra: Mapping[str, bytes] | None = None,
) -> dict[str, bytes]:
    """What a bundle of ``files`` from the mirror at ``root`` carries besides them, by member
    name: the state files (``extra``, by state name, wins) and the files' kept provenance."""
    found: dict[str, bytes] = {}
    for name in CARRIED:
        path = Path(root) / STATE_DIR / name
        if path.is_file():
            found[STATE_PREFIX + name] = path.read_bytes()
    found.update({STATE_PREFIX + name: data for name, data in (extra or {}).items()})
    for entry in files:
        if entry.provenance_sha256 is None:
            continue
        path = provenance_path(entry.path_in(root))
        if path.is_file() and file_sha256(path) == entry.provenance_sha256:
            found[entry.relpath + PROVENANCE_SUFFIX] = path.read_bytes()
    return found


def state_header(state: Mapping[str, bytes]) -> list[dict[str, Any]]:
    """The header's ``state`` list for ``state`` (by member name)."""
    return [
        {"relpath": relpath, "sha256": bytes_sha256(data), "size": len(data)}
        for relpath, data in sorted(state.items())
    ]


def _acceptable(relpath: Any) -> bool:
    if not isinstance(relpath, str):
        return False
    if relpath.startswith(STATE_PREFIX):
        return relpath[len(STATE_PREFIX) :] in CARRIED
    parts = relpath.split("/")
    return len(parts) == 3 and parts[0] == PACKAGES_DIR and relpath.endswith(PROVENANCE_SUFFIX)


def check_sidecars(
    state: Mapping[str, bytes], entries: Mapping[str, Entry], problems: list[str]
) -> None:
    """Each carried provenance must belong to a bundled file whose manifest entry names its
    sha256 (the document the planner checked)."""
    for relpath, data in state.items():
        if relpath.startswith(STATE_PREFIX):
            continue
        entry = entries.get(relpath[: -len(PROVENANCE_SUFFIX)])
        if entry is None or entry.provenance_sha256 != bytes_sha256(data):
            problems.append(f"{relpath} is not the provenance the bundled manifest checked")


def check_state_header(header: Mapping[str, Any], problems: list[str]) -> dict[str, dict[str, Any]]:
    """Relpath -> record of the header's ``state`` list (absent in older bundles)."""
    raw = header.get("state", [])
    if not isinstance(raw, list):
        problems.append("the header's 'state' list is malformed")
        return {}
    found: dict[str, dict[str, Any]] = {}
    for i, item in enumerate(raw):
        relpath = item.get("relpath") if isinstance(item, dict) else None
        size = item.get("size") if isinstance(item, dict) else None
        if (
            not isinstance(relpath, str)
            or not _acceptable(relpath)
            or not is_sha256(item.get("sha256"))
            or not isinstance(size, int)
            or isinstance(size, bool)
            or size < 0
            or relpath in found
        ):
            problems.append(f"header state[{i}] is malformed or names a file not carried")
            continue
        found[relpath] = item
    return found


def publish_state(into: Path, state: Mapping[str, bytes]) -> None:
    """Write the checked ``state`` members into the mirror at ``into``.

    :raises UnsafeFilenameError: a member path that would leave the mirror (checked before).
    """
    for relpath, data in state.items():
        if relpath.startswith(STATE_PREFIX):
            atomic_write_bytes(into / STATE_DIR / relpath[len(STATE_PREFIX) :], data)
        else:
            atomic_write_bytes(safe_join(into, *relpath.split("/")), data)
