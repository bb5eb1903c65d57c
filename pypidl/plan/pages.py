"""Reading simple indexes: PEP 691 JSON by content negotiation, PEP 503 HTML as the fall-back.

Pages are fetched through the session of :mod:`pypidl.session`, from an ordered list of
mirrors, and turned into :class:`RemoteFile` objects with checked names and digests.
"""

from __future__ import annotations

import html.parser
import logging
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

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

from pypidl import _json as untrusted_json
from pypidl._fs import check_basename
from pypidl.config import NetworkSettings
from pypidl.errors import RemoteIndexError, UnsafeFilenameError
from pypidl.hashing import CHUNK_SIZE, STRONG_HASHES, is_sha256
from pypidl.manifest import url_problem
from pypidl.session import (
    SIMPLE_ACCEPT,
    SIMPLE_HTML,
    SIMPLE_JSON,
    abort_response,
    describe_error,
    new_session,
)
from pypidl.sources import Mirror, redact_url, strip_credentials

__all__ = [
    "IndexClient",
    "PageCache",
    "ProjectNotFound",
    "ProjectPage",
    "RemoteFile",
]

log = logging.getLogger(__name__)


#: The most a project page may hold once decompressed; the largest real pages are a few tens of
#: MiB. A page that never ends or a gzip bomb stops here instead of filling memory.
MAX_PAGE_BYTES = 256 * 1024 * 1024
#: ... and the longest it may take to arrive (a trickling server passes every read timeout)
MAX_PAGE_SECONDS = 600.0


class ProjectNotFound(RemoteIndexError):
    """No configured index has the project."""


@dataclass(frozen=True)
class RemoteFile:
    """A file as one index lists it."""

    project: NormalizedName
    filename: str
    url: str  # absolute, without credentials or fragment
    version: str
    kind: str  # "wheel" | "sdist"
    sha256: str | None
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    size: int | None = None
    upload_time: str | None = None
    core_metadata_sha256: str | None = None
    has_core_metadata: bool = False
    tags: frozenset[Tag] = frozenset()
    mirror: str = ""  # name of the mirror whose page listed it


@dataclass(frozen=True)
class ProjectPage:
    name: NormalizedName
    files: tuple[RemoteFile, ...]
    mirror: str
    url: str  # the page's URL without credentials


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
    ):
        """:param routes: normalized project -> the only mirrors it may be read from (a project
        pinned to an index); every other project is read from ``mirrors``, in order."""
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
                return self._fetch(url, normalized, mirror, session)
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

    def _fetch(
        self, url: str, name: NormalizedName, mirror: Mirror, session: requests.Session
    ) -> ProjectPage:
        with session.get(
            url,
            headers={"Accept": SIMPLE_ACCEPT, "Cache-Control": "max-age=0"},
            timeout=(self.net.connect_timeout, self.net.read_timeout),
            stream=True,
        ) as resp:
            if resp.status_code in (404, 410):
                raise _NotFound
            resp.raise_for_status()
            final = strip_credentials(resp.url)
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype not in {SIMPLE_JSON, SIMPLE_HTML, "text/html", ""}:
                raise ValueError(f"unexpected content type {ctype!r} from {redact_url(final)}")
            body = _read_page(resp)
        if ctype == SIMPLE_JSON:
            files = parse_json_page(untrusted_json.loads(body), final, name, mirror.name)
        else:
            try:
                text = body.decode(resp.encoding or "utf-8", errors="replace")
            except LookupError:  # a charset Python does not know
                text = body.decode("utf-8", errors="replace")
            files = parse_html_page(text, final, name, mirror.name)
        return ProjectPage(name=name, files=tuple(files), mirror=mirror.name, url=final)


class _NotFound(Exception):
    pass


