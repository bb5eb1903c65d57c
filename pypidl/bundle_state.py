"""What a bundle carries besides files: the mirror state the inside needs to judge them.

The project statuses (PEP 792) the index builder serves, and the advisory snapshot ``pypidl
audit`` reads.  Each travels as ``state/<name>`` with its sha256 and size in the bundle header;
an import checks both before it writes the file to ``<mirror>/.pypidl/<name>``.  Only the names
in :data:`CARRIED` are accepted, so a bundle cannot write anything else there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pypidl._fs import atomic_write_bytes
from pypidl.advisories import SNAPSHOT_NAME
from pypidl.hashing import bytes_sha256, is_sha256
from pypidl.store.catalog import STATE_DIR
from pypidl.store.status import STATUS_FILE

__all__ = ["CARRIED", "STATE_PREFIX", "carried_state", "check_state_header", "publish_state"]

#: the state files a bundle may carry
CARRIED = (STATUS_FILE, SNAPSHOT_NAME)
STATE_PREFIX = "state/"


def carried_state(
    root: str | os.PathLike[str], extra: Mapping[str, bytes] | None = None
) -> dict[str, bytes]:
    """The state files of the mirror at ``root`` a bundle carries, by name (``extra`` wins)."""
    found: dict[str, bytes] = {}
    for name in CARRIED:
        path = Path(root) / STATE_DIR / name
        if path.is_file():
            found[name] = path.read_bytes()
    found.update(extra or {})
    return found


def state_header(state: Mapping[str, bytes]) -> list[dict[str, Any]]:
    """The header's ``state`` list for ``state``."""
    return [
        {"relpath": STATE_PREFIX + name, "sha256": bytes_sha256(data), "size": len(data)}
        for name, data in sorted(state.items())
    ]


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
            or relpath[len(STATE_PREFIX) :] not in CARRIED
            or not relpath.startswith(STATE_PREFIX)
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
    """Write the checked ``state`` files into the mirror at ``into``."""
    for relpath, data in state.items():
        atomic_write_bytes(into / STATE_DIR / relpath[len(STATE_PREFIX) :], data)
