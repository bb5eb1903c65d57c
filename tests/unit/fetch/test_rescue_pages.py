"""What the rescue takes from a page: name -> (absolute URL without credentials or fragment,
sha256), read by the one page reader (:mod:`pypidl._simple`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pypidl._simple import parse_page
from pypidl.fetch.rescue import Listing, listing_of
from pypidl.session import SIMPLE_JSON

SHA = "a" * 64
PAGE = "https://127.0.0.1:8001/simple/proj/"


def _from_html(text: str, url: str) -> Listing:
    return listing_of(parse_page(text.encode(), "text/html", url))


def _from_json(data: Any, url: str) -> Listing:
    return listing_of(parse_page(json.dumps(data).encode(), SIMPLE_JSON, url))


def test_html_relative_links_hashes_and_base():
    page = f"""<html><head><base href="https://127.0.0.1:8002/root/"></head><body>
    <a href="../dl/proj-1.0-py3-none-any.whl#sha256={SHA}">proj-1.0-py3-none-any.whl</a>
    <a href="proj-1.0.tar.gz#md5=abc">proj-1.0.tar.gz</a>
    <a href="proj%2B-2.0.zip">quoted</a>
    <a href="mailto:someone@127.0.0.1">mail</a>
    <a>no href</a>
    </body></html>"""
    listing = _from_html(page, PAGE)
    assert listing == {
        "proj-1.0-py3-none-any.whl": (
            "https://127.0.0.1:8002/dl/proj-1.0-py3-none-any.whl",
            SHA,
        ),
        "proj-1.0.tar.gz": ("https://127.0.0.1:8002/root/proj-1.0.tar.gz", None),
        "proj+-2.0.zip": ("https://127.0.0.1:8002/root/proj%2B-2.0.zip", None),
    }


def test_html_without_base_resolves_against_the_page_and_drops_credentials():
    page = (
        '<a href="https://user:pw@127.0.0.1:8003/f/proj-1.0.tar.gz">x</a><a href="/g/p.zip">y</a>'
    )
    assert _from_html(page, PAGE) == {
        "proj-1.0.tar.gz": ("https://127.0.0.1:8003/f/proj-1.0.tar.gz", None),
        "p.zip": ("https://127.0.0.1:8001/g/p.zip", None),
    }


def test_json_page():
    data = {
        "files": [
            {
                "filename": "proj-1.0.tar.gz",
                "url": "../../f/proj-1.0.tar.gz",
                "hashes": {"sha256": SHA.upper()},
            },
            {
                "filename": "proj-2.0.tar.gz",
                "url": "https://127.0.0.1:8004/proj-2.0.tar.gz",
                "hashes": {},
            },
            {"filename": "bad", "url": "file:///etc/passwd"},
            {"filename": 3, "url": "x"},
            "not a file",
        ]
    }
    assert _from_json(data, PAGE) == {
        "proj-1.0.tar.gz": ("https://127.0.0.1:8001/f/proj-1.0.tar.gz", SHA),
        "proj-2.0.tar.gz": ("https://127.0.0.1:8004/proj-2.0.tar.gz", None),
    }


@pytest.mark.parametrize("data", [[], {"files": "x"}, {"name": "proj"}])
def test_a_malformed_json_page_is_refused(data):
    with pytest.raises(ValueError, match="malformed PEP 691 project page"):
        _from_json(data, PAGE)


def test_json_nested_past_the_stack_is_refused_in_one_line():
    body = b'{"files": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_page(body, SIMPLE_JSON, PAGE)
