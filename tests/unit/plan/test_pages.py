"""plan.pages: PEP 691 / PEP 503 parsing on hand-written pages, and fetching from loopback indexes."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from packaging.tags import Tag
from packaging.utils import NormalizedName

from pypidl._simple import parse_page
from pypidl.config import NetworkSettings, user_agent
from pypidl.errors import RemoteIndexError
from pypidl.plan.page_files import page_entries
from pypidl.plan.pages import (
    IndexClient,
    ProjectNotFound,
    RemoteFile,
    files_of,
    new_session,
)
from pypidl.session import SIMPLE_JSON
from pypidl.sources import Mirror
from tests.lib.server import Delay, IndexServer, Status
from tests.lib.wheels import make_sdist, make_wheel

DEMO = NormalizedName("demo")
PAGE = "http://127.0.0.1:1/simple/demo/"
SHA = "ab" * 32
META_SHA = "cd" * 32
NET = NetworkSettings(user_agent=user_agent(), retries=0, connect_timeout=5, read_timeout=10)


def parse_json_page(data: Any, url: str, name: NormalizedName, mirror: str) -> list[RemoteFile]:
    """A JSON page's files, through the one page reader."""
    return files_of(parse_page(json.dumps(data).encode(), SIMPLE_JSON, url), name, mirror)


def parse_html_page(text: str, url: str, name: NormalizedName, mirror: str) -> list[RemoteFile]:
    return files_of(parse_page(text.encode(), "text/html", url), name, mirror)


def json_page(*files: dict[str, Any]) -> dict[str, Any]:
    return {"meta": {"api-version": "1.1"}, "name": "demo", "files": list(files)}


def jfile(filename: str, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "filename": filename,
        "url": f"../../packages/{filename}",
        "hashes": {"sha256": SHA},
    }
    data.update(over)
    return data


def one_json(**over: Any) -> RemoteFile:
    files = parse_json_page(json_page(jfile("demo-1.0.tar.gz", **over)), PAGE, DEMO, "m")
    assert len(files) == 1
    return files[0]


def html_page(*anchors: str, head: str = "") -> str:
    return (
        f"<!DOCTYPE html><html><head>{head}<title>Links for demo</title></head><body>"
        + "<br>\n".join(anchors)
        + "</body></html>"
    )


def one_html(anchor: str, head: str = "") -> RemoteFile:
    files = parse_html_page(html_page(anchor, head=head), PAGE, DEMO, "m")
    assert len(files) == 1
    return files[0]


# --------------------------------------------------------------------------- PEP 691 JSON


def test_json_file_fields() -> None:
    rf = one_json(
        **{
            "requires-python": ">=3.8",
            "size": 1234,
            "upload-time": "2024-01-01T00:00:00.000000Z",
            "core-metadata": {"sha256": META_SHA},
        }
    )
    assert rf == RemoteFile(
        project=DEMO,
        filename="demo-1.0.tar.gz",
        url="http://127.0.0.1:1/packages/demo-1.0.tar.gz",
        version="1.0",
        kind="sdist",
        sha256=SHA,
        requires_python=">=3.8",
        size=1234,
        upload_time="2024-01-01T00:00:00.000000Z",
        core_metadata_sha256=META_SHA,
        has_core_metadata=True,
        mirror="m",
    )


def test_json_wheel_tags_and_version() -> None:
    files = parse_json_page(
        json_page(jfile("Demo-1.0.post1-cp311-cp311-manylinux_2_17_x86_64.whl")), PAGE, DEMO, "m"
    )
    assert files[0].kind == "wheel"
    assert files[0].version == "1.0.post1"
    assert files[0].tags == frozenset({Tag("cp311", "cp311", "manylinux_2_17_x86_64")})


