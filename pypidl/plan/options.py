"""What a plan is asked for: :class:`PlanOptions`, the planner's settings, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pypidl.plan.gate import GateOptions
from pypidl.plan.prefetch import DEFAULT_IN_FLIGHT

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["PlanOptions"]


@dataclass(frozen=True)
class PlanOptions:
    all_versions: bool = False
    #: newest N versions per project with --all-versions (None: no limit)
    all_versions_limit: int | None = None
    no_deps: bool = False
    #: auto: keep a release's sdist when a target that needs the release has no wheel for it
    sdist: str = "auto"
    #: also resolve the closure for each target (not only pip-compile's host resolution)
    closure: bool = True
    #: run pip-compile for this host first and prefer its pins on every target (opt-in: it
    #: resolves for this machine only and downloads what pip cannot read metadata of)
    pip_compile: bool = False
    #: requests in flight while reading pages and metadata
    workers: int = DEFAULT_IN_FLIGHT
    #: with all_versions: pre-releases too
    pre: bool = False
    #: add what builds the kept sdists, for the targets that build them (plan/build_deps.py)
    build_deps: bool = True
    #: keep pages between runs (asked again conditionally) and reuse the plan of unchanged
    #: inputs (plan/replan.py); False reads every page in full and resolves again
    reuse: bool = True
    #: the newest release a target installs whatever the kind of its files (default: wheels
    #: first, sdists only where no wheels-only solution exists; issue 17)
    prefer_newest: bool = False
    #: projects whose files must come with a verified PEP 740 provenance
    require_provenance: frozenset[str] = frozenset()
    #: what may cross the gap: cooldown, advisories (plan/gate.py)
    gate: GateOptions = field(default_factory=GateOptions)
    #: where pages, metadata, build systems, plans and pip-tools' cache are kept between runs
    #: (the CLI gives :func:`pypidl.config.cache_dir`); None keeps nothing on disk.  Left out
    #: of the repr, which keys a kept plan (plan/replan.py): where the cache is changes no plan.
    cache_dir: Path | None = field(default=None, repr=False)
