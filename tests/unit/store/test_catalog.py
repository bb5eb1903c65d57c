"""The catalog: append-only per-project lines, crash-tolerant reads, stat-only freshness checks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from pypidl.manifest import Entry
from pypidl.store.catalog import STATE_DIR, Catalog, Record


def put(root: Path, project: str, filename: str, data: bytes) -> tuple[Entry, Path]:
    """A file in the mirror's layout and the entry describing it."""
    path = root / "packages" / project / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    entry = Entry(
        project=project,
        version=filename.split("-")[1].removesuffix(".tar.gz"),
        filename=filename,
        urls=(f"http://127.0.0.1:1/packages/{filename}",),
        sha256=hashlib.sha256(data).hexdigest(),
        kind="wheel" if filename.endswith(".whl") else "sdist",
    )
    return entry, path


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    root = tmp_path / "mirror"
    root.mkdir()
    return root


def test_add_then_load_and_current(mirror: Path) -> None:
    cat = Catalog(mirror)
    entry, path = put(mirror, "demo", "demo-1.0-py3-none-any.whl", b"wheel bytes")
    record = cat.add(entry, path)
    assert record.size == len(b"wheel bytes")
    assert record.entry.size == len(b"wheel bytes")  # the size on disk is recorded
    assert cat.path_for("demo") == mirror / STATE_DIR / "catalog" / "demo.jsonl"
    loaded = Catalog(mirror).load("demo")  # a fresh object reads the same from disk
    assert list(loaded) == ["demo-1.0-py3-none-any.whl"]
    assert loaded["demo-1.0-py3-none-any.whl"] == record
    assert cat.current(entry)
    assert cat.projects() == ["demo"]


def test_last_line_about_a_file_wins(mirror: Path) -> None:
    cat = Catalog(mirror)
    entry, path = put(mirror, "demo", "demo-1.0.tar.gz", b"one")
    cat.add(entry, path)
    entry2, path = put(mirror, "demo", "demo-1.0.tar.gz", b"two, longer")
    cat.add(entry2, path)
    assert cat.load("demo")["demo-1.0.tar.gz"].entry.sha256 == entry2.sha256
    assert not cat.current(entry)  # the old digest is not what the mirror holds now
    assert cat.current(entry2)


def test_forget_removes_and_a_later_add_restores(mirror: Path) -> None:
    cat = Catalog(mirror)
    a, pa = put(mirror, "demo", "demo-1.0.tar.gz", b"a")
    b, pb = put(mirror, "demo", "demo-2.0.tar.gz", b"b")
    cat.add(a, pa)
    cat.add(b, pb)
    cat.forget("demo", "demo-1.0.tar.gz")
    assert list(cat.load("demo")) == ["demo-2.0.tar.gz"]
    assert not cat.current(a)
    cat.add(a, pa)
    assert sorted(cat.load("demo")) == ["demo-1.0.tar.gz", "demo-2.0.tar.gz"]


def test_load_of_unknown_project_is_empty(mirror: Path) -> None:
    cat = Catalog(mirror)
    assert cat.load("nothing") == {}
    assert cat.projects() == []


def test_torn_last_line_is_ignored(mirror: Path) -> None:
    cat = Catalog(mirror)
    a, pa = put(mirror, "demo", "demo-1.0.tar.gz", b"a")
    b, pb = put(mirror, "demo", "demo-2.0.tar.gz", b"b")
    cat.add(a, pa)
    cat.add(b, pb)
    catalog_file = cat.path_for("demo")
    data = catalog_file.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    # a kill -9 in the middle of the second append, even inside a multi-byte character
    catalog_file.write_bytes(data[: last_start + 40] + "\u00e9".encode()[:1])
    assert list(cat.load("demo")) == ["demo-1.0.tar.gz"]
    assert cat.current(a)
    assert not cat.current(b)


