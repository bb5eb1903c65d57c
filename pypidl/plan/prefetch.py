"""Pages and metadata fetched ahead of the resolver, for every target at once.

Planning is bound by latency, not bandwidth: a few hundred project pages and as many metadata
files, each a small answer behind a round trip.  Asking for them one at a time, as a resolver
does when it meets each project, costs the sum of those round trips.  :class:`Prefetcher` walks
the known frontier instead: every requirement's page as soon as planning starts, then the
metadata of the release each target would pick from that page, then the pages of every
dependency that release declares for some target, and so on, in a bounded pool of threads.  The
resolvers read from the same caches (a page or a release's metadata is fetched once per run);
what the walk guessed wrong (a backtrack to an older release) they fetch on demand.

The guess per requirement is, for each target, the newest release that matches the specifier
and has a file the target installs (yanked releases only for an exact pin).  Markers are judged
in every target's environment; a dependency no target needs is not followed.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from pypidl.config import DEFAULT_CONCURRENCY
from pypidl.errors import RemoteIndexError
from pypidl.plan.file_choice import pins_exactly
from pypidl.plan.metadata import CoreMetadata, MetadataError

if TYPE_CHECKING:
    from packaging.markers import Marker
    from packaging.requirements import Requirement
    from packaging.tags import Tag

    from pypidl.plan.metadata import MetadataSource
    from pypidl.plan.page_files import FileFacts, ProjectPage
    from pypidl.plan.targets import Target

__all__ = [
    "DEFAULT_IN_FLIGHT",
    "Prefetcher",
    "Releases",
    "Table",
    "Unavailable",
    "Want",
    "by_kind",
    "has_wheel",
]

log = logging.getLogger(__name__)

#: Requests in flight while planning unless told otherwise (the download engine's default).
DEFAULT_IN_FLIGHT = DEFAULT_CONCURRENCY

#: version -> the files of that release (as the index lists them)
Releases = dict[Version, tuple["FileFacts", ...]]


class Unavailable(Exception):
    """A project's page could not be had; the message says why."""


@dataclass(frozen=True)
class Want:
    """A requirement as the walk follows it: which releases of which project, with which extras."""

    name: str
    specifier: SpecifierSet
    extras: frozenset[str] = frozenset()

    @classmethod
    def of(cls, req: Requirement) -> Want:
        return cls(
            canonicalize_name(req.name),
            req.specifier,
            frozenset(canonicalize_name(e) for e in req.extras),
        )

    @functools.cached_property
    def pinned(self) -> bool:
        """``==`` without a wildcard, or ``===`` (PEP 592: then a yanked release may be taken)."""
        return pins_exactly(self.specifier)


