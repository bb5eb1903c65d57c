"""Filesystem helpers: staying inside a directory, and publishing files atomically."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING

from pypidl.errors import UnsafeFilenameError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "NOFOLLOW",
    "TEMP_PREFIX",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_basename",
    "read_checked",
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
