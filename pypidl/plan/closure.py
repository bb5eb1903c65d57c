"""A complete dependency closure for every target (issue 5).

pip-compile resolves for the machine it runs on: a marker such as ``python_version < "3.11"`` or
``sys_platform == "win32"`` is judged for that host only, so a mirror built from its output lacks
what other machines need.  Here each target gets its own resolution with :mod:`resolvelib` (the
resolver pip vendors) and a provider that sees the index through that target's eyes:

* a version is a candidate when some file of it installs on the target (a wheel whose tags the
  target supports, or an sdist, which pip would build), the file's Requires-Python admits the
  target, and it is not yanked (unless the requirement pins it with ``==``/``===``, PEP 592);
* pre-releases only when a specifier names one or nothing else fits; newest first, except that
  the host's pip-compile pin comes first when it is a candidate, which keeps the mirror small;
* Requires-Dist markers are evaluated in the target's environment (with ``extra`` set for an
  extra), and a release's Requires-Python is a dependency on the target's Python;
* constraints narrow every target; user pins hold on every target, and a target that cannot be
  satisfied becomes a :class:`~pypidl.manifest.Problem` naming it, the requirement and why.

Pages and metadata are shared by all targets through thread-safe caches (a page is fetched once
per run), and targets are resolved in a thread pool.  See ``docs/resolution.md``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version
from resolvelib import AbstractProvider, BaseReporter, Resolver
from resolvelib.resolvers import (
    RequirementInformation,
    ResolutionImpossible,
    ResolutionTooDeep,
    ResolverException,
)

from pypidl.errors import IndexError_
from pypidl.manifest import Problem
from pypidl.plan.metadata import CoreMetadata, MetadataError, MetadataSource
from pypidl.plan.targets import allows_any_python3, is_python3_wheel

if TYPE_CHECKING:
    from pypidl.plan.pages import ProjectPage, RemoteFile
    from pypidl.plan.targets import Target

__all__ = [
    "UNKNOWN_DEPENDENCIES",
    "Selection",
    "resolve_closure",
]

log = logging.getLogger(__name__)

#: Every problem about a release whose dependencies could not be known starts with this (and has
#: ``severity="warning"``: a possible gap, not a known one).
UNKNOWN_DEPENDENCIES = "dependencies unknown"

#: resolvelib rounds per resolution; one round pins one project, so this is generous.
MAX_ROUNDS = 5000

_PYTHON = "<python>"  # the identifier of the target's interpreter


@dataclass(frozen=True)
class Selection:
    """What the closure chose, for the planner.

    ``versions`` maps project -> version -> labels of the targets that need that version.
    ``problems`` names every target left unsatisfied (and releases whose dependencies are
    unknown).  ``extras`` lists the extras requested anywhere.  ``all_versions_added`` maps
    project -> versions that only the ``all_versions`` closure selected (so the summary can say
    how much it grew the mirror).  ``pins`` maps target label -> project -> version of that
    target's main resolution.
    """

    versions: dict[NormalizedName, dict[str, frozenset[str]]]
    problems: tuple[Problem, ...]
    extras: dict[NormalizedName, frozenset[str]]
    all_versions_added: dict[NormalizedName, frozenset[str]] = field(default_factory=dict)
    pins: dict[str, dict[NormalizedName, str]] = field(default_factory=dict)

    def labels(self, project: NormalizedName, version: str) -> frozenset[str]:
        return self.versions.get(project, {}).get(version, frozenset())


# ---------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class _Req:
    """A requirement as the resolver sees it."""

    name: str  # normalized project name, or _PYTHON
    extras: frozenset[str]
    specifier: SpecifierSet
    text: str  # as written, for messages
    #: only this version (an extra's link to its base release)
    exact: Version | None = None

    @property
    def identifier(self) -> str:
        return _identifier(self.name, self.extras)

    @property
    def pinned(self) -> bool:
        """``==`` without a wildcard, or ``===``: the PEP 592 condition for a yanked release."""
        return self.exact is not None or any(
            s.operator == "===" or (s.operator == "==" and not s.version.endswith(".*"))
            for s in self.specifier
        )

    @classmethod
    def of(cls, req: Requirement) -> _Req:
        return cls(
            name=canonicalize_name(req.name),
            extras=frozenset(canonicalize_name(e) for e in req.extras),
            specifier=req.specifier,
            text=str(req),
        )


@dataclass(frozen=True)
class _Candidate:
    name: str
    version: Version
    extras: frozenset[str]
    #: files of this version the target can install (for messages and the planner)
    files: tuple[RemoteFile, ...] = field(compare=False, repr=False)

    @property
    def identifier(self) -> str:
        return _identifier(self.name, self.extras)

    def __str__(self) -> str:
        return f"{self.identifier} {self.version}"


def _identifier(name: str, extras: frozenset[str]) -> str:
    return f"{name}[{','.join(sorted(extras))}]" if extras else name


_Info = RequirementInformation  # (requirement, parent)


# ---------------------------------------------------------------------------------- caches


class _Unavailable(Exception):
    """A project's page could not be had; ``reason`` says why."""


