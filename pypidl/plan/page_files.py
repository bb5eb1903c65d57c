"""A project page's files, read as the planner needs them: every entry cheaply, a release whole.

A page lists its project's whole history: tens of thousands of files for a project with
thousands of releases or dozens of wheels per release, of which a plan keeps a few.  What decides
whether a file is a candidate at all (its name, version, tags, Requires-Python, yanked, upload
time, whether its URL is usable) is read for every entry, into a small :class:`PageEntry`.  The
rest (digests, size, core metadata, provenance), and the full :class:`RemoteFile`, is made for a
release when something asks for that release's files (its metadata, the file choice): the page
reads its body again then, a few releases at a time, from the page store (or from a compressed
copy of its own where there is no store).  So a file the plan
never considers costs a name check and a few dictionary reads, and the memory a page holds grows
with its entries, not with everything each entry says.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    parse_sdist_filename,
    parse_wheel_filename,
)

from pypidl._fs import check_basename
from pypidl._simple import (
    FILE_SLOTS,
    ListedFile,
    SimplePage,
    entry_requires_python,
    entry_upload_time,
    entry_yanked,
    file_url,
    listed_file,
    parse_page,
)
from pypidl.errors import UnsafeFilenameError
from pypidl.plan.file_choice import same_version_key
from pypidl.plan.page_fields import ProjectStatus, project_status, provenance_url
from pypidl.sources import redact_url

if TYPE_CHECKING:
    from packaging.version import Version

__all__ = [
    "FileFacts",
    "PageEntry",
    "ProjectPage",
    "RemoteFile",
    "files_of",
    "page_entries",
]

log = logging.getLogger(__name__)

#: every wheel tag set met so far, each kept once (dict operations are atomic across threads)
_TAG_SETS: dict[frozenset[Tag], frozenset[Tag]] = {}

#: an sdist's tags: one empty set for all of them (each ``frozenset()`` is a new object)
_NO_TAGS: frozenset[Tag] = frozenset()

#: Pages parsed at once.  Parsing holds the GIL, so more threads would not read pages sooner,
#: but each holds a page's whole parse tree (tens of MiB for the largest real pages) at a time.
_READING = threading.BoundedSemaphore(2)

#: Releases made whole together when one is asked for: the asked one and the next older ones
#: (a resolver that backtracks walks to older releases one by one).
RELEASES_PER_READ = 8

#: Releases made whole when a page is read, the newest: what a plan asks of most pages.  Each
#: made file holds its URL and digests: at 8, 1,000 projects held about 100k files, most never
#: asked for (peak RSS 340 MiB; 319 MiB at 4; at 2, more pages were parsed again, and the
#: parse trees cost more than the files saved).
RELEASES_AT_READ = 4


class FileFacts(Protocol):
    """What the resolver knows of every file of a page: enough to tell whether a target
    installs it.  Both :class:`PageEntry` and :class:`RemoteFile` are such facts."""

    @property
    def filename(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def kind(self) -> str: ...  # "wheel" | "sdist"
    @property
    def tags(self) -> frozenset[Tag]: ...  # a wheel's tags; empty for an sdist
    @property
    def requires_python(self) -> str | None: ...
    @property
    def yanked(self) -> bool: ...
    @property
    def upload_time(self) -> str | None: ...


class PageEntry(NamedTuple):
    """One file entry of a page as read for every entry (see the module's text).

    A plan reads hundreds of thousands of them, so each holds only what it must: its kind
    follows from its tags, the page finds it again by its name, and a wheel's name is held in
    two parts that other entries share: the release's (``name-version``, with a build tag if
    any) and the tags' (``-py3-none-any.whl``).  A text of its own per wheel name was the
    largest part of the memory a large plan held.
    """

    head: str  # a wheel's name up to its tags; an sdist's whole name
    tail: str  # a wheel's tags and suffix; "" for an sdist
    version: str
    tags: frozenset[Tag]  # a wheel's (never empty); :data:`_NO_TAGS` for an sdist
    requires_python: str | None
    yanked: bool
    upload_time: str | None

    @property
    def filename(self) -> str:
        return self.head + self.tail

    @property
    def kind(self) -> str:
        return "wheel" if self.tags else "sdist"


@dataclass(frozen=True, **FILE_SLOTS)
class RemoteFile(ListedFile):
    """A file as one index lists it: what the page says (:class:`ListedFile`), and what its
    name says (project, version, kind, wheel tags)."""

    project: NormalizedName = NormalizedName("")  # noqa: RUF009 - a NewType: the str itself
    version: str = ""
    kind: str = ""  # "wheel" | "sdist"
    tags: frozenset[Tag] = frozenset()
    mirror: str = ""  # name of the mirror whose page listed it
    #: where the index serves the file's PEP 740 provenance, when it does
    provenance_url: str | None = None


@dataclass(frozen=True)
class _Body:
    """A page's body, compressed, or where to have it again; and what reading it needs."""

    data: bytes
    content_type: str
    encoding: str | None
    again: Callable[[], bytes] | None = None

    def items(self, url: str) -> list[Mapping[str, Any]]:
        body = self.again() if self.again is not None else zlib.decompress(self.data)
        return parse_page(body, self.content_type, url, encoding=self.encoding).items


