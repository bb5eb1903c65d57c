"""Project pages kept between runs, revalidated instead of read again (issue 18).

A page of a project with a long history is megabytes; planning the same set twice read every one
again.  :class:`PageStore` keeps each page's body on disk with the validators the index sent
(``ETag``, ``Last-Modified``), so the next request for it is conditional: an unchanged page costs
a ``304 Not Modified`` and no body.  An entry is written with its own sha256 in front
(:func:`pypidl._fs.write_checked`, as the metadata cache does): one that was cut short or edited
is not trusted, and the page is read again in full.

Entries are named by the sha256 of the page's URL (without credentials), so no URL, user name or
token reaches a file name; the entry itself holds only what the index sent and the URL it came
from, credentials removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pypidl import _json as untrusted_json
from pypidl._fs import read_checked, write_checked
from pypidl.sources import strip_credentials

__all__ = ["PageStore", "StoredPage"]

log = logging.getLogger(__name__)

#: the format of an entry's first line; another value is a miss
_FORMAT = 1


@dataclass(frozen=True)
class StoredPage:
    """A page as the index last sent it, and how to ask whether it changed."""

    body: bytes
    final_url: str  # after redirects, without credentials
    content_type: str
    encoding: str | None
    etag: str | None
    last_modified: str | None

    @property
    def digest(self) -> str:
        """sha256 of the body: what a plan that read this page depended on."""
        return hashlib.sha256(self.body).hexdigest()

    def conditions(self) -> dict[str, str]:
        """Headers that make a request for this page conditional."""
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


class PageStore:
    """Pages on disk under ``directory``, by the sha256 of their URL (thread-safe: each entry is
    replaced atomically, and a torn one fails its check)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, url: str) -> Path:
        key = hashlib.sha256(strip_credentials(url).encode("utf-8", "surrogateescape")).hexdigest()
        return self.directory / key[:2] / key

    def get(self, url: str) -> StoredPage | None:
        """The stored page of ``url``, or None (missing, damaged, or from another format)."""
        data = read_checked(self._path(url))
        if data is None:
            return None
        head, _, body = data.partition(b"\n")
        try:
            meta: Any = untrusted_json.loads(head)
        except ValueError:
            return None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            return None
        final_url, ctype = meta.get("final_url"), meta.get("content_type")
        optional = [meta.get(f) for f in ("encoding", "etag", "last_modified")]
        if not isinstance(final_url, str) or not final_url or not isinstance(ctype, str):
            return None
        encoding, etag, last_modified = (v if isinstance(v, str) else None for v in optional)
        return StoredPage(body, final_url, ctype, encoding, etag, last_modified)

    def put(self, url: str, page: StoredPage) -> None:
        """Keep ``page`` for ``url`` (a page without validators too: its digest still tells a
        later plan whether anything changed).  A cache that cannot be written is skipped."""
        head = {
            "format": _FORMAT,
            "final_url": strip_credentials(page.final_url),
            "content_type": page.content_type,
            "encoding": page.encoding,
            "etag": page.etag,
            "last_modified": page.last_modified,
        }
        path = self._path(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_checked(path, json.dumps(head).encode() + b"\n" + page.body)
        except OSError as exc:
            log.debug("could not keep the page of %s: %s", page.final_url, exc)
