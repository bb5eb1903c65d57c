"""The page reader's fast path for the usual file URL gives what its general path gives."""

from __future__ import annotations

from typing import Any

import pytest

from pypidl import _simple
from pypidl._simple import ListedFile, listed_file

PAGE = "https://127.0.0.1:8001/simple/demo/"
SHA = "ab" * 32


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:8002/packages/ab/cd/demo-1.0.tar.gz",
        "http://127.0.0.1:8002/p/demo-1.0.tar.gz?x=1",
        "https://127.0.0.1:8002/p/demo-1.0.tar.gz?",
        "https://127.0.0.1:8002/p/demo-1.0.tar.gz#sha256=" + SHA,
        "https://user:secret@127.0.0.1:8002/p/demo-1.0.tar.gz",
        "https://[::1]:8002/p/demo-1.0.tar.gz",
        "https://[::1/p/demo-1.0.tar.gz",
        "https:///p/demo-1.0.tar.gz",
        "https://127.0.0.1:8002/p;params/demo-1.0.tar.gz",
        "https://127.0.0.1:8002/p/demo 1.0.tar.gz",
        "https://127.0.0.1:8002/p/d\u00e9mo-1.0.tar.gz",
        "HTTPS://127.0.0.1:8002/p/demo-1.0.tar.gz",
        "file:///srv/p/demo-1.0.tar.gz",
        "../../p/demo-1.0.tar.gz",
        "",
    ],
)
def test_the_fast_path_agrees_with_the_general_one(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    item: dict[str, Any] = {"filename": "demo-1.0.tar.gz", "url": url, "hashes": {"sha256": SHA}}
    fast = _outcome(item)
    monkeypatch.setattr(_simple, "_plain_web_url", lambda _url: False)
    assert fast == _outcome(item)


def _outcome(item: dict[str, Any]) -> ListedFile | str | None:
    try:
        return listed_file(item, PAGE, ListedFile)
    except ValueError as exc:
        return f"{type(exc).__name__}: {exc}"
