"""The PEP 792 statuses of a mirror's projects, as the indexes they came from gave them.

Kept in ``<mirror>/.pypidl/project-status.json`` (project -> ``{"status", "reason"}``) by each
download, and served again by the index builder, so clients inside the gap see what was said
outside.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from pypidl import _json as untrusted_json
from pypidl._fs import atomic_write_text
from pypidl.store.catalog import STATE_DIR

__all__ = ["STATUS_FILE", "load_statuses", "record_statuses"]

STATUS_FILE = "project-status.json"


def load_statuses(root: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """Project -> status of the mirror at ``root`` (empty when none was recorded)."""
    try:
        data = untrusted_json.loads((Path(root) / STATE_DIR / STATUS_FILE).read_bytes())
    except (OSError, untrusted_json.UntrustedJSONError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(k): {f: v[f] for f in ("status", "reason") if isinstance(v.get(f), str)}
        for k, v in data.items()
        if isinstance(v, dict) and isinstance(v.get("status"), str)
    }


def record_statuses(
    root: str | os.PathLike[str],
    statuses: Mapping[str, Mapping[str, str]],
    projects: Iterable[str],
) -> None:
    """Record ``statuses`` for ``projects`` (the ones a plan read; those without a status are
    active again), keeping what earlier runs said of the others."""
    current = load_statuses(root)
    for name in projects:
        current.pop(name, None)
    current.update({k: dict(v) for k, v in statuses.items()})
    path = Path(root) / STATE_DIR / STATUS_FILE
    if current or path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(dict(sorted(current.items())), indent=1) + "\n")
