"""The index builder: pages rendered from the catalog, sidecars, rewrites, pruning, serve, CLI."""

from __future__ import annotations

import hashlib
import html.parser
import http.client
import importlib.util
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pypidl._time import pep700_time
from pypidl.cli import main
from pypidl.errors import BadInputError
from pypidl.store.catalog import Catalog
from pypidl.store.index_builder import build_index
from pypidl.store.serve import choose_media_type, make_server
from tests.lib.interrupts import default_sigint
from tests.lib.mirror import add_to_mirror
from tests.lib.wheels import make_sdist, make_wheel, wheel_metadata

JSON_TYPE = "application/vnd.pypi.simple.v1+json"


class _Anchors(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []
        self.meta: dict[str, str | None] = {}
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))
        elif tag == "meta":
            d = dict(attrs)
            self.meta[d.get("name") or ""] = d.get("content")


def parse_html(path: Path) -> _Anchors:
    parser = _Anchors()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture
def mirror(tmp_path: Path, wheel_dir: Path) -> Path:
    root = tmp_path / "mirror"
    add_to_mirror(root, make_wheel(wheel_dir, "Foo.Bar", "1.9"), upload_time="2024-03-01T10:00:00Z")
    add_to_mirror(
        root,
        make_wheel(wheel_dir, "Foo.Bar", "1.10", requires_python=">=3.8,<4"),
        requires_python=">=3.8,<4",
        upload_time="2024-03-02T10:00:00.5+02:00",
    )
    add_to_mirror(
        root,
        make_wheel(wheel_dir, "Foo.Bar", "2.0"),
        yanked=True,
        yanked_reason='broken "<script>" & more',
    )
    add_to_mirror(root, make_sdist(wheel_dir, "Foo.Bar", "2.0"), yanked=True)
    add_to_mirror(root, make_wheel(wheel_dir, "aaa", "0.1"))
    return root


@pytest.fixture
def builder_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture the builder's records even when the CLI stopped 'pypidl' from propagating."""
    logger = logging.getLogger("pypidl.store.index_builder")
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    yield caplog
    logger.removeHandler(caplog.handler)


def test_html_page_carries_every_pep_attribute(mirror: Path) -> None:
    report = build_index(mirror)
    assert (report.projects, report.files, report.sidecars_written) == (2, 5, 4)

    page = parse_html(mirror / "simple" / "foo-bar" / "index.html")
    assert page.doctype == "DOCTYPE html"
    assert page.meta["pypi:repository-version"] == "1.1"
    names = [a["href"].split("#")[0].rsplit("/", 1)[1] for a in page.anchors]  # type: ignore[union-attr]
    # version order (1.9 < 1.10 < 2.0), then filename
    assert names == [
        "foo_bar-1.9-py3-none-any.whl",
        "foo_bar-1.10-py3-none-any.whl",
        "foo_bar-2.0-py3-none-any.whl",
        "foo_bar-2.0.tar.gz",
    ]
    by_name = dict(zip(names, page.anchors))
    for name, anchor in by_name.items():
        path = mirror / "packages" / "foo-bar" / name
        assert anchor["href"] == f"../../packages/foo-bar/{name}#sha256={_sha(path.read_bytes())}"
    newer = by_name["foo_bar-1.10-py3-none-any.whl"]
    assert newer["data-requires-python"] == ">=3.8,<4"
    assert "data-yanked" not in newer
    assert by_name["foo_bar-2.0-py3-none-any.whl"]["data-yanked"] == 'broken "<script>" & more'
    assert by_name["foo_bar-2.0.tar.gz"]["data-yanked"] == ""
    # escaped in the raw text, not only after parsing
    raw = (mirror / "simple" / "foo-bar" / "index.html").read_text(encoding="utf-8")
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in raw
    assert "<script>" not in raw

    wheel = mirror / "packages" / "foo-bar" / "foo_bar-1.10-py3-none-any.whl"
    sidecar = wheel.with_name(wheel.name + ".metadata")
    assert sidecar.read_bytes() == wheel_metadata(wheel)
    assert newer["data-core-metadata"] == f"sha256={_sha(sidecar.read_bytes())}"
    assert newer["data-dist-info-metadata"] == newer["data-core-metadata"]
    assert "data-core-metadata" not in by_name["foo_bar-2.0.tar.gz"]
    assert not (mirror / "packages" / "foo-bar" / "foo_bar-2.0.tar.gz.metadata").exists()