class Prefetcher:
    """Shared, thread-safe caches of pages, per-target release tables and metadata, filled ahead.

    The futures of pages and metadata are made under the lock (each request is sent once).  The
    memos of answers worked out from them (tables, kinds that fit, markers, guesses) are filled
    without it, by rule: each value follows from inputs that never change once read, so two
    threads that race work out the same value and either store wins; and a single dict read or
    store is atomic, under the GIL as under free-threaded CPython's per-object locks.  A memo
    that broke the rule (a value depending on the order of calls) would need the lock.

    :param pages: a project's page by normalized name (called at most once per project).
    :param metadata: core metadata of releases.
    :param targets: every target the plan serves (guesses and markers are judged for each).
    :param in_flight: the most requests running at once (threads of the pool).
    """

    def __init__(
        self,
        pages: Callable[[str], ProjectPage],
        metadata: MetadataSource,
        targets: Sequence[Target],
        *,
        in_flight: int = DEFAULT_IN_FLIGHT,
    ):
        self._pages = pages
        self._metadata = metadata
        self.targets = list(targets)
        self._envs = _distinct_environments(self.targets)
        self._lock = threading.Lock()
        self._page_futures: dict[str, Future[Releases]] = {}
        #: project -> its page, once read (a release's files are made from it when asked for)
        self._page_of: dict[str, ProjectPage] = {}
        self._meta_futures: dict[tuple[str, Version], Future[CoreMetadata]] = {}
        #: project -> target label -> its table (by project first: no key tuple per pair)
        self._tables: dict[str, dict[str, Table]] = {}
        self._shapes: dict[str, _Shapes] = {}
        self._followed: set[Want] = set()
        self._expanded: dict[tuple[str, Version], frozenset[str]] = {}
        self._markers: dict[tuple[str, str], bool] = {}
        #: (want, group, below) -> guesses; the group's table for want.name is fixed once made
        self._guessed: dict[tuple[Want, int, Version | None], list[Version]] = {}
        by_python: dict[tuple[str, str], list[Target]] = {}
        for target in self.targets:
            by_python.setdefault((target.implementation, target.python_full_version), []).append(
                target
            )
        #: the targets by interpreter: the walk guesses once per group
        self._groups = [tuple(group) for group in by_python.values()]
        self._group_tables: dict[tuple[str, int], Table] = {}
        self._fits: dict[str, dict[str, frozenset[int]]] = {}
        self._closed = False
        self._busy = 0  # walk steps scheduled and not finished
        self._quiet = threading.Condition(self._lock)
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, in_flight), thread_name_prefix="pypidl-prefetch"
        )

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- pages -------------------------------------------------------------------------------

    def _page_future(self, name: str) -> Future[Releases]:
        # the common case without the lock (a dict read is atomic): the resolvers ask for pages
        # and metadata they already have hundreds of thousands of times, and every walk thread
        # takes this lock too
        future = self._page_futures.get(name)
        if future is not None:
            return future
        with self._lock:
            future = self._page_futures.get(name)
            if future is None:
                future = self._submit(self._load, name)
                self._page_futures[name] = future
            return future

    def _submit(self, fn: Callable[..., object], *args: object) -> Future:  # type: ignore[type-arg]
        if self._closed:
            failed: Future[object] = Future()
            failed.set_exception(Unavailable("planning was stopped"))
            return failed
        return self._pool.submit(fn, *args)

    def _load(self, name: str) -> Releases:
        try:
            page = self._pages(name)
        except RemoteIndexError as exc:
            raise Unavailable(exc.message) from None
        self._page_of[name] = page
        return page.releases()

    def releases(self, name: str) -> Releases:
        """Files by version.  :raises Unavailable: when no index could give the page."""
        return self._page_future(name).result()

    def table(self, name: str, target: Target) -> Table:
        """Releases with a file ``target`` installs, newest first, with those files.

        :raises Unavailable: when no index could give the page.
        """
        by_target = self._tables.get(name)
        if by_target is None:
            by_target = self._tables.setdefault(name, {})
        rows = by_target.get(target.label)
        if rows is None:
            shapes = self._shapes_of(name)
            rows = by_target[target.label] = shapes.table(self._fitting(name, shapes, target))
        return rows

    def _shapes_of(self, name: str) -> _Shapes:
        shapes = self._shapes.get(name)
        if shapes is None:
            # (dict operations are atomic: a second thread at worst sorts the page again)
            shapes = self._shapes.setdefault(name, _Shapes(self.releases(name)))
        return shapes

    def _fitting(self, name: str, shapes: _Shapes, target: Target) -> frozenset[int]:
        """The kinds of ``name``'s files (see :class:`_Shapes`) that ``target`` installs."""
        by_target = self._fits.get(name)
        if by_target is None:
            by_target = self._fits.setdefault(name, {})
        found = by_target.get(target.label)
        if found is None:
            # (the target remembers its answers per Requires-Python and per tag set: a run
            # asks them for every kind of file of every project)
            fitting = [
                n
                for n, (requires_python, tags) in enumerate(shapes.kinds)
                if target.allows_python(requires_python) and (tags is None or target.supports(tags))
            ]
            found = by_target[target.label] = shapes.fits(frozenset(fitting))
        return found

    # -- metadata ----------------------------------------------------------------------------

    def _meta_future(self, name: str, version: Version) -> Future[CoreMetadata]:
        future = self._meta_futures.get((name, version))  # without the lock, as for pages
        if future is not None:
            return future
        self.releases(name)  # (raises Unavailable)
        files = self._page_of[name].release_files(str(version))
        with self._lock:
            future = self._meta_futures.get((name, version))
            if future is None:
                future = self._submit(
                    self._metadata.release, NormalizedName(name), str(version), files
                )
                self._meta_futures[(name, version)] = future
            return future

    def metadata(self, name: str, version: Version) -> CoreMetadata:
        """:raises MetadataError: when the release's metadata cannot be read."""
        try:
            return self._meta_future(name, version).result()
        except MetadataError:
            raise
        except Exception as exc:  # a source's unexpected failure must not stop every target
            raise MetadataError(f"{type(exc).__name__}: {exc}", context=name) from exc

    def prefetch(self, names: Iterable[str]) -> None:
        """Start fetching these projects' pages (the resolver's hint; errors surface later)."""
        for name in names:
            if not name.startswith("<"):  # not the interpreter's pseudo-project
                self._page_future(name)

    def prefetch_metadata(self, name: str, version: Version) -> None:
        if (name, version) in self._meta_futures:
            return  # asked before (the resolvers ask again and again while they backtrack)
        future = self._page_future(name)
        self._then(future, self._meta_future, name, version)

    # -- the walk ----------------------------------------------------------------------------

    def follow(self, wants: Iterable[Want]) -> None:
        """Walk the frontier from these requirements (in the background; never raises)."""
        for want in wants:
            with self._lock:
                if want in self._followed or self._closed:
                    continue
                self._followed.add(want)
            self._then(self._page_future(want.name), self._after_page, want)

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until the walk has nothing left to follow; False when ``timeout`` ran out."""
        with self._quiet:
            return self._quiet.wait_for(lambda: self._busy == 0, timeout)

    def _then(self, future: Future[Any], fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` once ``future`` is done, counted as a step of the walk."""
        with self._lock:
            self._busy += 1

        # a done future keeps its callbacks: this one lets go of the walk once it ran, or the
        # futures the metadata source keeps would hold this prefetcher, and through it all
        # the plan read, in a cycle that only the cyclic collector frees (a walk over about a
        # million objects after a plan of 1,000 projects)
        pending = [functools.partial(self._step, fn, args)]

        def step(_done: Future[Any]) -> None:
            pending.pop()()

        future.add_done_callback(step)

    def _step(self, fn: Callable[..., object], args: tuple[object, ...]) -> None:
        try:
            self._quietly(fn, *args)
        finally:
            with self._quiet:
                self._busy -= 1
                if self._busy == 0:
                    self._quiet.notify_all()

    def _quietly(self, fn: Callable[..., object], *args: object) -> None:
        try:
            fn(*args)
        except (Unavailable, MetadataError, RuntimeError):
            pass  # the resolver asks again and gets the error itself
        except Exception:  # a guess must never break planning
            log.debug("prefetching after %s failed", args, exc_info=True)

    def _after_page(self, want: Want) -> None:
        for version in self.guesses(want):
            self._expand(want, version)

    def _expand(self, want: Want, version: Version) -> None:
        """Read the metadata of ``version`` (once per extras) and follow its dependencies."""
        with self._lock:
            done = self._expanded.get((want.name, version))
            if done is not None and want.extras <= done:
                return
            self._expanded[(want.name, version)] = (done or frozenset()) | want.extras
        future = self._meta_future(want.name, version)
        self._then(future, self._after_metadata, future, want, version)

    def guesses(self, want: Want, below: Version | None = None) -> list[Version]:
        """The release the targets would take for ``want`` when nothing else constrains it
        (with ``below``: the newest older than that, for the targets whose Python it refuses).

        Judged per Python version, a file counting when any target with that Python installs
        it: six times fewer tables than per target, and a platform that needs an older release
        than its siblings costs the resolver one request on demand.
        """
        chosen: set[Version] = set()
        for group in range(len(self._groups)):
            chosen.update(self._guess(want, group, below))
        return sorted(chosen, reverse=True)

    def _guess(self, want: Want, group: int, below: Version | None) -> list[Version]:
        rows = self._group_table(want.name, group)
        key = (want, group, below)
        found = self._guessed.get(key)
        if found is None:
            found = self._guessed[key] = self._guess_in(want, rows, below)
        return found

    def _group_table(self, name: str, group: int) -> Table:
        key = (name, group)
        rows = self._group_tables.get(key)
        if rows is None:
            shapes = self._shapes_of(name)
            fitting = frozenset().union(
                *(self._fitting(name, shapes, target) for target in self._groups[group])
            )
            rows = self._group_tables[key] = shapes.table(fitting)
        return rows

    def _guess_in(self, want: Want, rows: Table, below: Version | None) -> list[Version]:
        if below is None:  # the question every target group asks first: answered by the table
            allowed = rows.allowed(want.specifier, pinned=want.pinned)
            return allowed[:1]
        eligible = [v for v in rows.eligible(pinned=want.pinned) if v < below]
        matching = list(want.specifier.filter(eligible))
        return [max(matching)] if matching else []

    def _after_metadata(self, future: Future[CoreMetadata], want: Want, version: Version) -> None:
        meta = future.result()
        wants = [
            Want.of(req)
            for req in meta.requires_dist
            if self.needed(req.marker, want.extras) and not req.url
        ]
        self.follow(wants)
        if meta.requires_python:
            # the page did not say it, the metadata does: the refused targets backtrack to the
            # release before, so read that one too
            refused = [
                n
                for n, group in enumerate(self._groups)
                if not group[0].allows_python(meta.requires_python)
            ]
            older = {v for n in refused for v in self._guess(want, n, version)}
            for earlier in sorted(older, reverse=True):
                self._expand(want, earlier)

    def needed(self, marker: Marker | None, extras: frozenset[str] = frozenset()) -> bool:
        """Whether a dependency with ``marker`` applies on some target (without an extra, or
        with one of ``extras``)."""
        if marker is None:
            return True
        text = str(marker)
        for extra in ("", *sorted(extras)):
            key = (text, extra)
            found = self._markers.get(key)  # a dict read and write are atomic: no lock
            if found is None:
                found = self._markers[key] = any(
                    _evaluate(marker, env, extra) for env in self._envs
                )
            if found:
                return True
        return False


