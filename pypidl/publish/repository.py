"""The repository being published to: its upload URL, its simple index, what it holds.

The user names the upload endpoint (``--to``); the simple index beside it is found by asking the
places each kind of server keeps it (``<upload>/simple/`` for pypiserver, Nexus and Artifactory,
``<upload>/+simple/`` for devpi), or given with ``--simple-url``.  What the repository holds is
read from its project pages with the page reader every room uses (``pypidl._simple``: PEP 691
JSON or PEP 503 HTML), so the same limits and checks apply to them as to any index.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests

from pypidl._simple import ListedFile, content_type, listed_file, parse_page, read_body
from pypidl.config import NetworkSettings
from pypidl.errors import BadInputError, RemoteIndexError, UnsafeFilenameError
from pypidl.hashing import hash_stream
from pypidl.session import (
    ARTIFACT_HEADERS,
    SIMPLE_ACCEPT,
    SIMPLE_HTML,
    SIMPLE_JSON,
    describe_error,
)
from pypidl.sources import redact_url, split_credentials, strip_credentials

__all__ = ["Holdings", "Repository", "locate_repository", "read_holdings", "served_sha256"]

log = logging.getLogger(__name__)

_SIMPLE_TYPES = {SIMPLE_JSON, SIMPLE_HTML, "text/html"}


@dataclass(frozen=True)
class Repository:
    """Where files go (``upload_url``) and where the repository lists them (``simple_url``);
    neither carries credentials."""

    upload_url: str
    simple_url: str

    @property
    def netloc(self) -> str:
        return urlsplit(self.upload_url).netloc


def credentials(
    url: str, net: NetworkSettings, env: Mapping[str, str] | None = None
) -> tuple[str, NetworkSettings]:
    """The upload URL without credentials, and ``net`` with the repository's credentials.

    They come from the URL itself, else from ``TWINE_USERNAME``/``TWINE_PASSWORD`` (as twine
    reads them); with neither, the session consults ``.netrc`` for the host.

    :raises BadInputError: ``url`` is not http(s).
    """
    if not url.startswith(("https://", "http://")):
        raise BadInputError(f"the repository URL {redact_url(url)!r} must start with https://")
    clean, auth = split_credentials(url)
    environ = os.environ if env is None else env
    if auth is None and (environ.get("TWINE_USERNAME") or environ.get("TWINE_PASSWORD")):
        auth = (environ.get("TWINE_USERNAME", ""), environ.get("TWINE_PASSWORD", ""))
    if auth is not None:
        # first, so these win over any other credentials for the same host
        mine = ((urlsplit(clean).netloc, auth[0], auth[1]),)
        net = NetworkSettings(**{**net.__dict__, "credentials": mine + net.credentials})
    return (clean if clean.endswith("/") else clean + "/"), net


def locate_repository(
    session: requests.Session, upload_url: str, net: NetworkSettings, simple_url: str | None
) -> Repository:
    """The repository at ``upload_url``, with its simple index found (or ``simple_url``).

    :raises BadInputError: no candidate answers as a simple index (with what each said).
    :raises RemoteIndexError: none answers at all.
    """
    if simple_url:
        clean = split_credentials(simple_url)[0]
        return Repository(upload_url, clean if clean.endswith("/") else clean + "/")
    parts = urlsplit(upload_url)
    candidates = [f"{upload_url}simple/", f"{upload_url}+simple/"]
    if parts.path.endswith("/legacy/"):  # the upload endpoint of a warehouse-like server
        candidates.insert(0, upload_url[: -len("legacy/")] + "simple/")
    said: list[str] = []
    answered = False
    for candidate in candidates:
        try:
            with session.get(
                candidate,
                headers={"Accept": SIMPLE_ACCEPT},
                timeout=(net.connect_timeout, net.read_timeout),
                stream=True,
            ) as resp:
                ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                final = urlsplit(resp.url)
                if resp.status_code in (401, 403):
                    raise BadInputError(
                        f"{redact_url(candidate)}: {resp.status_code} {resp.reason}: the "
                        "repository refused to list its files",
                        hint="give credentials in the URL, in .netrc, or as TWINE_USERNAME and "
                        "TWINE_PASSWORD",
                    )
                if resp.ok and ctype in _SIMPLE_TYPES and final.netloc == parts.netloc:
                    return Repository(upload_url, candidate)
                answered = True
                said.append(f"{redact_url(candidate)}: {resp.status_code} {ctype or '-'}")
        except requests.RequestException as exc:
            said.append(f"{redact_url(candidate)}: {describe_error(exc)}")
    if not answered:  # down or unreachable: a failure, not a wrong URL
        raise RemoteIndexError(
            f"cannot reach the repository at {redact_url(upload_url)} ({'; '.join(said)})"
        )
    raise BadInputError(
        f"cannot find the simple index of {redact_url(upload_url)} ({'; '.join(said)})",
        hint="give it with --simple-url (docs/publish.md lists each server's)",
    )


@dataclass(frozen=True)
class Holdings:
    """What the repository lists for one project: file name -> (sha256 or None, URL); or why
    its page could not be read."""

    files: Mapping[str, tuple[str | None, str]]
    error: str | None = None


def read_holdings(
    repository: Repository,
    net: NetworkSettings,
    projects: Iterable[str],
    *,
    session: requests.Session,
    workers: int,
) -> dict[str, Holdings]:
    """Each project's files as the repository's simple index lists them now (pages read
    concurrently, with the reader every room uses: bounded in size and time, hostile JSON
    refused).

    A project the index does not know holds nothing; so does one whose page redirects to
    another host (a pypiserver with a fall-back index sends unknown projects upstream: what is
    listed there is not in the repository, and that host is never asked).
    """
    names = sorted(set(projects))
    if not names:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names)))) as pool:
        pages = pool.map(lambda name: _holdings(session, repository, net, name), names)
        return dict(zip(names, pages))


#: same-host redirects followed for one page (devpi sends a name to its normalized form)
_MAX_REDIRECTS = 5


def _holdings(
    session: requests.Session, repository: Repository, net: NetworkSettings, project: str
) -> Holdings:
    url = f"{repository.simple_url}{project}/"
    home = urlsplit(repository.simple_url).netloc
    try:
        for _ in range(_MAX_REDIRECTS + 1):
            with session.get(
                url,
                headers={"Accept": SIMPLE_ACCEPT, "Cache-Control": "max-age=0"},
                timeout=(net.connect_timeout, net.read_timeout),
                stream=True,
                allow_redirects=False,
            ) as resp:
                if resp.is_redirect:
                    url = urljoin(url, resp.headers["Location"])
                    if urlsplit(url).netloc != home:
                        log.warning(
                            "The repository sends %s to another index (%s); counting it as not "
                            "there",
                            project,
                            redact_url(url),
                        )
                        return Holdings({})
                    continue
                if resp.status_code in (404, 410):
                    return Holdings({})
                resp.raise_for_status()
                page_url = strip_credentials(resp.url)
                page = parse_page(
                    read_body(resp), content_type(resp), page_url, encoding=resp.encoding
                )
                break
        else:
            return Holdings({}, error=f"cannot read its page: more than {_MAX_REDIRECTS} redirects")
    except (requests.RequestException, ValueError) as exc:
        return Holdings({}, error=f"cannot read its page: {describe_error(exc)}")
    files: dict[str, tuple[str | None, str]] = {}
    for item in page.items:
        try:
            listed = listed_file(item, page.url, ListedFile)
        except UnsafeFilenameError:
            continue  # a name no mirror file can have
        if listed is not None:
            files[listed.filename] = (listed.sha256, listed.url)
    return Holdings(files)


def served_sha256(session: requests.Session, url: str, net: NetworkSettings) -> str:
    """The sha256 of the file the repository serves at ``url`` (for listings without digests).

    :raises requests.RequestException: it cannot be fetched.
    """
    with session.get(
        url, headers=ARTIFACT_HEADERS, timeout=(net.connect_timeout, net.read_timeout), stream=True
    ) as resp:
        resp.raise_for_status()
        digest: str = hash_stream(resp.raw)[0]  # type: ignore[arg-type,unused-ignore]
        return digest
