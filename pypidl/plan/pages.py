"""Reading simple indexes: PEP 691 JSON by content negotiation, PEP 503 HTML as the fall-back.

Pages are fetched through the session of :mod:`pypidl.session`, from an ordered list of
mirrors, and turned into :class:`RemoteFile` objects with checked names and digests.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import requests
from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from pypidl._fs import check_basename
from pypidl._simple import (
    FILE_SLOTS,
    MAX_PAGE_BYTES,
    MAX_PAGE_SECONDS,
    ListedFile,
    SimplePage,
    content_type,
    listed_file,
    parse_page,
    read_body,
)
from pypidl.config import NetworkSettings
from pypidl.errors import RemoteIndexError, UnsafeFilenameError
from pypidl.hashing import bytes_sha256
from pypidl.plan.file_choice import same_version_key
from pypidl.plan.page_fields import ProjectStatus, project_status, provenance_url
from pypidl.plan.page_store import PageStore, StoredPage
from pypidl.session import SIMPLE_ACCEPT, describe_error, new_session
from pypidl.sources import Mirror, redact_url, strip_credentials

if TYPE_CHECKING:
    from packaging.version import Version

    from pypidl.plan.gate import Gate

__all__ = [
    "IndexClient",
    "PageCache",
    "ProjectNotFound",
    "ProjectPage",
    "RemoteFile",
    "files_of",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: every wheel tag set met so far, each kept once (dict operations are atomic across threads)
_TAG_SETS: dict[frozenset[Tag], frozenset[Tag]] = {}


class ProjectNotFound(RemoteIndexError):
    """No configured index has the project."""


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
class ProjectPage:
    name: NormalizedName
    files: tuple[RemoteFile, ...]
    mirror: str
    url: str  # the page's URL without credentials
    #: sha256 of the page's body: a plan that read the page depended on exactly this
    digest: str = ""
    #: the project's PEP 792 status, when it is not "active"
    status: ProjectStatus | None = None

    def release_files(self, version: str) -> list[RemoteFile]:
        """The files of one release (its version compared as a version: ``1.0`` is ``1.0.0``)."""
        wanted = same_version_key(version)
        return list(self._by_version.get(wanted, ()))

    @functools.cached_property
    def _by_version(self) -> dict[Version | str, list[RemoteFile]]:
        # the planner asks for a few releases of pages that list thousands: index them once
        index: dict[Version | str, list[RemoteFile]] = {}
        for rf in self.files:
            index.setdefault(same_version_key(rf.version), []).append(rf)
        return index


class IndexClient:
    """Fetch project pages from an ordered list of mirrors, first answer wins.

    Thread-safe: pages are fetched concurrently by :meth:`projects`.
    """

    def __init__(
        self,
        mirrors: list[Mirror],
        net: NetworkSettings,
        *,
        workers: int = 16,
        routes: Mapping[str, list[Mirror]] | None = None,
        store: PageStore | None = None,
    ):
        """:param routes: normalized project -> the only mirrors it may be read from (a project
        pinned to an index); every other project is read from ``mirrors``, in order.
        :param store: pages kept from earlier runs: asked for again conditionally."""
        self.store = store
        if not mirrors:
            raise ValueError("at least one index is needed")
        self.mirrors = mirrors
        self.routes = dict(routes or {})
        self.net = net
        self.workers = workers
        # one session shared by the page-fetching threads, its pool sized for them; a second one
        # that does not retry connections, for mirrors with a fall-back behind them
        self.session = new_session(net, pool_size=workers, deadline=MAX_PAGE_SECONDS)
        self._failover_session = new_session(
            net, pool_size=workers, connect_retries=0, deadline=MAX_PAGE_SECONDS
        )
        #: mirror name -> why it was set aside for the rest of the run
        self.set_aside: dict[str, str] = {}
        self._lock = threading.Lock()

    def project(self, name: str) -> ProjectPage:
        """The project's page from the first mirror that has it.

        :raises ProjectNotFound: every mirror answered 404 or 410.
        :raises RemoteIndexError: no mirror could be read (with each mirror's reason).
        """
        normalized = canonicalize_name(name)

        def parsed(mirror: Mirror, stored: StoredPage) -> ProjectPage:
            page = parse_page(
                stored.body, stored.content_type, stored.final_url, encoding=stored.encoding
            )
            return ProjectPage(
                name=normalized,
                files=tuple(files_of(page, normalized, mirror.name)),
                mirror=mirror.name,
                url=stored.final_url,
                digest=stored.digest,
                status=project_status(page),
            )

        return self._first(normalized, name, parsed)

    def digest(self, name: str) -> str:
        """The sha256 of the project's page as the first mirror that has it sends it now
        (revalidated against the store: an unchanged page is not sent again, nor parsed).

        :raises RemoteIndexError: as :meth:`project`.
        """
        return self._first(
            canonicalize_name(name), name, lambda _mirror, page: page.digest, body=False
        )

    def _first(
        self,
        normalized: NormalizedName,
        name: str,
        use: Callable[[Mirror, StoredPage], T],
        *,
        body: bool = True,
    ) -> T:
        """``use`` of the page of the first mirror that has one ``use`` accepts."""
        reasons: list[str] = []
        missing = 0
        mirrors = self.mirrors_for(normalized)
        for n, mirror in enumerate(mirrors):
            url = f"{mirror.simple_url}{normalized}/"
            with self._lock:
                aside = self.set_aside.get(mirror.name)
                fallback = any(m.name not in self.set_aside for m in mirrors[n + 1 :])
            if aside is not None:
                reasons.append(f"{mirror.name}: set aside ({aside})")
                continue
            try:
                session = self._failover_session if fallback else self.session
                return use(mirror, self._download(url, session, body=body))
            except _NotFound:
                missing += 1
                reasons.append(f"{mirror.name}: 404 Not Found")
            except (requests.RequestException, ValueError, UnsafeFilenameError) as exc:
                reasons.append(f"{mirror.name}: {describe_error(exc)}")
                log.debug("reading %s failed: %s", redact_url(url), describe_error(exc))
                if fallback and isinstance(exc, requests.ConnectionError):
                    self._set_mirror_aside(mirror, describe_error(exc))
        if missing == len(mirrors):
            raise ProjectNotFound(f"no index has a project named {name!r}", context=name)
        raise RemoteIndexError("all mirrors failed: " + "; ".join(reasons), context=name)

    def mirrors_for(self, name: str) -> list[Mirror]:
        """The mirrors project ``name`` (normalized) is read from, in order."""
        return self.routes.get(name, self.mirrors)

    def _set_mirror_aside(self, mirror: Mirror, reason: str) -> None:
        """Skip a mirror that cannot be reached for the rest of the run (others remain)."""
        with self._lock:
            if mirror.name in self.set_aside:
                return
            self.set_aside[mirror.name] = reason
        log.warning("Mirror %s is unreachable (%s); set aside for this run", mirror.name, reason)

    def projects(self, names: Iterable[str]) -> dict[str, ProjectPage | RemoteIndexError]:
        """Pages of many projects, fetched concurrently; failures are returned, not raised."""
        unique = sorted({canonicalize_name(n) for n in names})

        def one(name: str) -> ProjectPage | RemoteIndexError:
            try:
                return self.project(name)
            except RemoteIndexError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(unique)))) as pool:
            return dict(zip(unique, pool.map(one, unique)))

    def _download(self, url: str, session: requests.Session, *, body: bool = True) -> StoredPage:
        """The page at ``url``: asked conditionally when the store has it (a 304 then costs no
        body), kept in the store when it came in full.

        :param body: False when only the page's digest is wanted: an unchanged page is then
            not read from the store either.
        """
        stored = None
        if self.store is not None:
            stored = self.store.get(url) if body else self.store.head(url)
        headers = {"Accept": SIMPLE_ACCEPT, "Cache-Control": "max-age=0"}
        if stored is not None:
            headers.update(stored.conditions())
        with session.get(
            url,
            headers=headers,
            timeout=(self.net.connect_timeout, self.net.read_timeout),
            stream=True,
        ) as resp:
            if resp.status_code in (404, 410):
                raise _NotFound
            if resp.status_code == 304 and stored is not None:
                return stored
            resp.raise_for_status()
            data = read_body(resp, max_bytes=MAX_PAGE_BYTES, max_seconds=MAX_PAGE_SECONDS)
            fresh = StoredPage(
                body=data,
                final_url=strip_credentials(resp.url),
                content_type=content_type(resp),
                encoding=resp.encoding,
                etag=resp.headers.get("ETag"),
                last_modified=resp.headers.get("Last-Modified"),
                digest=bytes_sha256(data),
            )
        if self.store is not None:
            self.store.put(url, fresh)
        return fresh


class _NotFound(Exception):
    pass


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


def _remote_file(
    project: NormalizedName, item: Mapping[str, Any], page_url: str, mirror: str
) -> RemoteFile | None:
    """A RemoteFile, or None for files pypidl does not mirror (eggs, installers, foreign names,
    unsafe names, unusable URLs)."""
    filename = item["filename"]
    try:
        check_basename(filename)
    except UnsafeFilenameError:
        log.warning("ignoring unsafe file name %r on %s", filename, redact_url(page_url))
        return None
    tags: frozenset[Tag] = frozenset()
    try:
        if filename.endswith(".whl"):
            wname, version, tags = _wheel_name(filename)
            kind = "wheel"
        elif filename.endswith((".tar.gz", ".zip")):
            wname, sversion = parse_sdist_filename(filename)
            kind, version = "sdist", sys.intern(str(sversion))
        else:
            return None
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    if wname != project:
        return None
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


def _wheel_name(filename: str) -> tuple[NormalizedName, str, frozenset[Tag]]:
    """What ``parse_wheel_filename`` makes of ``filename``: its project, version (normalized)
    and tags, each worked out once per page-independent text.

    A page lists the same project, a few hundred versions and a few dozen tag sets over tens of
    thousands of wheels; packaging reads each part, remembered by its text (the parts of a wheel
    name are separated by dashes, which no part may hold).

    :raises InvalidWheelFilename: as ``parse_wheel_filename`` does.
    """
    parts = filename[:-4].split("-")
    if len(parts) not in (5, 6):
        parse_wheel_filename(filename)  # raises, naming the problem
    name, version = _wheel_release("-".join(parts[:-3]))
    return name, version, _wheel_tags("-".join(parts[-3:]))


@functools.lru_cache(maxsize=1 << 14)
def _wheel_release(release: str) -> tuple[NormalizedName, str]:
    # (an invalid name raises on every call: lru_cache does not keep exceptions, nor need to)
    name, version, _build, _tags = parse_wheel_filename(f"{release}-py3-none-any.whl")
    return name, sys.intern(str(version))


@functools.lru_cache(maxsize=1 << 12)
def _wheel_tags(text: str) -> frozenset[Tag]:
    tags = parse_wheel_filename(f"x-0-{text}.whl")[3]
    # one set object per text, so that tables keyed by tag sets hash each once
    return _TAG_SETS.setdefault(tags, tags)


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


class PageCache:
    """Project pages, each fetched once per run whatever asks for it (thread-safe)."""

    def __init__(self, client: IndexClient, *, gate: Gate | None = None):
        """:param gate: the checks each page passes before anything reads it."""
        self.client = client
        self.gate = gate
        self._pages: dict[str, ProjectPage | RemoteIndexError] = {}
        self._lock = threading.Lock()

    def _checked(self, found: ProjectPage | RemoteIndexError) -> ProjectPage | RemoteIndexError:
        if self.gate is None or isinstance(found, RemoteIndexError):
            return found
        return self.gate.apply(found)

    def prefetch(self, names: Iterable[str]) -> None:
        wanted = {canonicalize_name(n) for n in names} - self._pages.keys()
        if wanted:
            fetched = {k: self._checked(v) for k, v in self.client.projects(wanted).items()}
            with self._lock:
                self._pages.update(fetched)

    def get(self, name: str) -> ProjectPage:
        key = canonicalize_name(name)
        with self._lock:
            found = self._pages.get(key)
        if found is None:
            try:
                found = self._checked(self.client.project(key))
            except RemoteIndexError as exc:
                found = exc
            with self._lock:
                self._pages[key] = found
        if isinstance(found, RemoteIndexError):
            raise found
        return found

    def failed(self) -> dict[str, RemoteIndexError]:
        with self._lock:
            return {k: v for k, v in self._pages.items() if isinstance(v, RemoteIndexError)}

    def digests(self) -> dict[str, str]:
        """project -> sha256 of the page read for it, for every page read so far."""
        with self._lock:
            return {k: v.digest for k, v in self._pages.items() if isinstance(v, ProjectPage)}

    def serving_mirrors(self) -> set[str]:
        """Names of the mirrors that answered with at least one page so far."""
        with self._lock:
            return {p.mirror for p in self._pages.values() if isinstance(p, ProjectPage)}
