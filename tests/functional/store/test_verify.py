"""``verify_mirror`` and ``pypidl verify``: every kind of damage reported by file, repair only
on request, and a download after a repair fetches exactly what was removed."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pypidl.config import NetworkSettings
from pypidl.errors import BadInputError
from pypidl.fetch import pool as engine
from pypidl.manifest import Entry
from pypidl.store.catalog import STATE_DIR, Catalog
from pypidl.store.verify import verify_mirror
from tests.lib.mirror import entry_for
from tests.lib.server import IndexServer

FAST = NetworkSettings(backoff=0.01, retries=2)


def blob(directory: Path, name: str, size: int = 40_000) -> Path:
    path = directory / f"{name}-1.0-py3-none-any.whl"
    path.write_bytes(random.Random(name).randbytes(size))  # noqa: S311 - test data
    return path


@pytest.fixture
def mirror(index_server, tmp_path) -> tuple[Path, IndexServer, list[Entry]]:
    server = index_server()
    files = [
        server.add_file(blob(tmp_path, n), metadata=False)
        for n in ("alpha", "beta", "gamma", "delta")
    ]
    entries = [entry_for(f) for f in files]
    root = tmp_path / "mirror"
    assert not engine.run(entries, root, options=engine.EngineOptions(net=FAST)).failed
    return root, server, entries


def catalog_bytes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (root / STATE_DIR / "catalog").iterdir()}


def damage(root: Path, entries: list[Entry]) -> dict[str, str]:
    alpha, beta, gamma, _ = (root / e.relpath for e in entries)
    data = bytearray(alpha.read_bytes())
    data[10] ^= 0xFF
    alpha.write_bytes(bytes(data))
    beta.write_bytes(beta.read_bytes()[:-1])
    gamma.unlink()
    (root / "packages" / "delta" / "stray-1.0.tar.gz").write_bytes(b"?")
    (root / "packages" / "delta" / ".pypidl-stray.part").write_bytes(
        b"in progress"
    )  # not a problem
    (root / "packages" / "unknown").mkdir()
    (root / "packages" / "unknown" / "unknown-1.0.tar.gz").write_bytes(b"?")
    return {
        entries[0].relpath: "wrong sha256",
        entries[1].relpath: "wrong size",
        entries[2].relpath: "missing",
        "packages/delta/stray-1.0.tar.gz": "not in the catalog",
        "packages/unknown/unknown-1.0.tar.gz": "not in the catalog",
    }


def test_a_clean_mirror_verifies(mirror):
    root, _, entries = mirror
    report = verify_mirror(root)
    assert report.ok
    assert report.checked == 4
    assert report.bytes == sum(e.size or 0 for e in entries)


def test_every_problem_is_reported_by_file_and_nothing_is_written(mirror):
    root, _, entries = mirror
    expected = damage(root, entries)
    before = catalog_bytes(root)

    report = verify_mirror(root, processes=2)

    assert [path for path, _ in report.problems] == sorted(expected)
    for path, what in report.problems:
        assert what.startswith(expected[path])
    assert report.repaired == []
    assert catalog_bytes(root) == before
    assert (root / entries[0].relpath).exists()


def test_repair_drops_bad_files_and_the_next_download_refetches_them(mirror):
    root, server, entries = mirror
    damage(root, entries)

    report = verify_mirror(root, repair=True)

    assert sorted(report.repaired) == sorted(e.relpath for e in entries[:3])
    assert not (root / entries[0].relpath).exists()
    assert not (root / entries[1].relpath).exists()
    assert set(Catalog(root).load("alpha")) == set()
    server.clear_requests()
    again = engine.run(entries, root, options=engine.EngineOptions(net=FAST))
    assert sorted(r.entry.project for r in again.downloaded) == ["alpha", "beta", "gamma"]
    assert len(server.requests) == 3
    after = verify_mirror(root)
    assert [p for p, _ in after.problems] == [
        "packages/delta/stray-1.0.tar.gz",
        "packages/unknown/unknown-1.0.tar.gz",
    ]


def test_not_a_directory_is_bad_input(tmp_path):
    with pytest.raises(BadInputError):
        verify_mirror(tmp_path / "nope")


def test_an_empty_directory_verifies_without_a_pool(tmp_path):
    assert verify_mirror(tmp_path).ok


def test_cli_verify(mirror, capsys):
    from pypidl.cli import main

    root, _, entries = mirror
    assert main(["verify", str(root), "-q"]) == 0
    damage(root, entries)
    assert main(["verify", str(root), "--processes", "2", "-q"]) == 1
    out = capsys.readouterr().out
    assert "Verification Problems" in out
    assert entries[0].relpath in out
    assert "wrong sha256" in out
    assert main(["verify", str(root), "--repair", "-q"]) == 1
    assert not (root / entries[0].relpath).exists()
    assert main(["verify", str(root / "missing")]) == 2
