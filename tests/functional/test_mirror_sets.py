"""``--cn`` with a ``--mirrors-file``: mirror order, fall-back for pages, files and pip-compile.

Two loopback servers in the bandersnatch layout (``<base>/web/simple/``, ``<base>/web/packages/``)
stand in for the cn set; a third is the ``--index-url``, always the last resort.  All three serve
the same wheel bytes, so a file's ``packages/<hash path>`` is the same everywhere and
:func:`pypidl.sources.derive_file_url` can point at it on every mirror.  The packaged cn set names
public hosts: every test here passes ``--mirrors-file``, so none of them is ever contacted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pypidl.cli import main
from tests.lib.server import Corrupt, IndexServer, RequestRecord
from tests.lib.wheels import make_wheel

TARGET = ["--python-version", "3.11", "--platform", "linux-x86_64"]
WHEELS = {"alpha-2.0-py3-none-any.whl", "beta-1.0-py3-none-any.whl"}


@dataclass
class Mirrors:
    cn1: IndexServer
    cn2: IndexServer
    index: IndexServer
    mirrors_file: Path

    @property
    def all(self) -> tuple[IndexServer, IndexServer, IndexServer]:
        return (self.cn1, self.cn2, self.index)

    def port_key(self, server: IndexServer) -> str:
        return f"127.0.0.1:{server.port}"


@pytest.fixture
def mirrors(index_server: Callable[..., IndexServer], wheel_dir: Path, tmp_path: Path) -> Mirrors:
    make_wheel(wheel_dir, "alpha", "1.0", requires_dist=["beta>=1.0"])
    make_wheel(wheel_dir, "alpha", "2.0", requires_dist=["beta>=1.0"])
    make_wheel(wheel_dir, "beta", "1.0")
    cn1 = index_server(prefix="/pypi/web")
    cn2 = index_server(prefix="/pypi/web")
    index = index_server()
    for server in (cn1, cn2, index):
        server.add_dir(wheel_dir)
    mirrors_file = tmp_path / "mirrors.json"
    mirrors_file.write_text(
        json.dumps(
            {
                "_comment": "two loopback stand-ins for the cn set",
                "cn": [
                    {"name": "cn-one", "base": f"http://127.0.0.1:{cn1.port}/pypi"},
                    {"name": "cn-two", "base": f"http://127.0.0.1:{cn2.port}/pypi/"},
                ],
            }
        ),
        encoding="utf-8",
    )
    return Mirrors(cn1, cn2, index, mirrors_file)


def sync(m: Mirrors, tmp_path: Path, *extra: str) -> int:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("alpha\n", encoding="utf-8")
    return main(
        [
            "sync", "-r", str(reqs), "--cn", "--mirrors-file", str(m.mirrors_file),
            "--index-url", m.index.simple_url, "--download-dir", str(tmp_path / "mirror"),
            "--manifest", str(tmp_path / "manifest.json"), "--retries", "1",
            "--connect-timeout", "5", "--timeout", "10", "--pip-compile", *TARGET, *extra,
        ]
    )  # fmt: skip


def downloaded(tmp_path: Path) -> dict[str, str]:
    """File name -> sha256 of every distribution in the mirror."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (tmp_path / "mirror" / "packages").rglob("*.whl")
    }


def served_hashes(server: IndexServer) -> dict[str, str]:
    return {f.filename: f.sha256 for f in server.files if f.filename in WHEELS}


def page_requests(server: IndexServer) -> list[RequestRecord]:
    return server.requests_matching("*/simple/*")


def file_requests(server: IndexServer) -> list[RequestRecord]:
    """Downloads (GET), not the engine's one-per-mirror reachability probe (HEAD)."""
    return [r for r in server.requests_matching("*.whl") if r.method == "GET"]


def from_pip(records: list[RequestRecord]) -> list[RequestRecord]:
    """Requests made by pip-compile's pip, not by pypidl (both send a pip-style User-Agent)."""
    return [r for r in records if '"name":"pip"' in r.headers.get("user-agent", "")]


def from_pypidl(records: list[RequestRecord]) -> list[RequestRecord]:
    return [r for r in records if '"name":"pypidl"' in r.headers.get("user-agent", "")]


def mirror_row(out: str, server: IndexServer) -> dict[str, object]:
    """``server``'s row of the summary's Mirrors table: files, failures, status."""
    name = f"127.0.0.1:{server.port}"
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == name:
            return {"files": int(cells[1]), "failures": int(cells[3]), "status": cells[4]}
    raise AssertionError(f"no Mirrors row for {name} in:\n{out}")


