"""The index's pages as strings: pure functions from the files a project has to its page text.

PEP 503 HTML (with the PEP 592 yanked, PEP 629 version, PEP 658/714 metadata attributes) and
PEP 691 JSON (with PEP 700 sizes and upload times).  Nothing here touches the disk;
:mod:`pypidl.store.index_builder` decides what to render and writes it.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from packaging.version import Version

from pypidl._time import pep700_time
from pypidl.manifest import PACKAGES_DIR, Entry
from pypidl.store.provenance import PROVENANCE_SUFFIX

__all__ = [
    "HTML_PAGE",
    "JSON_CONTENT_TYPE",
    "JSON_PAGE",
    "REPOSITORY_VERSION",
    "SIMPLE_DIR",
    "IndexFile",
    "render_project_html",
    "render_project_json",
    "render_root_html",
    "render_root_json",
]

log = logging.getLogger(__name__)


#: Version of the simple repository API the pages declare (PEP 629 / PEP 691 ``meta``).
REPOSITORY_VERSION = "1.1"
#: ... on a page that carries a PEP 792 project status
STATUS_API_VERSION = "1.4"


JSON_CONTENT_TYPE = "application/vnd.pypi.simple.v1+json"


SIMPLE_DIR = "simple"


HTML_PAGE = "index.html"


JSON_PAGE = "index.json"


@dataclass(frozen=True)
class IndexFile:
    """One file as the index lists it: its catalog entry and what the disk says now."""

    entry: Entry
    size: int
    #: sha256 of the PEP 658 sidecar written beside the wheel, or ``None`` when there is none
    metadata_sha256: str | None = None
    #: a verified PEP 740 provenance is kept beside the file (``<file>.provenance``)
    provenance: bool = False

    @property
    def provenance_url(self) -> str:
        return self.url + PROVENANCE_SUFFIX

    @property
    def url(self) -> str:
        """Link from ``simple/<project>/`` to the file, without the hash fragment."""
        filename = quote(self.entry.filename, safe="+!")
        return f"../../{PACKAGES_DIR}/{quote(self.entry.project)}/{filename}"

    def sort_key(self) -> tuple[Version, str]:
        return (Version(self.entry.version), self.entry.filename)


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def render_project_html(
    project: str, files: Sequence[IndexFile], status: Mapping[str, str] | None = None
) -> str:
    """The PEP 503 page of ``project`` (with PEP 592, 629, 658, 714 and 792 attributes)."""
    name = _attr(project)
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{_api_version(status)}">',
    ]
    if status:
        lines.append(f'    <meta name="pypi:project-status" content="{_attr(status["status"])}">')
        if status.get("reason"):
            lines.append(
                f'    <meta name="pypi:project-status-reason" content="{_attr(status["reason"])}">'
            )
    lines += [
        f"    <title>Links for {name}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>Links for {name}</h1>",
    ]
    for f in files:
        e = f.entry
        attrs = [f'href="{_attr(f.url)}#sha256={e.sha256}"']
        if e.requires_python:
            attrs.append(f'data-requires-python="{_attr(e.requires_python)}"')
        if e.yanked:
            attrs.append(f'data-yanked="{_attr(e.yanked_reason or "")}"')
        if f.provenance:
            attrs.append(f'data-provenance="{_attr(f.provenance_url)}"')
        if f.metadata_sha256:
            attrs.append(f'data-core-metadata="sha256={f.metadata_sha256}"')
            attrs.append(f'data-dist-info-metadata="sha256={f.metadata_sha256}"')
        lines.append(f"    <a {' '.join(attrs)}>{_attr(e.filename)}</a><br>")
    lines += ["  </body>", "</html>", ""]
    return "\n".join(lines)


def _api_version(status: Mapping[str, str] | None) -> str:
    """The API version a page declares: PEP 792's 1.4 only on the pages that need it."""
    return STATUS_API_VERSION if status else REPOSITORY_VERSION


def render_project_json(
    project: str, files: Sequence[IndexFile], status: Mapping[str, str] | None = None
) -> str:
    """The PEP 691 page of ``project`` (with PEP 700 ``versions``, ``size``, ``upload-time``,
    PEP 740 ``provenance`` and PEP 792 ``project-status``)."""
    versions = sorted({f.entry.version for f in files}, key=Version)
    out: list[dict[str, Any]] = []
    for f in files:
        e = f.entry
        item: dict[str, Any] = {
            "filename": e.filename,
            "url": f.url,
            "hashes": {"sha256": e.sha256},
            "requires-python": e.requires_python,
            "yanked": (e.yanked_reason or True) if e.yanked else False,
            "size": f.size,
        }
        upload_time = pep700_time(e.upload_time)
        if upload_time is not None:
            item["upload-time"] = upload_time
        metadata: dict[str, str] | bool = (
            {"sha256": f.metadata_sha256} if f.metadata_sha256 else False
        )
        # PEP 714: only the new key. pip 22.3 to 23.1 crash on "dist-info-metadata" in JSON,
        # and teams on Python 3.8/3.9 still run those pips (3.9's ensurepip bundles 23.0.1).
        item["core-metadata"] = metadata
        if f.provenance:
            item["provenance"] = f.provenance_url
        out.append(item)
    doc: dict[str, Any] = {
        "meta": {"api-version": _api_version(status)},
        "name": project,
    }
    if status:
        doc["project-status"] = dict(status)
    doc["versions"] = versions
    doc["files"] = out
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def render_root_html(projects: Iterable[str]) -> str:
    """The PEP 503 root page listing ``projects`` (normalized names)."""
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{REPOSITORY_VERSION}">',
        "    <title>Simple index</title>",
        "  </head>",
        "  <body>",
    ]
    lines += [f'    <a href="{_attr(quote(p))}/">{_attr(p)}</a><br>' for p in sorted(projects)]
    lines += ["  </body>", "</html>", ""]
    return "\n".join(lines)


def render_root_json(projects: Iterable[str]) -> str:
    """The PEP 691 root page listing ``projects`` (normalized names)."""
    doc = {
        "meta": {"api-version": REPOSITORY_VERSION},
        "projects": [{"name": p} for p in sorted(projects)],
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
