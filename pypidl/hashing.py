"""Streaming digests with an allowlist of strong algorithms."""

from __future__ import annotations

import hashlib
import os
import re
from typing import BinaryIO

from pypidl.errors import HashMismatchError

__all__ = ["CHUNK_SIZE", "STRONG_HASHES", "file_sha256", "is_sha256", "new_hasher", "verify_file"]

#: Hash algorithms pypidl accepts from an index; weaker ones (md5, sha1) are ignored.
STRONG_HASHES = ("sha256", "sha384", "sha512")

#: Read and write granularity for files; memory use per stream is one chunk.
CHUNK_SIZE = 256 * 1024

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def is_sha256(value: object) -> bool:
    """True for a lowercase hex sha256 digest."""
    return isinstance(value, str) and _SHA256_RE.fullmatch(value) is not None


def new_hasher(name: str = "sha256") -> hashlib._Hash:
    if name not in STRONG_HASHES:
        raise ValueError(f"hash algorithm {name!r} is not one of {', '.join(STRONG_HASHES)}")
    return hashlib.new(name)


def hash_stream(fh: BinaryIO, name: str = "sha256") -> tuple[str, int]:
    """Digest and length of everything readable from ``fh``, one chunk at a time."""
    h = new_hasher(name)
    size = 0
    while chunk := fh.read(CHUNK_SIZE):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def file_sha256(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as fh:
        return hash_stream(fh)[0]


def verify_file(path: str | os.PathLike[str], expected: str) -> None:
    """:raises HashMismatchError: when the file at ``path`` does not hash to ``expected``."""
    actual = file_sha256(path)
    if actual != expected:
        raise HashMismatchError(os.path.basename(path), expected=expected, actual=actual)
