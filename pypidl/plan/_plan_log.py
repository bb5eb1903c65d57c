"""What a plan says about itself in the log: where it needed several versions of a project,
how it read metadata (and what it had to download whole), and what ``--all-versions`` added.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from packaging.utils import NormalizedName

if TYPE_CHECKING:
    from pypidl.manifest import Entry
    from pypidl.plan.closure import ClosureResult
    from pypidl.plan.metadata import MetadataFetcher

__all__ = ["log_growth", "log_reads", "log_versions"]

log = logging.getLogger("pypidl.plan.planner")  # one logger for everything the plan says


def log_versions(result: ClosureResult) -> None:
    """Say how many projects needed more than one version, and why."""
    several = result.multi_version
    if not several:
        return
    by_reason: dict[str, list[str]] = {}
    for name, why in sorted(several.items()):
        by_reason.setdefault(why, []).append(name)
    log.info(
        "%d project(s) needed more than one version: %s",
        len(several),
        "; ".join(
            f"{len(names)} for {why} ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})"
            for why, names in sorted(by_reason.items())
        ),
    )


def log_reads(fetcher: MetadataFetcher) -> None:
    """Say how the plan read metadata, and what it had to download whole to do so."""
    stats = fetcher.stats()
    if not stats:
        return
    words = {
        "cache": "cached",
        "sidecar": "from .metadata files",
        "range": "by range reads of wheels",
        "partial": "from the head of sdists",
        "local": "from local files",
    }
    parts = [f"{stats[k][0]} {w}" for k, w in words.items() if k in stats]
    files, size = stats.get("download", (0, 0))
    parts.append(f"{files} downloaded whole ({size / 2**20:.1f} MiB)")
    log.info("Metadata of %d file(s): %s", sum(n for n, _ in stats.values()), ", ".join(parts))


def log_growth(added: Mapping[NormalizedName, set[str]], entries: Sequence[Entry]) -> None:
    """Say how much --all-versions grew the mirror (``added``: project -> versions only it
    selected), and how to cap it."""
    if not added:
        return
    extra = [e for e in entries if e.version in added.get(NormalizedName(e.project), ())]
    log.warning(
        "--all-versions added %d release(s) of %d project(s): %d of %d file(s), %.1f of %.1f MiB; "
        "--all-versions-limit N keeps the newest N releases of each project",
        sum(len(v) for v in added.values()),
        len(added),
        len(extra),
        len(entries),
        sum(e.size or 0 for e in extra) / 2**20,
        sum(e.size or 0 for e in entries) / 2**20,
    )
