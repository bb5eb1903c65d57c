"""The one reader of simple-index project pages (PEP 691 JSON, PEP 503 HTML), for every room.

The planner (``pypidl.plan.pages``) and the download engine's rescue (``pypidl.fetch.rescue``)
both read project pages; this leaf holds what they share, so the two can never drift apart:

* :func:`read_body`: a response body, bounded in size and in time;
* :func:`parse_page`: the body, by its content type, into a :class:`SimplePage` whose
  :attr:`~SimplePage.items` are the page's file entries in one shape (the PEP 691 keys, whichever
  format the page came in), not yet checked: hostile JSON (nesting deep enough to exhaust the
  stack, numbers too long to convert) is refused here, in one line;
* :func:`listed_file`: one entry checked and made usable (a :class:`ListedFile`), or None.

Checking is per entry, so a reader that needs a few files of a large page pays for those only.
A field the simple API gains (PEP 700 ``upload-time``, PEP 792 ``project-status``, PEP 740
``provenance``) is read in two places: the HTML attribute in :class:`_AnchorParser` (mapped to its
PEP 691 key), the value in :func:`listed_file` (per file) or :func:`parse_page` (per page).
"""

from __future__ import annotations

import html.parser
import ipaddress
import logging
import re
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import requests

from pypidl import _json as untrusted_json
from pypidl._fs import check_basename
from pypidl.hashing import CHUNK_SIZE, STRONG_HASHES, is_sha256
from pypidl.manifest import url_problem
from pypidl.session import SIMPLE_HTML, SIMPLE_JSON, abort_response
from pypidl.sources import redact_url, strip_credentials

__all__ = [
    "MAX_PAGE_BYTES",
    "MAX_PAGE_SECONDS",
    "ListedFile",
    "SimplePage",
    "entry_requires_python",
    "entry_upload_time",
    "entry_yanked",
    "file_url",
    "listed_file",
    "parse_page",
    "read_body",
]

log = logging.getLogger(__name__)

#: The most a project page may hold once decompressed; the largest real pages are a few tens of
#: MiB. A page that never ends or a gzip bomb stops here instead of filling memory.
MAX_PAGE_BYTES = 256 * 1024 * 1024
#: ... and the longest it may take to arrive (a trickling server passes every read timeout)
MAX_PAGE_SECONDS = 600.0

F = TypeVar("F", bound="ListedFile")

#: Content types read as a page: PEP 691's two, and the plain HTML of PEP 503 indexes.
_HTML_TYPES = frozenset({SIMPLE_HTML, "text/html", ""})


@dataclass(frozen=True)
class SimplePage:
    """A project page as read: its file entries (PEP 691 keys, unchecked) and page-level facts.

    :ivar items: one mapping per file entry, in page order, with the PEP 691 keys (``filename``,
        ``url`` (absolute for HTML pages, as listed for JSON), ``hashes``, ``requires-python``,
        ``yanked``, ``size``, ``upload-time``, ``core-metadata``); :func:`listed_file` checks one.
    :ivar url: the page's URL (after redirects, without credentials): relative URLs start here.
    :ivar last_serial: PEP 691's ``meta._last-serial`` when the index gives it (a change counter
        of the project), else None.
    :ivar meta: the page's ``meta`` object (JSON), or its ``pypi:*`` ``<meta>`` tags (HTML) by
        their name without the prefix.
    """

    items: list[Mapping[str, Any]]
    url: str
    last_serial: int | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    #: PEP 792: a JSON page's ``project-status`` object, unchecked (an HTML page has it in
    #: :attr:`meta`, as ``project-status`` and ``project-status-reason``)
    project_status: Any = None


#: ``__slots__`` for the classes a page makes one object of per file, where Python has them
#: for dataclasses (3.10): a plan holds every file of every page it read
FILE_SLOTS: dict[str, bool] = {"slots": True} if sys.version_info >= (3, 10) else {}


@dataclass(frozen=True, **FILE_SLOTS)
class ListedFile:
    """One file entry of a page, checked: a safe name, a usable URL, typed fields.

    A room that needs more per file (the planner: version, tags, mirror) subclasses it and has
    :func:`listed_file` build its class, so a field the simple API gains is declared once.
    """

    filename: str
    url: str  # absolute, without credentials or fragment
    sha256: str | None
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    size: int | None = None
    upload_time: str | None = None
    core_metadata_sha256: str | None = None
    has_core_metadata: bool = False


