"""pypidl on a restricted host: a private index behind a password, ``.netrc``, TLS signed by a
private CA (with and without a client certificate), and a mandatory HTTP proxy.

Each test drives ``pypidl.cli.main`` against servers on 127.0.0.1 (``tests.lib.server``,
``tests.lib.proxy``, certificates from ``tests.lib.tls``); pip-compile runs for real as a
subprocess, so every setting must reach it too.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pypidl.cli import main
from tests.lib.proxy import ForwardProxy
from tests.lib.server import IndexServer, RequestRecord
from tests.lib.tls import PKI, make_pki, openssl_path, server_context
from tests.lib.wheels import make_wheel

TARGET = ["--python-version", "3.11", "--platform", "linux-x86_64"]
FAST = ["--retries", "1", "--connect-timeout", "5", "--timeout", "10"]
WHEELS = {"alpha-2.0-py3-none-any.whl", "beta-1.0-py3-none-any.whl"}
USER, SECRET = "user", "s3cret-pw"


# -- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def dists(wheel_dir: Path) -> Path:
    make_wheel(wheel_dir, "alpha", "2.0", requires_dist=["beta>=1.0"])
    make_wheel(wheel_dir, "beta", "1.0")
    return wheel_dir


@pytest.fixture(autouse=True)
def _no_netrc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This host's ~/.netrc must not answer for 127.0.0.1 (requests and pip both read it)."""
    monkeypatch.setenv("NETRC", str(tmp_path / "no-such-netrc"))


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record at DEBUG, pypidl's own included (the CLI stops them propagating)."""
    caplog.set_level(logging.DEBUG)
    pypidl_log = logging.getLogger("pypidl")
    pypidl_log.addHandler(caplog.handler)
    yield caplog
    pypidl_log.removeHandler(caplog.handler)


