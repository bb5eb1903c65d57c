"""The last resort for a file every listed URL failed: find it by name on each index's project page.

A manifest lists a file's URL on every mirror that shares the upstream ``packages/`` layout. An
index that keeps its files elsewhere (devpi, pypiserver, Artifactory, Nexus, GitLab) cannot be
guessed that way, so the engine asks the index itself: ``<index>/<project>/`` once per project
and index in a worker (cached, fetched by one thread while the others wait for it), and tries
the URL listed there under the file's name.  The manifest's sha256 still decides whether the
bytes are accepted; a page that lists another sha256 for the name is not even tried.

Pages are read by the same reader as the planner's (:mod:`pypidl._simple`: bounded, hostile
JSON refused in one line); a page that cannot be read fails that index for the file, and the
other indexes are still asked.  The rescue needs only ``name -> (url, sha256)`` of a page.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence

import requests

from pypidl._simple import ListedFile, SimplePage, content_type, listed_file, parse_page, read_body
from pypidl.config import NetworkSettings
from pypidl.errors import UnsafeFilenameError
from pypidl.session import SIMPLE_ACCEPT, describe_error
from pypidl.sources import redact_url, strip_credentials

__all__ = ["IndexLookup"]

log = logging.getLogger(__name__)

#: A project page larger than this is not read for a rescue (the largest real ones are ~30 MiB).
MAX_PAGE_BYTES = 64 * 1024 * 1024

#: filename -> (url, sha256 or None)
Listing = dict[str, tuple[str, "str | None"]]


class IndexLookup:
    """Find files by name on the project pages of ``indexes`` (simple URLs, best first).

    :param indexes: simple index URLs ending in ``/``, without credentials (the session adds
        them per host).
    :param session: the worker's session.
    :param pins: project -> the only indexes its files may come from (``--project-index``).
    """

    def __init__(
        self,
        indexes: Sequence[str],
        session: requests.Session,
        net: NetworkSettings,
        *,
        pins: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.indexes = [_slash(i) for i in dict.fromkeys(indexes)]
        #: project -> the only indexes it may be fetched from
        self.pins = {p: [_slash(i) for i in found] for p, found in (pins or {}).items()}
        self._session = session
        self._net = net
        self._lock = threading.Lock()
        self._pages: dict[tuple[str, str], Listing] = {}
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self.pages_read = 0

    def urls_for(self, project: str, filename: str, sha256: str) -> list[str]:
        """URLs the indexes list for ``filename`` (sha256 agreeing or not given), best first."""
        found: list[str] = []
        for index in self.pins.get(project, self.indexes):
            listed = self._listing(index, project).get(filename)
            if listed is None:
                continue
            url, digest = listed
            if digest is not None and digest != sha256:
                log.debug(
                    "%s lists %s with sha256 %s, not the planned %s",
                    redact_url(index),
                    filename,
                    digest,
                    sha256,
                )
                continue
            if url not in found:
                found.append(url)
        return found

    def _listing(self, index: str, project: str) -> Listing:
        key = (index, project)
        with self._lock:
            cached = self._pages.get(key)
            if cached is not None:
                return cached
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one thread reads the page; the others wait for it
            with self._lock:
                cached = self._pages.get(key)
                if cached is not None:
                    return cached
            listing = self._read(f"{index}{project}/")
            with self._lock:
                self._pages[key] = listing
                self.pages_read += 1
            return listing

    def _read(self, url: str) -> Listing:
        try:
            with self._session.get(
                url,
                headers={"Accept": SIMPLE_ACCEPT, "Cache-Control": "max-age=0"},
                timeout=(self._net.connect_timeout, self._net.read_timeout),
                stream=True,
            ) as resp:
                if resp.status_code != 200:
                    log.debug("rescue page %s: %s", redact_url(url), resp.status_code)
                    return {}
                body = read_body(resp, max_bytes=MAX_PAGE_BYTES)
                page = parse_page(
                    body,
                    content_type(resp),
                    strip_credentials(resp.url or url),
                    encoding=resp.encoding,
                )
        except (requests.RequestException, OSError, ValueError) as exc:
            log.debug("rescue page %s unreadable: %s", redact_url(url), describe_error(exc))
            return {}
        return listing_of(page)


def listing_of(page: SimplePage) -> Listing:
    """``filename -> (url, sha256)`` of the files ``page`` lists with a usable web URL (the
    first entry of a name wins)."""
    listing: Listing = {}
    for item in page.items:
        try:
            listed = listed_file(item, page.url, ListedFile)
        except UnsafeFilenameError:
            continue
        if listed is not None and listed.url.startswith(("http://", "https://")):
            listing.setdefault(listed.filename, (listed.url, listed.sha256))
    return listing


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
