"""A second plan of an unchanged set revalidates its pages and resolves nothing (issue 18), and
the pages and plans kept between runs never change what a plan chooses.

Through the real command line (in-process), against a loopback index that answers conditional
page requests with 304.  The reference manifest comes from ``--refresh``, which reads every page
in full and resolves from scratch: the path without any of the kept state.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pypidl.cli import main
from pypidl.plan.planner import Planner
from tests.lib.server import IndexServer
from tests.lib.wheels import make_pkg_info_sdist, make_sdist, make_wheel

TARGETS = ["--python-version", "3.8", "--python-version", "3.12", "--platform", "linux-x86_64",
           "--platform", "win-amd64"]  # fmt: skip


@pytest.fixture
def index(index_server: Callable[..., IndexServer], wheel_dir: Path) -> IndexServer:
    """app -> lib (>=1), lib 2.0 needs Python 3.10; win-only on Windows; tool is an sdist."""
    server = index_server()
    server.add_file(
        make_wheel(
            wheel_dir,
            "app",
            "1.0",
            requires_dist=["lib>=1", 'win-only; sys_platform == "win32"', "tool"],
        )
    )
    server.add_file(make_wheel(wheel_dir, "lib", "1.0"))
    server.add_file(
        make_wheel(wheel_dir, "lib", "2.0", requires_python=">=3.10"), requires_python=">=3.10"
    )
    server.add_file(make_wheel(wheel_dir, "win-only", "1.0"))
    server.add_file(make_sdist(wheel_dir, "tool", "0.5"))
    return server


def plan(index: IndexServer, out: Path, *extra: str) -> dict[str, Any]:
    reqs = out.parent / "requirements.txt"
    reqs.write_text("app\n", encoding="utf-8")
    code = main(
        ["plan", "-r", str(reqs), "-i", index.simple_url, "-o", str(out), "-q", *TARGETS, *extra]
    )
    assert code == 0
    data: dict[str, Any] = json.loads(out.read_text())
    data.pop("created")
    return data


def chosen(manifest: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["project"], f["filename"]) for f in manifest["files"]}


def test_the_second_plan_asks_conditionally_and_gives_the_same_manifest(
    index: IndexServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = plan(index, tmp_path / "reference.json", "--refresh")
    assert ("lib", "lib-1.0-py3-none-any.whl") in chosen(reference)  # 3.8
    assert ("lib", "lib-2.0-py3-none-any.whl") in chosen(reference)  # 3.12
    index.clear_requests()
    first = plan(index, tmp_path / "first.json")
    assert first == reference
    assert all("If-None-Match" not in r.headers for r in index.requests_matching("/simple/*"))

    index.clear_requests()

    def no_resolution(*_args: object) -> None:
        raise AssertionError("resolved again")

    monkeypatch.setattr(Planner, "_plan", no_resolution)
    second = plan(index, tmp_path / "second.json")
    assert second == reference
    pages = index.requests_matching("/simple/*")
    assert {r.path for r in pages} == {f"/simple/{p}/" for p in ("app", "lib", "win-only", "tool")}
    assert all("If-None-Match" in r.headers for r in pages)
    # nothing but the pages: no metadata, no sdist read, no resolution's requests
    assert index.requests == pages


def test_a_changed_page_is_read_and_planned_again(
    index: IndexServer, tmp_path: Path, wheel_dir: Path
) -> None:
    plan(index, tmp_path / "first.json")
    index.add_file(make_wheel(wheel_dir, "lib", "1.5"))  # a release 3.8 takes from now on
    index.clear_requests()
    again = plan(index, tmp_path / "again.json")
    assert ("lib", "lib-1.5-py3-none-any.whl") in chosen(again)
    assert again == plan(index, tmp_path / "reference.json", "--refresh")
    # the pages that did not change were not sent again
    unchanged = [r for r in index.requests_matching("/simple/app/") if "If-None-Match" in r.headers]
    assert unchanged


def test_damaged_kept_pages_and_plans_are_not_trusted(
    index: IndexServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("PYPIDL_CACHE_DIR", str(cache))
    reference = plan(index, tmp_path / "first.json")
    kept = [p for p in (cache / "pages").rglob("*") if p.is_file()]
    kept += [p for p in (cache / "plans").rglob("*") if p.is_file()]
    assert len(kept) == 5  # four pages, one plan
    for path in kept:  # a byte changed in each: the entry's own sha256 no longer matches
        data = bytearray(path.read_bytes())
        data[-2] ^= 0x01
        path.write_bytes(bytes(data))
    index.clear_requests()
    assert plan(index, tmp_path / "second.json") == reference
    pages = index.requests_matching("/simple/*")
    assert pages
    assert all("If-None-Match" not in r.headers for r in pages)


@pytest.mark.parametrize("kept", [True, False], ids=["warnings-only", "with-an-error"])
def test_a_plan_is_kept_when_its_problems_follow_from_the_pages(
    index_server: Callable[..., IndexServer],
    wheel_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kept: bool,
) -> None:
    """A warning the pages decide (an sdist whose dependencies are known only after a build) is
    the same next time: the plan is kept with it.  An error (a project no index has) may not be:
    the next plan tries again."""
    server = index_server()
    server.add_file(make_wheel(wheel_dir, "app", "1.0", requires_dist=["srconly"]))
    server.add_file(
        make_pkg_info_sdist(
            wheel_dir, "srconly", "1.0", "Metadata-Version: 2.1\nName: srconly\nVersion: 1.0\n\n"
        )
    )
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("app\n" if kept else "app\nnot-on-the-index\n", encoding="utf-8")
    argv = ["plan", "-r", str(reqs), "-i", server.simple_url, "-q", "--no-build-deps",
            "--python-version", "3.12", "--platform", "linux-x86_64"]  # fmt: skip

    def run(out: Path) -> dict[str, Any]:
        assert main([*argv, "-o", str(out)]) == (0 if kept else 1)
        data: dict[str, Any] = json.loads(out.read_text())
        data.pop("created")
        return data

    first = run(tmp_path / "first.json")
    severities = {p["severity"] for p in first["problems"]}
    assert severities == ({"warning"} if kept else {"warning", "error"})
    resolved_again: list[bool] = []
    original = Planner._plan

    def counted(self: Planner, *args: Any) -> Any:
        resolved_again.append(True)
        return original(self, *args)

    monkeypatch.setattr(Planner, "_plan", counted)
    assert run(tmp_path / "second.json") == first
    assert resolved_again == ([] if kept else [True])
