"""Build requirements: what a target needs from the mirror to build the sdists the mirror keeps.

pip and uv build an sdist in an isolated environment whose packages come from the same index
as everything else.  Behind an air gap that index is the mirror, so a mirror holding an sdist
but not its build backend cannot install it ("pip subprocess to install build dependencies did
not run successfully").  This module closes that gap:

1. For every sdist the plan keeps for a target that has no wheel of that release (a target that
   will build it), read ``[build-system] requires`` from the sdist's top-level
   ``pyproject.toml`` (:mod:`pypidl.plan.sdists`, which reads as little of the sdist as works).
2. Without ``pyproject.toml`` or without a ``[build-system]`` table, pip and uv use the legacy
   setuptools backend with ``setuptools>=40.8.0``; setuptools before 70.1 then asks for ``wheel``
   through ``get_requires_for_build_wheel``, so a setuptools backend (legacy or declared) gets
   ``wheel`` too: a small pure-Python wheel that makes the build work with any setuptools.
3. Each distinct set of build requirements is resolved for the targets that build with it, as an
   environment of its own (two sdists may want incompatible backends), by the resolver the
   planner hands in.  What that resolution chooses is added to those targets' closure, and the
   sdists it brings in get the same treatment, until nothing new appears.

The planner owns the resolver and the index; this module owns the reading and the fixed point.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from packaging.requirements import Requirement
from packaging.utils import NormalizedName
from packaging.version import Version

from pypidl.errors import RemoteIndexError
from pypidl.manifest import Entry, Problem
from pypidl.plan._python3 import allows_any_python3, is_python3_wheel
from pypidl.plan.closure import resolve_closure
from pypidl.plan.file_choice import normalized_version
from pypidl.plan.sdists import (
    DEFAULT_BUILD_SYSTEM,
    BrokenPyprojectError,
    BuildSystem,
    BuildSystemSource,
    ReadStats,
    SdistReader,
    SdistReadError,
)

if TYPE_CHECKING:
    from pypidl.plan.metadata import MetadataSource
    from pypidl.plan.pages import ProjectPage, RemoteFile
    from pypidl.plan.prefetch import Prefetcher
    from pypidl.plan.targets import Target

__all__ = [
    "WHY_BUILD",
    "WHY_DEPENDENCY",
    "WHY_REQUIREMENT",
    "BuildClosure",
    "ResolveBuild",
    "build_closure",
    "builders",
    "complete_build_closure",
    "kept_sdist",
    "report_build_closure",
    "why_of",
]

log = logging.getLogger(__name__)

#: Why a release is in the plan (the manifest's ``why`` field), in this order.
WHY_REQUIREMENT = "requirement"
WHY_DEPENDENCY = "dependency"
WHY_BUILD = "build"


class ResolveBuild(Protocol):
    """The planner's resolver, for one build environment.

    Given requirements and the targets that build with them, return project -> version ->
    labels of the targets that need that release, and the problems found.
    """

    def __call__(
        self,
        requirements: Sequence[Requirement],
        targets: Sequence[Target],
        preferred: Mapping[NormalizedName, str],
    ) -> tuple[Mapping[NormalizedName, Mapping[str, Iterable[str]]], Sequence[Problem]]: ...


@dataclass(frozen=True)
class BuildClosure:
    """What building the mirror's sdists needs.

    ``versions``: project -> version -> labels of the targets whose build environments need
    that release (whether or not the runtime closure has it too).  ``sdists``: how many sdists'
    build systems were read; ``environments``: how many distinct build environments were
    resolved; ``stats``: how the reads went.
    """

    versions: dict[NormalizedName, dict[str, frozenset[str]]] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()
    sdists: int = 0
    environments: int = 0
    stats: ReadStats = field(default_factory=ReadStats)
    #: sdist filename -> its build requirements (what a target that builds it needs)
    requires: dict[str, tuple[str, ...]] = field(default_factory=dict)


def builders(files: Sequence[RemoteFile], targets: Sequence[Target]) -> list[Target]:
    """The targets among ``targets`` that would build this release from its sdist: those with
    no wheel of it that they can install, and whose Python the sdist admits."""
    sdists = [f for f in files if f.kind == "sdist" and allows_any_python3(f.requires_python)]
    if not sdists:
        return []
    wheels = [f for f in files if f.kind == "wheel" and is_python3_wheel(f.tags)]
    out = []
    for target in targets:
        if any(target.allows_python(w.requires_python) and target.supports(w.tags) for w in wheels):
            continue
        if any(target.allows_python(s.requires_python) for s in sdists):
            out.append(target)
    return out


def kept_sdist(files: Sequence[RemoteFile]) -> RemoteFile | None:
    """The sdist the planner keeps of a release (``.tar.gz`` before a legacy ``.zip``)."""
    sdists = [f for f in files if f.kind == "sdist" and allows_any_python3(f.requires_python)]
    sdists.sort(key=lambda f: (not f.filename.endswith(".tar.gz"), f.filename))
    return sdists[0] if sdists else None


def complete_build_closure(
    selected: Mapping[NormalizedName, Mapping[str, Iterable[str]]],
    *,
    targets: Sequence[Target],
    release_files: Callable[[NormalizedName, str], Sequence[RemoteFile]],
    reader: BuildSystemSource,
    resolve: ResolveBuild,
    workers: int = 16,
) -> BuildClosure:
    """Add the build requirements of every kept sdist, for every target that builds it.

    :param selected: project -> version -> labels of the targets that need the release (the
        runtime closure).
    :param release_files: the index's files of one release (the same the planner chooses from).
    :param reader: reads an sdist's build system (:class:`SdistReader`).
    :param resolve: resolves one build environment for some targets (see :class:`ResolveBuild`).
    """
    by_label = {t.label: t for t in targets}
    closure: dict[NormalizedName, dict[str, set[str]]] = {}
    problems: list[Problem] = []
    #: (project, version, label) whose build needs were looked at
    examined: set[tuple[NormalizedName, str, str]] = set()
    #: (requirements, label) environments resolved already
    resolved: set[tuple[tuple[str, ...], str]] = set()
    sdists_read: set[str] = set()
    needs: dict[str, tuple[str, ...]] = {}
    frontier: dict[NormalizedName, dict[str, set[str]]] = {
        name: {v: set(labels) for v, labels in versions.items()}
        for name, versions in selected.items()
    }
    rounds = 0
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="pypidl-sdist") as pool:
        while frontier:
            rounds += 1
            # which sdists get built, and by whom
            jobs: list[tuple[RemoteFile, list[Target]]] = []
            for name in sorted(frontier):
                for version, labels in sorted(frontier[name].items()):
                    fresh = [
                        by_label[label]
                        for label in sorted(labels)
                        if label in by_label and (name, version, label) not in examined
                    ]
                    examined.update((name, version, t.label) for t in fresh)
                    files = release_files(name, version)
                    building = builders(files, fresh)
                    sdist = kept_sdist(files)
                    if building and sdist is not None:
                        jobs.append((sdist, building))
            frontier = {}
            systems = list(pool.map(lambda job: _build_system(reader, job[0]), jobs))
            # one environment per distinct requirement set, for the targets that build with it
            envs: dict[tuple[str, ...], dict[str, list[str]]] = {}
            for (sdist, building), system in zip(jobs, systems):
                sdists_read.add(sdist.filename)
                if isinstance(system, BrokenPyprojectError):
                    # pip and uv refuse to build it: the project fails, alone (issue 20)
                    problems.extend(_broken_problem(sdist, system, t.label) for t in building)
                    continue
                if isinstance(system, SdistReadError):
                    problems.extend(_read_problem(sdist, system, t.label) for t in building)
                    system = DEFAULT_BUILD_SYSTEM
                requires = tuple(sorted(set(system.requirements())))
                needs[sdist.filename] = requires
                if not requires:
                    continue
                for target in building:
                    if (requires, target.label) in resolved:
                        continue
                    envs.setdefault(requires, {}).setdefault(target.label, []).append(
                        sdist.filename
                    )
            for requires, users in sorted(envs.items()):
                env_targets = [by_label[label] for label in sorted(users)]
                resolved.update((requires, label) for label in users)
                preferred = _newest_chosen(selected, closure)
                versions, found = resolve(
                    [Requirement(r) for r in requires], env_targets, preferred
                )
                for problem in found:
                    who = sorted({f for label in users for f in users[label]})
                    problems.append(_build_problem(problem, who))
                for name, chosen in versions.items():
                    for version, needing in chosen.items():
                        for label in needing:
                            closure.setdefault(name, {}).setdefault(version, set()).add(label)
                            if (name, version, label) not in examined:
                                frontier.setdefault(name, {}).setdefault(version, set()).add(label)
    log.debug("build closure: %d round(s), %d environment(s)", rounds, len(resolved))
    stats = reader.stats if isinstance(reader, SdistReader) else ReadStats()
    unique = list(dict.fromkeys(problems))
    return BuildClosure(
        versions={
            name: {v: frozenset(labels) for v, labels in sorted(vs.items())}
            for name, vs in sorted(closure.items())
        },
        problems=tuple(unique),
        sdists=len(sdists_read),
        environments=len({requires for requires, _label in resolved}),
        stats=stats,
        requires=needs,
    )


def _build_system(reader: BuildSystemSource, sdist: RemoteFile) -> BuildSystem | SdistReadError:
    try:
        return reader.build_system(sdist)
    except SdistReadError as exc:
        return exc


#: the start of the warning for an sdist whose build system could not be read (maybe only this
#: time: the network, or a damaged archive)
UNREADABLE_BUILD_SYSTEM = "build requirements of"


def _read_problem(sdist: RemoteFile, exc: SdistReadError, label: str) -> Problem:
    # The defaults are mirrored instead, which is what most unreadable sdists need: a possible
    # gap, not a known one.
    return Problem(
        sdist.project,
        f"{UNREADABLE_BUILD_SYSTEM} {sdist.filename} unknown ({exc.message}); "
        f"mirroring the setuptools defaults for it",
        f"{sdist.project}=={sdist.version}",
        label,
        severity="warning",
    )


def _broken_problem(sdist: RemoteFile, exc: SdistReadError, label: str) -> Problem:
    return Problem(
        sdist.project,
        f"{sdist.filename} cannot be built: {exc.message}",
        f"{sdist.project}=={sdist.version}",
        label,
    )


def _build_problem(problem: Problem, sdists: Sequence[str]) -> Problem:
    shown = ", ".join(sdists[:3]) + (f" and {len(sdists) - 3} more" if len(sdists) > 3 else "")
    return Problem(
        problem.project,
        f"building {shown} needs {problem.requirement or problem.project}: {problem.reason}",
        problem.requirement,
        problem.target,
        severity=problem.severity,
    )


def _newest_chosen(
    *selections: Mapping[NormalizedName, Mapping[str, Iterable[str]]],
) -> dict[NormalizedName, str]:
    """Per project, the newest version some closure chose already: preferred, so a build
    environment reuses what the mirror holds anyway."""
    newest: dict[NormalizedName, Version] = {}
    for selection in selections:
        for name, versions in selection.items():
            for version in versions:
                try:
                    parsed = Version(version)
                except ValueError:  # InvalidVersion, or a number too long for int()
                    continue
                if name not in newest or parsed > newest[name]:
                    newest[name] = parsed
    return {name: str(v) for name, v in newest.items()}


def why_of(
    project: str,
    version: str,
    *,
    requirements: Iterable[str],
    runtime: Mapping[NormalizedName, Mapping[str, object]],
    build: Mapping[NormalizedName, Mapping[str, object]],
) -> tuple[str, ...]:
    """Why a release is in the plan: named by the requirements, a dependency, needed to build.

    A release the build closure did not choose is there for the runtime closure.
    """
    name = NormalizedName(project)
    wanted = normalized_version(version)
    built = any(normalized_version(v) == wanted for v in build.get(name, {}))
    run = any(normalized_version(v) == wanted for v in runtime.get(name, {}))
    out: list[str] = []
    if run or not built:
        out.append(WHY_REQUIREMENT if name in set(requirements) else WHY_DEPENDENCY)
    if built:
        out.append(WHY_BUILD)
    return tuple(out)


def report_build_closure(build: BuildClosure, entries: Sequence[Entry]) -> None:
    """Log what reading the sdists cost and what the build closure added to the plan."""
    stats = build.stats
    if not build.sdists:
        return
    only_build = [e for e in entries if e.why == (WHY_BUILD,)]
    projects = {e.project for e in only_build} - {
        e.project for e in entries if e.why != (WHY_BUILD,)
    }
    log.info(
        "Build requirements: %d sdist(s) read (%d stopped at pyproject.toml, %d read whole, "
        "%d from the cache, %.1f MiB received); %d build environment(s)",
        build.sdists,
        stats.partial + stats.local,
        stats.whole,
        stats.cached,
        stats.bytes / 2**20,
        build.environments,
    )
    log.info(
        "The build closure added %d project(s) and %d file(s), %.1f MiB",
        len(projects),
        len(only_build),
        sum(e.size or 0 for e in only_build) / 2**20,
    )


def build_closure(
    selected: Mapping[NormalizedName, Mapping[str, Iterable[str]]],
    *,
    targets: Sequence[Target],
    pages: Callable[[str], ProjectPage],
    metadata: MetadataSource,
    index: Prefetcher,
    reader: SdistReader,
    workers: int,
    files_of: Callable[[NormalizedName, str], Sequence[RemoteFile] | None] | None = None,
    wheels_first: bool = True,
) -> BuildClosure:
    """:func:`complete_build_closure` over a page source: the one wiring the planner and
    ``pypidl check`` share.

    A release's files are its page's (or ``files_of``'s, when it knows them: a lock's); each
    build environment resolves through ``index``, the run's shared caches of ``pages`` and
    ``metadata``, with ``workers`` requests in flight.  ``reader`` is closed when done.

    :param files_of: the files of a release when they are not the page's, or None to read the
        page (a release it returns None for is read from the page too).
    :param wheels_first: as for :func:`pypidl.plan.closure.resolve_closure`.
    """

    def release_files(name: NormalizedName, version: str) -> list[RemoteFile]:
        fixed = files_of(name, version) if files_of is not None else None
        if fixed is not None:
            return list(fixed)
        try:
            return pages(name).release_files(version)
        except RemoteIndexError:
            return []

    def resolve(
        requirements: Sequence[Requirement],
        targets: Sequence[Target],  # the ones that build with these requirements
        preferred: Mapping[NormalizedName, str],
    ) -> tuple[Mapping[NormalizedName, Mapping[str, Iterable[str]]], Sequence[Problem]]:
        result = resolve_closure(
            requirements,
            targets,
            pages=pages,
            metadata=metadata,
            preferred=preferred,
            workers=workers,
            index=index,
            wheels_first=wheels_first,
        )
        return result.versions, result.problems

    try:
        return complete_build_closure(
            selected,
            targets=targets,
            release_files=release_files,
            reader=reader,
            resolve=resolve,
            workers=workers,
        )
    finally:
        reader.close()
