"""Prove, offline and from the mirror alone, that every target can install the requirements.

``pypidl check`` runs the same per-target resolver as planning (:mod:`pypidl.plan.closure`), but its
pages come from the mirror's catalog (the files the built index lists, and that are still on
disk) and its metadata from the ``.metadata`` sidecars beside the wheels, or from the files
themselves.  Where a target would install a release from its sdist, the sdist's build
requirements (its ``[build-system]``, or setuptools' defaults) must resolve from the mirror too,
for that target, as the planner's build closure (:mod:`pypidl.plan.build_deps`) demands: pip and
uv build in an isolated environment that they fill from the same index.  A target passes when
all of that resolves from the mirror's files; otherwise the report says exactly what is missing
for it and why.  No network is used.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)

from pypidl.dists import METADATA_SUFFIX
from pypidl.errors import BadInputError, UnsafeFilenameError
from pypidl.manifest import Entry, Problem
from pypidl.plan.build_deps import build_closure, builders, kept_sdist
from pypidl.plan.closure import resolve_closure
from pypidl.plan.metadata import MetadataFetcher
from pypidl.plan.notes import build_detail
from pypidl.plan.pages import ProjectNotFound, ProjectPage, RemoteFile
from pypidl.plan.prefetch import Prefetcher
from pypidl.plan.sdists import SdistReader
from pypidl.store.catalog import Catalog

if TYPE_CHECKING:
    from packaging.requirements import Requirement
    from packaging.tags import Tag

    from pypidl.plan.targets import Target

__all__ = ["CheckReport", "TargetCheck", "check_mirror", "mirror_pages"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TargetCheck:
    """The verdict for one target."""

    target: str
    #: what prevents installing the requirements on this target (empty: it can)
    missing: tuple[Problem, ...] = ()
    #: releases installed from sdists whose dependencies cannot be known without building them
    warnings: tuple[Problem, ...] = ()
    #: project -> version the target would install
    pins: dict[str, str] = field(default_factory=dict)
    #: the releases it would build from their sdists (no wheel in the mirror fits it), each
    #: with what building needs: ``("pywinpty 2.0.14", "needs maturin>=1: a Rust toolchain")``
    builds: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.missing

    @property
    def wheels_only(self) -> bool:
        """Whether the target installs everything from wheels, building nothing."""
        return self.ok and not self.builds


@dataclass(frozen=True)
class CheckReport:
    root: str
    results: tuple[TargetCheck, ...]
    #: problems that concern no single target (a direct URL requirement)
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems and all(r.ok for r in self.results)

    @property
    def failed(self) -> tuple[TargetCheck, ...]:
        return tuple(r for r in self.results if not r.ok)


class _MirrorPages:
    """Project pages built from the catalog of the mirror at ``root`` (files present on disk).

    Each page is built once: the runtime closure, the build closure and every build
    environment's resolution ask for the same projects, and each build reads a catalog file
    and checks every file in it on disk.
    """

    def __init__(self, root: Path):
        self.root = root.resolve()  # as_uri() below needs an absolute path
        self.catalog = Catalog(root)
        self.projects = set(self.catalog.projects())
        self._built: dict[str, ProjectPage | ProjectNotFound] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str) -> ProjectPage:
        project = canonicalize_name(name)
        with self._lock:
            page = self._built.get(project)
        if page is None:
            try:
                page = self._build(name, project)
            except ProjectNotFound as exc:
                page = exc
            with self._lock:
                self._built[project] = page
        if isinstance(page, ProjectNotFound):
            raise page.with_traceback(None)  # no frames piling up from earlier raises
        return page

    def _build(self, name: str, project: NormalizedName) -> ProjectPage:
        if project not in self.projects:
            raise ProjectNotFound(f"the mirror has no files of {name!r}", context=name)
        files = []
        for filename, record in sorted(self.catalog.load(project).items()):
            try:
                path = self.catalog.file_path(record.entry)
            except UnsafeFilenameError:
                continue
            if not path.is_file():
                log.debug("%s is in the catalog but not on disk", path)
                continue
            rf = _remote_file(record.entry.project, filename, path, record.entry)
            if rf is not None:
                files.append(rf)
        if not files:
            raise ProjectNotFound(f"the mirror has no files of {name!r}", context=name)
        return ProjectPage(NormalizedName(project), tuple(files), "mirror", self.root.as_uri())


def _remote_file(project: str, filename: str, path: Path, entry: Entry) -> RemoteFile | None:
    tags: frozenset[Tag] = frozenset()
    if entry.kind == "wheel":
        try:
            tags = parse_wheel_filename(filename)[3]
        except InvalidWheelFilename:
            return None
    sidecar = path.with_name(path.name + METADATA_SUFFIX)
    return RemoteFile(
        project=NormalizedName(project),
        filename=filename,
        url=path.resolve().as_uri(),
        version=entry.version,
        kind=entry.kind,
        sha256=entry.sha256,
        requires_python=entry.requires_python,
        yanked=entry.yanked,
        yanked_reason=entry.yanked_reason,
        size=entry.size,
        has_core_metadata=sidecar.is_file(),
        tags=tags,
        mirror="mirror",
    )


def mirror_pages(root: str | os.PathLike[str]) -> _MirrorPages:
    """A page source (for :func:`pypidl.plan.closure.resolve_closure`) over a local mirror.

    :raises BadInputError: when ``root`` holds no pypidl catalog.
    """
    base = Path(root)
    pages = _MirrorPages(base)
    if not pages.projects:
        raise BadInputError(
            "no catalog of mirrored files found",
            context=str(base),
            hint="give the directory a pypidl download wrote (it holds .pypidl/catalog/)",
        )
    return pages


def check_mirror(
    root: str | os.PathLike[str],
    requirements: Sequence[Requirement],
    targets: Sequence[Target],
    *,
    constraints: Sequence[Requirement] = (),
    workers: int = 8,
) -> CheckReport:
    """Whether every target can install ``requirements`` from the mirror at ``root`` alone.

    :raises BadInputError: when ``root`` is not a pypidl mirror.
    """
    pages = mirror_pages(root)
    metadata = MetadataFetcher(workers=workers)
    with metadata, Prefetcher(pages, metadata, targets, in_flight=workers) as index:
        selection = resolve_closure(
            requirements,
            targets,
            pages=pages,
            metadata=metadata,
            constraints=constraints,
            workers=workers,
            index=index,
        )
        build = build_closure(
            selection.versions,
            targets=targets,
            pages=pages,
            metadata=metadata,
            index=index,
            reader=SdistReader(),  # the mirror's files are local: no request, no cache
            workers=workers,
        )
        problems = [*selection.problems, *build.problems]
    general = tuple(p for p in problems if p.target is None)
    results = []
    for target in targets:
        mine = list(dict.fromkeys(p for p in problems if p.target == target.label))
        warnings = tuple(p for p in mine if not p.is_error)
        missing = tuple(p for p in mine if p not in warnings)
        pins = {str(k): v for k, v in selection.pins.get(target.label, {}).items()}
        builds = _builds(target, pins, pages, build.requires)
        results.append(TargetCheck(target.label, missing, warnings, pins, builds))
    return CheckReport(str(root), tuple(results), general)


def _builds(
    target: Target,
    pins: Mapping[str, str],
    pages: _MirrorPages,
    requires: Mapping[str, tuple[str, ...]],
) -> tuple[tuple[str, str], ...]:
    """The releases among ``pins`` that ``target`` would build, with what building needs."""
    found = []
    for name, version in sorted(pins.items()):
        try:
            files = pages(name).release_files(version)
        except ProjectNotFound:
            continue
        if not builders(files, [target]):
            continue
        sdist = kept_sdist(files)
        detail = build_detail(requires.get(sdist.filename) if sdist is not None else None)
        found.append((f"{name} {version}", detail))
    return tuple(found)
