"""The ``.part`` file of one download: written and hashed in one pass, resumable after a crash.

``packages/<project>/.pypidl-<filename>.part`` holds the bytes received so far and
``.pypidl-<filename>.part.json`` what ``If-Range`` needs to resume them against the same mirror.
A part is published under its final name only while it is still the very file that was hashed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from pypidl._fs import NOFOLLOW, TEMP_PREFIX
from pypidl.hashing import CHUNK_SIZE, new_hasher
from pypidl.manifest import Entry

if TYPE_CHECKING:
    import hashlib

__all__ = ["PART_SUFFIX", "RESUME_NOTE_MIN", "PartFile", "part_path"]

log = logging.getLogger(__name__)


#: Suffix of a download in progress (after ``TEMP_PREFIX + filename``).
PART_SUFFIX = ".part"


_META_SUFFIX = ".part.json"

#: Files smaller than this get no resume note (``If-Range`` validator): fetched again whole.
RESUME_NOTE_MIN = 1024 * 1024


def part_path(final: Path) -> Path:
    """Where the download of ``final`` is kept while in progress."""
    return final.with_name(TEMP_PREFIX + final.name + PART_SUFFIX)


class PartFile:
    """The temporary file of one download, its running hash and its resume validator."""

    def __init__(self, final: Path, entry: Entry):
        self.path = part_path(final)
        self.meta_path = self.path.with_name(TEMP_PREFIX + final.name + _META_SUFFIX)
        self.entry = entry
        self.offset = 0
        self.hasher: hashlib._Hash = new_hasher()
        self.validator: str | None = None
        self.validator_mirror: str | None = None
        self._fd: int | None = None
        self._meta_written = False

    def load(self) -> None:
        """Take over a part left by an earlier run: hash it (validating what it holds)."""
        try:
            st = os.lstat(self.path)  # a symlink planted here is discarded, never followed
        except FileNotFoundError:
            # no part: a resume note left without one is stale, but harmless (a new note
            # replaces it, and the sha256 decides); not worth a system call per file
            return
        self._meta_written = True  # whatever is there goes with the part
        meta = self._read_meta()
        if meta.get("sha256") not in (None, self.entry.sha256) or not stat.S_ISREG(st.st_mode):
            log.debug("discarding %s: it belongs to another version of the file", self.path.name)
            self.discard()
            return
        if self.entry.size is not None and st.st_size > self.entry.size:
            log.debug("discarding %s: longer than the file it should become", self.path.name)
            self.discard()
            return
        with open(self.path, "rb") as fh:
            while chunk := fh.read(CHUNK_SIZE):
                self.hasher.update(chunk)
                self.offset += len(chunk)
        validator, mirror = meta.get("validator"), meta.get("mirror")
        self.validator = validator if isinstance(validator, str) else None
        self.validator_mirror = mirror if isinstance(mirror, str) else None
        if self.offset:
            log.debug("resuming %s from byte %d", self.entry.filename, self.offset)

    def _read_meta(self) -> dict[str, Any]:
        try:
            with open(self.meta_path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def remember(self, response: requests.Response, mirror: str) -> None:
        """Keep what ``If-Range`` needs to resume against the same mirror after a crash."""
        etag = response.headers.get("ETag")
        validator = (
            etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified")
        )
        if validator == self.validator and mirror == self.validator_mirror:
            return
        self.validator, self.validator_mirror = validator, mirror
        if self.entry.size is not None and self.entry.size < RESUME_NOTE_MIN:
            # a small file is fetched again whole rather than resumed: no note, no file written
            return
        data = {"sha256": self.entry.sha256, "validator": validator, "mirror": mirror}
        # not fsynced: a note lost by a crash costs If-Range, and the sha256 still decides
        tmp = self.meta_path.with_name(self.meta_path.name + ".tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | NOFOLLOW | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(tmp, flags, 0o644)
        except FileNotFoundError:  # the project's first file
            tmp.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, flags, 0o644)
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, sort_keys=True) + "\n")
        os.replace(tmp, self.meta_path)
        self._meta_written = True

    def write(self, chunk: bytes) -> None:
        if self._fd is None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | NOFOLLOW | getattr(os, "O_BINARY", 0)
            try:
                self._fd = os.open(self.path, flags, 0o644)
            except FileNotFoundError:  # the project's first file
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, flags, 0o644)
        # The descriptor itself, kept open across chunks and attempts: a buffered file object
        # would add four system calls per file (fstat, two lseeks, isatty) and a copy per chunk.
        written = os.write(self._fd, chunk)
        if written < len(chunk):
            view = memoryview(chunk)
            while written < len(chunk):
                written += os.write(self._fd, view[written:])
        self.hasher.update(chunk)
        self.offset += len(chunk)

    def sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        """Close the part (not fsynced: a resumed part is rehashed before it is trusted)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def reset(self) -> None:
        """Start the part over from byte 0 (the server sent the whole file)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # O_APPEND: the next write lands at the new end
        elif self.offset:
            with open(self.path, "r+b") as fh:
                fh.truncate()
        self.offset = 0
        self.hasher = new_hasher()

    def discard(self) -> None:
        """Delete the part and everything known about it."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._drop_meta()
        self.offset = 0
        self.hasher = new_hasher()
        self.validator = self.validator_mirror = None

    def _drop_meta(self) -> None:
        if self._meta_written:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.meta_path)
            self._meta_written = False

    def finish(self, final: Path) -> os.stat_result:
        """Publish the verified part under its final name; returns its ``lstat`` (a rename keeps
        the size, the inode and the mtime the catalog records).

        The bytes were hashed as they were written through our own handle; the part is published
        only while it is still that file and that long, so a part another process renamed,
        replaced or extended meanwhile never reaches the final name.

        :raises OSError: the part on disk is no longer the file that was verified.
        """
        opened = os.fstat(self._fd) if self._fd is not None else None
        self.close()
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            if self.offset:
                raise FileNotFoundError(
                    errno.ENOENT, "the partial download vanished before it was published"
                ) from None
            # a zero-byte file never opened its part
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
            st = os.lstat(self.path)
        changed = (
            not stat.S_ISREG(st.st_mode)
            or st.st_size != self.offset
            or (opened is not None and (st.st_dev, st.st_ino) != (opened.st_dev, opened.st_ino))
        )
        if changed:
            self.discard()
            raise OSError(
                errno.EBUSY, "the partial download changed on disk before it was published"
            )
        os.replace(self.path, final)
        self._drop_meta()
        return st

    def cleanup_if_empty(self) -> None:
        if self.offset == 0:
            self.discard()
        else:
            self.close()
