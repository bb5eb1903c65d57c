"""``--all-versions``: every Python 3 release of each project of a closure, with its own closure.

The closure (:mod:`pypidl.plan.closure`) resolves the requirements once per target; this adds,
for each project it chose, each of its other Python 3 releases resolved alone for every target
that installs it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

from packaging.specifiers import SpecifierSet

from pypidl.plan._python3 import allows_any_python3, is_python3_wheel
from pypidl.plan.prefetch import Unavailable
from pypidl.plan.provider import Req, identifier_of

if TYPE_CHECKING:
    from packaging.markers import Marker
    from packaging.utils import NormalizedName

    from pypidl.manifest import Problem
    from pypidl.plan.page_files import FileFacts
    from pypidl.plan.prefetch import Prefetcher
    from pypidl.plan.provider import Candidate, TargetProvider
    from pypidl.plan.targets import Target

__all__ = ["every_version"]

log = logging.getLogger(__name__)


class _Failed(Protocol):
    """A resolution that failed: it names its problems."""

    def problems(self, provider: TargetProvider) -> list[Problem]: ...


def _python3_release(files: Sequence[FileFacts]) -> bool:
    wheels = [f for f in files if f.kind == "wheel"]
    if wheels:
        return any(is_python3_wheel(f.tags) for f in wheels)
    return any(allows_any_python3(f.requires_python) for f in files)


def every_version(
    resolve: Callable[[TargetProvider, Sequence[Req]], dict[str, Candidate] | _Failed],
    shared: Prefetcher,
    providers: Mapping[str, TargetProvider],
    targets: Sequence[Target],
    reqs: Sequence[Req],
    markers: Sequence[Marker | None],
    pins: Mapping[str, Mapping[NormalizedName, str]],
    limit: int | None,
    workers: int,
    pre: bool = False,
) -> list[tuple[str, dict[str, Candidate]]]:
    """Every Python 3 version of each project of the closure, with its own closure, per target
    (each found by ``resolve``, the closure's resolution of one target).

    As the original tool did with pip-compile's list, "each project" includes the dependencies a
    target's main resolution chose; the versions' own new dependencies get their resolved
    versions (not every version), so the growth stops after one round.

    Yanked versions are kept (a lock written before the yank pins them, and pinned they
    install; the index marks them, so resolvers skip them otherwise); pre-releases only with
    ``pre``.
    """
    jobs: list[tuple[TargetProvider, Req]] = []
    seen_names: dict[str, frozenset[str]] = {}
    for req in reqs:
        seen_names[req.name] = seen_names.get(req.name, frozenset()) | req.extras
    for chosen_by_target in pins.values():
        for dep in chosen_by_target:
            seen_names.setdefault(dep, frozenset())
    for name, extras in seen_names.items():
        try:
            releases = shared.releases(name)
        except Unavailable:
            continue  # already a problem of the main closure
        chosen = [
            v
            for v in sorted(releases, reverse=True)
            if (pre or not v.is_prerelease) and _python3_release(releases[v])
        ]
        if limit is not None:
            chosen = chosen[: max(0, limit)]
        for target in targets:
            provider = providers[target.label]
            needed = name in pins.get(target.label, {}) or any(
                r.name == name and provider.applies(m) for r, m in zip(reqs, markers)
            )
            if not needed:
                continue
            available = {v for v, _files in provider.table(name)}
            for version in chosen:
                if version in available:
                    text = f"{identifier_of(name, extras)}=={version}"
                    jobs.append((provider, Req(name, extras, SpecifierSet(f"=={version}"), text)))

    def run(req: Req, provider: TargetProvider) -> tuple[str, dict[str, Candidate]] | None:
        outcome = resolve(provider, [req])
        if isinstance(outcome, dict):
            return provider.target.label, outcome
        log.debug(
            "%s is not installable on %s: %s",
            req.text,
            provider.target.label,
            "; ".join(p.reason for p in outcome.problems(provider)),
        )
        return None

    # A provider's caches have no lock: each thread takes every job of one provider, so no
    # two threads ever share one (safe by construction, not by the GIL's grace). The shared
    # Prefetcher underneath is thread-safe. Results keep the jobs' order.
    by_provider: dict[str, list[int]] = {}
    for i, (provider, _req) in enumerate(jobs):
        by_provider.setdefault(provider.target.label, []).append(i)
    results: list[tuple[str, dict[str, Candidate]] | None] = [None] * len(jobs)

    def run_all(indexes: list[int]) -> None:
        for i in indexes:
            provider, req = jobs[i]
            results[i] = run(req, provider)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, 16, len(by_provider)))) as pool:
        list(pool.map(run_all, by_provider.values()))
    return [r for r in results if r is not None]