class ProjectPage:
    """A project's page: every file's :class:`PageEntry`, and each release's
    :class:`RemoteFile` objects on demand (thread-safe).

    Made either from a page's body (:meth:`read`), which it keeps compressed, or from
    ``files`` already made (a mirror's own listing, tests).
    """

    def __init__(
        self,
        name: NormalizedName,
        files: Sequence[RemoteFile] | None,
        mirror: str,
        url: str,
        digest: str = "",
        status: ProjectStatus | None = None,
        *,
        entries: Sequence[FileFacts] | None = None,
        body: _Body | None = None,
    ):
        """:param url: the page's URL without credentials.
        :param digest: sha256 of the page's body: a plan that read the page depended on it.
        :param status: the project's PEP 792 status, when it is not "active"."""
        self.name = name
        self.mirror = mirror
        self.url = url
        self.digest = digest
        self.status = status
        self._files = tuple(files) if files is not None else None
        self._body = body
        self.entries: tuple[FileFacts, ...] = (
            tuple(entries) if entries is not None else tuple(self._files or ())
        )
        self._lock = threading.Lock()
        #: version key -> that release's files, for the releases made so far
        self._made: dict[Version | str, list[RemoteFile]] = {}
        self._groups: dict[Version | str, tuple[FileFacts, ...]] | None = None

    @classmethod
    def read(
        cls,
        name: NormalizedName,
        body: bytes,
        content_type: str,
        encoding: str | None,
        *,
        url: str,
        mirror: str,
        digest: str = "",
        upload_times: bool = True,
        again: Callable[[], bytes] | None = None,
    ) -> ProjectPage:
        """The page of ``name`` from its ``body``.

        :param upload_times: whether each entry keeps its upload time: only a cooldown asks
            for every entry's, and it is a text of its own per file (tens of MiB over a few
            hundred large pages).  A release made whole has its files' times either way.
        :param again: gives the body again (the page store, where the client keeps every page
            it reads): the page then keeps no copy of its own.  Without it the page keeps its
            body compressed, which is about what the index sent.

        :raises ValueError: the body is no project page, or lists a file name twice with
            different contents.
        """
        with _READING:
            parsed = parse_page(body, content_type, url, encoding=encoding)
            page = cls(
                name,
                None,
                mirror,
                url,
                digest,
                project_status(parsed),
                entries=page_entries(parsed, name, mirror, upload_times=upload_times),
                body=_Body(
                    b"" if again is not None else zlib.compress(body, 1),
                    content_type,
                    encoding,
                    again,
                ),
            )
            # the newest releases are the ones a plan asks for: made now, from the page at hand
            newest: list[Version | str] = sorted(
                (k for k in page._by_version() if not isinstance(k, str)), reverse=True
            )
            with page._lock:
                page._make(newest[:RELEASES_AT_READ], parsed.items)
        return page

    @property
    def files(self) -> tuple[RemoteFile, ...]:
        """Every file of the page (each release made whole: for the few readers that need
        them all)."""
        if self._files is not None:
            return self._files
        wanted = list(self._by_version())
        with self._lock:
            self._make([k for k in wanted if k not in self._made])
            made = [rf for k in wanted for rf in self._made.get(k, ())]
        order = {e.filename: n for n, e in enumerate(self.entries)}
        return tuple(sorted(made, key=lambda rf: order.get(rf.filename, 0)))

    def release_files(self, version: str) -> list[RemoteFile]:
        """The files of one release (its version compared as a version: ``1.0`` is ``1.0.0``)."""
        key = same_version_key(version)
        if self._files is not None:
            return [rf for rf in self._by_version().get(key, ()) if isinstance(rf, RemoteFile)]
        with self._lock:
            if key not in self._made:
                self._make(self._batch(key))
            return list(self._made.get(key, ()))

    def keeping(self, entries: Iterable[FileFacts]) -> ProjectPage:
        """This page with only ``entries`` (some of its own)."""
        kept = tuple(entries)
        if self._files is not None:
            files = [rf for rf in kept if isinstance(rf, RemoteFile)]
            return ProjectPage(self.name, files, self.mirror, self.url, self.digest, self.status)
        return ProjectPage(
            self.name,
            None,
            self.mirror,
            self.url,
            self.digest,
            self.status,
            entries=kept,
            body=self._body,
        )

    def releases(self) -> dict[Version, tuple[FileFacts, ...]]:
        """The entries by release, for the releases whose version is valid (in the page's
        order; each tuple is the page's own, shared with whoever else asks, and the dict too
        when every version is valid: the caller must not change it)."""
        groups = self._by_version()
        if not any(isinstance(k, str) for k in groups):
            return groups  # type: ignore[return-value] # (no str keys: checked just above)
        return {k: files for k, files in groups.items() if not isinstance(k, str)}

    def _by_version(self) -> dict[Version | str, tuple[FileFacts, ...]]:
        groups = self._groups
        if groups is None:
            # (two threads may both build it: the same value)
            grouped: dict[Version | str, list[FileFacts]] = {}
            for entry in self.entries:
                grouped.setdefault(same_version_key(entry.version), []).append(entry)
            groups = self._groups = {k: tuple(files) for k, files in grouped.items()}
        return groups

    def _batch(self, key: Version | str) -> list[Version | str]:
        """``key`` and the next older releases not made yet."""
        groups = self._by_version()
        if key not in groups:
            return [key]
        ordered = sorted((k for k in groups if not isinstance(k, str)), reverse=True)
        batch: list[Version | str] = [key]
        if not isinstance(key, str):
            start = ordered.index(key) + 1
            batch += [k for k in ordered[start:] if k not in self._made][: RELEASES_PER_READ - 1]
        return batch

    def _make(
        self, keys: list[Version | str], items: Sequence[Mapping[str, Any]] | None = None
    ) -> None:
        """Make these releases whole (with the lock held), from the page's ``items`` when they
        are at hand."""
        if not keys:
            return
        for key in keys:
            self._made[key] = []
        groups = self._by_version()
        wanted = {
            entry.filename: key
            for key in keys
            for entry in groups.get(key, ())
            if isinstance(entry, PageEntry)
        }
        if not wanted or (items is None and self._body is None):
            return
        if items is None:
            assert self._body is not None  # noqa: S101 - for mypy: checked just above
            with _READING:
                items = self._body.items(self.url)
        # in the page's order, each name's first usable entry: the one page_entries kept
        for item in items:
            release = wanted.get(item["filename"])
            if release is None:
                continue
            rf = _remote_file(self.name, item, self.url, self.mirror)
            if rf is not None:
                self._made[release].append(rf)
                del wanted[rf.filename]
                if not wanted:
                    break


