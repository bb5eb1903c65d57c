"""The HTTP session every part of pypidl talks through, and how a failed request is described.

One session per process (or per thread pool): connection pools sized for the threads that share
it, a pip-style User-Agent, TLS verification on, and credentials attached per host from the
configured index URLs (``.netrc`` is honoured for the other hosts).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from pypidl.config import MAX_RETRY_AFTER, NetworkSettings
from pypidl.stopping import _STOPPING, RequestCancelled, allow_waits, interrupt_waits

__all__ = [
    "ARTIFACT_HEADERS",
    "MAX_RETRY_AFTER",
    "SIMPLE_ACCEPT",
    "SIMPLE_HTML",
    "SIMPLE_JSON",
    "PypidlSession",
    "RequestCancelled",
    "abort_response",
    "allow_waits",
    "describe_error",
    "interrupt_waits",
    "new_session",
]

#: The simple repository API's content types (PEP 691), and what a client asks for: JSON first,
#: the HTML of PEP 503 as the fall-back.
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SIMPLE_HTML = "application/vnd.pypi.simple.v1+html"
SIMPLE_ACCEPT = f"{SIMPLE_JSON}, {SIMPLE_HTML};q=0.2, text/html;q=0.01"
#: Headers for a distribution file: its bytes (and byte ranges) as stored, never re-encoded.
ARTIFACT_HEADERS: dict[str, str] = {"Accept-Encoding": "identity"}


def new_session(
    net: NetworkSettings,
    *,
    pool_size: int = 10,
    retry_statuses: bool = True,
    connect_retries: int | None = None,
    deadline: float | None = None,
) -> PypidlSession:
    """A session for one process: pooled, identified, verifying TLS, with per-host credentials.

    :param retry_statuses: let urllib3 retry 429/5xx with back-off (index pages); the download
        engine turns this off because it retries, rotates and resumes itself.
    :param connect_retries: override how often a failed connection is retried (0: fail over to
        the next mirror at once instead).
    :param deadline: seconds after a request's first failure when it stops being retried (its
        last answer is returned).  Whatever the server asks, no wait exceeds
        :data:`MAX_RETRY_AFTER`, and every wait ends when :func:`interrupt_waits` is called.
    """
    session = PypidlSession()
    default_connect = net.retries if retry_statuses else 0
    retry = _BoundedRetry(
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
    retry.deadline_seconds = deadline
    adapter = HTTPAdapter(
        pool_connections=max(4, pool_size), pool_maxsize=max(4, pool_size), max_retries=retry
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = net.user_agent
    session.verify = net.verify
    if net.client_cert:
        session.cert = net.client_cert
    # always an auth object: it answers .netrc lookups once per host (requests would read the
    # file again for every request of a session without one)
    session.auth = _HostAuth(net.credentials)
    return session


class _BoundedRetry(Retry):
    """urllib3's retry policy, bounded: capped ``Retry-After``, a deadline, interruptible waits.

    urllib3 sleeps as long as ``Retry-After`` says (a day, if the server says a day) with
    :func:`time.sleep`, which no other thread can cut short.  A retry is made with
    :meth:`new` after every failed attempt, so the deadline is fixed by the first one and handed
    down from there.
    """

    deadline_seconds: float | None = None
    _deadline: float | None = None

    def new(self, **kw: Any) -> _BoundedRetry:
        retry = super().new(**kw)
        retry.deadline_seconds = self.deadline_seconds
        if self._deadline is not None:
            retry._deadline = self._deadline
        elif self.deadline_seconds is not None:
            retry._deadline = time.monotonic() + self.deadline_seconds
        return retry

    def is_exhausted(self) -> bool:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return True
        return bool(super().is_exhausted())

    def get_retry_after(self, response: Any) -> float | None:
        seconds: float | None = super().get_retry_after(response)
        return None if seconds is None else min(seconds, MAX_RETRY_AFTER)

    def sleep_for_retry(self, response: Any) -> bool:
        seconds = self.get_retry_after(response)
        if seconds:
            self._wait(seconds)
            return True
        return False

    def _sleep_backoff(self) -> None:
        seconds = self.get_backoff_time()
        if seconds > 0:
            self._wait(seconds)

    def _wait(self, seconds: float) -> None:
        if self._deadline is not None:
            seconds = min(seconds, max(0.0, self._deadline - time.monotonic()))
        if _STOPPING.wait(seconds):
            raise RequestCancelled("the run is stopping")


class PypidlSession(requests.Session):
    """A session whose own ``verify`` setting wins over ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``.

    requests lets those variables replace a session's CA bundle on every request, so ``--cert``
    would be ignored on any host where one of them is set.  pypidl has already weighed the
    flag, the variable and pip's configuration (see ``cli._common.connection_from_args``).
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[Any, ...], dict[str, Any]] = {}

    def stream_get(
        self, url: str, headers: dict[str, str], timeout: tuple[float, float]
    ) -> requests.Response:
        """``get(url, headers=headers, stream=True, timeout=timeout)``, prepared more cheaply.

        ``Session.request`` spends about as much CPU preparing a GET (merging cookie jars, hooks,
        parameters, re-parsing and re-quoting the URL) as urllib3 spends sending it.  For a plain
        ASCII URL and a session without cookies this builds the same prepared request directly:
        the session's headers and these, the session's per-host auth, the environment's proxies
        and TLS settings; ``Session.send`` then does the rest as usual (redirects, with
        credentials dropped on a change of host, and cookies a server sets).
        """
        if not url.isascii() or self.cookies or self.params or self.hooks.get("response"):
            return self.get(url, headers=headers, stream=True, timeout=timeout)
        prepared = requests.PreparedRequest()
        prepared.method = "GET"
        prepared.url = url
        merged: requests.structures.CaseInsensitiveDict[str] = (
            requests.structures.CaseInsensitiveDict(
                {k: v for k, v in self.headers.items() if isinstance(v, str)}
            )
        )
        merged.update(headers)
        prepared.headers = merged
        prepared.body = None
        prepared._cookies = requests.cookies.RequestsCookieJar()  # type: ignore[attr-defined,unused-ignore]
        prepared.hooks = requests.hooks.default_hooks()
        if self.auth is not None:
            prepared = self.auth(prepared)  # type: ignore[operator,unused-ignore]
        settings = self.merge_environment_settings(url, {}, True, None, None)
        return self.send(prepared, timeout=timeout, allow_redirects=True, **settings)

    def merge_environment_settings(
        self,
        url: str | bytes | None,
        proxies: Any,
        stream: Any,
        verify: Any,
        cert: Any,
    ) -> Any:
        # What the environment says (proxies, no_proxy, CA bundle variables) is read once per
        # host: requests walks every environment variable on every request otherwise, which
        # costs more CPU than a small file's whole download.
        key = None
        if not proxies and isinstance(url, str):
            parts = urlsplit(url)
            key = (parts.scheme, parts.netloc, stream, verify, cert)
            cached = self._environment.get(key)
            if cached is not None:
                return dict(cached)
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None and self.verify is not True:
            settings["verify"] = self.verify
        if key is not None:
            self._environment[key] = dict(settings)
        return settings


class _HostAuth(requests.auth.AuthBase):
    """Basic auth for the hosts whose index URL carried credentials; ``.netrc`` for the others.

    requests reads ``.netrc`` (or ``$NETRC``) only for a session without an auth object, so
    once one index URL carries credentials, this object must consult it for every other host.
    """

    def __init__(self, credentials: Iterable[tuple[str, str, str]]):
        self._by_netloc: dict[str, tuple[str, str] | None] = {
            netloc: (user, password) for netloc, user, password in credentials
        }

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        netloc = urlsplit(r.url or "").netloc
        if netloc in self._by_netloc:
            found = self._by_netloc[netloc]
        else:
            found = requests.utils.get_netrc_auth(r.url) if r.url else None
            self._by_netloc[netloc] = found  # .netrc is read once per host
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