def _read_page(resp: requests.Response) -> bytes:
    """The decompressed body of ``resp``, refused beyond :data:`MAX_PAGE_BYTES` or
    :data:`MAX_PAGE_SECONDS`.

    The read timeout ends a silent server; a server that trickles a byte now and then would pass
    it forever, so a timer shuts the socket under a page that takes too long.
    """
    max_seconds = MAX_PAGE_SECONDS
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        abort_response(resp)

    timer = threading.Timer(max_seconds, expire)
    timer.daemon = True
    timer.start()
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in resp.iter_content(CHUNK_SIZE):
            total += len(chunk)
            if total > MAX_PAGE_BYTES:
                raise ValueError(f"the page is larger than {MAX_PAGE_BYTES // (1024 * 1024)} MiB")
            chunks.append(chunk)
    except (requests.RequestException, OSError):
        if expired.is_set():
            raise ValueError(f"the page did not arrive within {max_seconds:g} s") from None
        raise
    finally:
        timer.cancel()
    if expired.is_set():
        raise ValueError(f"the page did not arrive within {max_seconds:g} s")
    return b"".join(chunks)


def _remote_file(
    project: NormalizedName,
    filename: str,
    url: str,
    hashes: Mapping[str, Any],
    *,
    page_url: str,
    mirror: str,
    requires_python: str | None,
    yanked: Any,
    size: Any = None,
    upload_time: Any = None,
    core_metadata: Any = None,
) -> RemoteFile | None:
    """Build a RemoteFile, or None for files pypidl does not mirror (eggs, installers, foreign names)."""
    check_basename(filename)
    tags: frozenset[Tag] = frozenset()
    try:
        if filename.endswith(".whl"):
            wname, wversion, _, tags = parse_wheel_filename(filename)
            kind, version = "wheel", str(wversion)
        elif filename.endswith((".tar.gz", ".zip")):
            wname, sversion = parse_sdist_filename(filename)
            kind, version = "sdist", str(sversion)
        else:
            return None
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    if wname != project:
        return None
    # a digest or Requires-Python the manifest could not hold is dropped here (the file then
    # counts as unhashed), rather than making the whole manifest unloadable later
    sha256 = _digest(hashes.get("sha256")) if isinstance(hashes, Mapping) else None
    core_sha = None
    has_core = bool(core_metadata)
    if isinstance(core_metadata, Mapping):
        value = core_metadata.get("sha256")
        core_sha = _digest(value)
    parts = urlsplit(url)
    clean = strip_credentials(urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, "")))
    unusable = url_problem(clean)
    page_scheme = urlsplit(page_url).scheme.lower()
    if unusable is None and not _same_kind(parts.scheme.lower(), page_scheme):
        # a web page may send pypidl to another web host, never to a file on this machine
        unusable = f"must have the scheme of their page ({page_scheme}:)"
    if unusable is not None:
        log.warning("ignoring %s on %s: file URLs %s", filename, redact_url(page_url), unusable)
        return None
    if isinstance(yanked, str):
        is_yanked, reason = True, (yanked or None)
    else:
        is_yanked, reason = bool(yanked), None
    return RemoteFile(
        project=project,
        filename=filename,
        url=clean,
        version=version,
        kind=kind,
        sha256=sha256,
        requires_python=requires_python
        if isinstance(requires_python, str) and requires_python
        else None,
        yanked=is_yanked,
        yanked_reason=reason,
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
        upload_time=upload_time if isinstance(upload_time, str) else None,
        core_metadata_sha256=core_sha,
        has_core_metadata=has_core,
        tags=tags,
        mirror=mirror,
    )


def _same_kind(scheme: str, page_scheme: str) -> bool:
    web = ("http", "https")
    return scheme == page_scheme or (scheme in web and page_scheme in web)


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


def _digest(value: Any) -> str | None:
    """``value`` as a lowercase hex sha256 digest, or None when it is not one."""
    digest = value.lower() if isinstance(value, str) else None
    return digest if is_sha256(digest) else None