def test_json_page_and_root_pages(mirror: Path) -> None:
    build_index(mirror)
    doc = json.loads((mirror / "simple" / "foo-bar" / "index.json").read_text(encoding="utf-8"))
    assert doc["meta"] == {"api-version": "1.1"}
    assert doc["name"] == "foo-bar"
    assert doc["versions"] == ["1.9", "1.10", "2.0"]
    files = {f["filename"]: f for f in doc["files"]}
    assert list(files) == [
        "foo_bar-1.9-py3-none-any.whl",
        "foo_bar-1.10-py3-none-any.whl",
        "foo_bar-2.0-py3-none-any.whl",
        "foo_bar-2.0.tar.gz",
    ]
    old = files["foo_bar-1.9-py3-none-any.whl"]
    path = mirror / "packages" / "foo-bar" / "foo_bar-1.9-py3-none-any.whl"
    assert old["url"] == "../../packages/foo-bar/foo_bar-1.9-py3-none-any.whl"
    assert old["hashes"] == {"sha256": _sha(path.read_bytes())}
    assert old["size"] == path.stat().st_size
    assert old["requires-python"] is None
    assert old["yanked"] is False
    assert old["upload-time"] == "2024-03-01T10:00:00.000000Z"
    sidecar = path.with_name(path.name + ".metadata").read_bytes()
    assert old["core-metadata"] == {"sha256": _sha(sidecar)}
    assert "dist-info-metadata" not in old  # PEP 714: pip 22.3-23.1 crash on the old key in JSON
    newer = files["foo_bar-1.10-py3-none-any.whl"]
    assert newer["requires-python"] == ">=3.8,<4"
    assert newer["upload-time"] == "2024-03-02T08:00:00.500000Z"  # converted to UTC
    assert files["foo_bar-2.0-py3-none-any.whl"]["yanked"] == 'broken "<script>" & more'
    sdist = files["foo_bar-2.0.tar.gz"]
    assert sdist["yanked"] is True
    assert sdist["core-metadata"] is False
    assert "upload-time" not in sdist

    root = json.loads((mirror / "simple" / "index.json").read_text(encoding="utf-8"))
    assert root == {
        "meta": {"api-version": "1.1"},
        "projects": [{"name": "aaa"}, {"name": "foo-bar"}],
    }
    anchors = parse_html(mirror / "simple" / "index.html").anchors
    assert [a["href"] for a in anchors] == ["aaa/", "foo-bar/"]


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_pages_and_sidecars_are_readable_by_a_web_server(mirror: Path) -> None:
    build_index(mirror)
    page = mirror / "simple" / "aaa" / "index.html"
    sidecar = mirror / "packages" / "aaa" / "aaa-0.1-py3-none-any.whl.metadata"
    for path in (page, mirror / "simple" / "index.json", sidecar):
        assert path.stat().st_mode & 0o777 == 0o644, path
    page.chmod(0o600)  # as an older build left it: fixed even though the text is unchanged
    sidecar.chmod(0o600)
    assert build_index(mirror).pages_written == 0
    assert page.stat().st_mode & 0o444 == 0o444
    assert sidecar.stat().st_mode & 0o444 == 0o444


def test_unchanged_rebuild_writes_nothing(mirror: Path) -> None:
    first = build_index(mirror)
    assert (first.pages_written, first.pages_unchanged) == (6, 0)
    page = mirror / "simple" / "foo-bar" / "index.json"
    before = page.stat().st_mtime_ns
    second = build_index(mirror)
    assert (second.pages_written, second.pages_unchanged, second.sidecars_written) == (0, 6, 0)
    assert page.stat().st_mtime_ns == before


