"""The resolvelib provider: the index as one target's installer sees it.

:class:`~pypidl.plan.prefetch.Prefetcher` caches what every target's provider shares (project
pages, fetched once; releases; core metadata).  :class:`TargetProvider` answers resolvelib's
questions for one target: which versions are candidates (a file of them installs on the target),
in which order, and what a candidate depends on there (markers evaluated in the target's
environment).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar, overload

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version
from resolvelib import AbstractProvider
from resolvelib.resolvers import RequirementInformation

from pypidl.plan.file_choice import pins_exactly
from pypidl.plan.metadata import MetadataError
from pypidl.plan.prefetch import Prefetcher, Table, Unavailable, by_kind, has_wheel

if TYPE_CHECKING:
    from pypidl.plan.page_files import FileFacts
    from pypidl.plan.targets import Target

__all__ = [
    "PYTHON",
    "Candidate",
    "Req",
    "TargetProvider",
    "Unavailable",
    "has_wheel",
    "identifier_of",
]

log = logging.getLogger(__name__)


PYTHON = "<python>"  # the identifier of the target's interpreter

#: Releases whose metadata is read ahead for a project the resolver has backtracked on.
BACKTRACK_AHEAD = 4
#: The most releases whose metadata is read ahead at once for a project the resolver has rejected
#: releases of (it reads as many as have been rejected so far).
BACKTRACK_BATCH = 32


@dataclass(frozen=True)
class Req:
    """A requirement as the resolver sees it."""

    name: str  # normalized project name, or PYTHON
    extras: frozenset[str]
    specifier: SpecifierSet
    text: str  # as written, for messages
    #: only this version (an extra's link to its base release)
    exact: Version | None = None

    @property
    def identifier(self) -> str:
        return identifier_of(self.name, self.extras)

    @functools.cached_property
    def pinned(self) -> bool:
        """``==`` without a wildcard, or ``===``: the PEP 592 condition for a yanked release."""
        return self.exact is not None or pins_exactly(self.specifier)

    @classmethod
    def of(cls, req: Requirement) -> Req:
        return cls(
            name=canonicalize_name(req.name),
            extras=frozenset(canonicalize_name(e) for e in req.extras),
            specifier=req.specifier,
            text=str(req),
        )


@dataclass(frozen=True)
class Candidate:
    name: str
    version: Version
    extras: frozenset[str]
    #: files of this version the target can install (for messages and the planner)
    files: tuple[FileFacts, ...] = field(compare=False, repr=False)

    @property
    def identifier(self) -> str:
        return identifier_of(self.name, self.extras)

    def __str__(self) -> str:
        return f"{self.identifier} {self.version}"


def identifier_of(name: str, extras: frozenset[str]) -> str:
    return f"{name}[{','.join(sorted(extras))}]" if extras else name


class _Matches(Sequence[Candidate]):
    """Candidates, newest first, made as the resolver reaches them, that read the next
    releases' metadata as it walks on.

    The resolver takes the first candidate; when it backtracks, it tries the next ones one after
    another, each needing its metadata: reading a few ahead turns those round trips into one.
    A project with thousands of releases offers thousands of candidates of which the resolver
    looks at one or two, so each is made when asked for.
    """

    def __init__(
        self,
        name: str,
        extras: frozenset[str],
        versions: list[Version],
        files: Mapping[Version, tuple[FileFacts, ...]],
        prefetch: Callable[[str, Version], None],
    ) -> None:
        self._name = name
        self._extras = extras
        self._versions = versions
        self._files = files
        self._prefetch = prefetch
        self._made: dict[int, Candidate] = {}

    def __len__(self) -> int:
        return len(self._versions)

    @overload
    def __getitem__(self, index: int) -> Candidate: ...

    @overload
    def __getitem__(self, index: slice) -> list[Candidate]: ...

    def __getitem__(self, index: int | slice) -> Candidate | list[Candidate]:
        if isinstance(index, slice):
            return [self[n] for n in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self._versions)
        found = self._made.get(index)
        if found is None:
            version = self._versions[index]  # raises IndexError past the end
            found = Candidate(self._name, version, self._extras, self._files[version])
            found = self._made.setdefault(index, found)
        return found

    def __iter__(self) -> Iterator[Candidate]:
        for n in range(len(self._versions)):
            if n > 0:  # backtracking: the previous candidate failed
                for later in self._versions[n + 1 : n + BACKTRACK_AHEAD]:
                    self._prefetch(self._name, later)
            yield self[n]


K = TypeVar("K")
V = TypeVar("V")


class ByIdentity(Generic[K, V]):
    """Answers remembered per object, not per value, for questions asked with the same objects
    hundreds of thousands of times (hashing a requirement's value costs more than the answer).

    Each key object is kept alive with its answer, so its ``id()`` cannot be reused by another
    object while the answer is remembered: the rule that makes ``id()`` a safe key, held here
    rather than by whoever fills the memo.  Not thread-safe: one per provider, and a provider
    is used by one thread at a time (see ``_all_versions.every_version``).
    """

    def __init__(self) -> None:
        # keyed by the ids of several keys, or by the id of one (an int is never equal to a
        # tuple, so the two kinds of key cannot meet)
        self._found: dict[tuple[int, ...] | int, tuple[object, V]] = {}

    def get(self, *keys: K) -> V | None:
        found = self._found.get(tuple(map(id, keys)))
        return None if found is None else found[1]

    def put(self, value: V, *keys: K) -> V:
        self._found[tuple(map(id, keys))] = (keys, value)
        return value

    def get_one(self, key: K) -> V | None:
        """:meth:`get` with one key, without building a tuple of ids: for the questions asked
        millions of times while resolvelib backtracks."""
        found = self._found.get(id(key))
        return None if found is None else found[1]

    def put_one(self, value: V, key: K) -> V:
        self._found[id(key)] = (key, value)
        return value


class TargetProvider(AbstractProvider[Req, Candidate, str]):
    """resolvelib's view of the index for one target."""

    def __init__(
        self,
        shared: Prefetcher,
        target: Target,
        *,
        constraints: Mapping[str, Sequence[SpecifierSet]],
        preferred: Mapping[str, Version],
        wheels_first: bool = True,
    ):
        self.shared = shared
        self.target = target
        self.constraints = constraints
        self.preferred = preferred
        #: order releases with a wheel for the target before sdist-only ones (pip's
        #: --prefer-binary); False: newest first whatever the kind
        self.wheels_first = wheels_first
        # per thread: resolutions for one target may run side by side (--all-versions)
        self._passes = threading.local()
        self._envs: dict[str, dict[str, str]] = {}
        self._tables: dict[str, Table] = {}
        self.python = Candidate(PYTHON, Version(target.python_full_version), frozenset(), ())
        #: projects whose page could not be read, with the reason
        self.unavailable: dict[str, str] = {}
        self._satisfied: ByIdentity[Req, dict[Version, bool]] = ByIdentity()
        self._deps: dict[tuple[str, Version], list[Req]] = {}
        #: find_matches answers by question (see there)
        self._matches: dict[object, ByIdentity[Req, Sequence[Candidate]]] = {}

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

    def installable(self, files: Iterable[FileFacts]) -> tuple[FileFacts, ...]:
        return tuple(f for f in files if self.target.can_install(f))

    def table(self, name: str) -> Table:
        """Versions with files this target can install, newest first."""
        rows = self._tables.get(name)
        if rows is None:
            try:
                rows = self.shared.table(name, self.target)
            except Unavailable as exc:
                self.unavailable[name] = str(exc)
                rows = Table()
            self._tables[name] = rows
        return rows

    # resolvelib API

    def identify(self, requirement_or_candidate: Req | Candidate) -> str:
        return requirement_or_candidate.identifier

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[RequirementInformation[Req, Candidate]]],
        backtrack_causes: Sequence[RequirementInformation[Req, Candidate]],
    ) -> tuple[bool, bool, bool, str]:
        infos = list(information[identifier])
        pinned = any(info.requirement.pinned for info in infos)
        causes = {info.requirement.name for info in backtrack_causes}
        name = infos[0].requirement.name if infos else identifier
        return (identifier != PYTHON, not pinned, name not in causes, identifier)

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Req]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> Sequence[Candidate]:
        reqs = list(requirements[identifier])
        if identifier == PYTHON:
            ok = all(self.allows_python(str(r.specifier)) for r in reqs)
            return [self.python] if ok else []
        name = reqs[0].name
        bad = {c.version for c in incompatibilities[identifier]}
        # resolvelib asks again with the same requirements whenever it re-pins a parent (every
        # round when it backtracks): the answer depends only on the question and on the
        # preferred version, so remember it
        key = (identifier, frozenset(bad), self.preferred.get(name), self._sdists_allowed(name))
        memo = self._matches.get(key)
        if memo is None:
            memo = self._matches[key] = ByIdentity()
        found = memo.get(*reqs)
        if found is None:
            found = memo.put(self._find_matches(reqs, bad), *reqs)
        return found

    def _find_matches(self, reqs: list[Req], bad: set[Version]) -> Sequence[Candidate]:
        name, extras = reqs[0].name, reqs[0].extras
        spec = SpecifierSet()
        exact: set[Version] = set()
        for r in reqs:
            spec &= r.specifier
            if r.exact is not None:
                exact.add(r.exact)
        for constraint in self.constraints.get(name, ()):
            spec &= constraint
        pinned = any(r.pinned for r in reqs)
        eligible = self._eligible(name, pinned)
        # whether pre-releases count is decided over every release, as pip does, before the
        # ones that failed are left out: final releases that all failed do not let them in
        if exact:
            eligible = {v: files for v, files in eligible.items() if v in exact}
            exacts = sorted(spec.filter(eligible, prereleases=True), reverse=True)
            wheels, builds = by_kind(exacts, eligible)
        else:  # the same question of the same table from every target: answered once
            wheels, builds = self.table(name).allowed_by_kind(spec, pinned=pinned)
        if bad:
            wheels = [v for v in wheels if v not in bad]
            builds = [v for v in builds if v not in bad]
        if not self.wheels_first:
            groups = [sorted([*wheels, *builds], reverse=True)]
        elif self._sdists_allowed(name):
            # a release with a wheel for the target before one it would have to build; the
            # sdist-only ones only where the closure allows them (see closure._resolve)
            groups = [wheels, builds]
        else:
            groups = [wheels]
        preferred = self.preferred.get(name)
        allowed: list[Version] = []
        for group in groups:
            if preferred is not None and preferred in group:
                allowed.append(preferred)
                allowed.extend(v for v in group if v != preferred)
            else:
                allowed.extend(group)
        # the first candidate's metadata, which the resolver reads next; while it backtracks on
        # this project, as many of the following ones as have failed so far: it walks back
        # through the releases one by one, and a round trip each would add up
        for version in allowed[: min(len(bad) + 1, BACKTRACK_BATCH)]:
            self.shared.prefetch_metadata(name, version)
        return _Matches(name, extras, allowed, eligible, self.shared.prefetch_metadata)

    @property
    def sdist_ok(self) -> frozenset[str] | None:
        """With ``wheels_first``, the projects whose sdist-only releases are candidates at all in
        this thread's resolution (None: every project's); ``closure._resolve`` widens it pass
        by pass."""
        found: frozenset[str] | None = getattr(self._passes, "sdist_ok", None)
        return found

    @sdist_ok.setter
    def sdist_ok(self, value: frozenset[str] | None) -> None:
        self._passes.sdist_ok = value

    def _sdists_allowed(self, name: str) -> bool:
        return not self.wheels_first or self.sdist_ok is None or name in self.sdist_ok

    def _eligible(self, name: str, pinned: bool) -> dict[Version, tuple[FileFacts, ...]]:
        """The releases of ``name`` the target installs, with their files that are not yanked
        (all of them when every one is yanked and the requirement is ``pinned``)."""
        # the table is asked each time: a recording provider writes the answer down
        return self.table(name).eligible(pinned=pinned)

    def is_satisfied_by(self, requirement: Req, candidate: Candidate) -> bool:
        # resolvelib asks this for every pinned project in every round: remember the answers
        memo = self._satisfied.get_one(requirement)
        if memo is None:
            memo = self._satisfied.put_one({}, requirement)
        found = memo.get(candidate.version)
        if found is None:
            found = memo[candidate.version] = self._satisfies(requirement, candidate)
        return found

    def _satisfies(self, requirement: Req, candidate: Candidate) -> bool:
        if candidate.name == PYTHON:
            return self.allows_python(str(requirement.specifier))
        if requirement.exact is not None and candidate.version != requirement.exact:
            return False
        return requirement.specifier.contains(candidate.version, prereleases=True)

    def get_dependencies(self, candidate: Candidate) -> list[Req]:
        if candidate.name == PYTHON:
            return []
        key = (candidate.identifier, candidate.version)
        deps = self._deps.get(key)
        if deps is None:
            deps = self._deps[key] = self._dependencies(candidate)
        return deps

    def _dependencies(self, candidate: Candidate) -> list[Req]:
        try:
            meta = self.shared.metadata(candidate.name, candidate.version)
        except MetadataError:
            return []  # named in the problems after the resolution (see _unknown)
        deps: list[Req] = []
        if candidate.extras:
            # An extra depends on its base release, plus what the extra adds.
            deps.append(
                Req(
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
                deps.append(Req.of(req))
        else:
            # a Requires-Python that admits the target adds nothing to resolve: leaving it out
            # spares resolvelib a check per release in every round
            if meta.requires_python and not self.allows_python(meta.requires_python):
                try:
                    deps.append(
                        Req(
                            PYTHON,
                            frozenset(),
                            SpecifierSet(meta.requires_python),
                            f"Python{meta.requires_python}",
                        )
                    )
                except InvalidSpecifier:
                    log.debug("%s: ignoring invalid Requires-Python", candidate)
            deps.extend(Req.of(req) for req in meta.requires_dist if self.applies(req.marker))
        self.shared.prefetch(d.name for d in deps)
        return deps

    # explanations

    def explain(self, req: Req) -> str:
        """Why no version of ``req`` installs on this target (or that it conflicts)."""
        if req.name == PYTHON:
            return f"the target runs Python {self.target.python_full_version}"
        if req.name in self.unavailable:
            return self.unavailable[req.name]
        try:
            releases = self.shared.releases(req.name)
        except Unavailable as exc:
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
