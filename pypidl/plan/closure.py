"""A complete dependency closure for every target.

pip-compile resolves for the machine it runs on: a marker such as ``python_version < "3.11"`` or
``sys_platform == "win32"`` is judged for that host only, so a mirror built from its output lacks
what other machines need.  Here each target gets its own resolution with :mod:`resolvelib` (the
resolver pip vendors) and a provider that sees the index through that target's eyes:

* a version is a candidate when some file of it installs on the target (a wheel whose tags the
  target supports, or an sdist, which pip would build), the file's Requires-Python admits the
  target, and it is not yanked (unless the requirement pins it with ``==``/``===``, PEP 592);
* pre-releases only when a specifier names one or nothing else fits; newest first, except that
  a preferred version (the first target's choice, or a pip-compile pin) comes first when it is a
  candidate, which keeps the mirror small;
* Requires-Dist markers are evaluated in the target's environment (with ``extra`` set for an
  extra), and a release's Requires-Python is a dependency on the target's Python;
* constraints narrow every target; user pins hold on every target, and a target that cannot be
  satisfied becomes a :class:`~pypidl.manifest.Problem` naming it, the requirement and why.

Pages and metadata are read ahead by a walk of the frontier (:mod:`pypidl.plan.prefetch`) into
caches all targets share (a page is fetched once per run).  Each resolution tries
:func:`~pypidl.plan._fastpath.first_fit` before resolvelib, and a target that answers the same as
an earlier one reuses its result (:mod:`pypidl.plan._sharing`).  See ``docs/resolution.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version
from resolvelib import BaseReporter, Resolver
from resolvelib.resolvers import (
    RequirementInformation,
    ResolutionImpossible,
    ResolutionTooDeep,
    ResolverException,
)

from pypidl.manifest import Problem
from pypidl.plan._all_versions import every_version
from pypidl.plan._fastpath import first_fit
from pypidl.plan._multi_version import why_several
from pypidl.plan._sharing import FailedPasses, RecordingProvider, resolve_shared
from pypidl.plan.metadata import MetadataError, MetadataSource
from pypidl.plan.prefetch import DEFAULT_IN_FLIGHT, Prefetcher, Want
from pypidl.plan.provider import (
    PYTHON,
    Candidate,
    Req,
    TargetProvider,
    has_wheel,
)
from pypidl.plan.targets import span_ends

if TYPE_CHECKING:
    from pypidl.plan.pages import ProjectPage
    from pypidl.plan.targets import Target

__all__ = [
    "UNKNOWN_DEPENDENCIES",
    "UNREADABLE_METADATA",
    "ClosureResult",
    "resolve_closure",
]

log = logging.getLogger(__name__)

#: Every problem about a release whose dependencies could not be known starts with this (and has
#: ``severity="warning"``: a possible gap, not a known one).
UNKNOWN_DEPENDENCIES = "dependencies unknown"
#: the start of the warning for a release whose metadata could not be read (maybe only this time)
UNREADABLE_METADATA = f"{UNKNOWN_DEPENDENCIES}: metadata unreadable"

#: resolvelib rounds per resolution; one round pins one project, so this is generous.
MAX_ROUNDS = 5000


@dataclass(frozen=True)
class ClosureResult:
    """What the closure chose, for the planner.

    ``versions`` maps project -> version -> labels of the targets that need that version.
    ``problems`` names every target left unsatisfied (and releases whose dependencies are
    unknown).  ``extras`` lists the extras requested anywhere.  ``all_versions_added`` maps
    project -> versions that only the ``all_versions`` closure selected (so the summary can say
    how much it grew the mirror).  ``pins`` maps target label -> project -> version of that
    target's main resolution.  ``multi_version`` names the projects some targets needed in
    another version than the rest, each with the reason (``Requires-Python``, no file for
    their platform, or requirements that differ by marker).
    """

    versions: dict[NormalizedName, dict[str, frozenset[str]]]
    problems: tuple[Problem, ...]
    extras: dict[NormalizedName, frozenset[str]]
    all_versions_added: dict[NormalizedName, frozenset[str]] = field(default_factory=dict)
    pins: dict[str, dict[NormalizedName, str]] = field(default_factory=dict)
    #: project -> why some targets needed another version of it than the others
    multi_version: dict[NormalizedName, str] = field(default_factory=dict)
    #: how many resolutions ran (targets that agreed with an earlier one reused its result)
    resolutions: int = 0

    def labels(self, project: NormalizedName, version: str) -> frozenset[str]:
        return self.versions.get(project, {}).get(version, frozenset())


_Info = RequirementInformation  # (requirement, parent)
_Mapping = dict[str, Candidate]


@dataclass(frozen=True)
class _Failure:
    """A resolution that found no solution: what it learned, to be told for any target that
    agrees with the one it ran for (the texts name the target)."""

    reqs: tuple[Req, ...]
    #: the requirements that could not be met (None: resolvelib gave up without a conflict)
    causes: tuple[_Info, ...] | None

    def problems(self, provider: TargetProvider) -> list[Problem]:
        if self.causes is not None:
            return _impossible(provider, self.causes)
        label = provider.target.label
        text = ", ".join(r.text for r in self.reqs)
        reason = (
            f"no combination of versions installs on {label} (gave up after {MAX_ROUNDS} rounds)"
        )
        return [Problem(self.reqs[0].name, reason, text, label)]


_Outcome = Union[_Mapping, _Failure]


#: Resolutions with wheels only (each letting in the sdist-only releases of the projects the
#: last one failed on) before every project's sdist-only releases become candidates.
WHEEL_PASSES = 4

#: resolvelib rounds of a wheels-only pass.  Reaching back to an older release takes a few
#: rounds; proving that no wheels-only solution exists can take thousands (every release of
#: every parent of a project that has no wheel for the target, each with its metadata): on
#: issue 17's jupyterlab set that cost minutes, so a pass that has not found one by then lets
#: in the sdists of the projects it backtracked on most.
WHEEL_PASS_ROUNDS = 300


def _resolve(provider: TargetProvider, reqs: Sequence[Req]) -> _Outcome:
    """One resolution, wheels first: the chosen candidates, or the problems that prevent it.

    With ``provider.wheels_first`` the first pass takes no release the target would have to
    build from its sdist, so the resolver backtracks to older releases (of the project itself,
    or of the one that pulled in an sdist-only dependency) until the closure installs from wheels
    alone, as pip's ``--only-binary`` would.  Where no such solution exists, the projects the
    pass failed on may be built in the next pass, and after :data:`WHEEL_PASSES` any project
    (a release with a wheel still comes before a newer sdist-only one, as ``--prefer-binary``).
    """
    if not provider.wheels_first:
        return _resolve_once(provider, reqs)
    provider.sdist_ok = frozenset()
    try:
        for _pass in range(WHEEL_PASSES):
            outcome = _wheels_pass(provider, reqs)
            if isinstance(outcome, dict):
                return outcome
            more = _buildable(provider, outcome)
            if not more:
                break
            provider.sdist_ok = (provider.sdist_ok or frozenset()) | more
        provider.sdist_ok = None
        return _resolve_once(provider, reqs)
    finally:
        provider.sdist_ok = None


def _wheels_pass(provider: TargetProvider, reqs: Sequence[Req]) -> _Outcome:
    """One wheels-only pass (a failure another target met the same way is taken from it)."""

    def run() -> _Outcome:
        return _resolve_once(provider, reqs, max_rounds=WHEEL_PASS_ROUNDS)

    if isinstance(provider, RecordingProvider):
        return provider.wheels_pass(reqs, run, lambda outcome: not isinstance(outcome, dict))
    return run()


def _buildable(provider: TargetProvider, failure: _Failure) -> frozenset[str]:
    """The projects a wheels-only pass failed on that have releases the target could build."""
    allowed = provider.sdist_ok or frozenset()
    names = {c.requirement.name for c in failure.causes or ()} - {PYTHON} - allowed
    return frozenset(
        name
        for name in names
        if any(not has_wheel(files) for _version, files in provider.table(name))
    )


def _resolve_once(
    provider: TargetProvider, reqs: Sequence[Req], *, max_rounds: int = MAX_ROUNDS
) -> _Outcome:
    """One resolution: the chosen candidates, or the problems that prevent it.

    :func:`~pypidl.plan._fastpath.first_fit` answers when nothing conflicts; resolvelib runs
    when something does.  When resolvelib gives up (too many rounds), the requirements it
    backtracked on most are explained instead of a round count.
    """
    quick = first_fit(provider, reqs)
    if quick is not None:
        return quick
    causes = _Causes()
    resolver: Resolver[Req, Candidate, str] = Resolver(provider, causes)
    try:
        result = resolver.resolve(reqs, max_rounds=max_rounds)
    except ResolutionImpossible as exc:
        return _Failure(tuple(reqs), tuple(exc.causes))
    except ResolutionTooDeep:
        return _Failure(tuple(reqs), tuple(causes.most_common()) if causes.counts else None)
    except ResolverException as exc:  # pragma: no cover - resolvelib internal inconsistency
        log.debug("resolvelib failed on %s: %s", provider.target.label, exc)
        return _Failure(tuple(reqs), None)
    return {k: v for k, v in result.mapping.items() if k != PYTHON}


class _Causes(BaseReporter):  # type: ignore[type-arg]
    """Counts the requirements resolvelib backtracks on, to name them if it gives up."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.infos: dict[tuple[str, str], _Info] = {}

    def resolving_conflicts(self, causes: Collection[_Info]) -> None:
        for cause in causes:
            parent = cause.parent
            key = (cause.requirement.text, "" if parent is None else str(parent.name))
            self.counts[key] = self.counts.get(key, 0) + 1
            self.infos[key] = cause

    def most_common(self) -> list[_Info]:
        """The one or two causes met most often (with a parent project each, the latest seen)."""
        ranked = sorted(self.counts, key=lambda k: (-self.counts[k], k))
        return [self.infos[k] for k in ranked[:2]]