@pytest.mark.parametrize(
    ("hashes", "sha256"),
    [
        pytest.param({"sha256": SHA.upper()}, SHA, id="lower-cased"),
        pytest.param({"md5": "0" * 32}, None, id="md5-ignored"),
        pytest.param({"md5": "0" * 32, "sha256": SHA}, SHA, id="sha256-kept"),
        pytest.param({"sha512": "1" * 128}, None, id="only-sha256-kept"),
        pytest.param({}, None, id="none"),
        pytest.param({"sha256": "not-a-digest"}, None, id="not-hex"),
        pytest.param({"sha256": SHA[:-2]}, None, id="short"),
        pytest.param({"sha256": 5}, None, id="not-a-string"),
        pytest.param(["sha256", SHA], None, id="malformed"),
    ],
)
def test_json_hashes(hashes: Any, sha256: str | None) -> None:
    assert one_json(hashes=hashes).sha256 == sha256


@pytest.mark.parametrize(
    ("yanked", "is_yanked", "reason"),
    [
        (False, False, None),
        (True, True, None),
        ("broken on 3.12", True, "broken on 3.12"),
    ],
)
def test_json_yanked(yanked: Any, is_yanked: bool, reason: str | None) -> None:
    rf = one_json(yanked=yanked)
    assert (rf.yanked, rf.yanked_reason) == (is_yanked, reason)


@pytest.mark.parametrize(
    ("fields", "has", "sha"),
    [
        pytest.param({"core-metadata": {"sha256": META_SHA}}, True, META_SHA, id="dict"),
        pytest.param({"core-metadata": True}, True, None, id="true"),
        pytest.param({"core-metadata": False}, False, None, id="false"),
        pytest.param({"dist-info-metadata": {"sha256": META_SHA}}, True, META_SHA, id="pep658-old"),
        pytest.param({}, False, None, id="absent"),
        pytest.param({"core-metadata": {"sha256": "zz"}}, True, None, id="bad-digest"),
    ],
)
def test_json_core_metadata(fields: dict[str, Any], has: bool, sha: str | None) -> None:
    rf = one_json(**fields)
    assert (rf.has_core_metadata, rf.core_metadata_sha256) == (has, sha)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "demo-1.0.tar.gz", "http://127.0.0.1:1/simple/demo/demo-1.0.tar.gz", id="relative"
        ),
        pytest.param(
            "/files/demo-1.0.tar.gz", "http://127.0.0.1:1/files/demo-1.0.tar.gz", id="root"
        ),
        pytest.param(
            "http://user:secret@127.0.0.1:2/f/demo-1.0.tar.gz#sha256=00",
            "http://127.0.0.1:2/f/demo-1.0.tar.gz",
            id="credentials-and-fragment",
        ),
        pytest.param(
            "http://127.0.0.1:2/f/demo-1.0.tar.gz?token=1#frag",
            "http://127.0.0.1:2/f/demo-1.0.tar.gz?token=1",
            id="query-kept",
        ),
    ],
)
def test_json_urls(url: str, expected: str) -> None:
    assert one_json(url=url).url == expected


@pytest.mark.parametrize(
    "filename",
    [
        "other-1.0.tar.gz",  # another project's file
        "demo-1.0-py3.8.egg",
        "demo-1.0.win32.exe",
        "demo-1.0.tar.bz2",
        "demo-1.0.whl",  # not a wheel name
        "demo-1.0-py3-none.whl",
        "demo-notaversion-py3-none-any.whl",
        "demo.tar.gz",
    ],
)
def test_json_ignores_files_it_does_not_mirror(filename: str) -> None:
    page = json_page(jfile(filename), jfile("demo-2.0.tar.gz"))
    assert [f.filename for f in parse_json_page(page, PAGE, DEMO, "m")] == ["demo-2.0.tar.gz"]


@pytest.mark.parametrize(
    "filename", ["../demo-1.0.tar.gz", "a/demo-1.0.tar.gz", ".demo-1.0.tar.gz"]
)
def test_json_unsafe_names_are_ignored_with_a_warning(
    filename: str, caplog: pytest.LogCaptureFixture
) -> None:
    page = json_page(jfile(filename), jfile("demo-2.0.tar.gz"))
    with caplog.at_level(logging.WARNING, logger="pypidl.plan.pages"):
        files = parse_json_page(page, PAGE, DEMO, "m")
    assert [f.filename for f in files] == ["demo-2.0.tar.gz"]
    assert "unsafe file name" in caplog.text
    assert repr(filename) in caplog.text


