"""Mirrors: credentials kept out of URLs and logs, per-mirror file URLs, mirror-set files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pypidl.errors import BadInputError
from pypidl.sources import (
    Mirror,
    derive_file_url,
    load_mirror_sets,
    redact_url,
    split_credentials,
    strip_credentials,
)

# url, clean url, credentials, redacted url
CASES = [
    pytest.param(
        "http://127.0.0.1:8080/simple/",
        "http://127.0.0.1:8080/simple/",
        None,
        "http://127.0.0.1:8080/simple/",
        id="no-credentials",
    ),
    pytest.param(
        "https://user:secret@index.example/simple/",
        "https://index.example/simple/",
        ("user", "secret"),
        "https://user:****@index.example/simple/",
        id="user-password",
    ),
    pytest.param(
        "https://user:secret@index.example:8443/a/simple?x=1#frag",
        "https://index.example:8443/a/simple?x=1#frag",
        ("user", "secret"),
        "https://user:****@index.example:8443/a/simple?x=1#frag",
        id="port-query-fragment",
    ),
    pytest.param(
        "http://user:secret@[::1]:8080/simple/",
        "http://[::1]:8080/simple/",
        ("user", "secret"),
        "http://user:****@[::1]:8080/simple/",
        id="ipv6-port",
    ),
    pytest.param(
        "http://user:secret@[fe80::1]/simple/",
        "http://[fe80::1]/simple/",
        ("user", "secret"),
        "http://user:****@[fe80::1]/simple/",
        id="ipv6",
    ),
    pytest.param(
        "https://s3cr3t-token@index.example/simple/",
        "https://index.example/simple/",
        ("s3cr3t-token", ""),
        "https://****@index.example/simple/",
        id="token-user",
    ),
    pytest.param(
        "https://s3cr3t-token:@index.example/simple/",
        "https://index.example/simple/",
        ("s3cr3t-token", ""),
        "https://****@index.example/simple/",
        id="token-user-empty-password",
    ),
    pytest.param(
        "https://us%40er:p%40ss%3Aw%2Frd@index.example/simple/",
        "https://index.example/simple/",
        ("us@er", "p@ss:w/rd"),
        "https://us%40er:****@index.example/simple/",
        id="percent-encoded",
    ),
    pytest.param(
        "https://user:pa@ss@index.example/simple/",
        "https://index.example/simple/",
        ("user", "pa@ss"),
        "https://user:****@index.example/simple/",
        id="raw-at-in-password",
    ),
    pytest.param(
        "https://user:secret@127.0.0.1:99999/simple/",
        "https://127.0.0.1:99999/simple/",
        ("user", "secret"),
        "https://user:****@127.0.0.1:99999/simple/",
        id="bad-port-kept",
    ),
]


@pytest.mark.parametrize(("url", "clean", "creds", "redacted"), CASES)
def test_split_strip_redact(
    url: str, clean: str, creds: tuple[str, str] | None, redacted: str
) -> None:
    assert split_credentials(url) == (clean, creds)
    assert strip_credentials(url) == clean
    assert redact_url(url) == redacted
    if creds and creds[1]:
        assert creds[1] not in redact_url(url)


def test_strip_keeps_the_host_port_text() -> None:
    """Credentials go; the host is lower-cased (as requests sends it) and the port kept as given."""
    assert strip_credentials("https://u:p@Index.Example:443/simple/") == (
        "https://index.example:443/simple/"
    )


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://user:secret@index.example/simple", "index.example"),
        ("http://tok@127.0.0.1:8080/simple/", "127.0.0.1:8080"),
        ("http://127.0.0.1:8080/simple/", "127.0.0.1:8080"),
    ],
)
def test_mirror_from_index_url_never_keeps_credentials(url: str, name: str) -> None:
    mirror = Mirror.from_index_url(url)
    assert mirror.name == name
    assert mirror.simple_url.endswith("/simple/")
    assert "@" not in mirror.simple_url
    assert "secret" not in repr(mirror)
    assert "tok" not in repr(mirror)
    assert mirror.packages_url is not None
    assert "@" not in mirror.packages_url
    assert Mirror.from_index_url(url, name="primary").name == "primary"


def test_mirror_from_base() -> None:
    mirror = Mirror.from_base("Example", "https://mirror.example/pypi/")
    assert mirror.simple_url == "https://mirror.example/pypi/web/simple/"
    assert mirror.packages_url == "https://mirror.example/pypi/web/packages/"


FILE = "http://127.0.0.1:1/packages/ab/cd/ef0123/demo-1.0-py3-none-any.whl"


@pytest.mark.parametrize(
    ("file_url", "mirror", "expected"),
    [
        pytest.param(
            FILE,
            Mirror.from_base("m", "https://mirror.example/pypi"),
            "https://mirror.example/pypi/web/packages/ab/cd/ef0123/demo-1.0-py3-none-any.whl",
            id="bandersnatch-layout",
        ),
        pytest.param(
            FILE + "#sha256=00?",
            Mirror("m", "https://m.example/simple/", "https://m.example/files/packages/"),
            "https://m.example/files/packages/ab/cd/ef0123/demo-1.0-py3-none-any.whl",
            id="fragment-dropped",
        ),
        pytest.param(FILE, Mirror("m", "https://m.example/simple/"), None, id="no-packages-url"),
        pytest.param(
            "http://127.0.0.1:1/files/demo-1.0.tar.gz",
            Mirror.from_base("m", "https://mirror.example/pypi"),
            None,
            id="foreign-layout",
        ),
    ],
)
def test_derive_file_url(file_url: str, mirror: Mirror, expected: str | None) -> None:
    assert derive_file_url(file_url, mirror) == expected


# --------------------------------------------------------------------------- mirror sets


def test_packaged_cn_set() -> None:
    sets = load_mirror_sets()
    cn = sets["cn"]
    assert len(cn) == 14
    assert len({m.name for m in cn}) == 14
    for mirror in cn:
        assert mirror.simple_url.startswith("https://")
        assert mirror.simple_url.endswith("/")
        assert mirror.packages_url is None or mirror.packages_url.startswith("https://")
    assert not any(name.startswith("_") for name in sets)  # comments are not sets


def test_mirrors_file(tmp_path: Path) -> None:
    path = tmp_path / "mirrors.json"
    path.write_text(
        json.dumps(
            {
                "_comment": "ignored",
                "lab": [
                    {"name": "a", "base": "http://127.0.0.1:1/pypi"},
                    {"name": "b", "simple_url": "http://127.0.0.1:2/simple"},
                    {
                        "name": "c",
                        "simple_url": "http://127.0.0.1:3/simple/",
                        "packages_url": "http://127.0.0.1:3/packages",
                    },
                ],
            }
        ),
        encoding="utf-8",
    )
    assert load_mirror_sets(path) == {
        "lab": (
            Mirror(
                "a", "http://127.0.0.1:1/pypi/web/simple/", "http://127.0.0.1:1/pypi/web/packages/"
            ),
            Mirror("b", "http://127.0.0.1:2/simple/", None),
            Mirror("c", "http://127.0.0.1:3/simple/", "http://127.0.0.1:3/packages/"),
        )
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "cannot read mirror sets", id="missing-file"),
        pytest.param("{not json", "cannot read mirror sets", id="bad-json"),
        pytest.param("[]", "expected an object", id="not-an-object"),
        pytest.param('{"cn": {"name": "x"}}', "'cn' must be a list", id="set-not-a-list"),
        pytest.param('{"cn": ["x"]}', "needs a 'name'", id="mirror-not-an-object"),
        pytest.param('{"cn": [{"base": "https://x"}]}', "needs a 'name'", id="no-name"),
        pytest.param(
            '{"cn": [{"name": "x", "base": "ftp://x/pypi"}]}', "base must be an http", id="ftp"
        ),
        pytest.param(
            '{"cn": [{"name": "x", "simple_url": 5}]}', "simple_url must be an http", id="not-str"
        ),
        pytest.param('{"cn": [{"name": "x"}]}', "needs 'base' or 'simple_url'", id="no-url"),
    ],
)
def test_bad_mirrors_file(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "mirrors.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(BadInputError, match=message) as info:
        load_mirror_sets(path)
    assert info.value.context is not None
    assert str(path) in info.value.context
    assert info.value.exit_code == 2