def _impossible(provider: TargetProvider, causes: Iterable[_Info]) -> list[Problem]:
    """One problem per requirement that could not be met, naming who asked for it and why."""
    label = provider.target.label
    python = provider.target.python_full_version
    parents: dict[tuple[str, str], list[Candidate | None]] = {}
    reqs: dict[tuple[str, str], Req] = {}
    for cause in causes:
        req: Req = cause.requirement
        parent: Candidate | None = cause.parent
        if req.name == PYTHON:
            key = (PYTHON, "" if parent is None else parent.name)
        else:
            key = (req.name, req.text)
        reqs.setdefault(key, req)
        if parent not in parents.setdefault(key, []):
            parents[key].append(parent)
    problems: list[Problem] = []
    for key, req in reqs.items():
        who = parents[key]
        if req.name == PYTHON:
            releases = [p for p in who if p is not None]
            if not releases:
                continue
            newest = max(releases, key=lambda c: c.version)
            project = newest.name
            reason = f"{_several(releases)} requires Python {req.specifier}; {label} runs Python {python}"
            problems.append(Problem(project, reason, f"{project}=={newest.version}", label))
            continue
        asked = "requested" if None in who else f"required by {_several(who)}"
        reason = f"{req.text} ({asked}) cannot be installed on {label}: {provider.explain(req)}"
        problems.append(Problem(req.name, reason, req.text, label))
    return problems