#: what :meth:`Table.signature` says of a table
Signature = tuple[tuple["Version", ...], bytes]


class Table(list[tuple[Version, tuple["FileFacts", ...]]]):
    """Releases with files a target installs, newest first, with those files.

    One table serves every target that installs the same kinds of a project's files (see
    :class:`_Shapes`), so what the resolvers work out from it is kept on it and worked out once
    for all of them, not once per target (a project with thousands of releases made that the
    larger part of planning).  The values are the same whichever thread computes them first.
    """

    _signature: Signature | None = None
    _eligible: dict[bool, dict[Version, tuple[FileFacts, ...]]] | None = None
    _allowed: dict[tuple[SpecifierSet, bool], list[Version]] | None = None
    _by_kind: dict[tuple[SpecifierSet, bool], tuple[list[Version], list[Version]]] | None = None

    def signature(self) -> Signature:
        """Each release's version, whether every one of its files is yanked, and whether one
        is a wheel (with wheels first, that changes the order of the candidates: two targets
        agree only where it is the same too).

        Only ever compared, so kept compact: the versions in one tuple, the two answers of
        each release in one byte (a tuple per release cost 70 bytes, for every release of
        every table).
        """
        found = self._signature
        if found is None:
            found = self._signature = (
                tuple(version for version, _files in self),
                bytes(
                    2 * all(f.yanked for f in files) + has_wheel(files) for _version, files in self
                ),
            )
        return found

    def eligible(self, *, pinned: bool) -> dict[Version, tuple[FileFacts, ...]]:
        """The releases with their files that are not yanked (all of them when every one is
        yanked and the requirement is ``pinned``)."""
        cache = self._eligible
        if cache is None:
            cache = self._eligible = {}
        found = cache.get(pinned)
        if found is None:
            found = {}
            yanked = False
            for version, files in self:
                live = tuple(f for f in files if not f.yanked)
                if len(live) == len(files):
                    found[version] = files  # (the same tuple: tables are many, memory counts)
                else:
                    yanked = True
                    if live or pinned:
                        found[version] = live or files
            cache[pinned] = found
            if not yanked:
                cache[not pinned] = found  # nothing yanked: pinned or not, the same answer
        return found

    def allowed(self, spec: SpecifierSet, *, pinned: bool) -> list[Version]:
        """The versions of :meth:`eligible` that ``spec`` admits (pre-releases as it decides
        over all of them), newest first."""
        cache = self._allowed
        if cache is None:
            cache = self._allowed = {}
        found = cache.get((spec, pinned))
        if found is None:
            found = cache[(spec, pinned)] = sorted(
                spec.filter(self.eligible(pinned=pinned)), reverse=True
            )
        return found

    def allowed_by_kind(
        self, spec: SpecifierSet, *, pinned: bool
    ) -> tuple[list[Version], list[Version]]:
        """:meth:`allowed`, split into the releases with a wheel among their eligible files
        and those with only an sdist, each newest first (the caller must not change them)."""
        cache = self._by_kind
        if cache is None:
            cache = self._by_kind = {}
        found = cache.get((spec, pinned))
        if found is None:
            found = cache[(spec, pinned)] = by_kind(
                self.allowed(spec, pinned=pinned), self.eligible(pinned=pinned)
            )
        return found


