"""The last resort for a file every listed URL failed: find it by name on each index's project page.

A manifest lists a file's URL on every mirror that shares the upstream ``packages/`` layout. An
index that keeps its files elsewhere (devpi, pypiserver, Artifactory, Nexus, GitLab) cannot be
guessed that way, so the engine asks the index itself: ``<index>/<project>/`` once per project
and index in a worker (cached, fetched by one thread while the others wait for it), and tries
the URL listed there under the file's name.  The manifest's sha256 still decides whether the
bytes are accepted; a page that lists another sha256 for the name is not even tried.

The planner has a full page reader (``pypidl.plan.pages``), but it builds a ``RemoteFile`` with
parsed tags for every file of a page; the rescue needs only ``name -> (url, sha256)`` and the
fetch room may not import the plan room, so this is its own small reader: PEP 691 JSON when the
index offers it, PEP 503 anchors otherwise.
"""

from __future__ import annotations

import html.parser
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import requests

from pypidl.config import NetworkSettings
from pypidl.hashing import CHUNK_SIZE, is_sha256
from pypidl.session import SIMPLE_ACCEPT, SIMPLE_JSON, describe_error
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
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_content(CHUNK_SIZE):
                    size += len(chunk)
                    if size > MAX_PAGE_BYTES:
                        log.debug("rescue page %s is too large", redact_url(url))
                        return {}
                    chunks.append(chunk)
                base = strip_credentials(resp.url or url)
                ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                body = b"".join(chunks)
                encoding = resp.encoding or "utf-8"
        except (requests.RequestException, OSError) as exc:
            log.debug("rescue page %s: %s", redact_url(url), describe_error(exc))
            return {}
        try:
            if ctype == SIMPLE_JSON:
                return _from_json(json.loads(body), base)
            try:
                text = body.decode(encoding, errors="replace")
            except LookupError:
                text = body.decode("utf-8", errors="replace")
            return _from_html(text, base)
        except ValueError as exc:
            log.debug("rescue page %s unreadable: %s", redact_url(url), exc)
            return {}


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _clean(url: str) -> str:
    parts = urlsplit(url)
    return strip_credentials(urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, "")))


def _digest(value: object) -> str | None:
    digest = value.lower() if isinstance(value, str) else None
    return digest if is_sha256(digest) else None


def _from_json(data: object, base: str) -> Listing:
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise ValueError("malformed PEP 691 project page")
    listing: Listing = {}
    for item in data["files"]:
        if not isinstance(item, dict):
            continue
        name, url = item.get("filename"), item.get("url")
        if not isinstance(name, str) or not isinstance(url, str) or not url:
            continue
        hashes = item.get("hashes")
        sha = _digest(hashes.get("sha256")) if isinstance(hashes, dict) else None
        if urlsplit(urljoin(base, url)).scheme in ("http", "https"):
            listing.setdefault(name, (_clean(urljoin(base, url)), sha))
    return listing


class _Anchors(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs).get("href")
        if tag == "base" and self.base is None:
            self.base = found
        elif tag == "a" and found:
            self.hrefs.append(found)


def _from_html(text: str, base: str) -> Listing:
    parser = _Anchors()
    parser.feed(text)
    parser.close()
    if parser.base:
        base = urljoin(base, parser.base)
    listing: Listing = {}
    for href in parser.hrefs:
        absolute = urljoin(base, href)
        parts = urlsplit(absolute)
        if parts.scheme not in ("http", "https"):
            continue
        name = unquote(parts.path.rsplit("/", 1)[-1])
        sha = None
        algo, _, value = parts.fragment.partition("=")
        if algo == "sha256":
            sha = _digest(value)
        if name:
            listing.setdefault(name, (_clean(absolute), sha))
    return listing
