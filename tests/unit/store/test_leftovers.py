"""Leftover temporary files: an index build's are leftovers as soon as the index lock is held,
anyone else's only once they are old; parts, final names and other directories are never."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pypidl.store.leftovers import INDEX_TEMP_PREFIX, STALE_AFTER, IndexLock, find_leftovers


def _touch(path: Path, *, age: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


def test_index_temporaries_are_leftovers_only_under_the_index_lock(tmp_path: Path) -> None:
    page = _touch(tmp_path / "simple" / "demo" / f"{INDEX_TEMP_PREFIX}abc.tmp")
    root_page = _touch(tmp_path / "simple" / f"{INDEX_TEMP_PREFIX}def.tmp")
    assert find_leftovers(tmp_path, index_lock_held=False) == []
    assert find_leftovers(tmp_path, index_lock_held=True) == [root_page, page]


def test_other_temporaries_are_leftovers_once_old(tmp_path: Path) -> None:
    fresh = _touch(tmp_path / "packages" / "demo" / ".pypidl-record.tmp")
    old = _touch(tmp_path / "packages" / "demo" / ".pypidl-old.tmp", age=STALE_AFTER + 60)
    assert find_leftovers(tmp_path, index_lock_held=True) == [old]
    assert fresh.exists()


def test_parts_final_files_and_other_places_are_never_leftovers(tmp_path: Path) -> None:
    ancient = STALE_AFTER * 10
    _touch(tmp_path / "packages" / "demo" / ".pypidl-demo-1.0.tar.gz.part", age=ancient)
    _touch(tmp_path / "packages" / "demo" / "demo-1.0.tar.gz.tmp", age=ancient)
    _touch(tmp_path / "elsewhere" / ".pypidl-x.tmp", age=ancient)
    (tmp_path / "packages" / "link").symlink_to(tmp_path / "elsewhere")
    assert find_leftovers(tmp_path, index_lock_held=True) == []


def test_the_index_lock_is_held_by_one_holder_at_a_time(tmp_path: Path) -> None:
    with IndexLock(tmp_path) as first:
        assert first
        with IndexLock(tmp_path) as second:
            assert not second
    with IndexLock(tmp_path) as again:
        assert again  # released on exit


def test_a_mirror_without_its_directories_has_no_leftovers(tmp_path: Path) -> None:
    assert find_leftovers(tmp_path / "missing", index_lock_held=True) == []
