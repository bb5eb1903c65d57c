"""The planner: requirements + targets + policy → a :class:`~pypidl.manifest.Manifest`.

1. Read the project pages of the requirements (concurrently); a project no index has fails alone.
2. Only with ``pip_compile`` (or without the closure): resolve for this host with pip-compile; its
   pins are then the preferred versions.
3. Complete the closure for every target (:mod:`pypidl.plan.closure`): which versions each target needs.
   Then the build closure (:mod:`pypidl.plan.build_deps`): what builds the sdists the plan keeps,
   for the targets that build them.
4. Pick the files: per release, the wheels some target that needs the release can install, and
   its sdist when one of those targets has no wheel (policy ``sdist``).  Never Python-2-only files.
5. List every mirror's URL of each file, best first.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from pypidl._malloc import limit_arenas
from pypidl.errors import RemoteIndexError, ResolutionError
from pypidl.manifest import Entry, Manifest, Problem
from pypidl.plan._gc import fewer_collections
from pypidl.plan._plan_log import log_growth, log_reads, log_versions
from pypidl.plan._selection import Picks, entry_for, hash_pins, selected_entries
from pypidl.plan.build_deps import BuildClosure, build_closure, report_build_closure, why_of
from pypidl.plan.closure import ClosureResult, resolve_closure
from pypidl.plan.file_choice import (
    SDIST_POLICIES,
    choose_files,
    newest_installable,
    normalized_version,
    python3_file,
    same_version,
)
from pypidl.plan.gate import Gate
from pypidl.plan.lockfiles import Lock, locked_files
from pypidl.plan.metadata import MetadataFetcher
from pypidl.plan.notes import plan_notes
from pypidl.plan.options import PlanOptions
from pypidl.plan.page_store import PageStore
from pypidl.plan.pages import IndexClient, PageCache, ProjectNotFound, ProjectPage, RemoteFile
from pypidl.plan.pip_compile import pins_from_mirrors
from pypidl.plan.prefetch import Prefetcher
from pypidl.plan.project_indexes import ProjectIndexes
from pypidl.plan.provenance import check_all, with_provenance
from pypidl.plan.replan import PlanMemo, inputs_digest, may_change
from pypidl.plan.sdists import SdistReader
from pypidl.sources import Mirror, derive_file_url, redact_url

if TYPE_CHECKING:
    from pypidl.config import NetworkSettings
    from pypidl.plan.requirements import RequirementSet
    from pypidl.plan.targets import Target

__all__ = ["PlanOptions", "Planner", "plan"]

log = logging.getLogger(__name__)


class Planner:
    def __init__(
        self,
        mirrors: Sequence[Mirror],
        net: NetworkSettings,
        targets: Sequence[Target],
        options: PlanOptions = PlanOptions(),
        *,
        project_indexes: ProjectIndexes | None = None,
    ):
        """:param project_indexes: projects pinned to one named index each: read (and their
        files fetched) from that index only."""
        if options.sdist not in SDIST_POLICIES:
            raise ValueError(f"sdist policy must be one of {SDIST_POLICIES}")
        self.mirrors = list(mirrors)
        self.net = net
        self.targets = list(targets)
        self.options = options
        self.project_indexes = project_indexes or ProjectIndexes()
        self.project_indexes.check_names(m.name for m in self.mirrors)
        cache = options.cache_dir
        self.client = IndexClient(
            self.mirrors,
            net,
            workers=options.workers,
            routes=self.project_indexes.routes(),
            store=PageStore(cache / "pages") if options.reuse and cache is not None else None,
            upload_times=options.gate.exclude_newer is not None,
        )
        self.gate = Gate(options.gate)
        self.pages = PageCache(self.client, gate=self.gate)
        # one session for pages and metadata: one pool of kept-alive connections
        self.metadata = MetadataFetcher(
            net,
            cache_dir=cache / "metadata" if cache is not None else None,
            workers=options.workers,
            session=self.client.session,
            mirrors=self.mirrors,
        )
        self._shared: Prefetcher | None = None

    # -- the whole plan ---------------------------------------------------------------------

    def plan(self, reqs: RequirementSet) -> Manifest:
        limit_arenas()
        try:
            with fewer_collections():
                memo = self._memo(reqs)
                if memo is not None:
                    found = memo.recall(self.client, workers=self.options.workers)
                    if found is not None:
                        return found
                manifest = self._plan(reqs)
                if memo is not None and not may_change(manifest.problems):
                    memo.remember(self.pages.digests(), manifest)
                return manifest
        finally:
            self.close()

    def _memo(self, reqs: RequirementSet) -> PlanMemo | None:
        """Where a plan of ``reqs`` is kept, unless it may not be reused: pip-compile resolves
        for this host, whatever the inputs say; the checks before the gap depend on the clock
        (a cooldown), on an advisory export and on provenance fetched at plan time, none of
        which the pages' digests cover."""
        opts = self.options
        if not opts.reuse or opts.pip_compile or opts.gate.active or opts.require_provenance:
            return None
        if opts.cache_dir is None:
            return None
        key = inputs_digest(
            reqs,
            targets=self.targets,
            options=self.options,
            mirrors=self.mirrors,
            routes=self.project_indexes.routes(),
        )
        return PlanMemo(opts.cache_dir / "plans", key)

    def _plan(self, reqs: RequirementSet) -> Manifest:
        requirements = [r.requirement for r in reqs.requirements]
        names = [canonicalize_name(r.name) for r in requirements]
        log.info("Reading %d project page(s) from %s", len(set(names)), self.mirrors[0].name)
        self.pages.prefetch(names)
        selection = Picks()
        missing = self.pages.failed()
        for name, exc in sorted(missing.items()):
            selection.problems.append(_problem_for(name, exc, requirement=_req_text(reqs, name)))
        available = [
            r for r in reqs.requirements if canonicalize_name(r.requirement.name) not in missing
        ]
        usable = [r.requirement for r in available]
        constraints = [c.requirement for c in reqs.constraints]

        pins: dict[NormalizedName, str] = {}
        host = self.options.pip_compile or not self.options.closure
        if self.project_indexes and host and not self.options.no_deps:
            # pip-compile reads one index for every project, so it would read a pinned project
            # from the others: with per-project indexes the per-target closure resolves alone
            if not self.options.closure:
                raise ResolutionError(
                    "--host-only resolves with pip-compile, which cannot keep a project to its "
                    "own index; leave --host-only out with per-project indexes"
                )
            log.info("Per-project indexes: the per-target closure resolves without pip-compile")
        elif host and not self.options.no_deps and usable:
            try:
                pins = self._compile(available, reqs)
            except ResolutionError as exc:
                # pip-compile resolves for the interpreter pypidl runs on, which need not be a
                # target (a 3.9 host planning for 3.12, a project with no wheel for this OS):
                # its pins are a preference, the per-target closure is the judge.
                if not self.options.closure:
                    raise
                log.warning(
                    "pip-compile could not resolve for this host, so the targets get no host "
                    "preference: %s",
                    exc.message,
                )
        if self.options.no_deps:
            self._select_direct(usable, selection)
        elif self.options.closure:
            self._select_closure(usable, constraints, pins, selection)
        else:
            self._select_pins(pins, selection)
        if self.options.all_versions and (self.options.no_deps or not self.options.closure):
            self._select_all_versions(selection)
        runtime = {name: dict.fromkeys(vs) for name, vs in selection.versions.items()}
        build = None
        if self.options.build_deps and not self.options.no_deps and self.options.sdist != "never":
            build = self._select_build(selection)
        entries = self._files(selection, hash_pins(reqs))
        entries = self._mark_why(entries, names, runtime, build)
        notes = plan_notes(
            selection.versions,
            self.targets,
            self._release_files,
            build_requires=build.requires if build is not None else None,
            builds=self.options.sdist != "never",
        )
        log_growth(selection.all_versions_added, entries)
        projects: dict[str, tuple[str, ...]] = {
            name: tuple(sorted(vs, key=Version)) for name, vs in selection.versions.items()
        }
        for name in missing:
            projects.setdefault(NormalizedName(name), ())
        return self._checked(
            Manifest(
                entries=tuple(entries),
                requirements=tuple(r.line() for r in reqs.requirements),
                index_urls=self._index_urls(),
                pins=self._pins(),
                targets=tuple(t.label for t in self.targets),
                all_versions=self.options.all_versions,
                problems=tuple(selection.problems),
                projects=projects,
                notes=notes,
            )
        )

    def _checked(self, manifest: Manifest) -> Manifest:
        """``manifest`` with what the gate found: its warnings, the vulnerable releases kept,
        the projects' statuses."""
        manifest = self._provenance(manifest)
        found = [*self.gate.notes(), *self.gate.vulnerable(manifest.entries)]
        planned = {e.project for e in manifest.entries}
        statuses = {
            name: status.to_json()
            for name, status in self.gate.statuses.items()
            if name in planned or name in manifest.projects
        }
        return replace(manifest, problems=(*manifest.problems, *found), project_status=statuses)

    def _release_files(self, name: str, version: str) -> list[RemoteFile]:
        try:
            page = self.pages.get(name)
        except RemoteIndexError:
            return []
        return page.release_files(version)

    def plan_locks(self, locks: Sequence[Lock]) -> Manifest:
        """A manifest of exactly what ``locks`` pin, for the targets: nothing is resolved.

        Each lock's selection (its markers evaluated per target) goes straight to the file
        choice; the lock's hashes must agree with the index's.
        """
        limit_arenas()
        try:
            with fewer_collections():
                return self._plan_locks(locks)
        finally:
            self.close()

    def _plan_locks(self, locks: Sequence[Lock]) -> Manifest:
        releases = [r for lock in locks for r in lock.select(self.targets)]
        names = sorted({r.package.name for r in releases if not r.package.not_from_index})
        log.info("Reading %d project page(s) from %s", len(names), self.mirrors[0].name)
        self.pages.prefetch(names)
        files, problems = locked_files(
            releases,
            page=self.pages.get,
            choose=functools.partial(choose_files, sdist=self.options.sdist),
        )
        entries: dict[tuple[str, str], Entry] = {}
        build_entries: list[Entry] = []
        locked = Picks()
        for r in releases:
            if not r.package.not_from_index:
                locked.add(r.package.name, r.package.version, [t.label for t in r.targets])
        build = None
        if self.options.build_deps and self.options.sdist != "never":
            # the lock names no build backends: what builds its sdists is resolved, as for a
            # requirements file, and mirrored beside the lock's own files
            by_release: dict[tuple[str, str], list[RemoteFile]] = {}
            for rf in files:
                by_release.setdefault((rf.project, normalized_version(rf.version)), []).append(rf)
            picks = Picks(
                versions={
                    n: {v: set(ls) for v, ls in vs.items()} for n, vs in locked.versions.items()
                }
            )
            build = self._select_build(
                picks,
                files_of=lambda name, version: by_release.get((name, normalized_version(version))),
            )
            problems.extend(picks.problems)
            extra = Picks()
            for name, versions in build.versions.items():
                for version, labels in versions.items():
                    if not any(same_version(version, v) for v in locked.versions.get(name, {})):
                        extra.add(name, version, labels)
            build_entries = self._files(extra, {})
            problems.extend(extra.problems)
        for rf in files:
            if rf.sha256 is None:
                problems.append(
                    Problem(
                        rf.project,
                        f"{rf.filename}: neither the lock nor the index gives a sha256; not mirrored",
                    )
                )
                continue
            entries.setdefault(
                (rf.project, rf.filename), entry_for(rf, self.client.mirrors_for(rf.project))
            )
        for entry in build_entries:
            entries.setdefault((entry.project, entry.filename), entry)
        marked = self._mark_why(
            list(entries.values()), (), {n: dict(vs) for n, vs in locked.versions.items()}, build
        )
        projects: dict[str, set[str]] = {}
        for e in marked:
            projects.setdefault(e.project, set()).add(e.version)
        for name, pinned in locked.versions.items():
            projects.setdefault(name, set()).update(pinned)
        return self._checked(
            Manifest(
                entries=tuple(marked),
                requirements=tuple(f"{lock.format}: {lock.path}" for lock in locks),
                index_urls=self._index_urls(),
                pins=self._pins(),
                targets=tuple(t.label for t in self.targets),
                problems=tuple(problems),
                projects={n: tuple(sorted(vs, key=Version)) for n, vs in projects.items()},
            )
        )

    def _pins(self) -> dict[str, str]:
        """Pinned project -> its index, for the manifest: the download honours it too."""
        routing = self.project_indexes
        return {str(p): routing.indexes[n].simple_url for p, n in sorted(routing.pins.items())}

    def _index_urls(self) -> tuple[str, ...]:
        declared = [m.simple_url for m in self.project_indexes.indexes.values()]
        urls = [m.simple_url for m in self.mirrors] + declared
        return tuple(redact_url(u) for u in dict.fromkeys(urls))

    # -- resolution -----------------------------------------------------------------------

    def _compile(
        self, available: Sequence[object], reqs: RequirementSet
    ) -> dict[NormalizedName, str]:
        # A mirror that served no page (the pages were read first) is likely down: ask the
        # mirrors that answered first, in their configured order, and the others only after.
        serving = self.pages.serving_mirrors()
        return pins_from_mirrors(
            "".join(r.line() + "\n" for r in available),  # type: ignore[attr-defined]
            sorted(self.mirrors, key=lambda m: m.name not in serving),
            net=self.net,
            constraints=reqs.constraints_text(),
            extra_index_urls=reqs.extra_index_urls,
            cache_dir=self.options.cache_dir,
        )

    def _select_pins(self, pins: Mapping[NormalizedName, str], selection: Picks) -> None:
        """Host pins for every target that can install them (the closure-free fall-back)."""
        self.pages.prefetch(pins)
        for name, version in sorted(pins.items()):
            labels = [t.label for t in self.targets]
            selection.add(name, version, labels)

    def _select_closure(
        self,
        requirements: Sequence[Requirement],
        constraints: Sequence[Requirement],
        pins: Mapping[NormalizedName, str],
        selection: Picks,
    ) -> None:
        result = self.resolve(
            requirements,
            constraints=constraints,
            preferred=pins,
            all_versions=self.options.all_versions,
        )
        selection.absorb(result)
        log_versions(result)

    def resolve(
        self,
        requirements: Sequence[Requirement],
        targets: Sequence[Target] | None = None,
        *,
        constraints: Sequence[Requirement] = (),
        preferred: Mapping[NormalizedName, str] | None = None,
        all_versions: bool = False,
    ) -> ClosureResult:
        """The closure of ``requirements`` for ``targets`` (default: the plan's), read through
        the run's shared caches: every further source of requirements (a build environment,
        say) enters the plan here, and pages or metadata read once are not read again."""
        return resolve_closure(
            requirements,
            self.targets if targets is None else targets,
            pages=self.pages.get,
            metadata=self.metadata,
            constraints=constraints,
            preferred=preferred,
            all_versions=all_versions,
            all_versions_limit=self.options.all_versions_limit,
            pre=self.options.pre,
            index=self._index(),
            wheels_first=not self.options.prefer_newest,
        )

    def _index(self) -> Prefetcher:
        if self._shared is None:
            self._shared = Prefetcher(
                self.pages.get, self.metadata, self.targets, in_flight=self.options.workers
            )
        return self._shared

    def close(self) -> None:
        """Stop the walk of the frontier (waiting for requests in flight) and say how the run
        read metadata.  :meth:`plan` calls it when done."""
        if self._shared is not None:
            self._shared.close()
            self._shared = None
            log_reads(self.metadata)

    # -- build requirements: see pypidl.plan.build_deps ------------------------------------

    def _select_build(
        self,
        selection: Picks,
        *,
        files_of: Callable[[str, str], Sequence[RemoteFile] | None] | None = None,
    ) -> BuildClosure:
        """Add what builds the kept sdists to the selection, for the targets that build them.

        :param files_of: the files of a release when they are not the index's (a lock's
            files), or None to read the index's.
        """

        def mirror_urls(rf: RemoteFile) -> list[str]:
            # as for metadata: a file listed by an index outside the mirror set (a project kept
            # to its own index) is never asked of the others
            if not any(m.name == rf.mirror for m in self.mirrors):
                return []
            urls = (derive_file_url(rf.url, m) for m in self.mirrors if m.name != rf.mirror)
            return [u for u in urls if u]

        cache = self.options.cache_dir
        build = build_closure(
            selection.versions,
            targets=self.targets,
            pages=self.pages.get,
            metadata=self.metadata,
            index=self._index(),
            reader=SdistReader(
                self.net,
                cache_dir=cache / "build-system" if cache is not None else None,
                workers=self.options.workers,
                mirror_urls=mirror_urls,
            ),
            workers=self.options.workers,
            files_of=files_of,
            wheels_first=not self.options.prefer_newest,
        )
        for name, versions in build.versions.items():
            for version, labels in versions.items():
                selection.add(name, version, labels)
        selection.problems.extend(build.problems)
        return build

    def _mark_why(
        self,
        entries: Sequence[Entry],
        requirements: Iterable[str],
        runtime: Mapping[NormalizedName, Mapping[str, object]],
        build: BuildClosure | None,
    ) -> list[Entry]:
        """Each entry with why its release is planned (requirement, dependency, build)."""
        built = build.versions if build is not None else {}
        names = set(requirements)
        marked = [
            replace(
                e,
                why=why_of(e.project, e.version, requirements=names, runtime=runtime, build=built),
            )
            for e in entries
        ]
        if build is not None:
            report_build_closure(build, marked)
        return marked

    def _select_direct(self, requirements: Sequence[Requirement], selection: Picks) -> None:
        """``--no-deps``: per target, the newest version of each requirement it can install."""
        for req in requirements:
            name = canonicalize_name(req.name)
            page = self._page(name, selection)
            if page is None:
                continue
            for target in self.targets:
                env = target.marker_environment()
                if req.marker is not None and not req.marker.evaluate(env):
                    continue
                version = newest_installable(
                    page.files,
                    req.specifier,
                    target,
                    wheels_first=not self.options.prefer_newest,
                )
                if version is None:
                    selection.problems.append(
                        Problem(
                            name, "no installable version for this target", str(req), target.label
                        )
                    )
                else:
                    selection.add(name, version, [target.label])

    def _select_all_versions(self, selection: Picks) -> None:
        labels = [t.label for t in self.targets]
        for name in list(selection.versions):
            page = self._page(name, selection)
            if page is None:
                continue
            versions = sorted(
                {f.version for f in page.entries if python3_file(f)}, key=Version, reverse=True
            )
            if not self.options.pre:
                versions = [v for v in versions if not Version(v).is_prerelease]
            if self.options.all_versions_limit:
                versions = versions[: self.options.all_versions_limit]
            for version in versions:
                selection.add(name, version, labels)

    def _page(self, name: str, selection: Picks) -> ProjectPage | None:
        try:
            return self.pages.get(name)
        except RemoteIndexError as exc:
            selection.problems.append(_problem_for(name, exc))
            return None

    # -- files ------------------------------------------------------------------------------

    def _files(
        self, selection: Picks, hash_pins: Mapping[str, tuple[str, frozenset[str]]]
    ) -> list[Entry]:
        """The entries of every selected release (see :func:`selected_entries`)."""
        return selected_entries(
            selection,
            self.targets,
            page=lambda name: self._page(name, selection),
            sdist=self.options.sdist,
            hash_pins=hash_pins,
            mirrors_for=self.client.mirrors_for,
        )

    def _provenance(self, manifest: Manifest) -> Manifest:
        """``manifest`` without the files whose PEP 740 provenance fails (or is missing where
        ``--require-provenance`` wants it), the others marked with what their check said."""
        results = check_all(
            [
                (e.filename, e.sha256, e.provenance_url)
                for e in manifest.entries
                if e.provenance_url
            ],
            self.client.session,
            self.net,
            workers=self.options.workers,
        )
        return with_provenance(manifest, results, self.options.require_provenance)


def plan(
    reqs: RequirementSet,
    *,
    mirrors: Sequence[Mirror],
    net: NetworkSettings,
    targets: Sequence[Target],
    options: PlanOptions = PlanOptions(),
    project_indexes: ProjectIndexes | None = None,
) -> Manifest:
    """Plan a mirror of ``reqs`` for ``targets``; see the module docstring."""
    return Planner(mirrors, net, targets, options, project_indexes=project_indexes).plan(reqs)


def _problem_for(name: str, exc: RemoteIndexError, requirement: str | None = None) -> Problem:
    if isinstance(exc, ProjectNotFound):
        return Problem(name, "not found on any index (404 Not Found)", requirement)
    return Problem(name, exc.message, requirement)


def _req_text(reqs: RequirementSet, name: str) -> str | None:
    for r in reqs.requirements:
        if canonicalize_name(r.requirement.name) == name:
            return r.line()
    return None
