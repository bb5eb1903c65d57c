"""A small threaded static server for a built mirror, with PEP 691 content negotiation.

For quick use and tests, not for production (use a real web server; ``docs/nginx.conf`` shows
the same negotiation for nginx).  A directory that holds ``index.json`` and/or ``index.html`` is
answered by the ``Accept`` header: the PEP 691 JSON page for
``application/vnd.pypi.simple.v1+json``, the HTML page otherwise, always with ``Vary: Accept``.
Paths that would leave the served directory, and hidden names (``.pypidl/`` state, temp files),
are answered with 404.
"""

from __future__ import annotations

import email.utils
import html
import http.server
import logging
import os
import posixpath
import socket
from collections.abc import Callable
from functools import partial
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, unquote, urlsplit

from pypidl.errors import BadInputError
from pypidl.store.render import JSON_CONTENT_TYPE, SIMPLE_DIR

__all__ = [
    "DEFAULT_BIND",
    "DEFAULT_PORT",
    "RequestHook",
    "choose_media_type",
    "make_server",
    "serve",
]

log = logging.getLogger(__name__)

DEFAULT_BIND = "127.0.0.1"
DEFAULT_PORT = 8080

HTML_V1 = "application/vnd.pypi.simple.v1+html"
_ALIASES = {
    "application/vnd.pypi.simple.latest+json": JSON_CONTENT_TYPE,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}

#: Called after each response with (method, path, status).
RequestHook = Callable[[str, str, int], None]


def _parse_accept(header: str | None) -> list[tuple[str, float]]:
    if not header or not header.strip():
        return [("*/*", 1.0)]
    ranges: list[tuple[str, float]] = []
    for item in header.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = max(0.0, min(float(value), 1.0))
                except ValueError:
                    q = 0.0
        media = media.lower()
        ranges.append((_ALIASES.get(media, media), q))
    return ranges


