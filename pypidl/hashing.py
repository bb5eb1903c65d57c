"""Streaming digests with an allowlist of strong algorithms."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from typing import IO

__all__ = [
    "CHUNK_SIZE",
    "STRONG_HASHES",
    "bytes_sha256",
    "copy_hashing",
    "file_sha256",
    "hash_stream",
    "is_sha256",
    "new_hasher",
    "sha256_mismatch",
]

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


def copy_hashing(
    src: IO[bytes],
    dst: IO[bytes] | None = None,
    *,
    name: str = "sha256",
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[str, int]:
    """Digest and length of everything readable from ``src``, one chunk at a time.

    Each chunk is also written to ``dst`` when one is given (a copy that is hashed on the way, so
    the bytes are read once), and its length passed to ``on_bytes`` (progress) when given.
    """
    h = new_hasher(name)
    size = 0
    while chunk := src.read(CHUNK_SIZE):
        h.update(chunk)
        if dst is not None:
            dst.write(chunk)
        size += len(chunk)
        if on_bytes is not None:
            on_bytes(len(chunk))
    return h.hexdigest(), size


def hash_stream(fh: IO[bytes], name: str = "sha256") -> tuple[str, int]:
    """Digest and length of everything readable from ``fh``."""
    return copy_hashing(fh, name=name)


def bytes_sha256(data: bytes) -> str:
    """The sha256 of ``data``, for the small things held in memory (pages, sidecars, headers)."""
    h = new_hasher("sha256")
    h.update(data)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as fh:
        return hash_stream(fh)[0]


def sha256_mismatch(expected: str, actual: str, *, name: str | None = None) -> str:
    """What every refusal of bytes that do not hash as announced says: both digests, so that a
    reader can tell a changed file from a truncated one (pip's ``HashMismatch`` does the same).

    :param name: the file (or sidecar) whose bytes were refused, when the context does not say.
    """
    what = f"sha256 mismatch for {name}" if name else "sha256 mismatch"
    return f"{what}: expected {expected}, got {actual}"