def _several(candidates: Sequence[Candidate | None]) -> str:
    """``a 1.12`` or ``a 1.12 and 11 other releases``, newest named."""
    found = [c for c in candidates if c is not None]
    newest = max(found, key=lambda c: c.version)
    others = len(found) - 1
    return f"{newest}" + (f" and {others} other release(s)" if others else "")


def _unknown(shared: Prefetcher, mapping: _Mapping, label: str) -> list[Problem]:
    problems = []
    for cand in mapping.values():
        if cand.extras:
            continue
        try:
            meta = shared.metadata(cand.name, cand.version)
        except MetadataError as exc:
            reason = f"{UNREADABLE_METADATA}: {exc.message}"
        else:
            if meta.dependencies_known:
                continue
            reason = meta.unknown_reason or UNKNOWN_DEPENDENCIES
        # a possible gap, not a known one: pip-compile built it for the host; say so, don't fail
        problems.append(
            Problem(cand.name, reason, f"{cand.name}=={cand.version}", label, severity="warning")
        )
    return problems


@dataclass
class _TargetResult:
    label: str
    mappings: list[_Mapping] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: every requirement resolved together (then ``mappings`` holds that one resolution)
    ok: bool = False
    #: otherwise, why not (``mappings`` then holds the requirements resolved one by one)
    failure: _Failure | None = None