def choose_media_type(accept: str | None, available: list[str]) -> str | None:
    """The media type of ``available`` the ``Accept`` header likes best, or ``None`` (406).

    The most specific matching range decides each type's quality; ties go to the earlier
    entry of ``available`` (so list the default first).
    """
    ranges = _parse_accept(accept)
    best: tuple[float, int, int] | None = None
    chosen = None
    for order, media_type in enumerate(available):
        major = media_type.split("/")[0]
        match: tuple[float, int] | None = None
        for media, q in ranges:
            spec = (
                2
                if media == media_type
                else 1
                if media == f"{major}/*"
                else 0
                if media == "*/*"
                else -1
            )
            if spec >= 0 and (match is None or spec > match[1]):
                match = (q, spec)
        if match is None or match[0] <= 0:
            continue
        key = (match[0], match[1], -order)
        if best is None or key > best:
            best, chosen = key, media_type
    return chosen


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files under ``directory``, negotiated simple pages, no escapes."""

    server_version = "pypidl-serve"
    # a line that is not HTTP ("GARBAGE") is answered with a status line too, not HTTP/0.9's
    # bare body
    default_request_version = "HTTP/1.0"
    extensions_map = {  # noqa: RUF012  # the base class defines it as a plain class attribute
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".whl": "application/zip",
        ".metadata": "text/plain; charset=utf-8",
        ".json": "application/json",
        ".gz": "application/gzip",
        ".zip": "application/zip",
    }

    def __init__(self, *args: Any, hook: RequestHook | None = None, **kwargs: Any) -> None:
        self._hook = hook
        super().__init__(*args, **kwargs)

    # -- routing ------------------------------------------------------------------------------

    def _inside(self, path: str) -> bool:
        root = Path(self.directory).resolve()
        try:
            resolved = Path(path).resolve()
        except OSError:
            return False
        return resolved == root or root in resolved.parents

    def send_head(self) -> BinaryIO | None:
        url_path = unquote(urlsplit(self.path).path)
        if "\x00" in url_path:  # os.path refuses it with a ValueError (issue 20)
            self.send_error(400, "Bad request")
            return None
        parts = [p for p in posixpath.normpath(url_path).split("/") if p]
        if any(p.startswith(".") for p in parts) or ".." in url_path.split("/"):
            self.send_error(404, "Not found")
            return None
        path = self.translate_path(self.path)
        if not self._inside(path):
            self.send_error(404, "Not found")
            return None
        if os.path.isdir(path) and url_path.endswith("/"):
            available = []
            if os.path.isfile(os.path.join(path, "index.html")):
                available += ["text/html", HTML_V1]
            if os.path.isfile(os.path.join(path, "index.json")):
                available.append(JSON_CONTENT_TYPE)
            if available:
                return self._negotiate(path, available)
        return super().send_head()

    def list_directory(self, path: str | os.PathLike[str]) -> BytesIO | None:
        """A listing without hidden names (``.pypidl/`` state, temp files), which the paths
        refuse anyway."""
        try:
            names = sorted(n for n in os.listdir(path) if not n.startswith("."))
        except OSError:
            self.send_error(404, "Not found")
            return None
        title = html.escape(unquote(urlsplit(self.path).path), quote=False)
        items = []
        for name in names:
            shown = name + "/" if os.path.isdir(os.path.join(path, name)) else name
            items.append(f'<li><a href="{quote(shown)}">{html.escape(shown, quote=False)}</a></li>')
        body = (
            f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>'
            f"<body><h1>{title}</h1><ul>\n" + "\n".join(items) + "\n</ul></body></html>\n"
        ).encode("utf-8", "surrogateescape")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return BytesIO(body)

    def _negotiate(self, directory: str, available: list[str]) -> BinaryIO | None:
        """Answer a directory holding simple pages with the representation ``Accept`` prefers."""
        json_page = os.path.join(directory, "index.json")
        html_page = os.path.join(directory, "index.html")
        chosen = choose_media_type(self.headers.get("Accept"), available)
        if chosen is None:
            self.send_error(406, "Not acceptable", f"available: {', '.join(available)}")
            return None
        page = json_page if chosen == JSON_CONTENT_TYPE else html_page
        content_type = "text/html; charset=utf-8" if chosen == "text/html" else chosen
        fh = open(page, "rb")  # noqa: SIM115  # the base class closes it after copying
        try:
            st = os.fstat(fh.fileno())
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(st.st_size))
            self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
            self.send_header("Vary", "Accept")
            self.send_header("Cache-Control", "max-age=60")
            self.end_headers()
        except BaseException:
            fh.close()
            raise
        return fh

    # -- logging: through the logging module, never print --------------------------------------

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = int(code) if isinstance(code, int) or str(code).isdigit() else 0
        # a request line refused before it was parsed (too long, not HTTP) has no path yet
        path = getattr(self, "path", "") or ""
        shown = path if len(path) <= 200 else f"{path[:200]}..."
        log.info("%s %s %r %s", self.address_string(), self.command, shown, status)
        if self._hook is not None:
            self._hook(self.command or "", path, status)

    def log_message(self, format: str, *args: Any) -> None:  # the base class names it so
        log.debug("%s %s", self.address_string(), format % args)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_server(
    directory: str | os.PathLike[str],
    *,
    bind: str = DEFAULT_BIND,
    port: int = DEFAULT_PORT,
    hook: RequestHook | None = None,
) -> http.server.ThreadingHTTPServer:
    """A bound, not yet running server for ``directory`` (``port=0`` picks a free port).

    Run it with ``serve_forever()`` and stop it with ``shutdown()`` then ``server_close()``.

    :param hook: called after each response with the method, the request path and the status.
    :raises BadInputError: when ``directory`` is not a directory or the address cannot be bound.
    """
    root = Path(directory)
    if not root.is_dir():
        raise BadInputError("not a directory", context=str(root), hint="give the mirror directory")
    if not (root / SIMPLE_DIR).is_dir():
        log.warning("%s has no %s/ index yet; run: pypidl index %s", root, SIMPLE_DIR, root)
    handler = partial(_Handler, directory=str(root.resolve()), hook=hook)
    try:
        return (_Server6 if ":" in bind else _Server)((bind, port), handler)
    except OSError as exc:
        raise BadInputError(
            f"cannot listen on {bind}:{port}: {exc.strerror or exc}",
            hint="choose another --port or --bind address",
        ) from None


def serve(
    directory: str | os.PathLike[str],
    *,
    bind: str = DEFAULT_BIND,
    port: int = DEFAULT_PORT,
    hook: RequestHook | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``directory`` until interrupted (KeyboardInterrupt propagates after cleanup).

    :param on_ready: called with the index URL (``http://host:port/simple/``) once listening.
    """
    server = make_server(directory, bind=bind, port=port, hook=hook)
    real_port = server.server_address[1]
    shown = f"[{bind}]" if ":" in bind else bind
    url = f"http://{shown}:{real_port}/{SIMPLE_DIR}/"
    log.debug("serving %s at %s", directory, url)
    if on_ready is not None:
        on_ready(url)
    try:
        server.serve_forever()
    finally:
        server.server_close()
