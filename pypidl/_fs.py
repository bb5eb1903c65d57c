"""Filesystem helpers: staying inside a directory, publishing files atomically, and writing a
command's output where the user asked without ever replacing a device, a FIFO or a link."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import sys
import tempfile
from contextvars import ContextVar
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pypidl.errors import BadInputError, UnsafeFilenameError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "MAX_INPUT_FILE",
    "NOFOLLOW",
    "TEMP_PREFIX",
    "TO_FILE",
    "TO_STDOUT",
    "TO_STREAM",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_basename",
    "check_output",
    "inputs_read_once",
    "open_output",
    "read_checked",
    "read_input",
    "safe_join",
    "write_checked",
]

#: Open flag that refuses a symlink as the last path component (0 where the OS has none).
NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)

#: Prefix of every temporary file pypidl writes; index builders and verify skip these.
TEMP_PREFIX = ".pypidl-"

#: Mode of the files pypidl publishes (pages, sidecars, manifests): world-readable.
PUBLIC_FILE_MODE = 0o644


#: path separators, NUL and the other control characters (one search instead of a loop per name)
_SEPARATORS_OR_CONTROL = re.compile(r"[/\\\x00-\x1f]")


def check_basename(name: str) -> str:
    """Return ``name`` if it is a plain file name that cannot leave its directory.

    :raises UnsafeFilenameError: for separators, ``..``, drive letters, control characters,
        empty names and names that start with a dot (hidden, or our own temp files).
    """
    bad = (
        not name
        or name in {".", ".."}
        or name.startswith(".")
        or _SEPARATORS_OR_CONTROL.search(name) is not None
        or (len(name) >= 2 and name[1] == ":")
        or name != name.strip()
        or len(name.encode("utf-8", "surrogateescape")) > 255
    )
    if bad:
        raise UnsafeFilenameError(f"unsafe file name {name!r}")
    return name


def safe_join(root: str | os.PathLike[str], *parts: str) -> Path:
    """Join ``parts`` (each a plain name) under ``root``; refuse anything that escapes it."""
    base = Path(root).resolve()
    for part in parts:
        check_basename(part)
    joined = base.joinpath(*parts).resolve()
    if joined != base and base not in joined.parents:
        raise UnsafeFilenameError(f"{'/'.join(parts)!r} escapes {base}")
    return joined


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str],
    mode: str = "w",
    *,
    prefix: str = TEMP_PREFIX,
    durable: bool = True,
) -> Iterator[IO[str]]:
    """Write to a temporary file beside ``path`` and move it into place only on success.

    :param prefix: of the temporary file's name; it must start with :data:`TEMP_PREFIX`.
    :param durable: fsync before the move.  Only a file whose reader checks it can skip that
        (a crash may then leave it empty or short under its name): see :func:`write_checked`.
    :raises OSError: naming ``path`` even when the failing call (a write, on a full disk) did not.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=target.parent)
    try:
        binary = "b" in mode
        with os.fdopen(
            fd, mode, encoding=None if binary else "utf-8", newline=None if binary else "\n"
        ) as fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        # mkstemp makes 0600 files; mirror pages and sidecars must be readable by a web server
        os.chmod(tmp, PUBLIC_FILE_MODE)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if exc.filename is None:  # write() and fsync() say "No space left on device", not where
            raise type(exc)(exc.errno, exc.strerror, str(target)) from exc
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


#: how :func:`check_output` says an output reaches its path
TO_STDOUT, TO_STREAM, TO_FILE = "stdout", "stream", "file"


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def check_output(path: str | os.PathLike[str], *, what: str = "output") -> str:
    """Say how a command's output reaches ``path``; refuse, before any work, a path it cannot.

    - ``-``: standard output (:data:`TO_STDOUT`).
    - a character device or a FIFO, or a link to one (``/dev/stdout``): written through, never
      replaced (:data:`TO_STREAM`).  Replacing ``/dev/full`` with a file, as root, breaks the
      system (issue 20).
    - a regular file or a new name: written beside it and renamed over it (:data:`TO_FILE`),
      once a new file could be made in its directory (or the nearest one that exists).
    - anything else is refused: a link to a file (renaming over it would replace the link; writing
      through it would write wherever it points), a directory, a socket, a block device.

    :param what: what the output is, for the message ("report", "bundle").
    :raises BadInputError: naming ``path``.
    """
    name = os.fspath(path)
    if name == "-":
        return TO_STDOUT
    try:
        found: os.stat_result | None = os.lstat(name)
    except (FileNotFoundError, NotADirectoryError):  # the directory check below says which
        found = None
    except OSError as exc:
        raise BadInputError(f"{what} {name!r}: {exc.strerror or exc}") from None
    if found is not None and stat.S_ISLNK(found.st_mode):
        try:
            followed = os.stat(name).st_mode
        except OSError:
            followed = 0
        if stat.S_ISCHR(followed) or stat.S_ISFIFO(followed):
            return TO_STREAM
        raise BadInputError(
            f"{what} {name!r} is a symbolic link; give the path of a file, not of a link",
            hint="a link is neither replaced nor written through ('-' is standard output)",
        )
    if found is not None:
        if stat.S_ISCHR(found.st_mode) or stat.S_ISFIFO(found.st_mode):
            return TO_STREAM
        if not stat.S_ISREG(found.st_mode):
            raise BadInputError(
                f"{what} {name!r} is {_kind_of(found.st_mode)}; give a file name "
                "(a regular file, a character device, a FIFO or '-')"
            )
    _check_directory(Path(name), what)
    return TO_FILE


