"""Reading simple indexes: PEP 691 JSON by content negotiation, PEP 503 HTML as the fall-back.

Pages are fetched through the session of :mod:`pypidl.session`, from an ordered list of
mirrors, and read into :class:`~pypidl.plan.page_files.ProjectPage` objects (see there).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import requests
from packaging.utils import NormalizedName, canonicalize_name

from pypidl._simple import MAX_PAGE_BYTES, MAX_PAGE_SECONDS, content_type, read_body
from pypidl.config import NetworkSettings
from pypidl.errors import RemoteIndexError, UnsafeFilenameError
from pypidl.hashing import bytes_sha256
from pypidl.plan.page_files import ProjectPage, RemoteFile, files_of
from pypidl.plan.page_store import PageStore, StoredPage
from pypidl.session import SIMPLE_ACCEPT, describe_error, new_session
from pypidl.sources import Mirror, redact_url, strip_credentials

if TYPE_CHECKING:
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


class ProjectNotFound(RemoteIndexError):
    """No configured index has the project."""


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
        upload_times: bool = True,
    ):
        """:param routes: normalized project -> the only mirrors it may be read from (a project
        pinned to an index); every other project is read from ``mirrors``, in order.
        :param store: pages kept from earlier runs: asked for again conditionally.
        :param upload_times: whether each entry keeps its upload time (the chosen files keep
            theirs either way)."""
        self.store = store
        self.upload_times = upload_times
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
            again = None
            if self.store is not None:
                again = functools.partial(self._again, normalized, mirror, stored.digest)
            return ProjectPage.read(
                normalized,
                stored.body,
                stored.content_type,
                stored.encoding,
                url=stored.final_url,
                mirror=mirror.name,
                digest=stored.digest,
                upload_times=self.upload_times,
                again=again,
            )

        return self._first(normalized, name, parsed)

    def _again(self, normalized: NormalizedName, mirror: Mirror, digest: str) -> bytes:
        """The body of a page read earlier in this run, whose sha256 was ``digest``: from the
        store, or, when the store no longer holds that page (another run replaced it, the cache
        could not be written), from the index again."""
        url = _page_url(mirror, normalized)
        assert self.store is not None  # noqa: S101 - only asked where there is a store
        stored = self.store.get(url)
        if stored is None or stored.digest != digest:
            log.debug("the stored page of %s changed: reading it again", normalized)
            stored = self._download(url, self.session)
        return stored.body

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
            url = _page_url(mirror, normalized)
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


def _page_url(mirror: Mirror, normalized: NormalizedName) -> str:
    """Where ``mirror`` serves the page of ``normalized``: also the page's key in the store,
    so a body read again comes from the entry its first read left."""
    return f"{mirror.simple_url}{normalized}/"
