"""config: the index pip would use, a pip-like identity, and settings that hide credentials."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from pip._internal.models.index import PyPI

from pypidl import __version__
from pypidl.config import (
    NetworkSettings,
    _flat_items,
    default_index_url,
    default_mirror,
    pip_config_value,
    user_agent,
)


@pytest.fixture
def pip_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A pip.conf that PIP_CONFIG_FILE points at (write it in the test)."""
    path = tmp_path / "pip.conf"
    monkeypatch.setenv("PIP_CONFIG_FILE", str(path))
    return path


def test_default_index_is_pips_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    assert default_index_url() == PyPI.simple_url
    mirror = default_mirror()
    assert mirror.simple_url == PyPI.simple_url.rstrip("/") + "/"
    assert mirror.packages_url == f"https://{PyPI.file_storage_domain}/packages/"


def test_pip_config_file_is_honoured(pip_conf: Path) -> None:
    pip_conf.write_text(
        "[global]\nindex-url = http://127.0.0.1:3141/root/simple/\ncert = /etc/pypidl-test/ca.pem\n",
        encoding="utf-8",
    )
    assert default_index_url() == "http://127.0.0.1:3141/root/simple/"
    assert pip_config_value("cert") == "/etc/pypidl-test/ca.pem"
    mirror = default_mirror()
    assert mirror.simple_url == "http://127.0.0.1:3141/root/simple/"
    assert mirror.name == "default"


_WHAT_PIP_READS = """
import json, sys
from pypidl.config import pip_config_value
print(json.dumps([pip_config_value("cert"), "pip._internal.configuration" in sys.modules]))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="where pip looks for pip.conf on Linux")
@pytest.mark.parametrize(
    ("config_file", "cert_variable", "expected"),
    [
        (None, None, ["/etc/pypidl-test/user-ca.pem", True]),  # the user's pip.conf
        ("devnull", None, [None, False]),  # pip reads no file: neither do we, nor import it
        ("devnull", "/etc/pypidl-test/env-ca.pem", ["/etc/pypidl-test/env-ca.pem", False]),
    ],
)
def test_pip_config_file_devnull_reads_no_file(
    tmp_path: Path, config_file: str | None, cert_variable: str | None, expected: list[object]
) -> None:
    user = tmp_path / "config" / "pip"
    user.mkdir(parents=True)
    (user / "pip.conf").write_text("[global]\ncert = /etc/pypidl-test/user-ca.pem\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env |= {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env["XDG_CONFIG_DIRS"] = str(tmp_path / "none")  # no system-wide pip.conf either
    if config_file == "devnull":
        env["PIP_CONFIG_FILE"] = os.devnull
    if cert_variable:
        env["PIP_CERT"] = cert_variable
    out = subprocess.run(
        [sys.executable, "-c", _WHAT_PIP_READS], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == expected


def test_install_section_overrides_global(pip_conf: Path) -> None:
    pip_conf.write_text(
        "[global]\nindex-url = http://127.0.0.1:1/global/simple/\n"
        "[install]\nindex-url = http://127.0.0.1:1/install/simple/\n",
        encoding="utf-8",
    )
    assert default_index_url() == "http://127.0.0.1:1/install/simple/"


def test_both_shapes_of_pip_configuration_items() -> None:
    """Older pip lists ``(section.option, value)``, newer pip groups them by file."""
    old = [("global.index-url", "http://127.0.0.1:1/a/"), ("global.cert", "x")]
    new = [("/etc/pip.conf", {"global.index-url": "http://127.0.0.1:1/a/"}), ("/x", {})]
    assert _flat_items(old) == old
    assert _flat_items(new) == [("global.index-url", "http://127.0.0.1:1/a/")]


def test_environment_beats_config_file(pip_conf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pip_conf.write_text("[global]\nindex-url = http://127.0.0.1:1/file/simple/\n", encoding="utf-8")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:2/env/simple/")
    assert default_index_url() == "http://127.0.0.1:2/env/simple/"


def test_first_of_several_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:2/a/simple/  http://127.0.0.1:2/b/")
    assert default_index_url() == "http://127.0.0.1:2/a/simple/"


def test_credentialed_default_index_is_not_kept_in_the_mirror(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://user:secret@127.0.0.1:2/simple/")
    assert default_index_url() == "http://user:secret@127.0.0.1:2/simple/"  # for pip-compile
    assert "secret" not in repr(default_mirror())


def test_unreadable_pip_config_falls_back(pip_conf: Path) -> None:
    pip_conf.write_text("this is [not an ini file\n", encoding="utf-8")
    assert default_index_url() == PyPI.simple_url


def test_user_agent_looks_like_pip() -> None:
    ua = user_agent()
    assert ua.startswith("pip/")
    version, _, data = ua.partition(" ")
    assert version.split("/", 1)[1][0].isdigit()
    info = json.loads(data)
    assert info["installer"] == {"name": "pypidl", "version": __version__}
    assert info["python"].count(".") == 2
    assert {"implementation", "system", "cpu"} <= info.keys()


def test_with_credentials_from() -> None:
    net = NetworkSettings(user_agent="ua", retries=2)
    urls = [
        "http://127.0.0.1:1/simple/",
        "http://al%40ice:p%40ss@127.0.0.1:2/simple/",
        "http://token@[::1]:3/simple/",
    ]
    with_creds = net.with_credentials_from(urls)
    assert with_creds.credentials == (
        ("127.0.0.1:2", "al@ice", "p@ss"),
        ("[::1]:3", "token", ""),
    )
    assert with_creds.retries == 2  # everything else is kept
    assert with_creds.user_agent == "ua"
    assert net.credentials == ()  # frozen: a new object
    both = with_creds.with_credentials_from(["http://bob:pw@127.0.0.1:4/"])
    assert len(both.credentials) == 3


def test_repr_hides_credentials() -> None:
    net = NetworkSettings().with_credentials_from(["https://alice:hunter2@127.0.0.1:9/simple/"])
    assert net.credentials
    assert "hunter2" not in repr(net)
    assert "alice" not in repr(net)
    assert "hunter2" not in str(net)


def test_network_settings_pickle() -> None:
    net = NetworkSettings(
        user_agent=user_agent(),
        verify="/etc/pypidl-test/ca.pem",
        client_cert="/etc/pypidl-test/c.pem",
        read_timeout=5.0,
    ).with_credentials_from(["http://u:p@127.0.0.1:1/simple/"])
    assert pickle.loads(pickle.dumps(net)) == net  # noqa: S301 - our own bytes