def _check_directory(target: Path, what: str) -> None:
    """Refuse ``target`` when no new file can be made where it goes."""
    for parent in target.parents:
        if not os.path.lexists(parent):
            continue
        if not parent.is_dir():
            raise BadInputError(f"{what} {str(target)!r}: {str(parent)!r} is not a directory")
        try:
            if parent == target.parent:  # the real test: make (and drop) a file in it
                with tempfile.TemporaryFile(prefix=TEMP_PREFIX, dir=parent):
                    pass
            elif not os.access(parent, os.W_OK | os.X_OK):  # the directories are made later
                raise PermissionError(13, os.strerror(13))
        except OSError as exc:
            raise BadInputError(
                f"{what} {str(target)!r} cannot be written: {str(parent)!r}: {exc.strerror or exc}"
            ) from None
        return


@contextlib.contextmanager
def open_output(
    path: str | os.PathLike[str], mode: str = "w", *, what: str = "output", durable: bool = True
) -> Iterator[IO[Any]]:
    """Open a command's output for writing, as :func:`check_output` says: standard output, a
    device or FIFO written through, or a file published atomically (:func:`atomic_write`).

    :raises BadInputError: a path :func:`check_output` refuses (checked again here: the path may
        have changed since the command started).
    :raises OSError: naming ``path`` when a write fails (``/dev/full``, a reader that left).
    """
    kind = check_output(path, what=what)
    binary = "b" in mode
    if kind == TO_FILE:
        with atomic_write(path, mode, durable=durable) as fh:
            yield fh
        return
    if kind == TO_STDOUT:
        out: IO[Any] = sys.stdout.buffer if binary else sys.stdout
        yield out
        out.flush()
        return
    # no O_CREAT, no O_TRUNC: only what is there is opened, and it must still be a stream
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOCTTY", 0))
    opened = os.fstat(fd).st_mode
    if not (stat.S_ISCHR(opened) or stat.S_ISFIFO(opened)):
        os.close(fd)
        raise BadInputError(f"{what} {os.fspath(path)!r} changed while pypidl ran; run again")
    try:
        with os.fdopen(
            fd, mode, encoding=None if binary else "utf-8", newline=None if binary else "\n"
        ) as fh:
            yield fh
    except OSError as exc:
        if exc.filename is None:  # write() says "No space left on device", not where
            raise type(exc)(exc.errno, exc.strerror, os.fspath(path)) from exc
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_write(path, "w") as fh:
        fh.write(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_write(path, "wb") as fh:
        fh.write(data)  # type: ignore[arg-type]


#: First line of a file :func:`write_checked` wrote, before the sha256 of the rest.
_CHECKED_HEADER = b"pypidl-checked sha256="


def write_checked(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` with its own sha256 in front, atomically but without an fsync.

    For caches: a file lost or cut short by a crash fails :func:`read_checked` and is fetched
    again, so each entry does not have to wait for the disk (planning writes hundreds).
    """
    digest = hashlib.sha256(data).hexdigest().encode("ascii")
    with atomic_write(path, "wb", durable=False) as fh:
        fh.write(_CHECKED_HEADER + digest + b"\n" + data)  # type: ignore[arg-type]


#: The most pypidl reads whole from a file a user names (requirements, lock, manifest, targets):
#: far above real ones (a pylock of 50,000 packages is about 30 MiB), far below what a device
#: like ``/dev/zero`` or an endless pipe would make it hold (issue 20).
MAX_INPUT_FILE = 128 * 1024 * 1024


class InputTooLargeError(OSError):
    """A file to be read whole is larger than :data:`MAX_INPUT_FILE` (or never ends)."""


#: (device, inode) -> bytes of the inputs read inside :func:`inputs_read_once`
_READ_ONCE: ContextVar[dict[tuple[int, int], bytes] | None] = ContextVar(
    "pypidl_inputs_read", default=None
)


@contextlib.contextmanager
def inputs_read_once() -> Iterator[None]:
    """Inside the block, :func:`read_input` reads each file once and returns the same bytes
    when it is named again.

    A command's inputs are read by several steps (is it a lock? its requirements, then their
    ``# pypidl:`` lines), and a pipe or a device (``-r /dev/stdin``) can be read only once.
    """
    token = _READ_ONCE.set({})
    try:
        yield
    finally:
        _READ_ONCE.reset(token)


def read_input(path: str | os.PathLike[str], *, limit: int = MAX_INPUT_FILE) -> bytes:
    """The bytes of ``path``, a file a user named, read whole but never beyond ``limit``.

    Devices and pipes are read too (``-r /dev/stdin``), to the same limit.

    :raises InputTooLargeError: (an :class:`OSError`, so callers' messages name the file) when
        there is more than ``limit``.
    """
    memo = _READ_ONCE.get()
    key = None
    if memo is not None:
        found = os.stat(path)  # before opening: a named pipe would wait for another writer
        key = (found.st_dev, found.st_ino)
        data = memo.get(key) if found.st_ino else None
        if data is not None:
            _check_input_size(data, limit)
            return data
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    _check_input_size(data, limit)
    if memo is not None and key is not None and key[1]:
        memo[key] = data
    return data


def _check_input_size(data: bytes, limit: int) -> None:
    if len(data) > limit:
        raise InputTooLargeError(
            f"larger than {limit // (1024 * 1024)} MiB: not an input pypidl reads "
            "(an endless device?)"
        )


def read_checked(path: str | os.PathLike[str]) -> bytes | None:
    """What :func:`write_checked` wrote at ``path``; ``None`` when it is missing, unreadable,
    from another format or not the bytes that were written."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    head, sep, data = raw.partition(b"\n")
    if not sep or not head.startswith(_CHECKED_HEADER):
        return None
    expected = head[len(_CHECKED_HEADER) :].decode("ascii", "replace")
    return data if hashlib.sha256(data).hexdigest() == expected else None
