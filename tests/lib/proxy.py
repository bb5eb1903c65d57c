"""A forward HTTP proxy on 127.0.0.1 for tests: relays absolute-form requests and logs each one.

Clients configured with ``HTTP_PROXY=http://127.0.0.1:PORT`` send ``GET http://host/path``
here; the proxy repeats the request to the target, buffers the answer and relays it.  Only
loopback targets are relayed (anything else gets 403), so a test can never reach the internet
through it.  ``CONNECT`` (HTTPS tunnelling) is not supported.  Stdlib only.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import socket
import socketserver
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ForwardProxy", "ProxiedRequest"]

#: headers that describe one connection, not the message: never forwarded (RFC 9110, 7.6.1)
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class ProxiedRequest:
    """One request the proxy received: the method, the absolute URL asked for, and the status
    it relayed (502 when the target could not be reached, 403 for a non-loopback target)."""

    method: str
    url: str
    status: int
    user_agent: str


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, proxy: ForwardProxy) -> None:
        self.proxy = proxy
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        with self._open_lock:
            self._open.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Hang up on kept-alive clients, so no handler thread outlives the proxy."""
        with self._open_lock:
            socks = list(self._open)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def server_bind(self) -> None:
        # skip HTTPServer's reverse DNS lookup of the host
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up is no test failure; the log says what was relayed


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pypidl-test-proxy/1.0"
    sys_version = ""
    timeout = 60
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._relay(head=False)

    def do_HEAD(self) -> None:
        self._relay(head=True)

    def do_CONNECT(self) -> None:
        self._answer(405, b"this proxy does not tunnel\n", head=False)

    def _relay(self, *, head: bool) -> None:
        target = urlsplit(self.path)
        agent = self.headers.get("User-Agent", "")
        if target.scheme != "http" or not target.hostname:
            self._record(502, agent)
            self._answer(400, b"absolute-form http:// request expected\n", head=head)
            return
        if target.hostname not in _LOOPBACK:
            self._record(403, agent)
            self._answer(403, b"this test proxy relays to loopback only\n", head=head)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        path = target.path or "/"
        if target.query:
            path += "?" + target.query
        conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=30)
        try:
            conn.request(self.command, path, headers=headers)
            upstream = conn.getresponse()
            body = b"" if head else upstream.read()
            status, reason = upstream.status, upstream.reason
            relayed = [
                (k, v)
                for k, v in upstream.getheaders()
                if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"
            ]
            length = upstream.getheader("Content-Length") if head else str(len(body))
        except (OSError, http.client.HTTPException):
            self._record(502, agent)
            self._answer(502, b"the target could not be reached\n", head=head)
            return
        finally:
            conn.close()
        self._record(status, agent)
        self.send_response(status, reason)
        for key, value in relayed:
            self.send_header(key, value)
        if length is not None:
            self.send_header("Content-Length", length)
        self.end_headers()
        if not head:
            self.wfile.write(body)
        self.wfile.flush()

    def _record(self, status: int, agent: str) -> None:
        self.server.proxy._add(ProxiedRequest(self.command, self.path, status, agent))

    def _answer(self, status: int, body: bytes, *, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
        self.wfile.flush()


class ForwardProxy:
    """The proxy, listening on 127.0.0.1 from construction; a context manager."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._log: list[ProxiedRequest] = []
        self._server = _Server(self)
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> list[ProxiedRequest]:
        """A snapshot of every request relayed (or refused) so far, in arrival order."""
        with self._lock:
            return list(self._log)

    def _add(self, record: ProxiedRequest) -> None:
        with self._lock:
            self._log.append(record)

    def start(self) -> ForwardProxy:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"ForwardProxy-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(10)
            self._thread = None
        self._server.server_close()
        self._server.close_connections()

    def __enter__(self) -> ForwardProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