class _Shared:
    """Caches every target's provider shares: pages (fetched once), releases, metadata."""

    def __init__(
        self,
        pages: Callable[[str], ProjectPage],
        metadata: MetadataSource,
        workers: int,
    ):
        self._pages = pages
        self._metadata = metadata
        self._lock = threading.Lock()
        self._page_futures: dict[str, Future[dict[Version, tuple[RemoteFile, ...]]]] = {}
        self._meta_futures: dict[tuple[str, Version], Future[CoreMetadata]] = {}
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, workers), thread_name_prefix="pypidl-pages"
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # pages

    def _page_future(self, name: str) -> Future[dict[Version, tuple[RemoteFile, ...]]]:
        with self._lock:
            future = self._page_futures.get(name)
            if future is None:
                future = self._page_futures[name] = self._pool.submit(self._load, name)
            return future

    def _load(self, name: str) -> dict[Version, tuple[RemoteFile, ...]]:
        try:
            page = self._pages(name)
        except IndexError_ as exc:
            raise _Unavailable(exc.message) from None
        grouped: dict[Version, list[RemoteFile]] = {}
        for rf in page.files:
            try:
                version = Version(rf.version)
            except InvalidVersion:
                continue
            grouped.setdefault(version, []).append(rf)
        return {v: tuple(files) for v, files in grouped.items()}

    def prefetch(self, names: Iterable[str]) -> None:
        for name in names:
            if name != _PYTHON:
                self._page_future(name)

    def releases(self, name: str) -> dict[Version, tuple[RemoteFile, ...]]:
        """Files by version.  :raises _Unavailable: when no index could give the page."""
        return self._page_future(name).result()

    # metadata

    def _meta_future(self, name: str, version: Version) -> Future[CoreMetadata]:
        files = self.releases(name).get(version, ())
        with self._lock:
            future = self._meta_futures.get((name, version))
            if future is None:
                future = self._meta_futures[(name, version)] = self._pool.submit(
                    self._metadata.release, NormalizedName(name), str(version), files
                )
            return future

    def prefetch_metadata(self, name: str, version: Version) -> None:
        self._meta_future(name, version)

    def metadata(self, name: str, version: Version) -> CoreMetadata:
        """:raises MetadataError: when the release's metadata cannot be read."""
        try:
            return self._meta_future(name, version).result()
        except MetadataError:
            raise
        except Exception as exc:  # a source's unexpected failure must not stop every target
            raise MetadataError(f"{type(exc).__name__}: {exc}", context=name) from exc


# ---------------------------------------------------------------------------------- provider