def read_body(
    resp: requests.Response,
    *,
    max_bytes: int = MAX_PAGE_BYTES,
    max_seconds: float = MAX_PAGE_SECONDS,
) -> bytes:
    """The decompressed body of ``resp``, refused beyond ``max_bytes`` or ``max_seconds``.

    The read timeout ends a silent server; a server that trickles a byte now and then would pass
    it forever, so a timer shuts the socket under a page that takes too long.

    :raises ValueError: the page is too large or too slow.
    :raises requests.RequestException: the transfer failed.
    """
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
            if total > max_bytes:
                raise ValueError(f"the page is larger than {max_bytes // (1024 * 1024)} MiB")
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


def content_type(resp: requests.Response) -> str:
    """The media type of ``resp`` (lowercase, without parameters)."""
    return resp.headers.get("Content-Type", "").split(";")[0].strip().lower()


def parse_page(
    body: bytes, ctype: str, page_url: str, *, encoding: str | None = None
) -> SimplePage:
    """A project page from its body and media type (PEP 691 JSON, else PEP 503 HTML).

    :param page_url: the URL the body came from, without credentials.
    :param encoding: the charset the server declared for an HTML page (UTF-8 otherwise).
    :raises ValueError: an unexpected content type, or JSON that is malformed, nested too
        deeply, holds a number too long to read, or is not a project page.
    """
    if ctype == SIMPLE_JSON:
        return _json_page(untrusted_json.loads(body), page_url)
    if ctype not in _HTML_TYPES:
        raise ValueError(f"unexpected content type {ctype!r} from {redact_url(page_url)}")
    try:
        text = body.decode(encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        text = body.decode("utf-8", errors="replace")
    return _html_page(text, page_url)


def _json_page(data: Any, page_url: str) -> SimplePage:
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise ValueError("malformed PEP 691 project page")
    meta = data.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    serial = meta.get("_last-serial")
    return SimplePage(
        items=[
            i for i in data["files"] if isinstance(i, dict) and isinstance(i.get("filename"), str)
        ],
        url=page_url,
        last_serial=serial if isinstance(serial, int) and not isinstance(serial, bool) else None,
        meta=meta,
        project_status=data.get("project-status"),
    )


class _AnchorParser(html.parser.HTMLParser):
    """A PEP 503 page's anchors, as PEP 691 file entries (href made absolute later)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[dict[str, str | None]] = []
        self.base: str | None = None
        self.meta: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))
        elif tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "meta":
            found = dict(attrs)
            name, content = found.get("name") or "", found.get("content")
            if name.startswith("pypi:") and content is not None:
                self.meta.setdefault(name[len("pypi:") :], content)


def _html_page(text: str, page_url: str) -> SimplePage:
    parser = _AnchorParser()
    parser.feed(text)
    parser.close()
    base = urljoin(page_url, parser.base) if parser.base else page_url
    items: list[Mapping[str, Any]] = []
    for attrs in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        absolute = urljoin(base, href)
        parts = urlsplit(absolute)
        item: dict[str, Any] = {
            "filename": unquote(parts.path.rsplit("/", 1)[-1]),
            "url": absolute,
            "hashes": {},
        }
        algo, _, digest = parts.fragment.partition("=")
        if digest and algo in STRONG_HASHES:
            item["hashes"] = {algo: digest}
        if "data-requires-python" in attrs:
            item["requires-python"] = attrs["data-requires-python"]
        if "data-yanked" in attrs:
            item["yanked"] = attrs["data-yanked"] or True
        if attrs.get("data-provenance"):  # PEP 740, made absolute like the href
            item["provenance"] = urljoin(base, attrs["data-provenance"] or "")
        core = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        if core is not None:
            algo, _, digest = core.partition("=")
            item["core-metadata"] = (
                {"sha256": digest} if algo == "sha256" and digest else (core != "false")
            )
        items.append(item)
    return SimplePage(items=items, url=page_url, meta=parser.meta)


def listed_file(item: Mapping[str, Any], page_url: str, cls: type[F], **extra: Any) -> F | None:
    """One file entry of a page at ``page_url``, checked; None when its URL is unusable.

    :param cls: the class to build: :class:`ListedFile` or a subclass, given ``extra`` too.

    A digest, size or Requires-Python the manifest could not hold is dropped here (the file then
    counts as unhashed, unsized...), rather than making a whole manifest unloadable later.

    :raises UnsafeFilenameError: the entry's file name could leave its directory.
    """
    filename = check_basename(item["filename"])
    clean = file_url(item, page_url)
    if clean is None:
        return None
    hashes = item.get("hashes")
    core = item.get("core-metadata", item.get("dist-info-metadata"))
    yanked = item.get("yanked", False)
    size = item.get("size")
    return cls(
        filename=filename,
        url=clean,
        sha256=_digest(hashes.get("sha256")) if isinstance(hashes, Mapping) else None,
        requires_python=entry_requires_python(item),
        yanked=entry_yanked(item),
        yanked_reason=(yanked or None) if isinstance(yanked, str) else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
        upload_time=entry_upload_time(item),
        core_metadata_sha256=_digest(core.get("sha256")) if isinstance(core, Mapping) else None,
        has_core_metadata=bool(core),
        **extra,
    )


def entry_requires_python(item: Mapping[str, Any]) -> str | None:
    """A file entry's Requires-Python (None when it has none, or not as text)."""
    found = item.get("requires-python")
    # a page repeats a few Requires-Python texts thousands of times: keep one of each
    return sys.intern(found) if isinstance(found, str) and found else None


def entry_yanked(item: Mapping[str, Any]) -> bool:
    """Whether a file entry is yanked (PEP 592: ``true``, or the reason as text)."""
    yanked = item.get("yanked", False)
    return isinstance(yanked, str) or bool(yanked)


def entry_upload_time(item: Mapping[str, Any]) -> str | None:
    """A file entry's PEP 700 ``upload-time`` as the page wrote it, when it is text."""
    found = item.get("upload-time")
    return found if isinstance(found, str) else None


def file_url(item: Mapping[str, Any], page_url: str) -> str | None:
    """The absolute URL of a page's file entry, without credentials or fragment; None (with a
    warning) when pypidl may not use it."""
    url = str(item.get("url", ""))
    if _plain_web_url(url) and page_url.startswith(_WEB):
        return url  # what the general path below makes of it, at a fraction of the cost
    page_scheme = urlsplit(page_url).scheme.lower()
    unusable: str | None
    try:
        parts = urlsplit(_join(page_url, url))
        _check_bracketed_host(parts.netloc)
        clean = strip_credentials(
            urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
        )
    except ValueError as exc:  # an IPv6 host that is none, say: that entry, not the page
        unusable = f"must be URLs ({exc})"
    else:
        unusable = url_problem(clean)
        if unusable is None and not _same_kind(parts.scheme.lower(), page_scheme):
            # a web page may send pypidl to another web host, never to a file on this machine
            unusable = f"must have the scheme of their page ({page_scheme}:)"
    if unusable is not None:
        log.warning(
            "ignoring %s on %s: file URLs %s", item.get("filename"), redact_url(page_url), unusable
        )
        return None
    return clean


def _check_bracketed_host(netloc: str) -> None:
    """Refuse a host in brackets that is no IPv6 address (``[zz]``), as newer Pythons' urlsplit
    does, so that every supported Python judges such an entry the same way.

    :raises ValueError: naming the host.
    """
    host = netloc.rpartition("@")[2]
    if host.startswith("["):
        ipaddress.IPv6Address(host[1:].partition("]")[0])


_WEB = ("https://", "http://")
#: what keeps a web URL from being taken as it is: credentials, a fragment, an IPv6 host or
#: parameters (for urljoin), white space and control characters
_UNUSUAL = re.compile(r"[@#\[;\s\x00-\x1f]")


def _plain_web_url(url: str) -> bool:
    """Whether ``url`` is an absolute http(s) URL with a host, in ASCII, without credentials,
    fragment, parameters, IPv6 host, white space or control characters, not ending in ``?``:
    the usual URL of a page's file, which the general path would give back unchanged."""
    if not url.startswith(_WEB) or not url.isascii() or url.endswith("?"):
        return False
    host_at = 8 if url.startswith("https://") else 7
    return len(url) > host_at and url[host_at].isalnum() and _UNUSUAL.search(url) is None


def _same_kind(scheme: str, page_scheme: str) -> bool:
    web = ("http", "https")
    return scheme == page_scheme or (scheme in web and page_scheme in web)


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
