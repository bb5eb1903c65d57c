"""How much planning reads: an sdist only up to its PKG-INFO; a failing mirror's files from
another mirror."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Callable

import pytest
from packaging.utils import canonicalize_name

from pypidl.config import NetworkSettings
from pypidl.plan.metadata import MetadataError, MetadataFetcher
from pypidl.plan.pages import IndexClient, RemoteFile
from pypidl.sources import Mirror
from tests.lib.server import IndexServer, Status
from tests.lib.wheels import make_wheel

NET = NetworkSettings(user_agent="pypidl-tests", retries=0, connect_timeout=5, read_timeout=10)
BLOB = 4 * 1024 * 1024


def _page(server: IndexServer, name: str) -> list[RemoteFile]:
    client = IndexClient([Mirror.from_index_url(server.simple_url)], NET)
    return list(client.project(name).files)


def _sdist(directory: Path, *, pkg_info_first: bool) -> Path:
    """``src-1.0.tar.gz``: PKG-INFO and 4 MiB of incompressible data, in either order."""
    pkg_info = b"Metadata-Version: 2.2\nName: src\nVersion: 1.0\nRequires-Dist: six\n\n"
    members = [("src-1.0/PKG-INFO", pkg_info), ("src-1.0/blob.bin", os.urandom(BLOB))]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in members if pkg_info_first else members[::-1]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = directory / "src-1.0.tar.gz"
    path.write_bytes(raw.getvalue())
    return path


@pytest.mark.parametrize("pkg_info_first", [True, False])
def test_sdist_is_read_only_up_to_its_pkg_info(
    index_server: Callable[..., IndexServer], wheel_dir: Path, *, pkg_info_first: bool
) -> None:
    server = index_server()
    served = server.add_file(_sdist(wheel_dir, pkg_info_first=pkg_info_first))
    with MetadataFetcher(NET) as fetcher:
        meta = fetcher.release(canonicalize_name("src"), "1.0", _page(server, "src"))
        stats = fetcher.stats()
    assert [r.name for r in meta.requires_dist] == ["six"]
    if pkg_info_first:
        assert stats == {"partial": (1, stats["partial"][1])}
        assert stats["partial"][1] < served.size // 4, "read far past PKG-INFO"
    else:  # PKG-INFO last: nothing smaller works, and the summary counts a whole download
        assert stats == {"download": (1, served.size)}


def test_metadata_comes_from_another_mirror_when_the_first_fails(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    broken, good = index_server(), index_server()
    wheel = make_wheel(wheel_dir, "lib", "1.0", requires_dist=["six"])
    for server in (broken, good):
        server.add_file(wheel)
    broken.fail_always("*/lib-1.0-py3-none-any.whl*", Status(503))
    mirrors = [Mirror.from_index_url(s.simple_url) for s in (broken, good)]
    with MetadataFetcher(NET, mirrors=mirrors) as fetcher:
        meta = fetcher.release(canonicalize_name("lib"), "1.0", _page(broken, "lib"))
    assert [r.name for r in meta.requires_dist] == ["six"]
    assert good.requests_matching("*/lib-1.0-py3-none-any.whl.metadata")


def test_a_file_from_an_index_outside_the_mirror_set_is_not_asked_of_the_mirrors(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    """A project kept to its own index must never be looked for elsewhere (dependency
    confusion): its failing file is not asked of the general mirrors."""
    own, general = index_server(), index_server()
    wheel = make_wheel(wheel_dir, "private", "1.0")
    for server in (own, general):
        server.add_file(wheel)
    own.fail_always("*/private-1.0-py3-none-any.whl*", Status(503))
    fetcher = MetadataFetcher(NET, mirrors=[Mirror.from_index_url(general.simple_url)])
    with fetcher, pytest.raises(MetadataError):
        fetcher.release(canonicalize_name("private"), "1.0", _page(own, "private"))
    assert not general.requests