def requirements(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("alpha\n", encoding="utf-8")
    return path


def sync(tmp_path: Path, *index_flags: str, mirror: str = "mirror", extra: tuple = ()) -> int:  # type: ignore[type-arg]
    return main(
        ["sync", "-r", str(requirements(tmp_path)), *index_flags,
         "--download-dir", str(tmp_path / mirror), "--pip-compile", *FAST, *TARGET, *extra]
    )  # fmt: skip


def wheels_in(root: Path) -> set[str]:
    return {p.name for p in root.rglob("*.whl")} if root.exists() else set()


def by_pip(records: list[RequestRecord]) -> list[RequestRecord]:
    """Requests pip-compile's pip made (pypidl's own User-Agent names pypidl as the installer)."""
    return [r for r in records if '"name":"pip"' in r.headers.get("user-agent", "")]


def assert_nowhere(needles: list[str], texts: dict[str, str], roots: list[Path]) -> None:
    """None of ``needles`` in any of ``texts`` or in any file under ``roots``."""
    for where, text in texts.items():
        for needle in needles:
            assert needle not in text, f"{needle!r} leaked into {where}"
    checked = 0
    for root in roots:
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                checked += 1
                for needle in needles:
                    assert needle.encode() not in data, f"{needle!r} leaked into {path}"
    assert checked, "no file was checked"


# -- credentials -------------------------------------------------------------------------------


def test_index_credentials_never_leak(
    index_server: Callable[..., IndexServer],
    dists: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    debug_log: pytest.LogCaptureFixture,
) -> None:
    server = index_server(auth=(USER, SECRET))
    server.add_dir(dists)
    url = f"http://{USER}:{SECRET}@127.0.0.1:{server.port}/simple/"
    manifest, dry_manifest = tmp_path / "m.json", tmp_path / "dry.json"
    url_list = tmp_path / "urls.txt"
    index_flags = ("--index-url", url)

    code = sync(tmp_path, *index_flags, extra=("-vv", "--build-index", "--manifest", str(manifest)))
    first = capsys.readouterr()
    assert code == 0, first.err
    mirror = tmp_path / "mirror"
    assert wheels_in(mirror / "packages") == WHEELS
    assert (mirror / "simple" / "alpha" / "index.html").is_file()
    # the credentials did their job, for pypidl and for pip-compile
    assert all(r.headers.get("authorization") for r in server.requests_matching("*.whl"))
    assert any(r.headers.get("authorization") for r in by_pip(server.requests))

    code = sync(tmp_path, *index_flags, extra=(
        "-vv", "--dry-run", "--url-list-path", str(url_list), "--manifest", str(dry_manifest)))  # fmt: skip
    second = capsys.readouterr()
    assert code == 0, second.err
    assert len(url_list.read_text(encoding="utf-8").split()) == len(WHEELS)

    exports = {}
    for fmt in ("aria2c", "urls", "requirements"):
        out = tmp_path / f"export.{fmt}"
        assert main(["export", str(manifest), "--format", fmt, "-o", str(out)]) == 0
        exports[fmt] = out
    third = capsys.readouterr()
    assert f"127.0.0.1:{server.port}" in exports["urls"].read_text(encoding="utf-8")

    cache = Path(os.environ["PYPIDL_CACHE_DIR"])
    basic = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
    assert_nowhere(
        [SECRET, basic],
        {
            "stdout": first.out + second.out + third.out,
            "stderr": first.err + second.err + third.err,
            "log records": debug_log.text + "".join(str(r.args) for r in debug_log.records),
        },
        # pypidl's cache (pip-tools' included) is not published, but it is on disk: keep it clean
        [mirror, manifest, dry_manifest, url_list, *exports.values(), cache],
    )
    assert "DEBUG" in debug_log.text  # -vv really logged at debug level


def test_without_credentials_the_run_fails_cleanly(
    index_server: Callable[..., IndexServer],
    dists: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = index_server(auth=(USER, SECRET))
    server.add_dir(dists)
    code = sync(tmp_path, "--index-url", server.simple_url)
    out, err = capsys.readouterr()
    assert code == 1
    row = next(line for line in out.splitlines() if line.startswith("| alpha"))
    assert "Failed" in row
    assert "401" in row
    assert "Traceback" not in out + err
    assert wheels_in(tmp_path / "mirror") == set()


def test_a_token_as_the_only_user_part_works_and_never_leaks(
    index_server: Callable[..., IndexServer],
    dists: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = "tok3n-0123456789abcdef"  # noqa: S105 - a test token
    server = index_server(auth=(token, ""))  # what Basic auth with an empty password looks like
    server.add_dir(dists)
    manifest = tmp_path / "m.json"
    code = sync(
        tmp_path,
        "--index-url",
        f"http://{token}@127.0.0.1:{server.port}/simple/",
        extra=("-v", "--build-index", "--manifest", str(manifest)),
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert wheels_in(tmp_path / "mirror" / "packages") == WHEELS
    assert by_pip(server.requests)  # pip-compile resolved through the token too
    assert_nowhere([token], {"stdout": out, "stderr": err}, [tmp_path / "mirror", manifest])


@pytest.mark.parametrize("other_index_with_credentials", [False, True])
def test_netrc_credentials_are_used(
    index_server: Callable[..., IndexServer],
    dists: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    other_index_with_credentials: bool,
) -> None:
    server = index_server(auth=(USER, SECRET))
    server.add_dir(dists)
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1\nlogin {USER}\npassword {SECRET}\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    flags = ["--index-url", server.simple_url]
    if other_index_with_credentials:
        # a second, unrelated index whose URL carries its own credentials: its files are not the
        # ones needed, so everything must still come from the first index, through .netrc
        other = index_server(auth=("other", "0ther-pw"))
        other.add_file(make_wheel(tmp_path / "other", "unrelated", "1.0"))
        flags += ["--index-url", f"http://other:0ther-pw@127.0.0.1:{other.port}/simple/"]
    code = sync(tmp_path, *flags, extra=("--manifest", str(tmp_path / "m.json")))
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert wheels_in(tmp_path / "mirror" / "packages") == WHEELS
    assert {r.path.rsplit("/", 1)[-1] for r in server.requests_matching("*.whl")} == WHEELS
    assert by_pip(server.requests)
    assert_nowhere([SECRET, "0ther-pw"], {"output": out + err}, [tmp_path / "m.json"])


# -- TLS with a private CA ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    if openssl_path() is None:
        pytest.skip("no openssl command to make test certificates with")
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_index(index_server: Callable[..., IndexServer], pki: PKI, dists: Path) -> IndexServer:
    server = index_server(ssl_context=server_context(pki))
    server.add_dir(dists)
    return server


@pytest.mark.parametrize("trust", ["certifi", "another CA"])
def test_tls_from_an_unknown_ca_fails_with_a_clear_error(
    tls_index: IndexServer,
    pki: PKI,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    trust: str,
) -> None:
    assert tls_index.simple_url.startswith("https://127.0.0.1:")
    extra = ("--cert", str(pki.other_ca)) if trust == "another CA" else ()
    code = sync(tmp_path, "--index-url", tls_index.simple_url, extra=extra)
    out, err = capsys.readouterr()
    assert code == 1
    row = next(line for line in out.splitlines() if line.startswith("| alpha"))
    assert "Failed" in row
    assert "TLS verification failed" in row
    assert "certificate verify failed" in row
    assert "--cert" in row
    assert "Traceback" not in out + err
    assert wheels_in(tmp_path / "mirror") == set()
    assert tls_index.requests == []  # no request got through the handshake


@pytest.mark.parametrize("how", ["--cert", "REQUESTS_CA_BUNDLE"])
def test_tls_with_the_private_ca_works_end_to_end(
    tls_index: IndexServer,
    pki: PKI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    how: str,
) -> None:
    if how == "--cert":
        extra: tuple[str, ...] = ("--cert", str(pki.ca), "--build-index")
    else:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.ca))
        extra = ("--build-index",)
    code = sync(tmp_path, "--index-url", tls_index.simple_url, extra=extra)
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert wheels_in(tmp_path / "mirror" / "packages") == WHEELS
    assert by_pip(tls_index.requests)  # pip-compile trusted the CA too
    # each wheel downloaded once by pypidl (pip-compile's pip may download them too)
    ours = [r for r in tls_index.requests_matching("*.whl") if r not in by_pip(tls_index.requests)]
    assert len(ours) == len(WHEELS)
    page = (tmp_path / "mirror" / "simple" / "alpha" / "index.html").read_text(encoding="utf-8")
    assert "alpha-2.0-py3-none-any.whl" in page


def test_download_without_the_plans_ca_names_tls_in_the_summary(
    tls_index: IndexServer, pki: PKI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.json"
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("alpha\n", encoding="utf-8")
    code = main(
        ["plan", "-r", str(reqs), "--index-url", tls_index.simple_url, "--cert", str(pki.ca),
         "-o", str(manifest), "--python-version", "3.11", "--platform", "linux-x86_64",
         "--pip-compile"]
    )  # fmt: skip
    assert code == 0
    capsys.readouterr()
    # the downloading host forgot --cert: the summary must say why, not "connection failed"
    code = main(
        ["download", str(manifest), "--download-dir", str(tmp_path / "m"), "--retries", "1"]
    )
    out, err = capsys.readouterr()
    assert code == 1
    row = next(line for line in out.splitlines() if line.startswith("| alpha"))
    assert "TLS verification failed" in row
    assert "Traceback" not in out + err


def test_tls_client_certificate(
    index_server: Callable[..., IndexServer],
    pki: PKI,
    dists: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = index_server(ssl_context=server_context(pki, require_client_cert=True))
    server.add_dir(dists)
    flags = ("--index-url", server.simple_url, "--cert", str(pki.ca))

    code = sync(tmp_path, *flags, mirror="refused")
    out, err = capsys.readouterr()
    assert code == 1
    row = next(line for line in out.splitlines() if line.startswith("| alpha"))
    assert "TLS handshake" in row  # refused, or cut short: which one the client sees is a race
    assert "--client-cert" in row
    assert "Traceback" not in out + err
    assert wheels_in(tmp_path / "refused") == set()
    assert server.requests == []

    code = sync(tmp_path, *flags, extra=("--client-cert", str(pki.client)))
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert wheels_in(tmp_path / "mirror" / "packages") == WHEELS
    assert by_pip(server.requests)


# -- a mandatory proxy ---------------------------------------------------------------------------


def test_sync_goes_through_the_http_proxy(
    index_server: Callable[..., IndexServer],
    dists: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = index_server()
    server.add_dir(dists)
    with ForwardProxy() as proxy:
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        code = sync(tmp_path, "--index-url", server.simple_url)
        out, err = capsys.readouterr()
    assert code == 0, out + err
    assert wheels_in(tmp_path / "mirror" / "packages") == WHEELS
    log = proxy.log
    assert log, "nothing went through the proxy"
    assert all(r.url.startswith(f"http://127.0.0.1:{server.port}/") for r in log)
    assert all(r.status == 200 for r in log)
    pages = [r for r in log if "/simple/" in r.url]
    files = [r for r in log if r.url.endswith(".whl")]
    # pypidl's page and file requests, and pip-compile's (a subprocess inheriting HTTP_PROXY)
    assert {r.url.rsplit("/", 1)[-1] for r in files if '"name":"pypidl"' in r.user_agent} == (
        WHEELS
    )
    assert any('"name":"pypidl"' in r.user_agent for r in pages)
    assert any('"name":"pip"' in r.user_agent for r in pages)
    # and nothing reached the index around the proxy
    assert len(server.requests) == len(log)
