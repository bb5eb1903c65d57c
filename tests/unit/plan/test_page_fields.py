"""PEP 792 statuses and PEP 740 provenance URLs as the page reader takes them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pypidl._simple import parse_page
from pypidl.plan.page_fields import ProjectStatus, project_status, provenance_url

PAGE = "https://index.test/simple/x/"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"status": "quarantined", "reason": " malware "}, ProjectStatus("quarantined", "malware")),
        ({"status": "Archived"}, ProjectStatus("archived")),
        ({"status": "active"}, None),
        ({"status": "unknown-future-status"}, None),
        ({"status": 7}, None),
        ("quarantined", None),
    ],
)
def test_json_status(status: Any, expected: ProjectStatus | None) -> None:
    doc = {"meta": {"api-version": "1.4"}, "files": [], "project-status": status}
    body = json.dumps(doc).encode()
    assert project_status(parse_page(body, "application/vnd.pypi.simple.v1+json", PAGE)) == expected


def test_html_status_and_provenance() -> None:
    body = (
        b'<html><head><meta name="pypi:project-status" content="deprecated">'
        b'<meta name="pypi:project-status-reason" content="use y"></head><body>'
        b'<a href="x-1.0.tar.gz#sha256='
        + b"a"
        * 64
        + b'" data-provenance="x-1.0.tar.gz.provenance">'
        b"x-1.0.tar.gz</a></body></html>"
    )
    page = parse_page(body, "text/html", PAGE)
    assert project_status(page) == ProjectStatus("deprecated", "use y")
    assert provenance_url(page.items[0], page.url) == PAGE + "x-1.0.tar.gz.provenance"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://files.test/x.provenance", "https://files.test/x.provenance"),
        ("../../p/x.provenance#frag", "https://index.test/p/x.provenance"),
        ("file:///etc/passwd", None),  # a web page never points at this machine's files
        ("https://user:secret@files.test/x.provenance", "https://files.test/x.provenance"),
        (None, None),
        (12, None),
    ],
)
def test_provenance_urls(value: Any, expected: str | None) -> None:
    assert provenance_url({"provenance": value}, PAGE) == expected
