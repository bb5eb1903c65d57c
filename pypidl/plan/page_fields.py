"""Fields of an index page that are about trust, each read by one small function.

PEP 792 ``project-status`` (JSON ``project-status``, HTML ``pypi:project-status`` meta tags)
and PEP 740 provenance (the ``provenance`` key of a file entry; :mod:`pypidl._simple` maps HTML's
``data-provenance`` onto it).  They take a page as :mod:`pypidl._simple` read it and never raise
on odd values: an odd value is absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from pypidl.manifest import url_problem
from pypidl.sources import strip_credentials

if TYPE_CHECKING:
    from pypidl._simple import SimplePage

__all__ = ["STATUSES", "ProjectStatus", "project_status", "provenance_url"]

#: PEP 792 statuses; "active" is what a page without one means
STATUSES = ("active", "archived", "quarantined", "deprecated")


@dataclass(frozen=True)
class ProjectStatus:
    """A project's PEP 792 status other than ``active``, with the index's reason."""

    status: str
    reason: str | None = None

    def to_json(self) -> dict[str, str]:
        return {"status": self.status, **({"reason": self.reason} if self.reason else {})}


def _status(status: Any, reason: Any) -> ProjectStatus | None:
    if not isinstance(status, str):
        return None
    status = status.strip().lower()
    if status not in STATUSES or status == "active":
        return None
    text = reason.strip() if isinstance(reason, str) else ""
    return ProjectStatus(status, text[:500] or None)


def project_status(page: SimplePage) -> ProjectStatus | None:
    """The PEP 792 status ``page`` declares (JSON: the ``project-status`` object; HTML: the
    ``pypi:project-status`` and ``pypi:project-status-reason`` meta tags)."""
    found = page.project_status
    if isinstance(found, Mapping):
        return _status(found.get("status"), found.get("reason"))
    return _status(page.meta.get("project-status"), page.meta.get("project-status-reason"))


def provenance_url(item: Mapping[str, Any], page_url: str) -> str | None:
    """The absolute URL of a file entry's PEP 740 provenance, when it names a usable one (the
    rules of file URLs: http(s) from a web page, no credentials)."""
    value = item.get("provenance")
    if not isinstance(value, str) or not value:
        return None
    url = strip_credentials(urljoin(page_url, value).split("#", 1)[0])
    web = ("http", "https")
    scheme, page_scheme = urlsplit(url).scheme.lower(), urlsplit(page_url).scheme.lower()
    same_kind = scheme == page_scheme or (scheme in web and page_scheme in web)
    return url if url_problem(url) is None and same_kind else None
