"""The page store: one file per page, its head readable alone, every part checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from pypidl.hashing import bytes_sha256
from pypidl.plan.page_store import PageStore, StoredPage

URL = "http://127.0.0.1:9/simple/demo/"
BODY = b'{"meta": {"api-version": "1.1"}, "name": "demo", "files": []}'


def page(body: bytes = BODY, etag: str | None = '"v1"') -> StoredPage:
    return StoredPage(
        body=body,
        final_url=URL,
        content_type="application/vnd.pypi.simple.v1+json",
        encoding=None,
        etag=etag,
        last_modified="Wed, 02 Dec 2026 10:00:00 GMT",
        digest=bytes_sha256(body),
    )


def stored_file(store: PageStore) -> Path:
    (path,) = [p for p in store.directory.rglob("*") if p.is_file()]
    return path


def test_a_page_comes_back_whole_and_its_head_alone(tmp_path: Path) -> None:
    store = PageStore(tmp_path)
    store.put(URL, page())
    assert store.get(URL) == page()
    head = store.head(URL)
    assert head is not None
    assert head.body == b""
    assert (head.etag, head.digest) == ('"v1"', bytes_sha256(BODY))
    assert head.conditions() == {
        "If-None-Match": '"v1"',
        "If-Modified-Since": "Wed, 02 Dec 2026 10:00:00 GMT",
    }
    assert stored_file(store).name.endswith(".page")
    assert store.get("http://127.0.0.1:9/simple/other/") is None


def test_credentials_reach_neither_the_name_nor_the_file(tmp_path: Path) -> None:
    store = PageStore(tmp_path)
    secret = "http://user:s3cret@127.0.0.1:9/simple/demo/"  # noqa: S105 - a test credential
    store.put(secret, page())
    raw = stored_file(store).read_bytes()
    assert b"s3cret" not in raw
    assert "s3cret" not in str(stored_file(store))
    assert store.get(URL) is not None  # the same entry, with or without them


@pytest.mark.parametrize("where", ["check", "head", "body", "cut"])
def test_a_damaged_entry_is_a_miss(tmp_path: Path, where: str) -> None:
    store = PageStore(tmp_path)
    store.put(URL, page())
    path = stored_file(store)
    raw = bytearray(path.read_bytes())
    first = raw.index(b"\n")
    second = raw.index(b"\n", first + 1)
    if where == "check":
        raw[first - 1] ^= 0x01
    elif where == "head":
        raw[second - 3] ^= 0x01
    elif where == "body":
        raw[-2] ^= 0x01
    else:
        raw = raw[: second + 5]
    path.write_bytes(bytes(raw))
    assert store.get(URL) is None
    # the head alone does not read the body: damage there is found when the body is read
    assert (store.head(URL) is None) == (where in ("check", "head"))


def test_an_entry_of_another_format_is_a_miss(tmp_path: Path) -> None:
    store = PageStore(tmp_path)
    store.put(URL, page())
    path = stored_file(store)
    lines = path.read_bytes().split(b"\n", 2)
    head = lines[1].replace(b'"format": 2', b'"format": 1')
    path.write_bytes(b"pypidl-page sha256=" + bytes_sha256(head).encode() + b"\n" + head + b"\n")
    assert store.head(URL) is None
