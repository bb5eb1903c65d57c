"""plan.page_files: a page read cheaply per entry gives the files the eager reader gives."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from packaging.utils import NormalizedName

from pypidl._simple import parse_page
from pypidl.plan import page_files
from pypidl.plan.page_files import PageEntry, ProjectPage, RemoteFile, files_of
from pypidl.session import SIMPLE_JSON

DEMO = NormalizedName("demo")
PAGE = "http://127.0.0.1:1/simple/demo/"
WHEEL_TAGS = ("py3-none-any", "cp312-cp312-manylinux_2_17_x86_64", "cp38-cp38-win_amd64")


def entry(filename: str, n: int, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "filename": filename,
        "url": f"http://127.0.0.1:1/files/{filename}",
        "hashes": {"sha256": f"{n:064x}"},
        "size": 1000 + n,
        "upload-time": f"2024-01-{1 + n % 28:02d}T00:00:00Z",
        "core-metadata": {"sha256": f"{n + 7:064x}"},
    }
    data.update(over)
    return data


def history(releases: int) -> list[dict[str, Any]]:
    """A page's entries: ``releases`` releases of an sdist and three wheels, newest last (as
    indexes list them), with the odd entries a real page has."""
    items = []
    for r in range(releases):
        version = f"1.{r}"
        items.append(entry(f"demo-{version}.tar.gz", len(items), **{"requires-python": ">=3.8"}))
        for tags in WHEEL_TAGS:
            items.append(entry(f"demo-{version}-{tags}.whl", len(items)))
    items[1]["yanked"] = "broken"  # a yanked wheel of 1.0
    items += [
        entry("../demo-9.0.tar.gz", 900),  # unsafe: skipped with a warning
        entry("other-1.0.tar.gz", 901),  # another project's
        entry("demo-1.0-py2.7.egg", 902),  # not mirrored
        entry("demo-8.0.tar.gz", 903, url="file:///etc/passwd"),  # unusable URL
        dict(items[0]),  # the same file twice: kept once
    ]
    return items


def body(items: list[dict[str, Any]]) -> bytes:
    return json.dumps({"meta": {"api-version": "1.1"}, "name": "demo", "files": items}).encode()


def read(items: list[dict[str, Any]]) -> ProjectPage:
    return ProjectPage.read(DEMO, body(items), SIMPLE_JSON, None, url=PAGE, mirror="m")


def eager(items: list[dict[str, Any]]) -> list[RemoteFile]:
    return files_of(parse_page(body(items), SIMPLE_JSON, PAGE), DEMO, "m")


def test_every_release_made_on_demand_is_what_the_eager_reader_makes() -> None:
    items = history(30)
    page = read(items)
    expected = eager(items)
    assert len(page.entries) == len(expected) == 30 * 4
    assert [e.filename for e in page.entries] == [f.filename for f in expected]
    # releases beyond the first batch come from the kept body, a batch at a time
    for version in ("1.29", "1.3", "1.0", "1.17"):
        assert page.release_files(version) == [f for f in expected if f.version == version]
    assert list(page.files) == expected


def test_entries_carry_what_decides_whether_a_file_exists_for_the_plan() -> None:
    page = read(history(2))
    by_name = {e.filename: e for e in page.entries if isinstance(e, PageEntry)}
    sdist = by_name["demo-1.1.tar.gz"]
    assert (sdist.version, sdist.kind, sdist.requires_python) == ("1.1", "sdist", ">=3.8")
    assert by_name["demo-1.0-py3-none-any.whl"].yanked
    wheel = by_name["demo-1.1-cp38-cp38-win_amd64.whl"]
    assert wheel.kind == "wheel"
    assert {str(t) for t in wheel.tags} == {"cp38-cp38-win_amd64"}
    assert wheel.upload_time is not None


def test_without_upload_times_entries_drop_theirs_and_the_files_keep_them() -> None:
    items = history(12)
    page = ProjectPage.read(
        DEMO, body(items), SIMPLE_JSON, None, url=PAGE, mirror="m", upload_times=False
    )
    assert page.entries
    assert all(e.upload_time is None for e in page.entries)
    # a release made whole, from the first read or from the kept body, has its files' times
    assert page.release_files("1.11") == [f for f in eager(items) if f.version == "1.11"]
    assert page.release_files("1.0") == [f for f in eager(items) if f.version == "1.0"]
    assert all(f.upload_time is not None for f in page.release_files("1.0"))


def test_a_release_is_compared_as_a_version() -> None:
    page = read(history(3))
    assert [f.filename for f in page.release_files("1.2.0")] == [
        f.filename for f in page.release_files("1.2")
    ]
    assert page.release_files("7.0") == []
    assert page.release_files("not a version") == []


def test_warnings_are_given_once_when_read_not_again_when_a_release_is_made(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        page = read(history(20))
        warned = [r.getMessage() for r in caplog.records]
        caplog.clear()
        page.release_files("1.0")  # made from the kept body
        assert [r.getMessage() for r in caplog.records] == []
    assert any("unsafe file name" in m for m in warned)
    assert any("file URLs" in m for m in warned)


def test_a_name_listed_twice_with_other_contents_refuses_the_page() -> None:
    items = history(2)
    items.append(entry("demo-1.0.tar.gz", 555))  # other sha256 under a name already listed
    with pytest.raises(ValueError, match="listed twice"):
        read(items)


def test_keeping_some_entries_keeps_only_their_files() -> None:
    page = read(history(12))
    kept = page.keeping(e for e in page.entries if e.version in {"1.0", "1.11"})
    assert {f.version for f in kept.files} == {"1.0", "1.11"}
    assert kept.release_files("1.5") == []
    assert [f.filename for f in kept.release_files("1.0")] == [
        f.filename for f in page.release_files("1.0")
    ]


def test_a_page_of_made_files_answers_the_same_questions() -> None:
    files = eager(history(3))
    page = ProjectPage(DEMO, files, "m", PAGE)
    assert page.entries == tuple(files)
    assert page.release_files("1.1") == [f for f in files if f.version == "1.1"]
    assert page.keeping(f for f in files if f.kind == "sdist").files == tuple(
        f for f in files if f.kind == "sdist"
    )


def test_the_body_is_read_again_only_for_releases_not_made_yet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = read(history(40))
    reads = []
    original = page_files._Body.items

    def counted(self: Any, url: str) -> Any:
        reads.append(url)
        return original(self, url)

    monkeypatch.setattr(page_files._Body, "items", counted)
    page.release_files("1.39")  # the newest ones are made when the page is read
    page.release_files(f"1.{40 - page_files.RELEASES_AT_READ}")
    assert reads == []
    page.release_files(f"1.{39 - page_files.RELEASES_AT_READ}")  # the next older one is not
    assert len(reads) == 1
    page.release_files("1.20")
    page.release_files("1.19")  # in the same batch as 1.20
    assert len(reads) == 2


def test_a_release_made_later_takes_each_name_s_entry_that_was_kept() -> None:
    """An entry is found again by its name: the first one with a usable URL, as when the
    page was read (an earlier one with an unusable URL, or a repeat, is not it)."""
    items = history(20)
    good = dict(items[0])  # demo-1.0.tar.gz, listed first with an unusable URL
    items[0] = {**good, "url": "file:///etc/demo-1.0.tar.gz"}
    items.append(good)
    items.append(dict(good))  # and once more, the same file
    page = read(items)
    assert [e.filename for e in page.entries].count("demo-1.0.tar.gz") == 1
    made = page.release_files("1.0")  # an old release: made from the kept body
    sdists = [f for f in made if f.filename == "demo-1.0.tar.gz"]
    assert [f.url for f in sdists] == [good["url"]]
    assert [f.filename for f in made] == [f.filename for f in eager(items) if f.version == "1.0"]