class _Provider(AbstractProvider[_Req, _Candidate, str]):
    """resolvelib's view of the index for one target."""

    def __init__(
        self,
        shared: _Shared,
        target: Target,
        *,
        constraints: Mapping[str, Sequence[SpecifierSet]],
        preferred: Mapping[str, Version],
    ):
        self.shared = shared
        self.target = target
        self.constraints = constraints
        self.preferred = preferred
        self._envs: dict[str, dict[str, str]] = {}
        self._tables: dict[str, list[tuple[Version, tuple[RemoteFile, ...]]]] = {}
        self.python = _Candidate(_PYTHON, Version(target.python_full_version), frozenset(), ())
        #: projects whose page could not be read, with the reason
        self.unavailable: dict[str, str] = {}

    # helpers

    def env(self, extra: str = "") -> dict[str, str]:
        env = self._envs.get(extra)
        if env is None:
            env = self._envs[extra] = self.target.marker_environment(extra)
        return env

    def applies(self, marker: Marker | None, extra: str = "") -> bool:
        if marker is None:
            return True
        try:
            return bool(marker.evaluate(self.env(extra)))
        except Exception as exc:  # a marker we cannot judge is not applied
            log.debug("cannot evaluate marker %s for %s: %s", marker, self.target.label, exc)
            return False

    def allows_python(self, spec: str | None) -> bool:
        return self.target.allows_python(spec)

    def installable(self, files: Iterable[RemoteFile]) -> tuple[RemoteFile, ...]:
        return tuple(f for f in files if self.target.can_install(f))

    def table(self, name: str) -> list[tuple[Version, tuple[RemoteFile, ...]]]:
        """Versions with files this target can install, newest first."""
        rows = self._tables.get(name)
        if rows is None:
            try:
                releases = self.shared.releases(name)
            except _Unavailable as exc:
                self.unavailable[name] = str(exc)
                releases = {}
            rows = []
            for version in sorted(releases, reverse=True):
                files = self.installable(releases[version])
                if files:
                    rows.append((version, files))
            self._tables[name] = rows
        return rows

    # resolvelib API

    def identify(self, requirement_or_candidate: _Req | _Candidate) -> str:
        return requirement_or_candidate.identifier

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, _Candidate],
        candidates: Mapping[str, Iterator[_Candidate]],
        information: Mapping[str, Iterator[_Info]],
        backtrack_causes: Sequence[_Info],
    ) -> tuple[bool, bool, bool, str]:
        infos = list(information[identifier])
        pinned = any(info.requirement.pinned for info in infos)
        causes = {info.requirement.name for info in backtrack_causes}
        name = infos[0].requirement.name if infos else identifier
        return (identifier != _PYTHON, not pinned, name not in causes, identifier)

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[_Req]],
        incompatibilities: Mapping[str, Iterator[_Candidate]],
    ) -> list[_Candidate]:
        reqs = list(requirements[identifier])
        if identifier == _PYTHON:
            ok = all(self.allows_python(str(r.specifier)) for r in reqs)
            return [self.python] if ok else []
        name, extras = reqs[0].name, reqs[0].extras
        bad = {c.version for c in incompatibilities[identifier]}
        spec = SpecifierSet()
        exact: set[Version] = set()
        for r in reqs:
            spec &= r.specifier
            if r.exact is not None:
                exact.add(r.exact)
        for constraint in self.constraints.get(name, ()):
            spec &= constraint
        pinned = any(r.pinned for r in reqs)
        eligible: dict[Version, tuple[RemoteFile, ...]] = {}
        for version, files in self.table(name):
            if version in bad or (exact and version not in exact):
                continue
            live = tuple(f for f in files if not f.yanked)
            if not live and not pinned:
                continue
            eligible[version] = live or files
        allowed = list(spec.filter(eligible, prereleases=True if exact else None))
        allowed.sort(reverse=True)
        preferred = self.preferred.get(name)
        if preferred is not None and preferred in allowed:
            allowed.remove(preferred)
            allowed.insert(0, preferred)
        if allowed:
            self.shared.prefetch_metadata(name, allowed[0])
        return [_Candidate(name, v, extras, eligible[v]) for v in allowed]

    def is_satisfied_by(self, requirement: _Req, candidate: _Candidate) -> bool:
        if candidate.name == _PYTHON:
            return self.allows_python(str(requirement.specifier))
        if requirement.exact is not None and candidate.version != requirement.exact:
            return False
        return requirement.specifier.contains(candidate.version, prereleases=True)

    def get_dependencies(self, candidate: _Candidate) -> list[_Req]:
        if candidate.name == _PYTHON:
            return []
        try:
            meta = self.shared.metadata(candidate.name, candidate.version)
        except MetadataError:
            return []  # named in the problems after the resolution (see _unknown)
        deps: list[_Req] = []
        if candidate.extras:
            # An extra depends on its base release, plus what the extra adds.
            deps.append(
                _Req(
                    candidate.name,
                    frozenset(),
                    SpecifierSet(),
                    f"{candidate.name}=={candidate.version}",
                    exact=candidate.version,
                )
            )
            for req in meta.requires_dist:
                if self.applies(req.marker, "") or not any(
                    self.applies(req.marker, extra) for extra in sorted(candidate.extras)
                ):
                    continue
                deps.append(_Req.of(req))
        else:
            if meta.requires_python:
                try:
                    deps.append(
                        _Req(
                            _PYTHON,
                            frozenset(),
                            SpecifierSet(meta.requires_python),
                            f"Python{meta.requires_python}",
                        )
                    )
                except InvalidSpecifier:
                    log.debug("%s: ignoring invalid Requires-Python", candidate)
            deps.extend(_Req.of(req) for req in meta.requires_dist if self.applies(req.marker))
        self.shared.prefetch(d.name for d in deps)
        return deps

    # explanations

    def explain(self, req: _Req) -> str:
        """Why no version of ``req`` installs on this target (or that it conflicts)."""
        if req.name == _PYTHON:
            return f"the target runs Python {self.target.python_full_version}"
        if req.name in self.unavailable:
            return self.unavailable[req.name]
        try:
            releases = self.shared.releases(req.name)
        except _Unavailable as exc:
            return str(exc)
        spec = req.specifier
        for constraint in self.constraints.get(req.name, ()):
            spec &= constraint
        matching = sorted((v for v in releases if spec.contains(v, prereleases=True)), reverse=True)
        if not matching:
            newest = ", ".join(str(v) for v in sorted(releases, reverse=True)[:5])
            return f"no version matches (available: {newest or 'none'})"
        reasons = []
        for version in matching[:3]:
            files = releases[version]
            installable = self.installable(files)
            if installable and all(f.yanked for f in installable) and not req.pinned:
                reasons.append(f"{version} is yanked")
            elif installable:
                reasons.append(f"{version} conflicts with other requirements")
            elif not any(self.allows_python(f.requires_python) for f in files):
                spec_text = next((f.requires_python for f in files if f.requires_python), "")
                reasons.append(f"{version} requires Python {spec_text}")
            else:
                reasons.append(f"{version} has no file for {self.target.label}")
        more = f" (and {len(matching) - 3} more)" if len(matching) > 3 else ""
        return "; ".join(reasons) + more


