"""Reading core metadata from a loopback index: sidecars, range reads, whole-file fallback, sdists."""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import pytest
from packaging.utils import canonicalize_name

from pypidl.config import NetworkSettings
from pypidl.plan.metadata import MetadataError, MetadataFetcher, parse_core_metadata, probe_order
from pypidl.plan.pages import IndexClient, RemoteFile
from pypidl.sources import Mirror
from tests.lib.server import IndexServer, Status
from tests.lib.wheels import make_pkg_info_sdist, make_sdist, make_wheel

NET = NetworkSettings(user_agent="pypidl-tests", retries=0, connect_timeout=5, read_timeout=10)

BIG = 3 * 1024 * 1024


def _page(server: IndexServer, name: str) -> list[RemoteFile]:
    client = IndexClient([Mirror.from_index_url(server.simple_url)], NET)
    return list(client.project(name).files)


def _file_gets(server: IndexServer, filename: str) -> list[Any]:
    return [r for r in server.requests if r.path.endswith("/" + filename)]


def _metadata_first_wheel(directory: Path, name: str, version: str, payload: int) -> Path:
    """A wheel whose METADATA comes first and a big member after it, so reading it needs
    the central directory at the end *and* a second range near the start."""
    dist_info = f"{name}-{version}.dist-info"
    meta = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        'Requires-Python: >=3.8\nRequires-Dist: colorama; sys_platform == "win32"\n\n'
    ).encode()
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo(f"{dist_info}/METADATA"), meta, zipfile.ZIP_DEFLATED)
        zf.writestr(f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nTag: py3-none-any\n")
        zf.writestr(f"{name}/blob.bin", b"\0" * payload, zipfile.ZIP_STORED)
        zf.writestr(f"{dist_info}/RECORD", "")
    return path


def test_sidecar_is_used_and_verified(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = index_server()
    wheel = make_wheel(
        wheel_dir, "alpha", "1.0", requires_dist=["beta>=2", 'tomli; python_version < "3.11"']
    )
    server.add_file(wheel)
    with MetadataFetcher(NET) as fetcher:
        meta = fetcher.release(canonicalize_name("alpha"), "1.0", _page(server, "alpha"))
        assert [str(r) for r in meta.requires_dist] == ["beta>=2", 'tomli; python_version < "3.11"']
        assert fetcher.how[wheel.name] == "sidecar"
    assert not _file_gets(server, wheel.name), "the wheel itself must not be fetched"


def test_sidecar_hash_mismatch_falls_back_to_the_wheel(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = index_server()
    wheel = make_wheel(wheel_dir, "alpha", "1.0", requires_dist=["beta"])
    served = server.add_file(wheel)
    files = _page(server, "alpha")
    bad = [replace(f, core_metadata_sha256="0" * 64) for f in files]
    with MetadataFetcher(NET) as fetcher:
        meta = fetcher.release(canonicalize_name("alpha"), "1.0", bad)
    assert [r.name for r in meta.requires_dist] == ["beta"]
    assert served.metadata is not None
    assert _file_gets(server, wheel.name), "after a bad sidecar the wheel is read"


@pytest.mark.parametrize("metadata_first", [False, True])
def test_range_reads_do_not_fetch_a_large_wheel(
    index_server: Callable[..., IndexServer], wheel_dir: Path, *, metadata_first: bool
) -> None:
    server = index_server(metadata=False)
    if metadata_first:
        wheel = _metadata_first_wheel(wheel_dir, "large", "2.0", BIG)
    else:
        wheel = make_wheel(
            wheel_dir,
            "large",
            "2.0",
            requires_python=">=3.8",
            requires_dist=['colorama; sys_platform == "win32"'],
            extra_files={"large/blob.bin": b"\0" * BIG},
        )
    server.add_file(wheel)
    files = _page(server, "large")
    assert not files[0].has_core_metadata
    with MetadataFetcher(NET) as fetcher:
        meta = fetcher.release(canonicalize_name("large"), "2.0", files)
        assert fetcher.how[wheel.name] == "range"
    assert meta.requires_python == ">=3.8"
    assert [r.name for r in meta.requires_dist] == ["colorama"]
    gets = _file_gets(server, wheel.name)
    assert gets
    assert all("range" in g.headers for g in gets), "every wheel request is a range read"
    assert len(gets) == (2 if metadata_first else 1)
    assert not server.requests_matching("*.metadata")


def test_zip64_wheel_is_read_with_ranges(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    path = wheel_dir / "z64-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", allowZip64=True) as zf:
        with zf.open("z64/blob.bin", "w", force_zip64=True) as fh:
            fh.write(b"\1" * BIG)
        zf.writestr(
            "z64-1.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: z64\nVersion: 1.0\nRequires-Dist: six\n\n",
        )
    server = index_server(metadata=False)
    server.add_file(path)
    with MetadataFetcher(NET) as fetcher:
        meta = fetcher.release(canonicalize_name("z64"), "1.0", _page(server, "z64"))
        assert fetcher.how[path.name] == "range"
    assert [r.name for r in meta.requires_dist] == ["six"]


def test_server_ignoring_range_falls_back_to_whole_download(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = index_server(metadata=False)
    server.ignore_range = True
    wheel = make_wheel(wheel_dir, "norange", "1.0", requires_dist=["six>=1.16"])
    server.add_file(wheel)
    with MetadataFetcher(NET) as fetcher:
        meta = fetcher.release(canonicalize_name("norange"), "1.0", _page(server, "norange"))
        assert fetcher.how[wheel.name] == "download"
    assert [str(r) for r in meta.requires_dist] == ["six>=1.16"]
    assert len(_file_gets(server, wheel.name)) == 1, "the 200 answer is used, not fetched twice"


def test_download_is_bounded(index_server: Callable[..., IndexServer], wheel_dir: Path) -> None:
    server = index_server(metadata=False)
    server.ignore_range = True
    wheel = make_wheel(wheel_dir, "huge", "1.0", extra_files={"huge/b.bin": b"\0" * 200_000})
    server.add_file(wheel)
    with (
        MetadataFetcher(NET, max_download=100_000) as fetcher,
        pytest.raises(MetadataError, match="larger than"),
    ):
        fetcher.release(canonicalize_name("huge"), "1.0", _page(server, "huge"))


def test_concurrent_callers_share_one_fetch_and_the_disk_cache(
    index_server: Callable[..., IndexServer], wheel_dir: Path, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    server = index_server(metadata=False)
    wheel = make_wheel(wheel_dir, "shared", "1.0", requires_dist=["x"])
    server.add_file(wheel)
    files = _page(server, "shared")
    name = canonicalize_name("shared")
    with (
        MetadataFetcher(NET, cache_dir=tmp_path / "cache") as fetcher,
        ThreadPoolExecutor(8) as pool,
    ):
        results = list(pool.map(lambda _: fetcher.release(name, "1.0", files), range(32)))
    assert all(r == results[0] for r in results)
    assert len(_file_gets(server, wheel.name)) == 1

    server.clear_requests()
    with MetadataFetcher(NET, cache_dir=tmp_path / "cache") as fresh:
        assert fresh.release(name, "1.0", files) == results[0]
        assert fresh.how[wheel.name] == "cache"
    assert not _file_gets(server, wheel.name)


def test_a_damaged_disk_cache_entry_is_fetched_again_and_repaired(
    index_server: Callable[..., IndexServer], wheel_dir: Path, tmp_path: Path
) -> None:
    server = index_server(metadata=False)
    wheel = make_wheel(wheel_dir, "cached", "1.0", requires_dist=["dep-a", "dep-b>=2"])
    server.add_file(wheel)
    files = _page(server, "cached")
    name = canonicalize_name("cached")
    with MetadataFetcher(NET, cache_dir=tmp_path / "cache") as fetcher:
        first = fetcher.release(name, "1.0", files)
    (entry,) = (tmp_path / "cache").rglob("*.metadata")
    # a crash before writeback can leave an entry cut short: here, without its last requirement
    whole = entry.read_bytes()
    entry.write_bytes(whole[: whole.index(b"Requires-Dist: dep-b")])
    server.clear_requests()
    with MetadataFetcher(NET, cache_dir=tmp_path / "cache") as fresh:
        assert fresh.release(name, "1.0", files) == first
        assert fresh.how[wheel.name] != "cache"
    assert _file_gets(server, wheel.name), "the damaged entry was used instead of the index"
    assert entry.read_bytes() == whole  # repaired: the next run reads it from the disk again


def test_prefers_a_wheel_over_the_sdist(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = index_server(metadata=False)
    server.add_file(make_sdist(wheel_dir, "both", "1.0", requires_dist=["a"]))
    server.add_file(make_wheel(wheel_dir, "both", "1.0", requires_dist=["a"]))
    files = _page(server, "both")
    assert [f.kind for f in probe_order(files)] == ["wheel", "sdist"]
    with MetadataFetcher(NET) as fetcher:
        meta = fetcher.release(canonicalize_name("both"), "1.0", files)
    assert meta.dependencies_known
    assert not server.requests_matching("*.tar.gz")


def _sdist(directory: Path, name: str, pkg_info: str) -> Path:
    return make_pkg_info_sdist(directory, name, "1.0", pkg_info)


@pytest.mark.parametrize(
    ("header", "known"),
    [
        ("Metadata-Version: 2.2\n", True),
        ("Metadata-Version: 2.2\nDynamic: Requires-Dist\n", False),
        ("Metadata-Version: 2.1\n", False),
    ],
)
def test_sdist_dependencies_are_trusted_only_when_static(
    index_server: Callable[..., IndexServer], wheel_dir: Path, header: str, *, known: bool
) -> None:
    server = index_server()
    server.add_file(
        _sdist(wheel_dir, "src", f"{header}Name: src\nVersion: 1.0\nRequires-Dist: six\n\n")
    )
    with MetadataFetcher(NET) as fetcher:
        meta = fetcher.release(canonicalize_name("src"), "1.0", _page(server, "src"))
    assert meta.dependencies_known is known
    assert [r.name for r in meta.requires_dist] == (["six"] if known else [])
    if not known:
        assert meta.unknown_reason
        assert "src-1.0.tar.gz" in meta.unknown_reason


def test_unreadable_release_raises_with_reasons(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = index_server(metadata=False)
    wheel = make_wheel(wheel_dir, "gone", "1.0")
    server.add_file(wheel)
    files = _page(server, "gone")
    server.fail_always("*.whl", Status(404))
    with MetadataFetcher(NET) as fetcher, pytest.raises(MetadataError, match=r"gone 1\.0.*404"):
        fetcher.release(canonicalize_name("gone"), "1.0", files)


def test_local_file_urls_use_the_sidecar_or_the_wheel(wheel_dir: Path) -> None:
    wheel = make_wheel(wheel_dir, "loc", "1.0", requires_dist=["a"])
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    rf = RemoteFile(
        project=canonicalize_name("loc"),
        filename=wheel.name,
        url=wheel.as_uri(),
        version="1.0",
        kind="wheel",
        sha256=sha,
    )
    with MetadataFetcher(NET) as fetcher:
        assert [r.name for r in fetcher.release(rf.project, "1.0", [rf]).requires_dist] == ["a"]
    wheel.with_name(wheel.name + ".metadata").write_bytes(
        b"Metadata-Version: 2.1\nName: loc\nVersion: 1.0\nRequires-Dist: b\n\n"
    )
    with MetadataFetcher(NET) as fetcher:
        assert [r.name for r in fetcher.release(rf.project, "1.0", [rf]).requires_dist] == ["b"]


def test_invalid_requires_dist_lines_are_skipped() -> None:
    meta = parse_core_metadata(
        b"Metadata-Version: 2.1\nName: x\nVersion: 1\nRequires-Dist: ok>=1\nRequires-Dist: ??bad\n"
        b"Provides-Extra: Fast_Mode\n\n",
        project=canonicalize_name("x"),
        version="1",
    )
    assert [str(r) for r in meta.requires_dist] == ["ok>=1"]
    assert meta.provides_extra == {"fast-mode"}


def test_an_sdist_metadata_version_too_long_to_compare_leaves_its_dependencies_unknown() -> None:
    huge = "2" + "0" * 5000  # a valid version to packaging's pattern, more than int() takes
    meta = parse_core_metadata(
        f"Metadata-Version: {huge}\nName: x\nVersion: 1\nRequires-Dist: ok\n\n".encode(),
        project=canonicalize_name("x"),
        version="1",
        filename="x-1.tar.gz",
        from_sdist=True,
    )
    assert not meta.dependencies_known
    assert meta.requires_dist == ()
    assert meta.unknown_reason is not None
    assert "dependencies unknown" in meta.unknown_reason
    assert len(meta.unknown_reason) < 200  # the version is not written out in full
