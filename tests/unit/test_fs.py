"""_fs: names that could leave their directory are refused; atomic writes publish or leave nothing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pypidl._fs import (
    PUBLIC_FILE_MODE,
    TEMP_PREFIX,
    TO_FILE,
    TO_STDOUT,
    TO_STREAM,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    check_basename,
    check_output,
    read_checked,
    safe_join,
    write_checked,
)
from pypidl.errors import BadInputError, UnsafeFilenameError

UNSAFE = [
    pytest.param("", id="empty"),
    pytest.param(".", id="dot"),
    pytest.param("..", id="dotdot"),
    pytest.param("../x.whl", id="parent"),
    pytest.param("a/b.whl", id="slash"),
    pytest.param("/etc/passwd", id="absolute"),
    pytest.param("a\\b.whl", id="backslash"),
    pytest.param("..\\x.whl", id="backslash-parent"),
    pytest.param("C:x.whl", id="drive-relative"),
    pytest.param("c:\\x.whl", id="drive-absolute"),
    pytest.param("x\x00.whl", id="nul"),
    pytest.param("x\n.whl", id="newline"),
    pytest.param("x\r.whl", id="carriage-return"),
    pytest.param("x\t.whl", id="tab"),
    pytest.param("x\x1b[31m.whl", id="escape"),
    pytest.param(".hidden", id="hidden"),
    pytest.param(f"{TEMP_PREFIX}abc.tmp", id="own-temp-file"),
    pytest.param(" x.whl", id="leading-space"),
    pytest.param("x.whl ", id="trailing-space"),
    pytest.param("a" * 252 + ".whl", id="too-long"),
]

SAFE = [
    "demo-1.0-py3-none-any.whl",
    "demo-1.0.tar.gz",
    "Demo_Pkg-1.0+local.zip",
    "name with space-1.0.tar.gz",
    "caf\u00e9-1.0.tar.gz",
    "a" * 251 + ".whl",
]


@pytest.mark.parametrize("name", UNSAFE)
def test_check_basename_refuses(name: str) -> None:
    with pytest.raises(UnsafeFilenameError, match="unsafe file name"):
        check_basename(name)


@pytest.mark.parametrize("name", SAFE)
def test_check_basename_accepts_plain_names(name: str) -> None:
    assert check_basename(name) == name


def test_unsafe_filename_is_bad_input() -> None:
    with pytest.raises(BadInputError) as info:
        check_basename("../x")
    assert info.value.exit_code == 2


@pytest.mark.parametrize("name", UNSAFE)
def test_safe_join_refuses(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafeFilenameError):
        safe_join(tmp_path, "packages", name)


def test_safe_join_stays_inside(tmp_path: Path) -> None:
    joined = safe_join(tmp_path, "packages", "demo", "demo-1.0.tar.gz")
    assert joined == tmp_path.resolve() / "packages" / "demo" / "demo-1.0.tar.gz"


def test_safe_join_refuses_a_symlink_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeFilenameError, match="escapes"):
        safe_join(root, "link", "x.whl")


# --------------------------------------------------------------------------- atomic writes


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(TEMP_PREFIX))


def test_atomic_write_publishes_world_readable(tmp_path: Path) -> None:
    old = os.umask(0o077)  # even a strict umask must not make pages unreadable to a web server
    try:
        atomic_write_text(tmp_path / "sub" / "page.html", "<html></html>\n")
    finally:
        os.umask(old)
    path = tmp_path / "sub" / "page.html"
    assert path.read_text(encoding="utf-8") == "<html></html>\n"
    assert stat.S_IMODE(path.stat().st_mode) == PUBLIC_FILE_MODE == 0o644
    assert leftovers(path.parent) == []


def test_atomic_write_bytes_and_newlines(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "b", b"\x00\r\n\xff")
    assert (tmp_path / "b").read_bytes() == b"\x00\r\n\xff"
    atomic_write_text(tmp_path / "t", "a\nb\n")
    assert (tmp_path / "t").read_bytes() == b"a\nb\n"  # "\n" on every platform


def test_atomic_write_exception_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    target.write_text("old", encoding="utf-8")

    def interrupted_write() -> None:
        with atomic_write(target) as fh:
            fh.write("half of the new content")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        interrupted_write()
    assert target.read_text(encoding="utf-8") == "old"
    assert leftovers(tmp_path) == []


def test_atomic_write_keyboard_interrupt_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "new.json"

    def interrupted_write() -> None:
        with atomic_write(target, "wb") as fh:
            fh.write(b"partial")  # type: ignore[arg-type]
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_write()
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces(tmp_path: Path) -> None:
    target = tmp_path / "x"
    atomic_write_text(target, "one")
    inode = target.stat().st_ino
    atomic_write_text(target, "two")
    assert target.read_text(encoding="utf-8") == "two"
    assert target.stat().st_ino != inode  # a new file renamed over the old, never rewritten


def test_a_checked_file_reads_back_only_while_intact(tmp_path: Path) -> None:
    path = tmp_path / "ab" / "entry.metadata"
    data = b"Metadata-Version: 2.1\nName: a\nRequires-Dist: b\n\n"
    write_checked(path, data)
    assert read_checked(path) == data
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)

    whole = path.read_bytes()
    path.write_bytes(whole[:-12])  # cut short, as a crash before writeback may leave it
    assert read_checked(path) is None
    path.write_bytes(whole.replace(b"Requires-Dist: b\n", b""))  # altered, header kept
    assert read_checked(path) is None
    path.write_bytes(data)  # an entry from before the check existed
    assert read_checked(path) is None
    path.write_bytes(b"")
    assert read_checked(path) is None
    assert read_checked(tmp_path / "missing") is None


# --------------------------------------------------------------------------- outputs (issue 20)


@pytest.mark.skipif(os.name != "posix", reason="FIFOs are POSIX")
def test_a_link_to_a_fifo_is_a_stream_and_a_link_to_a_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "to-fifo").symlink_to(fifo)  # as /dev/stdout is a link to a pipe or a tty
    (tmp_path / "file").write_text("x", encoding="utf-8")
    (tmp_path / "to-file").symlink_to(tmp_path / "file")
    assert check_output(tmp_path / "to-fifo") == TO_STREAM
    assert check_output(tmp_path / "file") == TO_FILE
    assert check_output(tmp_path / "new" / "file") == TO_FILE
    assert check_output("-") == TO_STDOUT
    with pytest.raises(BadInputError, match="symbolic link"):
        check_output(tmp_path / "to-file", what="report")
