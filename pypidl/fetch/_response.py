"""What an HTTP answer to a file request means for the part being written.

A refusal is final for that URL, a server error or a bad range is worth another attempt; a
206 must start where the part ends, and the sizes must add up to the manifest's.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pypidl.fetch.retry import (
    FINAL_STATUSES,
    AttemptFailed,
    UrlRefused,
    http_reason,
    retry_after_seconds,
)

if TYPE_CHECKING:
    import requests

    from pypidl.fetch.part import PartFile
    from pypidl.manifest import Entry

__all__ = ["check_response", "content_range_start"]

log = logging.getLogger(__name__)


def check_response(entry: Entry, resp: requests.Response, part: PartFile) -> int:
    """Decide what ``resp`` means for ``part``; returns the byte it starts at.

    :raises UrlRefused: when this URL will not serve the file (a final status, a wrong size)
    :raises AttemptFailed: when another attempt may succeed (the part is reset when needed)
    """
    code = resp.status_code
    if code in FINAL_STATUSES:
        raise UrlRefused(http_reason(resp))
    if code == 429 or code >= 500:
        raise AttemptFailed(
            http_reason(resp), retry_after=retry_after_seconds(resp.headers.get("Retry-After"))
        )
    if code == 416:
        # Our part is longer than the server's file, or the server is confused: start over.
        part.discard()
        raise AttemptFailed(http_reason(resp), health=False)
    if code == 206:
        first = content_range_start(resp.headers.get("Content-Range"))
        if first != part.offset:
            part.discard()
            raise AttemptFailed(f"unusable Content-Range {resp.headers.get('Content-Range')!r}")
    elif code == 200:
        if part.offset:
            log.debug(
                "%s: the server sent the whole file instead of a range; starting over",
                entry.filename,
            )
            part.reset()
    else:
        raise UrlRefused(f"unexpected answer {http_reason(resp)}")
    length = resp.headers.get("Content-Length")
    if entry.size is not None and length is not None and length.isdigit():
        total = part.offset + int(length)
        if total != entry.size:
            if code == 206:
                part.discard()
                raise AttemptFailed(f"the server's file has {total} bytes, expected {entry.size}")
            raise UrlRefused(f"the server's file has {total} bytes, expected {entry.size}")
    return part.offset


def content_range_start(value: str | None) -> int | None:
    """The first byte of a ``Content-Range: bytes a-b/n`` header."""
    if not value:
        return None
    unit, _, spec = value.strip().partition(" ")
    first, sep, _rest = spec.partition("-")
    if unit.lower() != "bytes" or not sep or not first.isdigit():
        return None
    return int(first)
