"""aria2c downloads from pypidl's export; pypidl adopts, verifies and indexes the result.

The mirrors are two loopback index servers holding the same files.  aria2c runs with the command
line ``docs/manifest.md`` recommends.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pypidl.cli import main
from pypidl.manifest import Entry, Manifest, dump
from pypidl.store.catalog import Catalog
from pypidl.store.index_builder import build_index
from tests.lib.server import Corrupt, IndexServer, Status
from tests.lib.wheels import make_sdist, make_wheel

ARIA2C = shutil.which("aria2c")
pytestmark = pytest.mark.skipif(
    ARIA2C is None, reason="aria2c is not installed (apt-get install aria2)"
)

#: the command line docs/manifest.md recommends, minus the input file
ARIA2C_FLAGS = [
    "--check-integrity=true",
    "--continue=true",
    "--allow-overwrite=false",
    "--auto-file-renaming=false",
    "--max-concurrent-downloads=4",
    "--uri-selector=inorder",
    "--console-log-level=warn",
    "--summary-interval=0",
    "--no-conf=true",  # ignore the machine's aria2.conf in tests
]


def aria2c(input_file: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert ARIA2C is not None
    return subprocess.run(
        [ARIA2C, f"--input-file={input_file}", *ARIA2C_FLAGS],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def setup(
    tmp_path: Path, wheel_dir: Path, index_server: Callable[..., IndexServer]
) -> tuple[Manifest, Path, IndexServer, IndexServer]:
    """Two mirrors serving three files; a manifest listing both mirrors' URL of each."""
    paths = [
        (make_wheel(wheel_dir, "alpha", "1.0"), "alpha", "1.0"),
        (make_wheel(wheel_dir, "beta", "2.0", extra_files={"beta/data.bin": b"\x01" * 200_000}), "beta", "2.0"),
        (make_sdist(wheel_dir, "gamma", "0.3"), "gamma", "0.3"),
    ]  # fmt: skip
    first, second = index_server(), index_server()
    first.add_dir(wheel_dir)
    second.add_dir(wheel_dir)
    entries = []
    for path, project, version in paths:
        data = path.read_bytes()
        entries.append(
            Entry(
                project=project,
                version=version,
                filename=path.name,
                urls=(first.file_url(path.name), second.file_url(path.name)),
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                kind="sdist" if path.name.endswith(".tar.gz") else "wheel",
            )
        )
    manifest = Manifest(entries=tuple(entries))
    path = tmp_path / "manifest.json"
    dump(manifest, path)
    return manifest, path, first, second


def test_aria2c_fills_a_mirror_pypidl_verifies_and_indexes(
    tmp_path: Path, setup: tuple[Manifest, Path, IndexServer, IndexServer]
) -> None:
    manifest, manifest_path, first, second = setup
    beta = next(e for e in manifest.entries if e.project == "beta")
    first.fail_always(f"*{beta.filename}", Status(404))  # aria2c must move on to the 2nd URL
    input_file = tmp_path / "pypi.aria2"
    # a relative --download-dir: aria2c resolves dir= against its working directory
    assert main(["export", str(manifest_path), "-f", "aria2c", "--download-dir", "mirror",
                 "-o", str(input_file)]) == 0  # fmt: skip
    assert input_file.read_text().count("\t") == len(manifest.entries)

    result = aria2c(input_file, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert second.requests_matching(f"*{beta.filename}")

    mirror = tmp_path / "mirror"
    for entry in manifest.entries:
        assert hashlib.sha256((mirror / entry.relpath).read_bytes()).hexdigest() == entry.sha256
    assert not list(mirror.rglob("*.aria2"))

    assert (
        main(["import", str(mirror), "--into", str(mirror), "--manifest", str(manifest_path)]) == 0
    )
    catalog = Catalog(mirror)
    assert all(catalog.current(e) for e in manifest.entries)
    report = build_index(mirror)
    assert report.files == len(manifest.entries)
    for entry in manifest.entries:
        page = (mirror / "simple" / entry.project / "index.html").read_text()
        assert f"{entry.filename}#sha256={entry.sha256}" in page


def test_aria2c_checksum_catches_a_corrupt_mirror_and_pypidl_refuses_it(
    tmp_path: Path, setup: tuple[Manifest, Path, IndexServer, IndexServer]
) -> None:
    """What aria2c 1.36 does with a corrupt body (documented in docs/manifest.md).

    ``checksum=`` makes it detect the bad bytes (exit 32), but it does not retry the next URL:
    the bad file stays under its name beside a ``.aria2`` control file.  pypidl does not adopt
    it; running aria2c again re-downloads it.
    """
    manifest, manifest_path, first, _ = setup
    beta = next(e for e in manifest.entries if e.project == "beta")
    first.fail(f"*{beta.filename}", Corrupt())  # corrupt once
    input_file = tmp_path / "pypi.aria2"
    mirror = tmp_path / "mirror"
    assert main(["export", str(manifest_path), "-f", "aria2c", "--download-dir", str(mirror),
                 "-o", str(input_file)]) == 0  # fmt: skip

    result = aria2c(input_file, cwd=tmp_path)
    assert result.returncode == 32, result.stdout + result.stderr  # 32: checksum validation failed
    assert "Checksum error" in result.stdout + result.stderr
    bad = mirror / beta.relpath
    assert hashlib.sha256(bad.read_bytes()).hexdigest() != beta.sha256
    assert (bad.parent / (bad.name + ".aria2")).exists()

    args = ["import", str(mirror), "--into", str(mirror), "--manifest", str(manifest_path)]
    assert main(args) == 1  # the others are adopted, beta is refused
    assert not Catalog(mirror).current(beta)
    assert build_index(mirror).files == len(manifest.entries) - 1
    assert not (mirror / "simple" / "beta").exists()

    result = aria2c(input_file, cwd=tmp_path)  # the mirror is healthy again
    assert result.returncode == 0, result.stdout + result.stderr
    assert main(args) == 0
    assert Catalog(mirror).current(beta)