def _solved(result: _TargetResult) -> _Mapping | None:
    return result.mappings[0] if result.ok and result.mappings else None


def _reuse(result: _TargetResult, provider: TargetProvider) -> _TargetResult:
    """Another target's result, told for ``provider``'s target (which agrees with it)."""
    label = provider.target.label
    out = _TargetResult(label, list(result.mappings), ok=result.ok, failure=result.failure)
    if result.failure is not None:
        out.problems.extend(result.failure.problems(provider))
    for mapping in out.mappings:
        out.problems.extend(_unknown(provider.shared, mapping, label))
    return out


def _resolve_target(provider: TargetProvider, reqs: Sequence[Req]) -> _TargetResult:
    """Resolve everything together; if that fails, each requirement alone, so the target still
    gets every part that can be installed, and the failure is named."""
    out = _TargetResult(provider.target.label)
    wanted = [r for r in reqs if r.name != PYTHON]
    if not wanted:
        out.ok = True
        out.mappings.append({})
        return out
    outcome = _resolve(provider, wanted)
    if isinstance(outcome, dict):
        out.mappings.append(outcome)
        out.ok = True
    else:
        out.failure = outcome
        out.problems.extend(outcome.problems(provider))
        if len(wanted) > 1:
            for req in wanted:
                single = _resolve(provider, [req])
                if isinstance(single, dict):
                    out.mappings.append(single)
    for mapping in out.mappings:
        out.problems.extend(_unknown(provider.shared, mapping, out.label))
    return out


