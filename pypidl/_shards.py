"""Splitting a manifest over hosts (``--shard K/N``) and merging manifests back into one.

Shards are whole projects balanced by bytes, the same on every host; the download pool splits
its workers' shares the same way.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pypidl.errors import BadInputError
from pypidl.manifest import WHY, Entry, Manifest, Problem, entry_order

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["merge_manifests", "parse_shard", "partition", "select_shard", "shard_manifest"]


def partition(entries: Iterable[Entry], parts: int) -> list[list[Entry]]:
    """Split ``entries`` into ``parts`` groups, whole projects each, balanced by bytes.

    Deterministic: the same entries give the same groups on every host, which is what lets
    ``--shard K/N`` on N hosts cover a manifest exactly once.  Projects are placed largest
    first on the lightest group (ties broken by name and group number).

    Only the groups that can receive a project are made (at most one per project): the groups
    past them would stay empty, and ``--shard 1/100000000000`` must not build a list of
    10**11 empty lists (issue 20).  A heap finds the lightest group in ``log(parts)``.
    """
    if parts < 1:
        raise ValueError("parts must be at least 1")
    projects: dict[str, list[Entry]] = {}
    for entry in entries:
        projects.setdefault(entry.project, []).append(entry)
    weights = {name: sum(max(e.size or 0, 1) for e in files) for name, files in projects.items()}
    used = min(parts, len(projects))
    groups: list[list[Entry]] = [[] for _ in range(used)]
    lightest = [(0, i) for i in range(used)]  # (load, group): already a heap
    for name in sorted(projects, key=lambda n: (-weights[n], n)):
        load, i = heapq.heappop(lightest)
        groups[i].extend(sorted(projects[name], key=entry_order))
        heapq.heappush(lightest, (load + weights[name], i))
    return groups


_SHARD_RE = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
#: more hosts than this is a typo (and a 5,000-digit N is more than ``int()`` converts)
_SHARD_DIGITS = 18


def _short(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:20]}...{text[-10:]}"


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)``, with ``1 <= K <= N``.

    :raises BadInputError: for anything else.
    """
    match = _SHARD_RE.fullmatch(text)
    if match is None:
        raise BadInputError(f"shard {text!r} is not of the form K/N", hint="e.g. --shard 2/5")
    if max(len(number) for number in match.groups()) > _SHARD_DIGITS:
        raise BadInputError(f"shard {_short(text)!r} is out of range: over {_SHARD_DIGITS} digits")
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 1 <= k <= n:
        raise BadInputError(f"shard {text!r} is out of range: K must be 1..N and N at least 1")
    return k, n


def select_shard(entries: Iterable[Entry], k: int, n: int) -> list[Entry]:
    """Host ``k``'s share (1-based) when ``entries`` are split over ``n`` hosts.

    Whole projects, balanced by bytes, deterministic: shards ``1..n`` are disjoint and together
    hold every entry.

    :raises BadInputError: when ``k`` is not in ``1..n``.
    """
    if n < 1 or not 1 <= k <= n:
        raise BadInputError(f"shard {k}/{n} is out of range: K must be 1..N and N at least 1")
    groups = partition(entries, n)
    return groups[k - 1] if k <= len(groups) else []


def shard_manifest(manifest: Manifest, k: int, n: int) -> Manifest:
    """``manifest`` reduced to shard ``k`` of ``n`` (projects without files are dropped too)."""
    entries = select_shard(manifest.entries, k, n)
    names = {e.project for e in entries}
    return replace(
        manifest,
        entries=tuple(entries),
        projects={p: v for p, v in manifest.projects.items() if p in names},
        project_status={p: v for p, v in manifest.project_status.items() if p in names},
        problems=tuple(p for p in manifest.problems if p.project in names),
    )


def merge_manifests(manifests: Sequence[Manifest]) -> Manifest:
    """One manifest holding every file of ``manifests``.

    Files are matched by (project, filename); the first manifest's facts win and the URLs of all
    are kept, first manifest's first.  Requirements, targets, index URLs, projects and problems
    are unioned in order.

    :raises BadInputError: when the same file has different sha256 digests in two manifests,
        or when no manifest is given.
    """
    from packaging.version import Version

    if not manifests:
        raise BadInputError("nothing to merge: no manifest given")
    merged: dict[tuple[str, str], Entry] = {}
    conflicts: list[str] = []
    for manifest in manifests:
        for entry in manifest.entries:
            key = (entry.project, entry.filename)
            have = merged.get(key)
            if have is None:
                merged[key] = entry
            elif have.sha256 != entry.sha256:
                conflicts.append(
                    f"{entry.project}/{entry.filename}: sha256 {have.sha256} vs {entry.sha256}"
                )
            else:
                urls = tuple(dict.fromkeys(have.urls + entry.urls))
                size = have.size if have.size is not None else entry.size
                why = tuple(w for w in WHY if w in have.why or w in entry.why)
                merged[key] = replace(have, urls=urls, size=size, why=why)
    if conflicts:
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        raise BadInputError(
            f"manifests disagree about a file: {conflicts[0]}{more}",
            hint="the manifests were planned against indexes that serve different files",
        )
    projects: dict[str, set[str]] = {}
    for manifest in manifests:
        for name, versions in manifest.projects.items():
            projects.setdefault(name, set()).update(versions)

    def union(values: Iterable[Iterable[Any]]) -> tuple[Any, ...]:
        return tuple(dict.fromkeys(v for group in values for v in group))

    problems: tuple[Problem, ...] = union(m.problems for m in manifests)
    pins: dict[str, str] = {}
    for manifest in manifests:
        for project, url in manifest.pins.items():
            if pins.setdefault(project, url) != url:
                raise BadInputError(
                    f"manifests pin {project} to two indexes: {pins[project]} and {url}",
                    hint="a pinned project is fetched from its one index only",
                )
    return Manifest(
        entries=tuple(merged.values()),
        requirements=union(m.requirements for m in manifests),
        index_urls=union(m.index_urls for m in manifests),
        targets=union(m.targets for m in manifests),
        all_versions=any(m.all_versions for m in manifests),
        problems=problems,
        projects={name: tuple(sorted(vs, key=Version)) for name, vs in sorted(projects.items())},
        pins=pins,
        project_status={k: v for m in reversed(manifests) for k, v in m.project_status.items()},
    )
