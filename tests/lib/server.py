"""A real package index over HTTP on 127.0.0.1, with fault injection, for tests.

It speaks the simple repository API (PEP 503 HTML and PEP 691 JSON with the
PEP 700 fields, PEP 658/714 metadata sidecars) and serves files with Range,
ETag and If-Range support.  Faults (HTTP errors, cut or corrupted bodies,
delays, stalls, dropped connections) can be queued per request path.

Stdlib only.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import email.utils
import fnmatch
import hashlib
import hmac
import html
import http.server
import json as _json
import re
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union
from urllib.parse import quote, unquote, urlsplit

from .wheels import canonical_name, wheel_metadata

__all__ = [
    "Corrupt",
    "Cut",
    "Delay",
    "Drop",
    "Fault",
    "Headers",
    "IndexServer",
    "RequestRecord",
    "ServedFile",
    "Stall",
    "Status",
]

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_V1_TYPE = "application/vnd.pypi.simple.v1+html"
HTML_TYPE = "text/html"
API_VERSION = "1.1"

_DIST_SUFFIXES = (".whl", ".tar.gz", ".zip")
_CONNECTION_ERRORS = (ConnectionError, socket.timeout, TimeoutError)


# --------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class Status:
    """Answer with this status code, extra headers and body instead of the real response."""

    code: int
    headers: Mapping[str, str] | None = None
    body: bytes = b""


@dataclass(frozen=True)
class Cut:
    """Send the real headers (full Content-Length), ``after_bytes`` of the body, then close."""

    after_bytes: int


@dataclass(frozen=True)
class Corrupt:
    """Send the full-length body with some bytes flipped (so its hash is wrong)."""


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` before answering, then answer normally."""

    seconds: float


@dataclass(frozen=True)
class Stall:
    """Send headers and ``after_bytes`` of the body, hold the connection ``seconds``, close."""

    after_bytes: int
    seconds: float


@dataclass(frozen=True)
class Drop:
    """Close the connection without sending any response."""


Fault = Union[Status, Cut, Corrupt, Delay, Stall, Drop]


# --------------------------------------------------------------------------- records