def test_runs_accumulate_and_only_changed_pages_are_rewritten(
    mirror: Path, wheel_dir: Path
) -> None:
    build_index(mirror)
    # a second run with another requirement set adds a project and a release
    add_to_mirror(mirror, make_wheel(wheel_dir / "b", "zed", "3.0"))
    add_to_mirror(mirror, make_wheel(wheel_dir / "b", "aaa", "0.2"))
    report = build_index(mirror)
    # both root pages, aaa's two pages, zed's two pages; foo-bar untouched
    assert (report.pages_written, report.pages_unchanged) == (6, 2)
    root = json.loads((mirror / "simple" / "index.json").read_text(encoding="utf-8"))
    assert [p["name"] for p in root["projects"]] == ["aaa", "foo-bar", "zed"]
    aaa = json.loads((mirror / "simple" / "aaa" / "index.json").read_text(encoding="utf-8"))
    assert aaa["versions"] == ["0.1", "0.2"]


def test_deleted_files_and_empty_projects_leave_the_index(
    mirror: Path, builder_log: pytest.LogCaptureFixture
) -> None:
    build_index(mirror)
    packages = mirror / "packages"
    (packages / "foo-bar" / "foo_bar-1.9-py3-none-any.whl").unlink()
    (packages / "aaa" / "aaa-0.1-py3-none-any.whl").unlink()
    report = build_index(mirror)

    assert report.removed_projects == ["aaa"]
    assert sorted(report.dropped_files) == [
        "aaa/aaa-0.1-py3-none-any.whl",
        "foo-bar/foo_bar-1.9-py3-none-any.whl",
    ]
    assert not (mirror / "simple" / "aaa").exists()
    root = json.loads((mirror / "simple" / "index.json").read_text(encoding="utf-8"))
    assert [p["name"] for p in root["projects"]] == ["foo-bar"]
    doc = json.loads((mirror / "simple" / "foo-bar" / "index.json").read_text(encoding="utf-8"))
    assert "foo_bar-1.9-py3-none-any.whl" not in {f["filename"] for f in doc["files"]}
    assert doc["versions"] == ["1.10", "2.0"]
    # the orphaned sidecar went with its wheel, and the catalog was compacted
    assert not (packages / "foo-bar" / "foo_bar-1.9-py3-none-any.whl.metadata").exists()
    assert "foo_bar-1.9-py3-none-any.whl" not in Catalog(mirror).load("foo-bar")
    assert Catalog(mirror).projects() == ["foo-bar"]
    assert "missing on disk" in builder_log.text


def test_changed_files_are_rehashed(mirror: Path, builder_log: pytest.LogCaptureFixture) -> None:
    wheel = mirror / "packages" / "foo-bar" / "foo_bar-1.9-py3-none-any.whl"
    tampered = mirror / "packages" / "foo-bar" / "foo_bar-1.10-py3-none-any.whl"
    os.utime(wheel, ns=(1, 1))  # same bytes, new stat: still listed, catalog refreshed
    tampered.write_bytes(tampered.read_bytes() + b"junk")
    report = build_index(mirror)
    assert report.dropped_files == ["foo-bar/foo_bar-1.10-py3-none-any.whl"]
    assert Catalog(mirror).load("foo-bar")[wheel.name].mtime_ns == 1
    doc = json.loads((mirror / "simple" / "foo-bar" / "index.json").read_text(encoding="utf-8"))
    names = {f["filename"] for f in doc["files"]}
    assert wheel.name in names
    assert tampered.name not in names
    assert "the catalog verified" in builder_log.text


