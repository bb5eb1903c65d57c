"""The catalog against planted symlinks: nothing in ``.pypidl/`` ever leads outside the mirror."""

from __future__ import annotations

import pytest

from pypidl.manifest import Entry
from pypidl.store.catalog import Catalog

SHA = "ab" * 32


def _entry() -> Entry:
    return Entry(
        project="demo",
        version="1.0",
        filename="demo-1.0-py3-none-any.whl",
        urls=("http://127.0.0.1:1/demo-1.0-py3-none-any.whl",),
        sha256=SHA,
        size=4,
    )


def _file(root):
    path = root / "packages" / "demo" / "demo-1.0-py3-none-any.whl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"demo")
    return path


def test_a_catalog_file_symlinked_outside_is_neither_read_nor_written(tmp_path):
    root = tmp_path / "mirror"
    outside = tmp_path / "victim.jsonl"
    outside.write_text("precious\n")
    catalog = Catalog(root)
    catalog.dir.mkdir(parents=True)
    (catalog.dir / "demo.jsonl").symlink_to(outside)
    path = _file(root)
    with pytest.raises(OSError, match=r"symbolic link|out of the mirror"):
        catalog.add(_entry(), path)
    assert catalog.load("demo") == {}  # ignored, not read: its files are rehashed
    assert outside.read_text() == "precious\n"


def test_a_catalog_dir_symlinked_outside_is_neither_read_nor_written(tmp_path):
    root = tmp_path / "mirror"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / ".pypidl").mkdir(parents=True)
    (root / ".pypidl" / "catalog").symlink_to(elsewhere)
    catalog = Catalog(root)
    path = _file(root)
    with pytest.raises(OSError, match=r"symbolic link|out of the mirror"):
        catalog.add(_entry(), path)
    assert catalog.load("demo") == {}
    assert list(elsewhere.iterdir()) == []


def test_records_still_round_trip(tmp_path):
    """The checks cost nothing to the normal case."""
    root = tmp_path / "mirror"
    catalog = Catalog(root)
    path = _file(root)
    catalog.add(_entry(), path)
    assert list(catalog.load("demo")) == ["demo-1.0-py3-none-any.whl"]
    assert catalog.current(_entry())