def test_manifest_lists_cn_mirrors_first_and_the_index_last(
    mirrors: Mirrors, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sync(mirrors, tmp_path) == 0
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert {f["filename"] for f in data["files"]} == WHEELS
    for entry in data["files"]:
        hash_path = mirrors.index.file_url(entry["filename"]).split("/packages/", 1)[1]
        assert entry["urls"] == [
            f"http://127.0.0.1:{mirrors.cn1.port}/pypi/web/packages/{hash_path}",
            f"http://127.0.0.1:{mirrors.cn2.port}/pypi/web/packages/{hash_path}",
            f"http://127.0.0.1:{mirrors.index.port}/packages/{hash_path}",
        ]
    assert data["index_urls"] == [
        f"http://127.0.0.1:{mirrors.cn1.port}/pypi/web/simple/",
        f"http://127.0.0.1:{mirrors.cn2.port}/pypi/web/simple/",
        mirrors.index.simple_url,
    ]
    # everything healthy: the first cn mirror does all the work, pip-compile included
    assert downloaded(tmp_path) == served_hashes(mirrors.cn1)
    # each wheel downloaded once by pypidl (pip-compile's pip may download them too)
    assert len(from_pypidl(file_requests(mirrors.cn1))) == len(WHEELS)
    assert from_pip(page_requests(mirrors.cn1))
    for idle in (mirrors.cn2, mirrors.index):
        # asked nothing but the engine's one reachability probe
        assert [r.method for r in idle.requests] == ["HEAD"]
    assert mirror_row(out, mirrors.cn1)["files"] == 2


def test_first_cn_mirror_down_second_serves_pages_files_and_pip_compile(
    mirrors: Mirrors, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mirrors.cn1.down = True
    assert sync(mirrors, tmp_path) == 0
    out = capsys.readouterr().out
    assert downloaded(tmp_path) == served_hashes(mirrors.cn2)
    assert "Synchronized" in out
    # the project pages: pypidl's own and pip-compile's both came from the second mirror
    assert from_pypidl(page_requests(mirrors.cn2))
    assert from_pip(page_requests(mirrors.cn2))
    assert not from_pip(page_requests(mirrors.cn1))  # pip-compile went to the mirror that answered
    assert {r.path.rsplit("/", 1)[-1] for r in file_requests(mirrors.cn2)} == WHEELS
    # the engine's probe found cn1 dead, so no download was tried there; the index not needed
    assert [r.method for r in mirrors.cn1.requests_matching("*.whl")] == ["HEAD"]
    assert file_requests(mirrors.cn1) == []
    assert [r.method for r in mirrors.index.requests] == ["HEAD"]
    assert mirror_row(out, mirrors.cn2)["files"] == 2
    assert mirror_row(out, mirrors.cn1)["files"] == 0
    assert mirror_row(out, mirrors.cn1)["failures"] > 0


def test_both_cn_mirrors_down_the_index_serves_everything(
    mirrors: Mirrors, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mirrors.cn1.down = True
    mirrors.cn2.down = True
    assert sync(mirrors, tmp_path) == 0
    out = capsys.readouterr().out
    assert downloaded(tmp_path) == served_hashes(mirrors.index)
    assert from_pypidl(page_requests(mirrors.index))
    assert from_pip(page_requests(mirrors.index))
    assert {r.path.rsplit("/", 1)[-1] for r in file_requests(mirrors.index)} == WHEELS
    assert mirror_row(out, mirrors.index)["files"] == 2


def test_file_corrupt_on_first_mirror_comes_verified_from_the_next(
    mirrors: Mirrors, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mirrors.cn1.fail_always("*/alpha-2.0-py3-none-any.whl", Corrupt())
    assert sync(mirrors, tmp_path) == 0
    out = capsys.readouterr().out
    assert downloaded(tmp_path) == served_hashes(mirrors.index)
    assert [r.path.rsplit("/", 1)[-1] for r in file_requests(mirrors.cn2)] == [
        "alpha-2.0-py3-none-any.whl"
    ]
    assert file_requests(mirrors.index) == []
    # the summary counts the bad transfer against the first mirror, the good one for the second
    assert mirror_row(out, mirrors.cn1)["files"] == 1  # beta, intact
    assert mirror_row(out, mirrors.cn1)["failures"] == 1
    assert mirror_row(out, mirrors.cn2)["files"] == 1
    assert not list((tmp_path / "mirror").rglob("*.part"))


def test_mirrors_file_replaces_the_packaged_sets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mirrors file without a cn set is bad input: pypidl never falls back to the packaged one."""
    other = tmp_path / "mirrors.json"
    other.write_text(json.dumps({"eu": [{"name": "x", "base": "http://127.0.0.1:9/pypi"}]}))
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("alpha\n", encoding="utf-8")
    code = main(
        ["plan", "-r", str(reqs), "--cn", "--mirrors-file", str(other),
         "--index-url", "http://127.0.0.1:9/simple/", "-o", str(tmp_path / "m.json"), *TARGET]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "no 'cn' set" in err
    assert "Traceback" not in err
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize(
    ("index_url", "packages_url"),
    [
        ("http://127.0.0.1:1/simple/", "http://127.0.0.1:1/packages/"),
        ("http://u:pw@127.0.0.1:1/pypi/web/simple", "http://127.0.0.1:1/pypi/web/packages/"),
        ("http://127.0.0.1:1/api/pypi/local/", None),  # files live who knows where: no guess
        ("file:///srv/mirror/simple/", None),
    ],
)
def test_an_index_url_falls_back_for_files_only_in_the_simple_layout(
    index_url: str, packages_url: str | None
) -> None:
    from pypidl.sources import Mirror

    mirror = Mirror.from_index_url(index_url)
    assert mirror.packages_url == packages_url
    assert "pw" not in mirror.simple_url


def test_an_unreachable_mirror_is_set_aside_after_its_first_failure(
    mirrors: Mirrors, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The packaged cn set is unreachable from many hosts: each page must not pay for it again.

    cn1 accepts connections and drops them; the mirror is set aside the first time, so the page
    of beta (read after alpha's, for the closure) never goes near it, and pip-compile neither.
    """
    mirrors.cn1.down = True
    assert sync(mirrors, tmp_path) == 0
    out, err = capsys.readouterr()
    assert "Synchronized" in out
    assert "Mirror cn-one is unreachable" in err
    assert err.count("Mirror cn-one is unreachable") == 1
    asked = {r.path for r in page_requests(mirrors.cn1)}
    assert asked == {"/pypi/web/simple/alpha/"}
    assert not from_pip(page_requests(mirrors.cn1))