def test_unreadable_wheel_gets_no_sidecar(
    tmp_path: Path, wheel_dir: Path, builder_log: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "m"
    broken = wheel_dir / "bad-1.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip at all")
    add_to_mirror(root, broken)
    (root / "packages" / "bad" / ".pypidl-bad-2.0-py3-none-any.whl.part").write_bytes(b"partial")
    report = build_index(root)
    assert (report.files, report.sidecars_written) == (1, 0)
    assert not (root / "packages" / "bad" / (broken.name + ".metadata")).exists()
    doc = json.loads((root / "simple" / "bad" / "index.json").read_text(encoding="utf-8"))
    assert [f["filename"] for f in doc["files"]] == [broken.name]
    assert doc["files"][0]["core-metadata"] is False
    assert "data-core-metadata" not in (root / "simple" / "bad" / "index.html").read_text()
    assert "cannot read its METADATA" in builder_log.text


def test_sidecar_is_reused_and_refreshed_when_the_wheel_is_replaced(mirror: Path) -> None:
    build_index(mirror)
    sidecar = mirror / "packages" / "aaa" / "aaa-0.1-py3-none-any.whl.metadata"
    sidecar.write_bytes(b"Metadata-Version: 2.1\nName: aaa\nVersion: 0.1\n")
    os.utime(sidecar, ns=(2**62, 2**62))  # newer than the wheel: reused as is
    build_index(mirror)
    doc = json.loads((mirror / "simple" / "aaa" / "index.json").read_text(encoding="utf-8"))
    assert doc["files"][0]["core-metadata"] == {"sha256": _sha(sidecar.read_bytes())}
    os.utime(sidecar, ns=(1, 1))  # older than the wheel: written again from the wheel
    assert build_index(mirror).sidecars_written == 1
    assert sidecar.read_bytes() == wheel_metadata(sidecar.with_suffix(""))


def test_pypidl_pages_replace_a_dir2pi_index(mirror: Path) -> None:
    report = build_index(mirror, backend="dir2pi")
    assert (report.backend, report.projects, report.files) == ("dir2pi", 2, 5)
    project = mirror / "simple" / "foo-bar"
    link = project / "foo_bar-1.9-py3-none-any.whl"
    assert link.is_symlink()
    assert os.readlink(link) == os.path.join("..", "..", "packages", "foo-bar", link.name)
    assert link.read_bytes() == (mirror / "packages" / "foo-bar" / link.name).read_bytes()
    assert not (project / "index.json").exists()
    assert not list(mirror.glob(".pypidl-*"))  # the staging area is gone

    build_index(mirror)
    assert sorted(p.name for p in project.iterdir()) == ["index.html", "index.json"]


def test_bad_input() -> None:
    with pytest.raises(BadInputError, match="unknown index backend"):
        build_index(".", backend="nope")
    with pytest.raises(BadInputError, match="not a directory"):
        build_index("/nonexistent/mirror")


@pytest.mark.parametrize(
    ("module", "hint"),
    [("libpip2pi", "pypidl[dir2pi]"), ("pkg_resources", "setuptools<82")],
)
def test_dir2pi_missing_is_bad_input(
    mirror: Path, monkeypatch: pytest.MonkeyPatch, module: str, hint: str
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == module else real(name, *a),
    )
    with pytest.raises(BadInputError) as info:
        build_index(mirror, backend="dir2pi")
    assert hint in (info.value.hint or "")
    assert not (mirror / "simple").exists()


def test_upload_time_formats() -> None:
    t = pep700_time
    assert t("2024-01-02T03:04:05Z") == "2024-01-02T03:04:05.000000Z"
    assert t("2024-01-02T03:04:05.123456789Z") == "2024-01-02T03:04:05.123456Z"
    assert t("2024-01-02 03:04:05-0130") == "2024-01-02T04:34:05.000000Z"
    assert t("2024-01-02T03:04:05") == "2024-01-02T03:04:05.000000Z"
    assert t("yesterday") is None
    assert t("2024-02-30T00:00:00Z") is None
    assert t(None) is None


# -- the CLI --------------------------------------------------------------------------------