# ---------------------------------------------------------------------------------- driver


_Mapping = dict[str, _Candidate]
_Outcome = Union[_Mapping, list[Problem]]


def _resolve(provider: _Provider, reqs: Sequence[_Req]) -> _Outcome:
    """One resolution: the chosen candidates, or the problems that prevent it."""
    resolver: Resolver[_Req, _Candidate, str] = Resolver(provider, BaseReporter())
    label = provider.target.label
    try:
        result = resolver.resolve(reqs, max_rounds=MAX_ROUNDS)
    except ResolutionImpossible as exc:
        return _impossible(provider, exc.causes)
    except ResolutionTooDeep:
        text = ", ".join(r.text for r in reqs)
        return [Problem(reqs[0].name, f"resolution too deep on {label}", text, label)]
    except ResolverException as exc:  # pragma: no cover - resolvelib internal inconsistency
        return [Problem(reqs[0].name, f"resolution failed on {label}: {exc}", None, label)]
    return {k: v for k, v in result.mapping.items() if k != _PYTHON}


def _impossible(provider: _Provider, causes: Iterable[_Info]) -> list[Problem]:
    label = provider.target.label
    problems: dict[tuple[str, str], Problem] = {}
    for cause in causes:
        req: _Req = cause.requirement
        parent: _Candidate | None = cause.parent
        who = "requested" if parent is None else f"required by {parent}"
        if req.name == _PYTHON:
            project = parent.name if parent is not None else "python"
            reason = (
                f"{parent} requires Python {req.specifier}; "
                f"{label} runs Python {provider.target.python_full_version}"
            )
            text = f"{project}=={parent.version}" if parent is not None else req.text
        else:
            project = req.name
            reason = f"{req.text} ({who}) cannot be installed on {label}: {provider.explain(req)}"
            text = req.text
        problems.setdefault((project, reason), Problem(project, reason, text, label))
    return list(problems.values())


def _unknown(shared: _Shared, mapping: _Mapping, label: str) -> list[Problem]:
    problems = []
    for cand in mapping.values():
        if cand.extras:
            continue
        try:
            meta = shared.metadata(cand.name, cand.version)
        except MetadataError as exc:
            reason = f"{UNKNOWN_DEPENDENCIES}: metadata unreadable: {exc.message}"
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


