"""Helpers the exporters share."""

from __future__ import annotations

import logging

from pypidl.errors import BadInputError
from pypidl.sources import redact_url, split_credentials

__all__ = ["clean_url", "entry_urls"]

log = logging.getLogger(__name__)


def clean_url(url: str) -> str:
    """``url`` without credentials, safe to put on one line of a text format.

    Manifests never hold credentials (the planner strips them), but an edited manifest might;
    exports are shared more widely than manifests, so check again here.

    :raises BadInputError: when ``url`` contains whitespace or control characters, which would
        split it across fields or lines.
    """
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise BadInputError(f"URL {redact_url(url)!r} contains whitespace or control characters")
    clean, credentials = split_credentials(url)
    if credentials is not None:
        log.warning("dropped credentials from %s in the export", redact_url(url))
    return clean


def entry_urls(urls: tuple[str, ...], *, first_only: bool = False) -> list[str]:
    """The cleaned URLs of one file, best first, without duplicates."""
    seen: dict[str, None] = {}
    for url in urls[:1] if first_only else urls:
        seen.setdefault(clean_url(url), None)
    return list(seen)