_Rows = Table


def has_wheel(files: Iterable[FileFacts]) -> bool:
    """Whether these files (a release's, that a target installs) hold a wheel: else the target
    would build the release from its sdist."""
    return any(f.kind == "wheel" for f in files)


def by_kind(
    versions: Iterable[Version], files: Mapping[Version, tuple[FileFacts, ...]]
) -> tuple[list[Version], list[Version]]:
    """``versions`` split, in their order, into those whose ``files`` hold a wheel and the
    others (built from an sdist)."""
    wheels: list[Version] = []
    builds: list[Version] = []
    for version in versions:
        (wheels if has_wheel(files[version]) else builds).append(version)
    return wheels, builds


class _Shapes:
    """A project's releases, newest first, with each file's kind: what decides whether a target
    installs it (its Requires-Python, and its tags if a wheel; an sdist is built anywhere).

    A project has thousands of files but a few dozen kinds: a target's table is found by
    judging each kind once, and targets that install the same kinds share one table (so the
    walk's guesses, remembered per table, are made once for them).
    """

    def __init__(self, releases: Releases) -> None:
        index: dict[tuple[str | None, frozenset[Tag] | None], int] = {}
        patterns: dict[tuple[int, ...], tuple[int, ...]] = {}
        #: (version, its files: the page's own tuple), newest first: the row of every table
        #: that holds all of the release's files
        self.rows: list[tuple[Version, tuple[FileFacts, ...]]] = []
        #: each row's files' kinds: one tuple per pattern (most releases of a project share
        #: one), in a list of its own (a pair per release cost 64 bytes, for every release of
        #: every page)
        self.patterns: list[tuple[int, ...]] = []
        for version in sorted(releases, reverse=True):
            files = releases[version]
            kinds = tuple(
                index.setdefault(
                    (f.requires_python, f.tags if f.kind == "wheel" else None), len(index)
                )
                for f in files
            )
            self.rows.append((version, files))
            self.patterns.append(patterns.setdefault(kinds, kinds))
        #: kind number -> (Requires-Python, wheel tags or None for an sdist)
        self.kinds = list(index)
        self._tables: dict[frozenset[int], _Rows] = {}
        self._fit_sets: dict[frozenset[int], frozenset[int]] = {}

    def fits(self, fitting: frozenset[int]) -> frozenset[int]:
        """``fitting``, as one object for all the targets that install the same kinds."""
        return self._fit_sets.setdefault(fitting, fitting)

    def table(self, fitting: frozenset[int]) -> _Rows:
        """The releases with a file of the ``fitting`` kinds, with those files."""
        rows = self._tables.get(fitting)
        if rows is None:
            rows = Table()
            # which of a release's files fit, worked out once per pattern of kinds (keyed by
            # the pattern's id: the rows hold every pattern for as long as this loop runs)
            picks: dict[int, tuple[int, ...]] = {}
            for pair, kinds in zip(self.rows, self.patterns):
                picked = picks.get(id(kinds))
                if picked is None:
                    picked = picks[id(kinds)] = tuple(
                        i for i, kind in enumerate(kinds) if kind in fitting
                    )
                if not picked:
                    continue
                if len(picked) == len(kinds):
                    rows.append(pair)
                    continue
                # (some of the release's files: a row of this table's own; tables rarely pick
                # the same part of a release, and keeping each part once cost more than that)
                version, files = pair
                rows.append((version, tuple(files[i] for i in picked)))
            rows = self._tables.setdefault(fitting, rows)
        return rows


def _distinct_environments(targets: Sequence[Target]) -> list[dict[str, str]]:
    seen: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    for target in targets:
        env = target.marker_environment()
        seen.setdefault(tuple(sorted(env.items())), env)
    return list(seen.values())


def _evaluate(marker: Marker, env: dict[str, str], extra: str) -> bool:
    try:
        return bool(marker.evaluate({**env, "extra": extra}))
    except Exception:  # a marker that cannot be judged is not applied
        return False
