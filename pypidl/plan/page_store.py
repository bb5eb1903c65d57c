"""Project pages kept between runs, revalidated instead of read again (issue 18).

A page of a project with a long history is megabytes; planning the same set twice read every one
again.  :class:`PageStore` keeps each page's body on disk with the validators the index sent
(``ETag``, ``Last-Modified``), so the next request for it is conditional: an unchanged page costs
a ``304 Not Modified`` and no body.  An entry carries the sha256 of what it holds, as the
metadata cache's do: one that was cut short or edited is not trusted, and the page is read again
in full.

Entries are named by the sha256 of the page's URL (without credentials), so no URL, user name or
token reaches a file name; the entry itself holds only what the index sent and the URL it came
from, credentials removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pypidl import _json as untrusted_json
from pypidl._fs import atomic_write
from pypidl.hashing import bytes_sha256, is_sha256
from pypidl.sources import strip_credentials

__all__ = ["PageStore", "StoredPage"]

log = logging.getLogger(__name__)

#: the format of an entry's head; another value is a miss (2: one file per page)
_FORMAT = 2


@dataclass(frozen=True)
class StoredPage:
    """A page as the index last sent it, and how to ask whether it changed.

    ``body`` is empty when only the validators were read (:meth:`PageStore.head`): enough to
    ask the index whether the page changed, and to know what it was (``digest``).
    """

    body: bytes
    final_url: str  # after redirects, without credentials
    content_type: str
    encoding: str | None
    etag: str | None
    last_modified: str | None
    #: sha256 of the body: what a plan that read this page depended on
    digest: str

    def conditions(self) -> dict[str, str]:
        """Headers that make a request for this page conditional."""
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


class PageStore:
    """Pages on disk under ``directory``, by the sha256 of their URL (thread-safe: each file is
    replaced atomically, and a torn one fails its check).

    Each page is one file, ``<key>.page``: a line with the sha256 of the next one, a line of
    JSON with the validators and the body's sha256, then the body, checked against that digest
    whenever it is read.  Asking whether a page changed reads the two lines alone: a second plan
    of a large set does not read, let alone hash, megabytes of pages that did not change.  (One
    file, not a head and a body apart: creating a file is what writing a page costs most.)
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, url: str) -> Path:
        key = hashlib.sha256(strip_credentials(url).encode("utf-8", "surrogateescape")).hexdigest()
        return self.directory / key[:2] / f"{key}.page"

    def head(self, url: str) -> StoredPage | None:
        """The validators of the stored page of ``url`` (an empty body), or None (missing,
        damaged, or from another format)."""
        try:
            with open(self._path(url), "rb") as fh:
                return _parse_head(fh.readline(_MAX_LINE), fh.readline(_MAX_LINE))
        except OSError:
            return None

    def get(self, url: str) -> StoredPage | None:
        """The stored page of ``url`` with its body, or None (missing or damaged)."""
        try:
            with open(self._path(url), "rb") as fh:
                head = _parse_head(fh.readline(_MAX_LINE), fh.readline(_MAX_LINE))
                if head is None:
                    return None
                body = fh.read()
        except OSError:
            return None
        if bytes_sha256(body) != head.digest:
            return None
        return replace(head, body=body)

    def put(self, url: str, page: StoredPage) -> None:
        """Keep ``page`` for ``url`` (a page without validators too: its digest still tells a
        later plan whether anything changed).  A cache that cannot be written is skipped."""
        head = json.dumps(
            {
                "format": _FORMAT,
                "final_url": strip_credentials(page.final_url),
                "content_type": page.content_type,
                "encoding": page.encoding,
                "etag": page.etag,
                "last_modified": page.last_modified,
                "digest": page.digest,
            }
        ).encode()
        check = _CHECK + bytes_sha256(head).encode("ascii") + b"\n"
        try:
            with atomic_write(self._path(url), "wb", durable=False) as fh:
                fh.write(check + head + b"\n")  # type: ignore[arg-type]
                fh.write(page.body)  # type: ignore[arg-type]
        except OSError as exc:
            log.debug("could not keep the page of %s: %s", page.final_url, exc)


#: the first line of a stored page, before the sha256 of the second
_CHECK = b"pypidl-page sha256="

#: the longest first or second line read (validators and URLs are far shorter)
_MAX_LINE = 64 * 1024


def _parse_head(check: bytes, line: bytes) -> StoredPage | None:
    """The page whose two first lines are these (an empty body), or None when they are torn,
    altered or from another format."""
    if not check.startswith(_CHECK) or not line.endswith(b"\n"):
        return None
    line = line[:-1]
    if check[len(_CHECK) :].rstrip(b"\n").decode("ascii", "replace") != bytes_sha256(line):
        return None
    try:
        meta: Any = untrusted_json.loads(line)
    except ValueError:
        return None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        return None
    final_url, ctype, digest = (meta.get(f) for f in ("final_url", "content_type", "digest"))
    if not isinstance(final_url, str) or not final_url or not isinstance(ctype, str):
        return None
    if not is_sha256(digest):
        return None
    optional = [meta.get(f) for f in ("encoding", "etag", "last_modified")]
    encoding, etag, last_modified = (v if isinstance(v, str) else None for v in optional)
    return StoredPage(b"", final_url, ctype, encoding, etag, last_modified, str(digest))