def page_entries(
    page: SimplePage, name: NormalizedName, mirror: str, *, upload_times: bool = True
) -> list[PageEntry]:
    """The entries of the files of ``name`` that ``page`` lists (each checked as far as it
    decides whether the file exists for the plan; the rest skipped, unsafe names and unusable
    URLs with a warning).

    :raises ValueError: a file name listed with different sha256 digests or sizes.
    """
    entries: list[PageEntry] = []
    first: dict[str, int] = {}
    for n, item in enumerate(page.items):
        parts = _name_parts(name, item, page.url)
        if parts is None or file_url(item, page.url) is None:
            continue
        filename, version, _kind, tags, head, tail = parts
        seen = first.setdefault(filename, n)
        if seen != n:
            # the same name twice: the same file (kept once) or an error, as files_of decides
            twice = [_remote_file(name, page.items[k], page.url, mirror) for k in (seen, n)]
            _one_per_filename([rf for rf in twice if rf is not None])
            continue
        entries.append(
            PageEntry(
                head,
                tail,
                version,
                tags,
                entry_requires_python(item),
                entry_yanked(item),
                entry_upload_time(item) if upload_times else None,
            )
        )
    return entries


def files_of(page: SimplePage, name: NormalizedName, mirror: str) -> list[RemoteFile]:
    """The files of ``name`` that ``page`` lists (each checked; the rest skipped).

    :raises ValueError: a file name listed with different sha256 digests or sizes.
    """
    files = []
    for item in page.items:
        rf = _remote_file(name, item, page.url, mirror)
        if rf is not None:
            files.append(rf)
    return _one_per_filename(files)