def _join(page_url: str, url: str) -> str:
    """``urljoin(page_url, url)``, without its work for the usual absolute URL (a page lists
    thousands), which it would only take apart and put together again."""
    if url.startswith(("https://", "http://")) and ";" not in url and urlsplit(url).netloc:
        return url
    return urljoin(page_url, url)


def parse_json_page(
    data: Any, page_url: str, name: NormalizedName, mirror: str
) -> list[RemoteFile]:
    """Files of a PEP 691 project page."""
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise ValueError("malformed PEP 691 project page")
    files = []
    for item in data["files"]:
        if not isinstance(item, dict) or not isinstance(item.get("filename"), str):
            continue
        try:
            rf = _remote_file(
                name,
                item["filename"],
                _join(page_url, str(item.get("url", ""))),
                item.get("hashes") or {},
                page_url=page_url,
                mirror=mirror,
                requires_python=item.get("requires-python"),
                yanked=item.get("yanked", False),
                size=item.get("size"),
                upload_time=item.get("upload-time"),
                core_metadata=item.get("core-metadata", item.get("dist-info-metadata")),
            )
        except UnsafeFilenameError:
            log.warning(
                "ignoring unsafe file name %r on %s", item["filename"], redact_url(page_url)
            )
            continue
        if rf is not None:
            files.append(rf)
    return _one_per_filename(files)


class _AnchorParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], list[str]]] = []
        self.base: str | None = None
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "a":
            self._text = []
            self.anchors.append((dict(attrs), self._text))

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._text = None


def parse_html_page(
    text: str, page_url: str, name: NormalizedName, mirror: str
) -> list[RemoteFile]:
    """Files of a PEP 503 project page (with PEP 592 yanking and PEP 658/714 metadata attributes)."""
    parser = _AnchorParser()
    parser.feed(text)
    parser.close()
    base = urljoin(page_url, parser.base) if parser.base else page_url
    files = []
    for attrs, _text in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        absolute = urljoin(base, href)
        parts = urlsplit(absolute)
        filename = parts.path.rsplit("/", 1)[-1]

        filename = unquote(filename)
        hashes: dict[str, str] = {}
        if parts.fragment and "=" in parts.fragment:
            algo, _, digest = parts.fragment.partition("=")
            if algo in STRONG_HASHES:
                hashes[algo] = digest
        core_attr = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        core: Any = None
        if core_attr is not None:
            algo, _, digest = core_attr.partition("=")
            core = {"sha256": digest} if algo == "sha256" and digest else (core_attr != "false")
        try:
            rf = _remote_file(
                name,
                filename,
                absolute,
                hashes,
                page_url=page_url,
                mirror=mirror,
                requires_python=attrs.get("data-requires-python"),
                yanked=(attrs["data-yanked"] or True) if "data-yanked" in attrs else False,
                core_metadata=core,
            )
        except UnsafeFilenameError:
            log.warning("ignoring unsafe file name %r on %s", filename, redact_url(page_url))
            continue
        if rf is not None:
            files.append(rf)
    return _one_per_filename(files)


class PageCache:
    """Project pages, each fetched once per run whatever asks for it (thread-safe)."""

    def __init__(self, client: IndexClient):
        self.client = client
        self._pages: dict[str, ProjectPage | RemoteIndexError] = {}
        self._lock = threading.Lock()

    def prefetch(self, names: Iterable[str]) -> None:
        wanted = {canonicalize_name(n) for n in names} - self._pages.keys()
        if wanted:
            fetched = self.client.projects(wanted)
            with self._lock:
                self._pages.update(fetched)

    def get(self, name: str) -> ProjectPage:
        key = canonicalize_name(name)
        with self._lock:
            found = self._pages.get(key)
        if found is None:
            try:
                found = self.client.project(key)
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

    def serving_mirrors(self) -> set[str]:
        """Names of the mirrors that answered with at least one page so far."""
        with self._lock:
            return {p.mirror for p in self._pages.values() if isinstance(p, ProjectPage)}
