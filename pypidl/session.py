"""The HTTP session every part of pypidl talks through, and how a failed request is described.

One session per process (or per thread pool): connection pools sized for the threads that share
it, a pip-style User-Agent, TLS verification on, and credentials attached per host from the
configured index URLs (``.netrc`` is honoured for the other hosts).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from pypidl.config import NetworkSettings

__all__ = ["abort_response", "describe_error", "new_session"]


def new_session(
    net: NetworkSettings,
    *,
    pool_size: int = 10,
    retry_statuses: bool = True,
    connect_retries: int | None = None,
) -> requests.Session:
    """A session for one process: pooled, identified, verifying TLS, with per-host credentials.

    :param retry_statuses: let urllib3 retry 429/5xx with back-off (index pages); the download
        engine turns this off because it retries, rotates and resumes itself.
    :param connect_retries: override how often a failed connection is retried (0: fail over to
        the next mirror at once instead).
    """
    session = _Session()
    default_connect = net.retries if retry_statuses else 0
    retry = Retry(
        total=net.retries if retry_statuses else 0,
        connect=default_connect if connect_retries is None else connect_retries,
        read=net.retries if retry_statuses else 0,
        status=net.retries if retry_statuses else 0,
        backoff_factor=net.backoff,
        status_forcelist=(429, 500, 502, 503, 504) if retry_statuses else (),
        allowed_methods=("GET", "HEAD"),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(
        pool_connections=max(4, pool_size), pool_maxsize=max(4, pool_size), max_retries=retry
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = net.user_agent
    session.verify = net.verify
    if net.client_cert:
        session.cert = net.client_cert
    if net.credentials:
        session.auth = _HostAuth(net.credentials)
    return session


class _Session(requests.Session):
    """A session whose own ``verify`` setting wins over ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``.

    requests lets those variables replace a session's CA bundle on every request, so ``--cert``
    would be ignored on any host where one of them is set.  pypidl has already weighed the
    flag, the variable and pip's configuration (see ``cli._common.network_from_args``).
    """

    def merge_environment_settings(
        self,
        url: str | bytes | None,
        proxies: Any,
        stream: Any,
        verify: Any,
        cert: Any,
    ) -> Any:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None and self.verify is not True:
            settings["verify"] = self.verify
        return settings


class _HostAuth(requests.auth.AuthBase):
    """Basic auth for the hosts whose index URL carried credentials; ``.netrc`` for the others.

    requests reads ``.netrc`` (or ``$NETRC``) only for a session without an auth object, so
    once one index URL carries credentials, this object must consult it for every other host.
    """

    def __init__(self, credentials: Iterable[tuple[str, str, str]]):
        self._by_netloc = {netloc: (user, password) for netloc, user, password in credentials}

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        netloc = urlsplit(r.url or "").netloc
        found = self._by_netloc.get(netloc)
        if found is None and r.url:
            found = requests.utils.get_netrc_auth(r.url)
        if found:
            authed: requests.PreparedRequest = requests.auth.HTTPBasicAuth(*found)(r)
            return authed
        return r


def _socket_of(response: requests.Response) -> socket.socket | None:
    raw = getattr(response, "raw", None)
    conn = getattr(raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    if isinstance(sock, socket.socket):
        return sock
    fp = getattr(raw, "_fp", None)  # http.client.HTTPResponse -> socket file -> SocketIO
    sock = getattr(getattr(getattr(fp, "fp", None), "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def abort_response(response: requests.Response) -> None:
    """Wake a thread blocked reading ``response``: shut its socket down under it."""
    sock = _socket_of(response)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        return
    with contextlib.suppress(Exception):  # last resort; a blocked read fails with some error
        response.close()


def describe_error(exc: BaseException) -> str:
    """A short, credential-free reason for a failed request, as summaries show it."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"{exc.response.status_code} {exc.response.reason}"
    if isinstance(exc, requests.exceptions.SSLError):  # before ConnectionError, its base class
        return _describe_tls(exc)
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return str(exc) or type(exc).__name__


def _describe_tls(exc: BaseException) -> str:
    """What went wrong in the TLS handshake, in the TLS library's words, and which flag helps.

    requests and urllib3 wrap the ``ssl`` error several times; its message is found by walking
    the chain.
    """
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        err = todo.pop()
        if not isinstance(err, BaseException) or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, ssl.SSLCertVerificationError):
            why = err.verify_message or "certificate verify failed"
            return (
                f"TLS verification failed (certificate verify failed: {why}); "
                "give the index's CA with --cert"
            )
        if isinstance(err, ssl.SSLEOFError):
            # what a server that wants a client certificate often looks like from here: it
            # hangs up before its alert arrives
            return (
                "TLS handshake failed: the server closed the connection (if it requires a "
                "client certificate, give one with --client-cert)"
            )
        if isinstance(err, ssl.SSLError) and err.reason:
            why = str(err.reason).lower().replace("_", " ")
            if "certificate" in why:
                return (
                    f"TLS handshake refused ({why}); give a client certificate with --client-cert"
                )
            return f"TLS handshake failed ({why})"
        todo.extend((*err.args, err.__cause__, err.__context__, getattr(err, "reason", None)))
    return "TLS handshake failed"
