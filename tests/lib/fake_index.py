"""An in-memory index for the resolver's unit tests: pages and core metadata from dicts."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence

from packaging.requirements import Requirement
from packaging.utils import (
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from pypidl.plan.closure import UNKNOWN_DEPENDENCIES, resolve_closure
from pypidl.plan.metadata import CoreMetadata, MetadataError
from pypidl.plan.pages import ProjectNotFound, ProjectPage, RemoteFile
from pypidl.plan.targets import Target

__all__ = ["SHA", "FakeIndex", "remote_file"]

SHA = "ab" * 32


class FakeIndex:
    """Pages and metadata from dicts; counts calls, and is called from many threads."""

    def __init__(self) -> None:
        self.files: dict[str, list[RemoteFile]] = {}
        self.meta: dict[tuple[str, str], CoreMetadata] = {}
        self.page_calls: Counter[str] = Counter()
        self.meta_calls: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def add(
        self,
        name: str,
        version: str,
        *,
        deps: Sequence[str] = (),
        tags: Sequence[str] = ("py3-none-any",),
        requires_python: str | None = None,
        page_requires_python: bool = True,
        yanked: bool = False,
        sdist: bool = False,
        known: bool = True,
    ) -> None:
        project = canonicalize_name(name)
        files = self.files.setdefault(project, [])
        stem = f"{project.replace('-', '_')}-{version}"
        filenames = [f"{stem}.tar.gz"] if sdist else [f"{stem}-{tag}.whl" for tag in tags]
        for filename in filenames:
            files.append(
                RemoteFile(
                    project=project,
                    filename=filename,
                    url=f"https://index.invalid/{filename}",
                    version=version,
                    kind="sdist" if sdist else "wheel",
                    sha256=None,
                    requires_python=requires_python if page_requires_python else None,
                    yanked=yanked,
                    tags=frozenset() if sdist else parse_wheel_filename(filename)[3],
                )
            )
        self.meta[(project, version)] = CoreMetadata(
            project=project,
            version=version,
            requires_dist=tuple(Requirement(d) for d in deps) if known else (),
            requires_python=requires_python,
            provides_extra=frozenset(),
            dependencies_known=known,
            unknown_reason=None if known else f"{UNKNOWN_DEPENDENCIES}: dynamic",
        )

    def page(self, name: str) -> ProjectPage:
        with self._lock:
            self.page_calls[name] += 1
        time.sleep(0.001)  # let other threads run into the same name
        if name not in self.files:
            raise ProjectNotFound(f"no index has a project named {name!r}", context=name)
        return ProjectPage(NormalizedName(name), tuple(self.files[name]), "fake", "")

    def release(
        self, project: NormalizedName, version: str, files: Sequence[RemoteFile]
    ) -> CoreMetadata:
        with self._lock:
            self.meta_calls[(project, version)] += 1
        assert files, "the resolver passes the release's files"
        try:
            return self.meta[(project, version)]
        except KeyError:
            raise MetadataError(f"no metadata for {project} {version}") from None

    def resolve(self, reqs: Sequence[str], targets: Sequence[Target], **kwargs: object):  # type: ignore[no-untyped-def]
        return resolve_closure(
            [Requirement(r) for r in reqs],
            targets,
            pages=self.page,
            metadata=self,
            **kwargs,  # type: ignore[arg-type]
        )


def remote_file(
    filename: str,
    *,
    requires_python: str | None = None,
    yanked: bool = False,
    mirror: str = "m",
    url: str | None = None,
) -> RemoteFile:
    """A file of a page, everything read from its name."""
    if filename.endswith(".whl"):
        name, version, _, tags = parse_wheel_filename(filename)
        kind = "wheel"
    else:
        name, version = parse_sdist_filename(filename)
        tags, kind = frozenset(), "sdist"
    return RemoteFile(
        project=name,
        filename=filename,
        url=url or f"http://127.0.0.1:1/packages/ab/cd/ef/{filename}",
        version=str(version),
        kind=kind,
        sha256=SHA,
        requires_python=requires_python,
        yanked=yanked,
        tags=tags,
        mirror=mirror,
    )