@pytest.mark.parametrize("url", ["http://[::1/demo-1.0.tar.gz", "http://[zz]/demo-1.0.tar.gz"])
def test_a_malformed_file_url_skips_that_file_not_the_page(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    page = json_page(jfile("demo-1.0.tar.gz", url=url), jfile("demo-2.0.tar.gz"))
    with caplog.at_level(logging.WARNING, logger="pypidl._simple"):
        files = parse_json_page(page, PAGE, DEMO, "m")
        entries = page_entries(parse_page(json.dumps(page).encode(), SIMPLE_JSON, PAGE), DEMO, "m")
    assert [f.filename for f in files] == ["demo-2.0.tar.gz"]
    assert [e.filename for e in entries] == ["demo-2.0.tar.gz"]
    assert "ignoring demo-1.0.tar.gz" in caplog.text


@pytest.mark.parametrize("value", [5, ["x"], "", None])
def test_json_requires_python_must_be_text(value: Any) -> None:
    """What the manifest cannot hold is dropped here, not found when the manifest is loaded."""
    assert one_json(**{"requires-python": value}).requires_python is None


def test_json_skips_malformed_items_and_refuses_malformed_pages() -> None:
    page = json_page(jfile("demo-2.0.tar.gz"))
    page["files"] += ["x", {"filename": 5}, {"url": "x"}]
    assert len(parse_json_page(page, PAGE, DEMO, "m")) == 1
    with pytest.raises(ValueError, match="malformed"):
        parse_json_page({"files": "nope"}, PAGE, DEMO, "m")
    with pytest.raises(ValueError, match="malformed"):
        parse_json_page([], PAGE, DEMO, "m")


# --------------------------------------------------------------------------- PEP 503 HTML


def test_html_file_fields() -> None:
    rf = one_html(
        f'<a href="../../packages/demo-1.0.tar.gz#sha256={SHA}" data-requires-python="&gt;=3.8,!=3.9.*"'
        f' data-core-metadata="sha256={META_SHA}">demo-1.0.tar.gz</a>'
    )
    assert rf.url == "http://127.0.0.1:1/packages/demo-1.0.tar.gz"
    assert rf.sha256 == SHA
    assert rf.requires_python == ">=3.8,!=3.9.*"
    assert (rf.has_core_metadata, rf.core_metadata_sha256) == (True, META_SHA)
    assert (rf.yanked, rf.kind, rf.version, rf.size) == (False, "sdist", "1.0", None)


@pytest.mark.parametrize(
    ("fragment", "sha256"),
    [
        (f"#sha256={SHA}", SHA),
        (f"#sha256={SHA.upper()}", SHA),
        ("#md5=" + "0" * 32, None),
        ("#sha1=" + "0" * 40, None),
        ("", None),
    ],
)
def test_html_hash_fragment(fragment: str, sha256: str | None) -> None:
    assert one_html(f'<a href="/p/demo-1.0.tar.gz{fragment}">x</a>').sha256 == sha256


@pytest.mark.parametrize(
    ("attr", "is_yanked", "reason"),
    [
        ("", False, None),
        ("data-yanked", True, None),
        ('data-yanked=""', True, None),
        ('data-yanked="bad &amp; broken"', True, "bad & broken"),
    ],
)
def test_html_yanked(attr: str, is_yanked: bool, reason: str | None) -> None:
    rf = one_html(f'<a href="/p/demo-1.0.tar.gz" {attr}>demo-1.0.tar.gz</a>')
    assert (rf.yanked, rf.yanked_reason) == (is_yanked, reason)


@pytest.mark.parametrize(
    ("attr", "has", "sha"),
    [
        (f'data-core-metadata="sha256={META_SHA}"', True, META_SHA),
        (f'data-dist-info-metadata="sha256={META_SHA}"', True, META_SHA),
        ('data-dist-info-metadata="true"', True, None),
        ("data-core-metadata", False, None),  # no value at all: absent, as pip reads it
        ('data-core-metadata="false"', False, None),
        ("", False, None),
    ],
)
def test_html_core_metadata(attr: str, has: bool, sha: str | None) -> None:
    rf = one_html(f'<a href="/p/demo-1.0-py3-none-any.whl" {attr}>w</a>')
    assert (rf.has_core_metadata, rf.core_metadata_sha256) == (has, sha)


def test_html_base_href_and_relative_urls() -> None:
    files = parse_html_page(
        html_page(
            '<a href="demo-1.0.tar.gz">a</a>',
            '<a href="../up/demo-2.0.tar.gz">b</a>',
            '<a href="http://127.0.0.1:3/abs/demo-3.0.tar.gz">c</a>',
            head='<base href="http://127.0.0.1:2/files/x/">',
        ),
        PAGE,
        DEMO,
        "m",
    )
    assert [f.url for f in files] == [
        "http://127.0.0.1:2/files/x/demo-1.0.tar.gz",
        "http://127.0.0.1:2/files/up/demo-2.0.tar.gz",
        "http://127.0.0.1:3/abs/demo-3.0.tar.gz",
    ]


def test_html_relative_base_href() -> None:
    rf = one_html('<a href="demo-1.0.tar.gz">a</a>', head='<base href="/mirror/">')
    assert rf.url == "http://127.0.0.1:1/mirror/demo-1.0.tar.gz"


def test_html_strips_credentials_and_fragment_and_unquotes() -> None:
    rf = one_html(
        f'<a href="http://u:secret@127.0.0.1:2/p/demo-1.0%2Bcpu.tar.gz#sha256={SHA}">x</a>'
    )
    assert rf.url == "http://127.0.0.1:2/p/demo-1.0%2Bcpu.tar.gz"
    assert rf.filename == "demo-1.0+cpu.tar.gz"
    assert rf.version == "1.0+cpu"
    assert rf.sha256 == SHA


@pytest.mark.parametrize(
    "href", ["/p/..%2Fdemo-1.0.tar.gz", "/p/a%2Fdemo-1.0.tar.gz", "/p/.demo-1.0.tar.gz"]
)
def test_html_unsafe_names_are_ignored_with_a_warning(
    href: str, caplog: pytest.LogCaptureFixture
) -> None:
    page = html_page(f'<a href="{href}">x</a>', '<a href="/p/demo-2.0.tar.gz">y</a>')
    with caplog.at_level(logging.WARNING, logger="pypidl.plan.pages"):
        files = parse_html_page(page, PAGE, DEMO, "m")
    assert [f.filename for f in files] == ["demo-2.0.tar.gz"]
    assert "unsafe file name" in caplog.text


def test_html_ignores_foreign_eggs_installers_and_anchors_without_href() -> None:
    page = html_page(
        '<a href="/p/other-1.0.tar.gz">o</a>',
        '<a href="/p/demo-1.0-py2.7.egg">e</a>',
        '<a href="/p/demo-1.0.win-amd64.exe">i</a>',
        '<a href="/p/demo-1.0.whl">bad wheel</a>',
        "<a name=top>anchor</a>",
        '<a href="">empty</a>',
        '<a href="/p/demo-1.0-py3-none-any.whl">ok</a>',
    )
    assert [f.filename for f in parse_html_page(page, PAGE, DEMO, "m")] == [
        "demo-1.0-py3-none-any.whl"
    ]


# --------------------------------------------------------------------------- fetching


@pytest.fixture
def dists(wheel_dir: Path) -> Path:
    make_wheel(wheel_dir, "demo", "1.0", requires_python=">=3.8")
    make_wheel(wheel_dir, "demo", "2.0")
    make_wheel(wheel_dir, "other", "1.0")
    make_sdist(wheel_dir, "demo", "2.0")
    return wheel_dir


def served(factory: Callable[..., IndexServer], dists: Path, **kw: Any) -> IndexServer:
    srv = factory(**kw)
    srv.add_dir(dists)
    srv.add_file(dists / "demo-1.0-py3-none-any.whl", requires_python=">=3.8")
    return srv


def mirror(srv: IndexServer, name: str) -> Mirror:
    return Mirror(name, srv.simple_url)


def test_project_json_by_negotiation(index_server: Callable[..., IndexServer], dists: Path) -> None:
    srv = served(index_server, dists)
    page = IndexClient([mirror(srv, "one")], NET).project("Demo")
    assert page.name == "demo"
    assert page.mirror == "one"
    assert page.url == srv.simple_url + "demo/"
    assert sorted(f.filename for f in page.files) == [
        "demo-1.0-py3-none-any.whl",
        "demo-2.0-py3-none-any.whl",
        "demo-2.0.tar.gz",
    ]
    by_name = {f.filename: f for f in page.files}
    wheel = by_name["demo-1.0-py3-none-any.whl"]
    assert wheel.url == srv.file_url(wheel.filename)
    assert wheel.sha256 == next(s.sha256 for s in srv.files if s.filename == wheel.filename)
    assert wheel.requires_python == ">=3.8"
    assert wheel.has_core_metadata
    assert wheel.core_metadata_sha256
    assert wheel.size is not None  # only the JSON form carries sizes
    (request,) = srv.requests
    assert request.path == "/simple/demo/"
    assert request.headers["Accept"].startswith(SIMPLE_JSON)


def test_project_html_when_the_index_has_no_json(
    index_server: Callable[..., IndexServer], dists: Path
) -> None:
    srv = served(index_server, dists, json=False)
    page = IndexClient([mirror(srv, "one")], NET).project("demo")
    assert len(page.files) == 3
    assert all(f.size is None for f in page.files)  # parsed from HTML
    assert all(f.sha256 for f in page.files)
    assert {f.requires_python for f in page.files} == {">=3.8", None}


def test_first_mirror_wins(index_server: Callable[..., IndexServer], dists: Path) -> None:
    first, second = served(index_server, dists), served(index_server, dists)
    page = IndexClient([mirror(first, "first"), mirror(second, "second")], NET).project("demo")
    assert page.mirror == "first"
    assert {f.mirror for f in page.files} == {"first"}
    assert second.requests == []


def test_not_found_everywhere(index_server: Callable[..., IndexServer], dists: Path) -> None:
    a, b = served(index_server, dists), served(index_server, dists)
    client = IndexClient([mirror(a, "a"), mirror(b, "b")], NET)
    with pytest.raises(ProjectNotFound, match="no index has a project named 'missing'"):
        client.project("missing")
    assert len(a.requests) == len(b.requests) == 1


def test_a_down_mirror_falls_back(index_server: Callable[..., IndexServer], dists: Path) -> None:
    down, up = served(index_server, dists), served(index_server, dists)
    down.down = True
    page = IndexClient([mirror(down, "down"), mirror(up, "up")], NET).project("demo")
    assert page.mirror == "up"


def test_a_404_then_an_answer(index_server: Callable[..., IndexServer], dists: Path) -> None:
    empty = index_server()
    up = served(index_server, dists)
    page = IndexClient([mirror(empty, "empty"), mirror(up, "up")], NET).project("demo")
    assert page.mirror == "up"


def test_all_mirrors_down_names_each(index_server: Callable[..., IndexServer], dists: Path) -> None:
    a, b, c = (served(index_server, dists) for _ in range(3))
    a.down = True
    b.fail_always("/simple/*", Status(503))
    c.fail_always("/simple/*", Status(200, {"Content-Type": SIMPLE_JSON}, b"{not json"))
    client = IndexClient([mirror(a, "alpha"), mirror(b, "bravo"), mirror(c, "charlie")], NET)
    with pytest.raises(RemoteIndexError) as info:
        client.project("demo")
    assert not isinstance(info.value, ProjectNotFound)
    message = str(info.value)
    assert "alpha: connection failed" in message
    assert "bravo: 503" in message
    assert "charlie: " in message


def test_404_and_down_is_not_not_found(
    index_server: Callable[..., IndexServer], dists: Path
) -> None:
    """A project missing from one mirror may be on the one that is down: that is not a 404."""
    empty, down = index_server(), served(index_server, dists)
    down.down = True
    with pytest.raises(RemoteIndexError) as info:
        IndexClient([mirror(empty, "empty"), mirror(down, "down")], NET).project("demo")
    assert not isinstance(info.value, ProjectNotFound)
    assert "empty: 404" in str(info.value)


def test_projects_concurrently_with_failures(
    index_server: Callable[..., IndexServer], dists: Path
) -> None:
    srv = served(index_server, dists)
    srv.fail_always("/simple/*", Delay(0.4))
    client = IndexClient([mirror(srv, "one")], NET, workers=8)
    started = time.monotonic()
    pages = client.projects(["demo", "Other", "missing", "DEMO", "absent"])
    elapsed = time.monotonic() - started
    assert sorted(pages) == ["absent", "demo", "missing", "other"]
    assert not isinstance(pages["demo"], RemoteIndexError)
    assert not isinstance(pages["other"], RemoteIndexError)
    assert isinstance(pages["missing"], ProjectNotFound)
    assert isinstance(pages["absent"], ProjectNotFound)
    assert elapsed < 1.2  # four 0.4 s pages one after another would take 1.6 s
    assert len(srv.requests) == 4  # "demo" and "DEMO" are one project


def test_redirect_is_followed(index_server: Callable[..., IndexServer], dists: Path) -> None:
    old, new = index_server(), served(index_server, dists)
    old.fail_always("/simple/demo/", Status(301, {"Location": new.simple_url + "demo/"}))
    page = IndexClient([mirror(old, "old")], NET).project("Demo")
    assert page.url == new.simple_url + "demo/"
    assert len(page.files) == 3


def test_unnormalized_name_is_requested_normalized(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    srv = index_server()
    srv.add_file(make_wheel(wheel_dir, "Demo_Pkg.Two", "1.0"))
    page = IndexClient([mirror(srv, "one")], NET).project("demo_PKG.two")
    assert page.name == "demo-pkg-two"
    assert [f.filename for f in page.files] == ["demo_pkg_two-1.0-py3-none-any.whl"]
    assert [r.path for r in srv.requests] == ["/simple/demo-pkg-two/"]


def test_credentials_only_go_to_their_host(
    index_server: Callable[..., IndexServer], dists: Path
) -> None:
    private = served(index_server, dists, auth=("alice", "s3cret"))
    public = served(index_server, dists)
    url = private.simple_url.replace("http://", "http://alice:s3cret@")
    net = NET.with_credentials_from([url])
    client = IndexClient([Mirror.from_index_url(url, "private"), mirror(public, "public")], net)
    assert client.project("demo").mirror == "private"
    assert client.project("other").mirror == "private"
    assert all("Authorization" in r.headers for r in private.requests)
    public.clear_requests()
    assert IndexClient([mirror(public, "public")], net).project("demo").mirror == "public"
    assert all("Authorization" not in r.headers for r in public.requests)


def test_wrong_credentials_fail_with_401(
    index_server: Callable[..., IndexServer], dists: Path
) -> None:
    private = served(index_server, dists, auth=("alice", "s3cret"))
    url = private.simple_url.replace("http://", "http://alice:wrong@")
    client = IndexClient([Mirror.from_index_url(url, "private")], NET.with_credentials_from([url]))
    with pytest.raises(RemoteIndexError, match="private: 401") as info:
        client.project("demo")
    assert "wrong" not in str(info.value)


def test_new_session_identity_and_tls(index_server: Callable[..., IndexServer]) -> None:
    srv = index_server()
    net = NetworkSettings(user_agent=user_agent(), verify="/etc/pypidl-test/ca.pem")
    session = new_session(net)
    try:
        assert session.verify == "/etc/pypidl-test/ca.pem"
        assert session.headers["User-Agent"].startswith("pip/")
        assert new_session(NetworkSettings()).verify is True
        plain = new_session(NetworkSettings(user_agent=user_agent()))
        plain.get(srv.simple_url, timeout=5).close()
        plain.close()
    finally:
        session.close()
    (request,) = srv.requests
    ua = request.headers["User-Agent"]
    assert ua.startswith("pip/")
    assert json.loads(ua.split(" ", 1)[1])["installer"]["name"] == "pypidl"


def test_client_needs_a_mirror() -> None:
    with pytest.raises(ValueError, match="at least one index"):
        IndexClient([], NET)
