"""The test index server and distribution builders do what they claim."""

from __future__ import annotations

import base64
import hashlib
import http.client
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.lib import (
    Corrupt,
    Cut,
    Delay,
    Drop,
    IndexServer,
    Stall,
    Status,
    make_sdist,
    make_wheel,
    wheel_metadata,
)

JSON = "application/vnd.pypi.simple.v1+json"
V1_HTML = "application/vnd.pypi.simple.v1+html"
PIP_ACCEPT = f"{JSON}, {V1_HTML}; q=0.1, text/html; q=0.01"

ServerFactory = Callable[..., IndexServer]


def get(url: str, *, timeout: float = 5, **kwargs: object) -> requests.Response:
    return requests.get(url, timeout=timeout, **kwargs)  # type: ignore[arg-type]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def raw_get(srv: IndexServer, path: str) -> tuple[http.client.HTTPResponse, bytes, bool]:
    """GET ``path``; return the response, the body bytes that arrived, and whether it was whole."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        try:
            return resp, resp.read(), True
        except http.client.IncompleteRead as exc:
            return resp, exc.partial, False
    finally:
        conn.close()


@pytest.fixture
def served(wheel_dir: Path, index_server: ServerFactory) -> tuple[IndexServer, Path]:
    """A server with one wheel (demo-pkg 1.0) and one sdist (demo-pkg 0.9)."""
    srv = index_server()
    wheel = make_wheel(wheel_dir, "Demo.Pkg", "1.0", requires_python=">=3.8")
    sdist = make_sdist(wheel_dir, "Demo.Pkg", "0.9")
    srv.add_file(wheel, requires_python=">=3.8")
    srv.add_file(sdist, yanked="broken build")
    return srv, wheel


# --------------------------------------------------------------------------- builders


def test_make_wheel_is_valid_and_deterministic(tmp_path: Path) -> None:
    first = make_wheel(
        tmp_path / "a",
        "Foo.Bar-baz",
        "1.2.3",
        requires_dist=["attrs>=20", 'rich; extra == "fancy"'],
        requires_python=">=3.9",
        provides_extra=["fancy"],
    )
    second = make_wheel(
        tmp_path / "b",
        "Foo.Bar-baz",
        "1.2.3",
        requires_dist=["attrs>=20", 'rich; extra == "fancy"'],
        requires_python=">=3.9",
        provides_extra=["fancy"],
    )
    assert first.name == "foo_bar_baz-1.2.3-py3-none-any.whl"
    assert first.read_bytes() == second.read_bytes()

    with zipfile.ZipFile(first) as zf:
        names = zf.namelist()
        assert names[-1] == "foo_bar_baz-1.2.3.dist-info/RECORD"
        assert zf.read("foo_bar_baz/__init__.py").decode().endswith('__version__ = "1.2.3"\n')
        metadata = zf.read("foo_bar_baz-1.2.3.dist-info/METADATA").decode()
        wheel = zf.read("foo_bar_baz-1.2.3.dist-info/WHEEL").decode()
        record = zf.read("foo_bar_baz-1.2.3.dist-info/RECORD").decode()
        for line in record.splitlines():
            path, digest, size = line.rsplit(",", 2)
            if path.endswith("RECORD"):
                assert digest == size == ""
                continue
            data = zf.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + expected.decode()
            assert int(size) == len(data)
        assert sorted(line.split(",")[0] for line in record.splitlines()) == sorted(names)
    assert "Metadata-Version: 2.1\nName: Foo.Bar-baz\nVersion: 1.2.3\n" in metadata
    assert "Requires-Python: >=3.9" in metadata
    assert "Provides-Extra: fancy" in metadata
    assert 'Requires-Dist: rich; extra == "fancy"' in metadata
    assert "Root-Is-Purelib: true" in wheel
    assert wheel_metadata(first) == metadata.encode()


def test_make_wheel_compressed_platform_tags_and_payload(tmp_path: Path) -> None:
    tag = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"
    path = make_wheel(
        tmp_path, "native", "2.0", tag=tag, extra_files={"native/blob.bin": b"x" * 50_000}
    )
    assert path.name == f"native-2.0-{tag}.whl"
    assert path.stat().st_size > 50_000  # payload stored uncompressed
    with zipfile.ZipFile(path) as zf:
        wheel = zf.read("native-2.0.dist-info/WHEEL").decode()
        assert zf.read("native/blob.bin") == b"x" * 50_000
    assert "Root-Is-Purelib: false" in wheel
    assert "Tag: cp311-cp311-manylinux_2_17_x86_64\nTag: cp311-cp311-manylinux2014_x86_64" in wheel

    universal = make_wheel(tmp_path, "uni", "1", tag="py2.py3-none-any")
    with zipfile.ZipFile(universal) as zf:
        wheel = zf.read("uni-1.dist-info/WHEEL").decode()
    assert "Tag: py2-none-any\nTag: py3-none-any\n" in wheel


def test_make_sdist_is_deterministic_and_buildable(tmp_path: Path) -> None:
    path = make_sdist(tmp_path / "a", "My-Lib", "0.5", requires_dist=["six"], requires_python=">=3")
    again = make_sdist(
        tmp_path / "b", "My-Lib", "0.5", requires_dist=["six"], requires_python=">=3"
    )
    assert path.name == "my_lib-0.5.tar.gz"
    assert path.read_bytes() == again.read_bytes()
    with tarfile.open(path) as tar:
        names = tar.getnames()
        pkg_info = tar.extractfile("my_lib-0.5/PKG-INFO").read().decode()  # type: ignore[union-attr]
    assert {
        "my_lib-0.5/pyproject.toml",
        "my_lib-0.5/_sdist_backend.py",
        "my_lib-0.5/my_lib/__init__.py",
    } <= set(names)
    assert "Name: My-Lib\nVersion: 0.5\n" in pkg_info
    assert "Requires-Dist: six" in pkg_info

    out = tmp_path / "built"  # built offline, in isolation: the sdist's backend needs nothing
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-index", "--no-deps",
         "--disable-pip-version-check", "-w", str(out), str(path)],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    (built,) = out.glob("*.whl")
    assert built.name.lower().startswith("my_lib-0.5-")
    assert b"Requires-Dist: six" in wheel_metadata(built)


# --------------------------------------------------------------------------- index pages


def test_root_listing_negotiates_json_and_html(served: tuple[IndexServer, Path]) -> None:
    srv, _ = served
    as_json = get(srv.simple_url, headers={"Accept": PIP_ACCEPT})
    assert as_json.headers["Content-Type"] == JSON
    assert as_json.json() == {"meta": {"api-version": "1.1"}, "projects": [{"name": "demo-pkg"}]}

    for accept in (None, "*/*", "text/html", f"{JSON};q=0.5, text/html"):
        headers = {} if accept is None else {"Accept": accept}
        resp = get(srv.simple_url, headers=headers)
        assert resp.headers["Content-Type"].startswith("text/html"), accept
        assert '<meta name="pypi:repository-version" content="1.1">' in resp.text
        assert '<a href="demo-pkg/">demo-pkg</a>' in resp.text

    v1_html = get(srv.simple_url, headers={"Accept": f"{V1_HTML}, text/html;q=0.5"})
    assert v1_html.headers["Content-Type"] == V1_HTML
    only_json_wildcard = get(srv.simple_url, headers={"Accept": "application/*, text/html;q=0.1"})
    assert only_json_wildcard.headers["Content-Type"] == V1_HTML  # ties go to HTML
    nothing = get(srv.simple_url, headers={"Accept": "image/png"})
    assert nothing.status_code == 406


def test_json_and_html_switches(wheel_dir: Path, index_server: ServerFactory) -> None:
    wheel = make_wheel(wheel_dir, "a", "1")
    html_only = index_server(json=False)
    json_only = index_server(html=False)
    for srv in (html_only, json_only):
        srv.add_file(wheel)
    resp = get(html_only.simple_url + "a/", headers={"Accept": JSON})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    assert get(json_only.simple_url + "a/", headers={"Accept": "text/html"}).status_code == 406
    assert get(json_only.simple_url + "a/").headers["Content-Type"] == JSON
    assert get(json_only.simple_url, headers={"Accept": PIP_ACCEPT}).headers["Content-Type"] == JSON


def test_project_page_json_fields_match_files(served: tuple[IndexServer, Path]) -> None:
    srv, wheel = served
    resp = get(srv.simple_url + "demo-pkg/", headers={"Accept": PIP_ACCEPT})
    assert resp.status_code == 200
    page = resp.json()
    assert page["meta"] == {"api-version": "1.1"}
    assert page["name"] == "demo-pkg"
    assert page["versions"] == ["0.9", "1.0"]
    files = {f["filename"]: f for f in page["files"]}
    whl = files[wheel.name]
    data = wheel.read_bytes()
    assert whl["hashes"] == {"sha256": sha256(data)}
    assert whl["size"] == len(data)
    assert whl["requires-python"] == ">=3.8"
    assert whl["yanked"] is False
    assert whl["upload-time"] == "2024-01-01T00:00:00Z"
    assert whl["url"] == srv.file_url(wheel.name)
    assert whl["url"].startswith(srv.url + "/packages/")
    downloaded = get(whl["url"])
    assert downloaded.content == data
    assert downloaded.headers["Content-Type"] == "application/octet-stream"

    sidecar = get(whl["url"] + ".metadata").content
    assert sidecar == wheel_metadata(wheel)
    assert whl["core-metadata"] == {"sha256": sha256(sidecar)}
    assert "dist-info-metadata" not in whl  # PEP 714: old pips crash on it in JSON

    sdist = files["demo_pkg-0.9.tar.gz"]
    assert sdist["yanked"] == "broken build"
    assert sdist["requires-python"] is None
    assert "core-metadata" not in sdist
    assert get(sdist["url"] + ".metadata").status_code == 404


def test_project_page_html(served: tuple[IndexServer, Path]) -> None:
    srv, wheel = served
    resp = get(srv.simple_url + "demo-pkg/")
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    text = resp.text
    digest = sha256(wheel.read_bytes())
    meta_digest = sha256(wheel_metadata(wheel))
    assert f'href="{srv.file_url(wheel.name)}#sha256={digest}"' in text
    assert 'data-requires-python="&gt;=3.8"' in text
    assert f'data-core-metadata="sha256={meta_digest}"' in text
    assert f'data-dist-info-metadata="sha256={meta_digest}"' in text
    assert 'data-yanked="broken build"' in text
    assert '<meta name="pypi:repository-version" content="1.1">' in text


def test_metadata_switch_off(wheel_dir: Path, index_server: ServerFactory) -> None:
    srv = index_server(metadata=False)
    served = srv.add_file(make_wheel(wheel_dir, "a", "1"))
    page = get(srv.simple_url + "a/", headers={"Accept": JSON}).json()
    assert "core-metadata" not in page["files"][0]
    assert "data-core-metadata" not in get(srv.simple_url + "a/").text
    assert get(served.metadata_url).status_code == 404


def test_redirects_and_not_found(served: tuple[IndexServer, Path]) -> None:
    srv, _ = served
    for name in ("Demo.Pkg/", "demo_pkg/", "DEMO-PKG", "demo-pkg"):
        resp = get(srv.simple_url + name, allow_redirects=False)
        assert resp.status_code == 301, name
        assert resp.headers["Location"] == "/simple/demo-pkg/"
    assert get(srv.simple_url + "Demo_Pkg/").url == srv.simple_url + "demo-pkg/"
    assert get(srv.url + "/simple", allow_redirects=False).headers["Location"] == "/simple/"
    assert get(srv.simple_url + "nope/").status_code == 404
    assert get(srv.url + "/packages/00/00/0000/nope-1.0.tar.gz").status_code == 404
    assert get(srv.url + "/elsewhere").status_code == 404


# --------------------------------------------------------------------------- files


def test_ranges_etag_and_head(served: tuple[IndexServer, Path]) -> None:
    srv, wheel = served
    data = wheel.read_bytes()
    url = srv.file_url(wheel.name)
    size = len(data)

    full = get(url)
    assert full.status_code == 200
    assert full.headers["Accept-Ranges"] == "bytes"
    etag = full.headers["ETag"]
    assert etag == f'"{sha256(data)}"'
    assert full.headers["Last-Modified"] == "Mon, 01 Jan 2024 00:00:00 GMT"

    cases = {"bytes=0-9": (0, 9), "bytes=10-": (10, size - 1), "bytes=-20": (size - 20, size - 1)}
    for header, (start, end) in cases.items():
        part = get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.content == data[start : end + 1]
        assert part.headers["Content-Range"] == f"bytes {start}-{end}/{size}"

    clipped = get(url, headers={"Range": f"bytes=5-{size + 100}"})
    assert clipped.content == data[5:]
    bad = get(url, headers={"Range": f"bytes={size}-"})
    assert bad.status_code == 416
    assert bad.headers["Content-Range"] == f"bytes */{size}"

    matching = get(url, headers={"Range": "bytes=0-3", "If-Range": etag})
    assert matching.status_code == 206
    stale = get(url, headers={"Range": "bytes=0-3", "If-Range": '"other"'})
    assert stale.status_code == 200
    assert stale.content == data

    head = requests.head(url, timeout=5)
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == size
    assert head.content == b""

    srv.ignore_range = True
    ignored = get(url, headers={"Range": "bytes=0-9"})
    assert ignored.status_code == 200
    assert ignored.content == data
    assert "Accept-Ranges" not in ignored.headers


# --------------------------------------------------------------------------- faults


def test_status_faults_are_consumed_in_order(served: tuple[IndexServer, Path]) -> None:
    srv, wheel = served
    url = srv.file_url(wheel.name)
    srv.fail(
        f"*/{wheel.name}",
        Status(503),
        Status(429, headers={"Retry-After": "1"}, body=b"slow down"),
        Status(404),
    )
    assert get(url).status_code == 503
    throttled = get(url)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "1"
    assert throttled.content == b"slow down"
    assert get(url).status_code == 404
    assert get(url).content == wheel.read_bytes()
    # Other paths were never affected.
    srv.fail("/simple/demo-pkg/", Status(500))
    assert get(url).status_code == 200
    assert get(srv.simple_url + "demo-pkg/").status_code == 500
    assert get(srv.simple_url + "demo-pkg/").status_code == 200


def test_fail_always_until_cleared(served: tuple[IndexServer, Path]) -> None:
    srv, wheel = served
    srv.fail_always("*.whl", Status(502))
    for _ in range(3):
        assert get(srv.file_url(wheel.name)).status_code == 502
    assert get(srv.simple_url).status_code == 200
    srv.clear_faults()
    assert get(srv.file_url(wheel.name)).status_code == 200


def test_cut_gives_a_short_body(served: tuple[IndexServer, Path]) -> None:
    srv, wheel = served
    data = wheel.read_bytes()
    path = urlsplit(srv.file_url(wheel.name)).path
    srv.fail("*.whl", Cut(100))
    resp, body, whole = raw_get(srv, path)
    assert resp.status == 200
    assert int(resp.headers["Content-Length"]) == len(data)
    assert not whole
    assert body == data[:100]

    srv.fail("*.whl", Cut(10))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(srv.file_url(wheel.name))
    assert get(srv.file_url(wheel.name)).content == data


def test_corrupt_keeps_length_but_changes_hash(served: tuple[IndexServer, Path]) -> None:
    srv, wheel = served
    data = wheel.read_bytes()
    srv.fail("*.whl", Corrupt())
    bad = get(srv.file_url(wheel.name))
    assert bad.status_code == 200
    assert len(bad.content) == len(data)
    assert sha256(bad.content) != sha256(data)
    assert get(srv.file_url(wheel.name)).content == data


def test_drop_and_down_close_without_response(served: tuple[IndexServer, Path]) -> None:
    srv, wheel = served
    srv.fail("*.whl", Drop())
    with pytest.raises(requests.exceptions.ConnectionError):
        get(srv.file_url(wheel.name))
    assert get(srv.file_url(wheel.name)).status_code == 200

    srv.down = True
    for url in (srv.simple_url, srv.file_url(wheel.name)):
        with pytest.raises(requests.exceptions.ConnectionError):
            get(url)
    srv.down = False
    assert get(srv.simple_url).status_code == 200


def test_delay_and_stall(served: tuple[IndexServer, Path]) -> None:
    srv, wheel = served
    data = wheel.read_bytes()
    srv.fail("*.whl", Delay(0.3))
    start = time.monotonic()
    assert get(srv.file_url(wheel.name)).content == data
    assert time.monotonic() - start >= 0.3

    path = urlsplit(srv.file_url(wheel.name)).path
    srv.fail("*.whl", Stall(50, 0.3))
    start = time.monotonic()
    _, body, whole = raw_get(srv, path)
    assert time.monotonic() - start >= 0.3
    assert not whole
    assert body == data[:50]

    srv.fail("*.whl", Stall(50, 0.5))
    with pytest.raises(requests.exceptions.ConnectionError):
        get(srv.file_url(wheel.name), timeout=0.1)


def test_stop_interrupts_stalls_and_is_idempotent(wheel_dir: Path) -> None:
    srv = IndexServer()
    srv.add_file(make_wheel(wheel_dir, "a", "1"))
    with srv:
        srv.fail("*", Stall(1, 30))
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        with sock:
            sock.sendall(b"GET /simple/ HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 200")
            start = time.monotonic()
            srv.stop()
            assert time.monotonic() - start < 5
    srv.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
    with pytest.raises(RuntimeError):
        srv.start()


# --------------------------------------------------------------------------- auth, log, prefix


def test_basic_auth(served: tuple[IndexServer, Path], index_server: ServerFactory) -> None:
    _, wheel = served
    srv = index_server(auth=("user", "s3cret"))
    srv.add_file(wheel)
    for url in (srv.simple_url, srv.simple_url + "demo-pkg/", srv.file_url(wheel.name)):
        denied = get(url)
        assert denied.status_code == 401
        assert denied.headers["WWW-Authenticate"].startswith("Basic ")
        assert get(url, auth=("user", "wrong")).status_code == 401
        assert get(url, auth=("user", "s3cret")).status_code == 200


def test_request_log(served: tuple[IndexServer, Path]) -> None:
    srv, wheel = served
    srv.clear_requests()
    url = srv.file_url(wheel.name)
    srv.fail("*.whl", Status(503))
    get(srv.simple_url + "demo-pkg/?x=1", headers={"Accept": JSON, "X-Probe": "yes"})
    get(url)
    requests.head(url, timeout=5)
    log = srv.requests
    assert [(r.method, urlsplit(r.path).path) for r in log] == [
        ("GET", "/simple/demo-pkg/"),
        ("GET", urlsplit(url).path),
        ("HEAD", urlsplit(url).path),
    ]
    assert log[0].path == "/simple/demo-pkg/?x=1"
    assert log[0].headers["accept"] == JSON
    assert log[0].headers["X-PROBE"] == "yes"
    assert "x-probe" in log[0].headers
    assert log[0].time <= log[1].time <= log[2].time
    assert len(srv.requests_matching("*.whl")) == 2
    srv.clear_requests()
    assert srv.requests == []


def test_prefix_layout(wheel_dir: Path, index_server: ServerFactory) -> None:
    srv = index_server(prefix="/pypi/web")
    wheel = make_wheel(wheel_dir, "a", "1")
    served = srv.add_file(wheel)
    assert srv.url == f"http://127.0.0.1:{srv.port}/pypi/web"
    assert srv.simple_url == srv.url + "/simple/"
    digest = sha256(wheel.read_bytes())
    expected = f"{srv.url}/packages/{digest[:2]}/{digest[2:4]}/{digest[4:]}/{wheel.name}"
    assert served.url == srv.file_url(wheel.name) == expected
    page = get(srv.simple_url + "a/", headers={"Accept": JSON}).json()
    assert page["files"][0]["url"] == expected
    assert get(expected).content == wheel.read_bytes()
    assert get(srv.simple_url + "A/", allow_redirects=False).headers["Location"] == (
        "/pypi/web/simple/a/"
    )
    assert get(f"http://127.0.0.1:{srv.port}/simple/").status_code == 404
    srv.fail("/simple/a/", Status(503))  # patterns may omit the prefix
    assert get(srv.simple_url + "a/").status_code == 503


def test_concurrent_requests(served: tuple[IndexServer, Path]) -> None:
    srv, wheel = served
    data = wheel.read_bytes()
    results: list[bytes] = []

    def fetch() -> None:
        with requests.Session() as session:
            for _ in range(5):
                results.append(session.get(srv.file_url(wheel.name), timeout=5).content)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [data] * 20
    assert len(srv.requests_matching("*.whl")) == 20


# --------------------------------------------------------------------------- real installers


@pytest.mark.clients
def test_built_wheels_install_with_pip_and_uv(
    wheel_dir: Path,
    index_server: ServerFactory,
    venv_factory: Callable[[], Path],
    clean_env: dict[str, str],
    tmp_path: Path,
) -> None:
    make_wheel(wheel_dir, "Demo-Pkg", "1.2", requires_dist=["helper.lib>=0.1"])
    make_wheel(wheel_dir, "helper.lib", "0.1")
    python = venv_factory()

    def run(*args: str) -> str:
        proc = subprocess.run(
            args, env=clean_env, capture_output=True, text=True, timeout=120, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    run(
        str(python),
        "-m",
        "pip",
        "install",
        "--no-index",
        "--find-links",
        str(wheel_dir),
        "demo-pkg",
    )
    code = "import demo_pkg, helper_lib; print(demo_pkg.__version__, helper_lib.__version__)"
    assert run(str(python), "-c", code).split() == ["1.2", "0.1"]

    # Through the index: yanked and Requires-Python-excluded versions are skipped.
    srv = index_server()
    other = tmp_path / "other"
    srv.add_file(make_wheel(other, "other-pkg", "1.0"))
    srv.add_file(make_wheel(other, "other-pkg", "2.0"), yanked="bad")
    srv.add_file(make_wheel(other, "other-pkg", "3.0", requires_python="<3"), requires_python="<3")
    srv.add_file(make_wheel(other, "third", "0.3"))
    run(str(python), "-m", "pip", "install", "--index-url", srv.simple_url, "other-pkg")
    assert run(str(python), "-c", "import other_pkg; print(other_pkg.__version__)").strip() == "1.0"
    page_requests = srv.requests_matching("/simple/other-pkg/")
    assert page_requests
    assert page_requests[0].headers["accept"].startswith(JSON)
    fetched = {urlsplit(r.path).path.rsplit("/", 1)[-1] for r in srv.requests}
    assert "other_pkg-1.0-py3-none-any.whl" in fetched
    assert "other_pkg-2.0-py3-none-any.whl" not in fetched

    uv = pytest.importorskip("uv")
    run(
        uv.find_uv_bin(),
        "pip",
        "install",
        "--python",
        str(python),
        "--index-url",
        srv.simple_url,
        "third",
    )
    assert run(str(python), "-c", "import third; print(third.__version__)").strip() == "0.3"