def _name_parts(
    project: NormalizedName, item: Mapping[str, Any], page_url: str
) -> tuple[str, str, str, frozenset[Tag], str, str] | None:
    """The file name, version, kind and tags of an entry, and its name in the two parts a
    :class:`PageEntry` keeps; or None for files pypidl does not mirror (eggs, installers,
    foreign names, unsafe names: those with a warning)."""
    filename = item["filename"]
    try:
        check_basename(filename)
    except UnsafeFilenameError:
        log.warning("ignoring unsafe file name %r on %s", filename, redact_url(page_url))
        return None
    tags = _NO_TAGS
    try:
        if filename.endswith(".whl"):
            wname, version, tags, head, tail = _wheel_name(filename)
            kind = "wheel"
        elif filename.endswith((".tar.gz", ".zip")):
            wname, sversion = parse_sdist_filename(filename)
            kind, version = "sdist", sys.intern(str(sversion))
            head, tail = filename, ""
        else:
            return None
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    if wname != project:
        return None
    return filename, version, kind, tags, head, tail


def _remote_file(
    project: NormalizedName, item: Mapping[str, Any], page_url: str, mirror: str
) -> RemoteFile | None:
    """A RemoteFile, or None for files pypidl does not mirror (eggs, installers, foreign names,
    unsafe names, unusable URLs)."""
    parts = _name_parts(project, item, page_url)
    if parts is None:
        return None
    _filename, version, kind, tags, _head, _tail = parts
    return listed_file(
        item,
        page_url,
        RemoteFile,
        project=project,
        version=version,
        kind=kind,
        tags=tags,
        mirror=mirror,
        provenance_url=provenance_url(item, page_url),
    )


def _wheel_name(filename: str) -> tuple[NormalizedName, str, frozenset[Tag], str, str]:
    """What ``parse_wheel_filename`` makes of ``filename``: its project, version (normalized)
    and tags, each worked out once per text; and the name's release part (``name-version``,
    with a build tag if any) and tags part (``-py3-none-any.whl``), each one object per text.

    A page lists the same project, a few hundred versions and a few dozen tag sets over tens of
    thousands of wheels; packaging reads each part, remembered by its text (the parts of a wheel
    name are separated by dashes, which no part may hold).

    :raises InvalidWheelFilename: as ``parse_wheel_filename`` does.
    """
    parts = filename[:-4].split("-")
    if len(parts) not in (5, 6):
        parse_wheel_filename(filename)  # raises, naming the problem
    name, version, head = _wheel_release("-".join(parts[:-3]))
    tags, tail = _wheel_tags("-".join(parts[-3:]))
    return name, version, tags, head, tail


@functools.lru_cache(maxsize=1 << 14)
def _wheel_release(release: str) -> tuple[NormalizedName, str, str]:
    # (an invalid name raises on every call: lru_cache does not keep exceptions, nor need to)
    name, version, _build, _tags = parse_wheel_filename(f"{release}-py3-none-any.whl")
    return name, sys.intern(str(version)), sys.intern(release)


@functools.lru_cache(maxsize=1 << 12)
def _wheel_tags(text: str) -> tuple[frozenset[Tag], str]:
    tags = parse_wheel_filename(f"x-0-{text}.whl")[3]
    # one set object per text, so that tables keyed by tag sets hash each once
    return _TAG_SETS.setdefault(tags, tags), sys.intern(f"-{text}.whl")


def _one_per_filename(files: list[RemoteFile]) -> list[RemoteFile]:
    """``files`` with each file name once; the same name with other contents is an error.

    A manifest lists a file name once per project, so a page may not offer two files under one
    name: which one would the mirror hold?  The same file listed twice (another URL, the same
    digest and size) is kept once.

    :raises ValueError: a file name listed with different sha256 digests or sizes.
    """
    first: dict[str, RemoteFile] = {}
    kept: list[RemoteFile] = []
    for rf in files:
        seen = first.setdefault(rf.filename, rf)
        if seen is rf:
            kept.append(rf)
        elif seen.sha256 != rf.sha256 or (
            seen.size is not None and rf.size is not None and seen.size != rf.size
        ):
            raise ValueError(
                f"{rf.filename} is listed twice on the page, with different sha256 digests or sizes"
            )
    return kept