def resolve_closure(
    requirements: Sequence[Requirement],
    targets: Sequence[Target],
    *,
    pages: Callable[[str], ProjectPage],
    metadata: MetadataSource,
    constraints: Sequence[Requirement] = (),
    preferred: Mapping[NormalizedName, str] | None = None,
    all_versions: bool = False,
    all_versions_limit: int | None = None,
    pre: bool = False,
    workers: int = DEFAULT_IN_FLIGHT,
    index: Prefetcher | None = None,
    share: bool = True,
    wheels_first: bool = True,
) -> ClosureResult:
    """The versions every target needs to install ``requirements``, target by target.

    This is also the entry point for further requirement sources (a build environment, say):
    call it again with those requirements and the targets they apply to, passing the same
    ``index`` so pages and metadata already read are not read again.

    :param requirements: what users install (markers are judged per target).
    :param targets: the environments the mirror serves.
    :param pages: a project's index page by name (e.g. :meth:`IndexClient.project`); called at
        most once per project, from several threads.
    :param metadata: core metadata of releases (:class:`pypidl.plan.metadata.MetadataFetcher`).
    :param constraints: ``-c`` lines: they narrow candidates but select nothing.
    :param preferred: the host's pip-compile pins, tried first wherever they fit.
    :param all_versions: also select every Python 3 version of each project of the closure, each with
        its own closure, on the targets that can install it.
    :param all_versions_limit: at most this many versions per project (newest first).
    :param pre: with ``all_versions``, pre-releases too.
    :param workers: requests in flight while reading pages and metadata ahead.
    :param index: the shared caches of an earlier call (then ``pages``, ``metadata`` and
        ``workers`` are not used; the caller closes it).
    :param share: reuse one target's resolution for every target that agrees with it
        (:mod:`pypidl.plan._sharing`); False resolves each target on its own.
    :param wheels_first: where a target can install the closure from wheels alone, choose that
        (see :func:`_resolve`); False: the newest release whatever the kind of its files.
    """
    problems: list[Problem] = []
    reqs: list[Req] = []
    markers: list[Marker | None] = []
    for req in requirements:
        if req.url:
            problems.append(
                Problem(
                    canonicalize_name(req.name),
                    "direct URL requirements are not mirrored",
                    str(req),
                )
            )
            continue
        reqs.append(Req.of(req))
        markers.append(req.marker)
    prefer: dict[str, Version] = {}
    for pin_name, pin_version in (preferred or {}).items():
        try:
            prefer[canonicalize_name(pin_name)] = Version(pin_version)
        except ValueError:  # InvalidVersion, or a number too long for int()
            continue

    shared = index or Prefetcher(pages, metadata, targets, in_flight=workers)
    try:
        shared.follow(Want.of(r) for r in requirements if not r.url)

        failed_passes: FailedPasses = []

        def provider_for(target: Target) -> RecordingProvider:
            by_name: dict[str, list[SpecifierSet]] = {}
            for c in constraints:
                if _applies_static(c.marker, target):
                    by_name.setdefault(canonicalize_name(c.name), []).append(c.specifier)
            provider = RecordingProvider(
                shared,
                target,
                constraints=by_name,
                preferred=prefer,
                wheels_first=wheels_first,
            )
            if share:
                provider.failed_passes = failed_passes
            return provider

        providers = {t.label: provider_for(t) for t in targets}
        mine = {
            label: [r for r, m in zip(reqs, markers) if provider.applies(m)]
            for label, provider in providers.items()
        }
        # the newest Python first: its choices become everyone's preference where they fit;
        # a family's ceiling before its floor, so the newest machine's choice is its own, not
        # the floor's (docs/targets.md, "Floors and ceilings")
        floors = {floor for floor, _ceiling in span_ends(targets)}
        order = sorted(targets, key=lambda t: (t.python, t.label not in floors), reverse=True)
        by_label, runs = resolve_shared(
            [providers[t.label] for t in order],
            mine,
            _resolve_target,
            _reuse,
            solved=_solved,
            share=share,
        )
        results = [by_label[t.label] for t in targets]

        versions: dict[str, dict[str, set[str]]] = {}
        extras: dict[str, set[str]] = {}
        pins: dict[str, dict[NormalizedName, str]] = {}

        def take(label: str, mapping: _Mapping, record: bool) -> None:
            for cand in mapping.values():
                if cand.extras:
                    extras.setdefault(cand.name, set()).update(cand.extras)
                    continue
                versions.setdefault(cand.name, {}).setdefault(str(cand.version), set()).add(label)
                if record:
                    pins.setdefault(label, {})[NormalizedName(cand.name)] = str(cand.version)

        for result in results:
            for n, mapping in enumerate(result.mappings):
                take(result.label, mapping, n == 0)
            problems.extend(result.problems)
        base = {name: set(vs) for name, vs in versions.items()}
        main = {name: {v: set(ls) for v, ls in vs.items()} for name, vs in versions.items()}

        added: dict[str, set[str]] = {}
        if all_versions:
            extra_results = every_version(
                _resolve,
                shared,
                providers,
                targets,
                reqs,
                markers,
                pins,
                all_versions_limit,
                workers,
                pre,
            )
            for label, mapping in extra_results:
                take(label, mapping, False)
            for name, vs in versions.items():
                new = set(vs) - base.get(name, set())
                if new:
                    added[name] = new
    finally:
        if index is None:
            shared.close()

    unique = list(dict.fromkeys(problems))
    unique.sort(key=lambda p: (p.target or "", p.project, p.reason))
    return ClosureResult(
        versions={
            NormalizedName(name): {v: frozenset(labels) for v, labels in vs.items()}
            for name, vs in sorted(versions.items())
        },
        problems=tuple(unique),
        extras={NormalizedName(k): frozenset(v) for k, v in sorted(extras.items())},
        all_versions_added={NormalizedName(k): frozenset(v) for k, v in sorted(added.items())},
        pins=pins,
        multi_version=why_several(main, providers, shared),
        resolutions=runs,
    )


def _applies_static(marker: Marker | None, target: Target) -> bool:
    if marker is None:
        return True
    try:
        return bool(marker.evaluate(target.marker_environment()))
    except Exception:  # a marker we cannot judge is not applied
        return False