def test_cli_index(mirror: Path) -> None:
    assert main(["index", str(mirror)]) == 0
    assert (mirror / "simple" / "foo-bar" / "index.json").is_file()
    assert main(["index", str(mirror / "nope")]) == 2
    assert main(["index", str(mirror), "--index-backend", "bogus"]) == 2


# -- pypidl serve ---------------------------------------------------------------------------


@pytest.fixture
def served(mirror: Path) -> Iterator[tuple[int, list[tuple[str, str, int]]]]:
    build_index(mirror)
    seen: list[tuple[str, str, int]] = []
    server = make_server(mirror, port=0, hook=lambda *r: seen.append(r))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()
    thread.join(5)


def _get(port: int, path: str, accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Accept": accept} if accept else {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_serve_negotiates_simple_pages(mirror: Path, served: tuple[int, list[Any]]) -> None:
    port, seen = served
    pip_accept = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
    status, headers, body = _get(port, "/simple/foo-bar/", pip_accept)
    assert status == 200
    assert headers["content-type"] == JSON_TYPE
    assert headers["vary"] == "Accept"
    assert json.loads(body)["name"] == "foo-bar"

    status, headers, body = _get(
        port, "/simple/foo-bar/", "application/vnd.pypi.simple.latest+json"
    )
    assert headers["content-type"] == JSON_TYPE

    status, headers, body = _get(port, "/simple/", None)
    assert (status, headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert body == (mirror / "simple" / "index.html").read_bytes()

    status, headers, _ = _get(port, "/simple/", "application/vnd.pypi.simple.v1+html")
    assert headers["content-type"] == "application/vnd.pypi.simple.v1+html"
    assert _get(port, "/simple/", "image/png")[0] == 406
    assert _get(port, "/simple/foo-bar")[0] == 301  # directories need their slash
    assert ("GET", "/simple/foo-bar/", 200) in seen


def test_serve_files_and_refusals(mirror: Path, served: tuple[int, list[Any]]) -> None:
    port, _ = served
    wheel = "/packages/aaa/aaa-0.1-py3-none-any.whl"
    status, headers, body = _get(port, wheel)
    assert (status, headers["content-type"]) == (200, "application/zip")
    assert body == (mirror / wheel.lstrip("/")).read_bytes()
    status, headers, body = _get(port, wheel + ".metadata")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert body.startswith(b"Metadata-Version")
    assert _get(port, "/.pypidl/catalog/aaa.jsonl")[0] == 404
    assert _get(port, "/../../../etc/passwd")[0] == 404
    assert _get(port, "/packages/%2e%2e/%2e%2e/%2e%2e/etc/passwd")[0] == 404
    outside = mirror.parent / "secret.txt"
    outside.write_text("secret")
    (mirror / "packages" / "link.txt").symlink_to(outside)
    assert _get(port, "/packages/link.txt")[0] == 404


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/html"),
        ("*/*", "text/html"),
        ("text/*", "text/html"),
        (f"{JSON_TYPE}", JSON_TYPE),
        (f"text/html;q=0.5, {JSON_TYPE};q=0.6", JSON_TYPE),
        (f"application/*, {JSON_TYPE};q=0", "application/vnd.pypi.simple.v1+html"),
        ("application/xml", None),
    ],
)
def test_choose_media_type(accept: str | None, expected: str | None) -> None:
    available = ["text/html", "application/vnd.pypi.simple.v1+html", JSON_TYPE]
    assert choose_media_type(accept, available) == expected


def test_make_server_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(BadInputError):
        make_server(tmp_path / "missing", port=0)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.skipif(os.name == "nt", reason="SIGINT to a child process is POSIX")
def test_cli_serve_stops_cleanly_on_ctrl_c(mirror: Path) -> None:
    build_index(mirror)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pypidl", "serve", str(mirror), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/simple/", line)
        assert match, line
        status, headers, _ = _get(int(match.group(1)), "/simple/aaa/", JSON_TYPE)
        assert (status, headers["content-type"]) == (200, JSON_TYPE)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert "Stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