class Headers(dict):  # type: ignore[type-arg]
    """A ``dict`` of request headers with lower-cased keys and case-insensitive lookup."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        for key, value in items:
            key = key.lower()
            super().__setitem__(key, f"{self[key]}, {value}" if key in self else value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())  # type: ignore[no-any-return]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass(frozen=True)
class RequestRecord:
    """One request as it arrived.  ``path`` is the raw request target (with query);
    ``headers`` has lower-cased keys and case-insensitive lookup; ``time`` is
    ``time.monotonic()`` at arrival."""

    method: str
    path: str
    headers: Headers
    time: float


@dataclass
class ServedFile:
    """A distribution the server serves."""

    filename: str
    project: str  # normalized
    version: str
    data: bytes = field(repr=False)
    sha256: str
    requires_python: str | None
    yanked: bool | str
    upload_time: str | None  # None: the pages give no upload time
    metadata: bytes | None = field(repr=False)
    url_path: str  # path below the server root (includes the prefix)
    url: str  # absolute URL
    #: a PEP 740 provenance, served at ``<url>.provenance`` and named on the pages
    provenance: bytes | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def metadata_sha256(self) -> str | None:
        return None if self.metadata is None else hashlib.sha256(self.metadata).hexdigest()

    @property
    def metadata_url(self) -> str:
        return self.url + ".metadata"


# --------------------------------------------------------------------------- helpers


def _split_dist_filename(filename: str) -> tuple[str, str]:
    """(name, version) from a wheel or sdist file name."""
    if filename.endswith(".whl"):
        parts = filename[: -len(".whl")].split("-")
        if len(parts) not in (5, 6):
            raise ValueError(f"not a wheel file name: {filename!r}")
        return parts[0], parts[1]
    for suffix in (".tar.gz", ".zip", ".tar.bz2", ".tgz"):
        if filename.endswith(suffix):
            stem = filename[: -len(suffix)]
            if "-" not in stem:
                raise ValueError(f"not an sdist file name: {filename!r}")
            name, version = stem.rsplit("-", 1)
            return name, version
    raise ValueError(f"not a distribution file name: {filename!r}")


_VERSION_RE = re.compile(
    r"""^\s*v?
    (?:(?P<epoch>\d+)!)?
    (?P<release>\d+(?:\.\d+)*)
    (?:[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>\d*))?
    (?:-(?P<post_n1>\d+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>\d*))?
    (?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>\d*))?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
    \s*$""",
    re.VERBOSE | re.IGNORECASE,
)
_PRE_ORDER = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}
_INF = float("inf")


def _version_key(version: str) -> tuple[Any, ...]:
    """A sort key approximating PEP 440 ordering (unparseable versions sort last)."""
    m = _VERSION_RE.match(version)
    if m is None:
        return (1, version)
    release = [int(p) for p in m["release"].split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    has_post = m["post_n1"] is not None or m["post_l"] is not None
    if m["pre_l"]:
        pre: tuple[float, int] = (_PRE_ORDER[m["pre_l"].lower()], int(m["pre_n"] or 0))
    elif m["dev_l"] and not has_post:
        pre = (-_INF, 0)
    else:
        pre = (_INF, 0)
    post = int(m["post_n1"] or m["post_n2"] or 0) if has_post else -_INF
    dev = int(m["dev_n"] or 0) if m["dev_l"] else _INF
    local = tuple(
        (1, int(p), "") if p.isdigit() else (0, 0, p.lower())
        for p in re.split(r"[-_.]", m["local"] or "")
        if p
    )
    return (0, int(m["epoch"] or 0), tuple(release), pre, post, dev, local)


def _parse_accept(header: str | None) -> list[tuple[str, float]]:
    """Parse an Accept header into (media-range, q) pairs."""
    if not header:
        return [("*/*", 1.0)]
    ranges = []
    for item in header.split(","):
        item = item.strip()
        if not item:
            continue
        media, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        ranges.append((media.lower(), max(0.0, min(q, 1.0))))
    return ranges


def _quality(media_type: str, accepted: list[tuple[str, float]]) -> tuple[float, int]:
    """(q, specificity) of the most specific range that matches ``media_type``."""
    major = media_type.split("/")[0]
    best: tuple[float, int] | None = None
    for media, q in accepted:
        if media == media_type:
            spec = 2
        elif media == f"{major}/*":
            spec = 1
        elif media == "*/*":
            spec = 0
        else:
            continue
        if best is None or spec > best[1]:
            best = (q, spec)
    return best if best is not None else (0.0, -1)


def _http_date(upload_time: str | None) -> str:
    try:
        when = _dt.datetime.fromisoformat((upload_time or "").replace("Z", "+00:00"))
    except ValueError:
        when = _dt.datetime(2024, 1, 1, tzinfo=_dt.timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return email.utils.format_datetime(when.astimezone(_dt.timezone.utc), usegmt=True)


def _parse_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """Inclusive (start, end) for a single ``bytes=`` range.

    Returns None when the header should be ignored (malformed or multi-range) and
    False when it is unsatisfiable.
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, sep, last = spec.strip().partition("-")
    if not sep:
        return None
    try:
        if not first:  # bytes=-n: the last n bytes
            n = int(last)
            if n <= 0 or size == 0:
                return False
            return (max(0, size - n), size - 1)
        start = int(first)
        end = int(last) if last else None
    except ValueError:
        return None
    if start < 0 or (end is not None and end < start):
        return None
    if start >= size:
        return False
    if end is None:
        end = size - 1
    return (start, min(end, size - 1))


@dataclass
class _Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


# --------------------------------------------------------------------------- server


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, index: IndexServer, ssl_context: ssl.SSLContext | None = None) -> None:
        self.index = index
        self._conn_lock = threading.Lock()
        self._conns: dict[socket.socket, threading.Thread] = {}
        super().__init__(("127.0.0.1", 0), _Handler)
        if ssl_context is not None:
            # The handshake happens on the connection's first read, in its own thread, so a
            # client that refuses the certificate cannot hold up the accepting thread.
            self.socket = ssl_context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup of the host; skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        t = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"IndexServer-conn-{client_address[1]}",
            daemon=True,
        )
        with self._conn_lock:
            self._conns[request] = t
        t.start()

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._conns.pop(request, None)
        super().shutdown_request(request)

    def close_connections(self, timeout: float = 5.0) -> None:
        with self._conn_lock:
            conns = list(self._conns.items())
        for sock, _ in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for _, thread in conns:
            thread.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (*_CONNECTION_ERRORS, OSError)):
            return
        super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pypidl-test-index/1.0"
    sys_version = ""
    timeout = 60  # idle keep-alive connections go away eventually
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except _CONNECTION_ERRORS:
            self.close_connection = True

    def do_GET(self) -> None:
        self.server.index._handle(self, head=False)

    def do_HEAD(self) -> None:
        self.server.index._handle(self, head=True)

    def _other(self) -> None:
        self.server.index._handle(self, head=False, allowed=False)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other