def test_append_after_a_torn_line_is_not_lost(mirror: Path) -> None:
    """The line appended after a crash must not be glued to the torn one."""
    cat = Catalog(mirror)
    a, pa = put(mirror, "demo", "demo-1.0.tar.gz", b"a")
    b, pb = put(mirror, "demo", "demo-2.0.tar.gz", b"b")
    cat.add(a, pa)
    catalog_file = cat.path_for("demo")
    with open(catalog_file, "ab") as fh:
        fh.write(b'{"project": "demo", "filen')  # torn: no newline
    cat.add(b, pb)
    assert sorted(cat.load("demo")) == ["demo-1.0.tar.gz", "demo-2.0.tar.gz"]
    assert cat.current(b)


def test_lines_about_another_project_or_format_are_ignored(mirror: Path) -> None:
    cat = Catalog(mirror)
    other, po = put(mirror, "other", "other-1.0.tar.gz", b"o")
    demo, pd = put(mirror, "demo", "demo-1.0.tar.gz", b"d")
    cat.add(demo, pd)
    foreign = Record(other, 1, po.stat().st_mtime_ns, po.stat().st_ino).to_json()
    future = Record(demo, 1, 0, 0).to_json() | {"format": 99, "filename": "demo-9.0.tar.gz"}
    with open(cat.path_for("demo"), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(foreign) + "\n")
        fh.write(json.dumps(future) + "\n")
        fh.write("[1, 2, 3]\n")
        fh.write("\n")
    assert list(cat.load("demo")) == ["demo-1.0.tar.gz"]
    assert cat.load("other") == {}
    assert not cat.current(other)


def test_compact_keeps_one_line_per_file_still_on_disk(mirror: Path) -> None:
    cat = Catalog(mirror)
    a, pa = put(mirror, "demo", "demo-1.0.tar.gz", b"a")
    b, pb = put(mirror, "demo", "demo-2.0.tar.gz", b"b")
    for _ in range(3):
        cat.add(a, pa)
    cat.add(b, pb)
    pb.unlink()
    kept = cat.compact("demo")
    assert list(kept) == ["demo-1.0.tar.gz"]
    lines = cat.path_for("demo").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["filename"] == "demo-1.0.tar.gz"
    assert cat.current(a)
    assert not any(p.name.startswith(".pypidl-") for p in cat.dir.iterdir())


def test_compact_of_a_project_with_no_file_left_removes_its_catalog(mirror: Path) -> None:
    cat = Catalog(mirror)
    a, pa = put(mirror, "demo", "demo-1.0.tar.gz", b"a")
    cat.add(a, pa)
    pa.unlink()
    assert cat.compact("demo") == {}
    assert not cat.path_for("demo").exists()
    assert cat.projects() == []


def _touch_mtime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _same_size_new_content(path: Path) -> None:
    data = path.read_bytes()
    st = path.stat()
    path.write_bytes(bytes(255 - c for c in data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: only bytes


def _grow(path: Path) -> None:
    st = path.stat()
    with open(path, "ab") as fh:
        fh.write(b"x")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _replace_inode(path: Path) -> None:
    st = path.stat()
    copy = path.with_name(path.name + ".copy")
    shutil.copyfile(path, copy)
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(copy, path)


@pytest.mark.parametrize(
    ("change", "still_current"),
    [
        pytest.param(lambda p: None, True, id="untouched"),
        pytest.param(_same_size_new_content, True, id="same-stat-is-trusted"),
        pytest.param(_touch_mtime, False, id="mtime"),
        pytest.param(_grow, False, id="size"),
        pytest.param(_replace_inode, False, id="inode"),
        pytest.param(lambda p: p.unlink(), False, id="deleted"),
    ],
)
def test_current_is_stat_based(mirror: Path, change: object, still_current: bool) -> None:
    cat = Catalog(mirror)
    entry, path = put(mirror, "demo", "demo-1.0-py3-none-any.whl", b"0123456789")
    cat.add(entry, path)
    change(path)  # type: ignore[operator]
    assert cat.current(entry) is still_current


def test_current_refuses_an_unsafe_name(mirror: Path) -> None:
    cat = Catalog(mirror)
    entry, _ = put(mirror, "demo", "demo-1.0.tar.gz", b"a")
    evil = Entry(**{**entry.__dict__, "filename": "../../demo-1.0.tar.gz"})
    assert cat.current(evil) is False
