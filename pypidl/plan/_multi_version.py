"""Why the closure chose a project in more than one version: the targets that did not get
the most widely chosen version, and what kept them from it (reported in the plan's summary)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from packaging.utils import NormalizedName
from packaging.version import Version

from pypidl.plan.prefetch import Unavailable

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pypidl.plan.prefetch import Prefetcher
    from pypidl.plan.provider import TargetProvider

__all__ = ["WHY_MARKERS", "WHY_PLATFORM", "WHY_PYTHON", "why_several"]


#: Why a project needed more than one version, most telling first.
WHY_PYTHON = "Requires-Python"
WHY_PLATFORM = "no file for some targets' platform"
WHY_MARKERS = "requirements that differ by marker"


def why_several(
    versions: Mapping[str, Mapping[str, set[str]]],
    providers: Mapping[str, TargetProvider],
    shared: Prefetcher,
) -> dict[NormalizedName, str]:
    """For each project the targets' own resolutions chose in more than one version (what
    ``--all-versions`` adds on purpose is not counted): why the targets that did not get the
    most widely chosen version could not take it."""
    found: dict[NormalizedName, str] = {}
    for name, chosen in versions.items():
        if len(chosen) < 2:
            continue
        common = max(chosen, key=lambda v: (len(chosen[v]), Version(v)))
        reasons: set[str] = set()
        wanted = Version(common)
        try:
            files = shared.releases(name).get(wanted, ())
        except Unavailable:
            continue
        for version, labels in chosen.items():
            if version == common:
                continue
            for label in labels:
                provider = providers.get(label)
                if provider is None:
                    continue
                if any(v == wanted for v, _files in provider.table(name)):
                    reasons.add(WHY_MARKERS)
                elif any(not provider.allows_python(f.requires_python) for f in files):
                    reasons.add(WHY_PYTHON)
                else:
                    reasons.add(WHY_PLATFORM)
        for why in (WHY_PYTHON, WHY_PLATFORM, WHY_MARKERS):
            if why in reasons:
                found[NormalizedName(name)] = why
                break
    return found