class IndexServer:
    """A package index on ``127.0.0.1`` in a background thread.

    Use as a context manager or call :meth:`start`/:meth:`stop`.  The socket is
    bound when the object is created, so :attr:`url` is known at once; a stopped
    server cannot be started again.
    """

    def __init__(
        self,
        prefix: str = "",
        json: bool = True,
        html: bool = True,
        metadata: bool = True,
        auth: tuple[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        layout: str = "hashed",
    ) -> None:
        """:param ssl_context: serve HTTPS with this server context (see ``tests.lib.tls``).
        :param layout: where files live: ``"hashed"`` (the upstream
            ``packages/<2>/<2>/<rest of sha256>/<name>``) or ``"flat"`` (``files/<name>``, as
            many private index servers keep them: no URL of another index maps onto it).
        """
        if layout not in ("hashed", "flat"):
            raise ValueError(f"unknown layout {layout!r}")
        self.layout = layout
        prefix = prefix.rstrip("/")
        if prefix and not prefix.startswith("/"):
            prefix = "/" + prefix
        self.prefix = prefix
        self.json = json
        self.html = html
        self.metadata = metadata
        self.auth = auth
        self.down = False
        self.ignore_range = False
        self._lock = threading.Lock()
        self._files: dict[str, ServedFile] = {}  # filename -> file
        self._by_path: dict[str, ServedFile] = {}  # url_path -> file
        self._requests: list[RequestRecord] = []
        self._faults: dict[str, list[Fault]] = {}
        self._always: dict[str, Fault] = {}
        #: project -> (PEP 792 status, reason) its pages declare
        self.statuses: dict[str, tuple[str, str | None]] = {}
        self._stopping = threading.Event()
        self._released = threading.Event()  # ends every Stall at once (release_stalls)
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.scheme = "https" if ssl_context is not None else "http"
        self._httpd = _HTTPServer(self, ssl_context)
        self.port: int = self._httpd.server_address[1]

    # ----------------------------------------------------------- lifecycle

    def start(self) -> IndexServer:
        if self._stopped:
            raise RuntimeError("IndexServer cannot be restarted after stop()")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"IndexServer-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()  # wakes Delay sleepers
        self._released.set()  # and Stall ones
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(10)
        self._httpd.server_close()
        self._httpd.close_connections()

    def __enter__(self) -> IndexServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------- urls

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{self.prefix}"

    @property
    def simple_url(self) -> str:
        return self.url + "/simple/"

    def file_url(self, filename: str) -> str:
        with self._lock:
            return self._files[filename].url

    # ----------------------------------------------------------- content

    def add_file(
        self,
        path: str | Path,
        *,
        project: str | None = None,
        requires_python: str | None = None,
        yanked: bool | str = False,
        upload_time: str | None = "2024-01-01T00:00:00Z",
        metadata: bytes | bool | None = None,
        provenance: bytes | None = None,
    ) -> ServedFile:
        """Serve a distribution file.

        ``metadata``: None reads the sidecar from a wheel (sdists get none), bytes
        serve those bytes, False serves no sidecar.
        """
        path = Path(path)
        data = path.read_bytes()
        filename = path.name
        name, version = _split_dist_filename(filename)
        if metadata is None:
            metadata = wheel_metadata(path) if filename.endswith(".whl") else None
        elif metadata is False:
            metadata = None
        elif metadata is True:
            raise ValueError("metadata=True is not meaningful; pass bytes, None or False")
        if yanked == "":
            yanked = True
        sha = hashlib.sha256(data).hexdigest()
        if self.layout == "flat":
            url_path = f"{self.prefix}/files/{quote(filename)}"
        else:
            url_path = f"{self.prefix}/packages/{sha[:2]}/{sha[2:4]}/{sha[4:]}/{quote(filename)}"
        served = ServedFile(
            filename=filename,
            project=canonical_name(project or name),
            version=version,
            data=data,
            sha256=sha,
            requires_python=requires_python,
            yanked=yanked,
            upload_time=upload_time,
            metadata=metadata,
            url_path=url_path,
            url=f"{self.scheme}://127.0.0.1:{self.port}{url_path}",
            provenance=provenance,
        )
        with self._lock:
            old = self._files.pop(filename, None)
            if old is not None:
                self._by_path.pop(old.url_path, None)
            self._files[filename] = served
            self._by_path[url_path] = served
        return served

    def add_dir(self, directory: str | Path) -> list[ServedFile]:
        """Serve every ``.whl``, ``.tar.gz`` and ``.zip`` in ``directory`` (not recursive)."""
        return [
            self.add_file(p)
            for p in sorted(Path(directory).iterdir())
            if p.is_file() and p.name.endswith(_DIST_SUFFIXES)
        ]

    def remove_file(self, filename: str) -> None:
        with self._lock:
            old = self._files.pop(filename)
            self._by_path.pop(old.url_path, None)

    @property
    def files(self) -> list[ServedFile]:
        with self._lock:
            return list(self._files.values())

    # ----------------------------------------------------------- requests and faults

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_matching(self, pattern: str) -> list[RequestRecord]:
        """Recorded requests whose path (without query) matches ``pattern`` (see :meth:`fail`)."""
        return [r for r in self.requests if self._matches(pattern, urlsplit(r.path).path)]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def fail(self, pattern: str, *faults: Fault) -> None:
        """Queue ``faults`` for requests whose path matches the fnmatch ``pattern``.

        The pattern is matched (case-sensitively, ``*`` crossing ``/``) against the
        request path without query, both as-is and with the prefix removed, so
        ``"/simple/foo/"`` works on a server with a prefix.  Each matching request
        consumes the next fault; then requests are served normally again.
        """
        with self._lock:
            self._faults.setdefault(pattern, []).extend(faults)

    def fail_always(self, pattern: str, fault: Fault) -> None:
        """Apply ``fault`` to every matching request until :meth:`clear_faults`."""
        with self._lock:
            self._always[pattern] = fault

    def release_stalls(self) -> None:
        """End every stalled transfer now, and every later one at once: a test that waits for
        something to happen during a stall releases it then, instead of guessing its length."""
        self._released.set()

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._always.clear()

    def _matches(self, pattern: str, path: str) -> bool:
        if fnmatch.fnmatchcase(path, pattern):
            return True
        if self.prefix and path.startswith(self.prefix + "/"):
            return fnmatch.fnmatchcase(path[len(self.prefix) :], pattern)
        return False

    def _next_fault(self, path: str) -> Fault | None:
        with self._lock:
            for pattern, queue in self._faults.items():
                if queue and self._matches(pattern, path):
                    return queue.pop(0)
            for pattern, fault in self._always.items():
                if self._matches(pattern, path):
                    return fault
        return None

    # ----------------------------------------------------------- request handling

    def _handle(self, h: _Handler, *, head: bool, allowed: bool = True) -> None:
        record = RequestRecord(
            method=h.command,
            path=h.path,
            headers=Headers(h.headers.items()),
            time=time.monotonic(),
        )
        with self._lock:
            self._requests.append(record)
        # Never read a request body: close afterwards if one was sent.
        if h.headers.get("Content-Length", "0") not in ("", "0") or h.headers.get(
            "Transfer-Encoding"
        ):
            h.close_connection = True

        path = urlsplit(h.path).path
        if self.down:
            h.close_connection = True
            return
        fault = self._next_fault(path)
        if isinstance(fault, Drop):
            h.close_connection = True
            return
        if isinstance(fault, Delay):
            self._stopping.wait(fault.seconds)

        if isinstance(fault, Status):
            headers = [(k, v) for k, v in (fault.headers or {}).items()]
            if fault.body and not any(k.lower() == "content-type" for k, _ in headers):
                headers.append(("Content-Type", "text/plain; charset=utf-8"))
            response = _Response(fault.code, headers, fault.body)
        elif not allowed:
            response = _Response(405, [("Allow", "GET, HEAD")], b"method not allowed\n")
        else:
            response = self._authorize(h) or self._route(h, path)

        self._send(h, response, head=head, fault=fault)

    def _authorize(self, h: _Handler) -> _Response | None:
        if self.auth is None:
            return None
        expected = "Basic " + base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode(
            "ascii"
        )
        given = h.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), expected.encode()):
            return None
        return _Response(
            401,
            [("WWW-Authenticate", 'Basic realm="pypidl-test-index"')],
            b"authentication required\n",
        )

    def _send(self, h: _Handler, r: _Response, *, head: bool, fault: Fault | None) -> None:
        body = r.body
        if isinstance(fault, Corrupt) and body:
            flipped = bytearray(body)
            for i in {0, len(body) // 2, len(body) - 1}:
                flipped[i] ^= 0xFF
            body = bytes(flipped)
        h.send_response(r.status)
        for key, value in r.headers:
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        if isinstance(fault, (Cut, Stall)):
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        if head:
            h.wfile.flush()
            return
        if isinstance(fault, (Cut, Stall)):
            h.wfile.write(body[: fault.after_bytes])
            h.wfile.flush()
            if isinstance(fault, Stall):
                self._released.wait(fault.seconds)
            return
        h.wfile.write(body)
        h.wfile.flush()

    def _route(self, h: _Handler, path: str) -> _Response:
        prefix = self.prefix
        if prefix:
            if not path.startswith(prefix + "/"):
                return _not_found()
            path = path[len(prefix) :]
        if path == "/simple":
            return _redirect(f"{prefix}/simple/")
        if path == "/simple/":
            return self._root_page(h)
        if path.startswith("/simple/"):
            rest = unquote(path[len("/simple/") :])
            name = rest.rstrip("/")
            if not name or "/" in name:
                return _not_found()
            norm = canonical_name(name)
            if rest != norm + "/":
                return _redirect(f"{prefix}/simple/{quote(norm)}/")
            return self._project_page(h, norm)
        if path.startswith("/packages/") or (self.layout == "flat" and path.startswith("/files/")):
            return self._file(h, prefix + path)
        return _not_found()

    # ----------------------------------------------------------- index pages

    def _negotiate(self, h: _Handler) -> str | None:
        """The content type to answer with, or None for 406."""
        accepted = _parse_accept(h.headers.get("Accept"))
        # Server preference on ties: HTML first (what a legacy client expects).
        offers = []
        if self.html:
            offers += [HTML_TYPE, HTML_V1_TYPE]
        if self.json:
            offers.append(JSON_TYPE)
        best: tuple[float, int, int] | None = None
        choice = None
        for rank, offer in enumerate(offers):
            q, spec = _quality(offer, accepted)
            if q <= 0:
                continue
            key = (q, spec, -rank)
            if best is None or key > best:
                best, choice = key, offer
        if choice is None and not self.json:
            return HTML_TYPE  # a PEP 503-only server ignores Accept
        return choice

    def _page(self, h: _Handler, ctype: str | None, html_body: str, json_body: Any) -> _Response:
        if ctype is None:
            return _Response(
                406, [("Content-Type", "text/plain; charset=utf-8")], b"not acceptable\n"
            )
        headers = [("Vary", "Accept"), ("Cache-Control", "max-age=0")]
        if ctype == JSON_TYPE:
            body = _json.dumps(json_body, indent=1, sort_keys=False).encode("utf-8")
            headers.append(("Content-Type", JSON_TYPE))
        else:
            body = html_body.encode("utf-8")
            headers.append(
                ("Content-Type", ctype if ctype == HTML_V1_TYPE else f"{ctype}; charset=utf-8")
            )
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers.append(("ETag", etag))
        if etag in (t.strip() for t in h.headers.get("If-None-Match", "").split(",")):
            return _Response(304, headers, b"")
        return _Response(200, headers, body)

    def _root_page(self, h: _Handler) -> _Response:
        ctype = self._negotiate(h)
        with self._lock:
            projects = sorted({f.project for f in self._files.values()})
        links = "\n".join(f'<a href="{quote(p)}/">{html.escape(p)}</a><br>' for p in projects)
        page = (
            "<!DOCTYPE html>\n<html>\n<head>\n"
            f'<meta name="pypi:repository-version" content="{API_VERSION}">\n'
            "<title>Simple index</title>\n</head>\n<body>\n"
            f"{links}\n</body>\n</html>\n"
        )
        data = {"meta": {"api-version": API_VERSION}, "projects": [{"name": p} for p in projects]}
        return self._page(h, ctype, page, data)

    def _project_page(self, h: _Handler, project: str) -> _Response:
        with self._lock:
            files = sorted(
                (f for f in self._files.values() if f.project == project),
                key=lambda f: (_version_key(f.version), f.filename),
            )
        if not files:
            return _not_found()
        ctype = self._negotiate(h)
        with_metadata = self.metadata
        anchors = []
        entries = []
        for f in files:
            attrs = [f'href="{html.escape(f.url)}#sha256={f.sha256}"']
            entry: dict[str, Any] = {
                "filename": f.filename,
                "url": f.url,
                "hashes": {"sha256": f.sha256},
                "requires-python": f.requires_python,
                "yanked": f.yanked,
                "size": f.size,
            }
            if f.upload_time is not None:
                entry["upload-time"] = f.upload_time
            if f.provenance is not None:
                entry["provenance"] = f.url + ".provenance"
                attrs.append(f'data-provenance="{html.escape(f.url)}.provenance"')
            if f.requires_python is not None:
                attrs.append(f'data-requires-python="{html.escape(f.requires_python)}"')
            if f.yanked is not False:
                reason = "" if f.yanked is True else str(f.yanked)
                attrs.append(f'data-yanked="{html.escape(reason)}"')
            if with_metadata and f.metadata is not None:
                digest = f.metadata_sha256
                attrs.append(f'data-dist-info-metadata="sha256={digest}"')
                attrs.append(f'data-core-metadata="sha256={digest}"')
                entry["core-metadata"] = {"sha256": digest}  # PEP 714: the new key only
            anchors.append(f"<a {' '.join(attrs)}>{html.escape(f.filename)}</a><br>")
            entries.append(entry)
        versions = sorted({f.version for f in files}, key=_version_key)
        status = self.statuses.get(project)
        status_meta = ""
        if status is not None:
            status_meta = f'<meta name="pypi:project-status" content="{status[0]}">\n'
            if status[1]:
                reason = html.escape(status[1])
                status_meta += f'<meta name="pypi:project-status-reason" content="{reason}">\n'
        page = (
            "<!DOCTYPE html>\n<html>\n<head>\n"
            f'<meta name="pypi:repository-version" content="{API_VERSION}">\n'
            + status_meta
            + f"<title>Links for {html.escape(project)}</title>\n</head>\n<body>\n"
            f"<h1>Links for {html.escape(project)}</h1>\n"
            + "\n".join(anchors)
            + "\n</body>\n</html>\n"
        )
        data = {
            "meta": {"api-version": API_VERSION},
            "name": project,
            "versions": versions,
            "files": entries,
        }
        if status is not None:
            data["project-status"] = {"status": status[0], "reason": status[1]}
        return self._page(h, ctype, page, data)

    # ----------------------------------------------------------- files

    def _file(self, h: _Handler, url_path: str) -> _Response:
        is_metadata = url_path.endswith(".metadata")
        is_provenance = url_path.endswith(".provenance")
        lookup = url_path
        if is_metadata or is_provenance:
            lookup = url_path.rsplit(".", 1)[0]
        with self._lock:
            served = self._by_path.get(lookup)
            if served is None:
                # Tolerate a differently-quoted file name.
                unquoted = unquote(lookup)
                served = next(
                    (f for f in self._by_path.values() if unquote(f.url_path) == unquoted), None
                )
        if served is None:
            return _not_found()
        if is_metadata:
            if not self.metadata or served.metadata is None:
                return _not_found()
            data = served.metadata
            etag = '"' + hashlib.sha256(data).hexdigest() + '"'
        elif is_provenance:
            if served.provenance is None:
                return _not_found()
            data = served.provenance
            etag = '"' + hashlib.sha256(data).hexdigest() + '"'
        else:
            data = served.data
            etag = f'"{served.sha256}"'
        last_modified = _http_date(served.upload_time)
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("ETag", etag),
            ("Last-Modified", last_modified),
        ]
        if not self.ignore_range:
            headers.append(("Accept-Ranges", "bytes"))
            if_none_match = h.headers.get("If-None-Match")
            if if_none_match and etag in (t.strip() for t in if_none_match.split(",")):
                return _Response(304, headers[1:], b"")
            range_header = h.headers.get("Range")
            if_range = h.headers.get("If-Range")
            if range_header and (if_range is None or if_range.strip() in (etag, last_modified)):
                span = _parse_range(range_header, len(data))
                if span is False:
                    headers.append(("Content-Range", f"bytes */{len(data)}"))
                    return _Response(416, headers, b"")
                if isinstance(span, tuple):
                    start, end = span
                    headers.append(("Content-Range", f"bytes {start}-{end}/{len(data)}"))
                    return _Response(206, headers, data[start : end + 1])
        return _Response(200, headers, data)

    def __repr__(self) -> str:
        return f"<IndexServer {self.url} files={len(self._files)}>"


def _not_found() -> _Response:
    return _Response(404, [("Content-Type", "text/plain; charset=utf-8")], b"not found\n")


def _redirect(location: str) -> _Response:
    return _Response(
        301,
        [("Location", location), ("Content-Type", "text/plain; charset=utf-8")],
        b"moved\n",
    )