def _resolve_target(provider: _Provider, reqs: Sequence[_Req]) -> _TargetResult:
    """Resolve everything together; if that fails, each requirement alone, so the target still
    gets every part that can be installed, and the failure is named."""
    out = _TargetResult(provider.target.label)
    wanted = [r for r in reqs if r.name != _PYTHON]
    if not wanted:
        return out
    outcome = _resolve(provider, wanted)
    if isinstance(outcome, dict):
        out.mappings.append(outcome)
    else:
        out.problems.extend(outcome)
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
    workers: int = 16,
) -> Selection:
    """The versions every target needs to install ``requirements``, target by target.

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
    :param workers: threads for fetching and for resolving targets.
    """
    problems: list[Problem] = []
    reqs: list[_Req] = []
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
        reqs.append(_Req.of(req))
        markers.append(req.marker)
    prefer: dict[str, Version] = {}
    for pin_name, pin_version in (preferred or {}).items():
        try:
            prefer[canonicalize_name(pin_name)] = Version(pin_version)
        except InvalidVersion:
            continue

    shared = _Shared(pages, metadata, workers)
    try:
        shared.prefetch(r.name for r in reqs)

        def provider_for(target: Target) -> _Provider:
            by_name: dict[str, list[SpecifierSet]] = {}
            for c in constraints:
                if _applies_static(c.marker, target):
                    by_name.setdefault(canonicalize_name(c.name), []).append(c.specifier)
            return _Provider(shared, target, constraints=by_name, preferred=prefer)

        providers = {t.label: provider_for(t) for t in targets}

        def main(target: Target) -> _TargetResult:
            provider = providers[target.label]
            mine = [r for r, m in zip(reqs, markers) if provider.applies(m)]
            return _resolve_target(provider, mine)

        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(targets) or 1))) as pool:
            results = list(pool.map(main, targets))

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

        added: dict[str, set[str]] = {}
        if all_versions:
            extra_results = _all_versions(
                shared, providers, targets, reqs, markers, pins, all_versions_limit, workers
            )
            for label, mapping in extra_results:
                take(label, mapping, False)
            for name, vs in versions.items():
                new = set(vs) - base.get(name, set())
                if new:
                    added[name] = new
    finally:
        shared.close()

    unique = list(dict.fromkeys(problems))
    unique.sort(key=lambda p: (p.target or "", p.project, p.reason))
    return Selection(
        versions={
            NormalizedName(name): {v: frozenset(labels) for v, labels in vs.items()}
            for name, vs in sorted(versions.items())
        },
        problems=tuple(unique),
        extras={NormalizedName(k): frozenset(v) for k, v in sorted(extras.items())},
        all_versions_added={NormalizedName(k): frozenset(v) for k, v in sorted(added.items())},
        pins=pins,
    )


def _applies_static(marker: Marker | None, target: Target) -> bool:
    if marker is None:
        return True
    try:
        return bool(marker.evaluate(target.marker_environment()))
    except Exception:  # a marker we cannot judge is not applied
        return False


def _python3_release(files: Sequence[RemoteFile]) -> bool:
    wheels = [f for f in files if f.kind == "wheel"]
    if wheels:
        return any(is_python3_wheel(f.tags) for f in wheels)
    return any(allows_any_python3(f.requires_python) for f in files)


def _all_versions(
    shared: _Shared,
    providers: Mapping[str, _Provider],
    targets: Sequence[Target],
    reqs: Sequence[_Req],
    markers: Sequence[Marker | None],
    pins: Mapping[str, Mapping[NormalizedName, str]],
    limit: int | None,
    workers: int,
) -> list[tuple[str, _Mapping]]:
    """Every Python 3 version of each project of the closure, with its own closure, per target.

    As the original tool did with pip-compile's list, "each project" includes the dependencies a
    target's main resolution chose; the versions' own new dependencies get their resolved
    versions (not every version), so the growth stops after one round.
    """
    jobs: list[tuple[_Provider, _Req]] = []
    seen_names: dict[str, frozenset[str]] = {}
    for req in reqs:
        seen_names[req.name] = seen_names.get(req.name, frozenset()) | req.extras
    for chosen_by_target in pins.values():
        for dep in chosen_by_target:
            seen_names.setdefault(dep, frozenset())
    for name, extras in seen_names.items():
        try:
            releases = shared.releases(name)
        except _Unavailable:
            continue  # already a problem of the main closure
        chosen = [
            v
            for v in sorted(releases, reverse=True)
            if not v.is_prerelease
            and not all(f.yanked for f in releases[v])
            and _python3_release(releases[v])
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
                    text = f"{_identifier(name, extras)}=={version}"
                    jobs.append((provider, _Req(name, extras, SpecifierSet(f"=={version}"), text)))

    def run(job: tuple[_Provider, _Req]) -> tuple[str, _Mapping] | None:
        provider, req = job
        outcome = _resolve(provider, [req])
        if isinstance(outcome, dict):
            return provider.target.label, outcome
        log.debug(
            "%s is not installable on %s: %s",
            req.text,
            provider.target.label,
            "; ".join(p.reason for p in outcome),
        )
        return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return [r for r in pool.map(run, jobs) if r is not None]
