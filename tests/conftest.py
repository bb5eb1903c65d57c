"""Shared fixtures: built distributions, a local index server, hermetic pip/uv runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lib.server import IndexServer

_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
_DROPPED_VARS = {
    "pythonwarnings",
    # An activated virtualenv would make ``uv pip`` target it instead of the venv under test.
    "virtual_env",
    "conda_prefix",
}


@pytest.fixture
def wheel_dir(tmp_path: Path) -> Path:
    """A fresh, empty directory to build distributions into."""
    directory = tmp_path / "dists"
    directory.mkdir()
    return directory


@pytest.fixture
def index_server() -> Iterator[Callable[..., IndexServer]]:
    """Factory: ``index_server(**kwargs)`` returns a started :class:`IndexServer`.

    Every server made through it is stopped at teardown.
    """
    servers: list[IndexServer] = []

    def factory(**kwargs: Any) -> IndexServer:
        server = IndexServer(**kwargs)
        servers.append(server)
        return server.start()

    yield factory
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def clean_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``os.environ`` made hermetic for pip and uv subprocesses.

    Drops every ``PIP_*``/``UV_*`` variable, proxies, ``PYTHONWARNINGS`` and an
    activated virtualenv; ignores pip and uv config files; points the pip and uv
    caches at a fresh directory; keeps loopback traffic off any proxy.
    """
    cache = tmp_path_factory.mktemp("client-cache")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("PIP_", "UV_"))
        and key.lower() not in _PROXY_VARS
        and key.lower() not in _DROPPED_VARS
    }
    env.update(
        {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
            "PIP_CACHE_DIR": str(cache / "pip"),
            "UV_NO_CONFIG": "1",
            "UV_CACHE_DIR": str(cache / "uv"),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    return env


@pytest.fixture
def venv_factory(tmp_path: Path) -> Callable[[], Path]:
    """Factory: ``venv_factory()`` creates a new virtualenv with pip, returns its python.

    ``python -m venv`` seeds pip from the wheel bundled with Python (ensurepip), so creating a
    venv needs no package index: tests never depend on one.
    """
    counter = iter(range(1_000_000))

    def factory() -> Path:
        target = tmp_path / f"venv-{next(counter)}"
        env = {k: v for k, v in os.environ.items() if k.lower() not in _DROPPED_VARS}
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(target)],
            env=env,
            capture_output=True,
            timeout=300,
            check=True,
        )
        bindir = "Scripts" if os.name == "nt" else "bin"
        suffix = ".exe" if os.name == "nt" else ""
        python = target / bindir / f"python{suffix}"
        assert python.exists(), f"no interpreter in {target}"
        return python

    return factory


@pytest.fixture(autouse=True)
def _hermetic_pypidl(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pypidl run in-process reads pip's configuration and its cache: give it neither.

    This machine's pip.conf (extra indexes, constraints, find-links) must not leak into what a
    test plans, and pip-tools' dependency cache is keyed by name and version, which tests reuse
    with different contents.
    """
    for key in list(os.environ):
        if key.startswith(("PIP_", "UV_")) or key.lower() in _PROXY_VARS | {"requests_ca_bundle"}:
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("PYPIDL_CACHE_DIR", str(tmp_path_factory.mktemp("pypidl-cache")))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``network`` talk to the real default index: opt-in with PYPIDL_LIVE_TESTS=1."""
    if os.environ.get("PYPIDL_LIVE_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="live index test; set PYPIDL_LIVE_TESTS=1 to run it")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)
