"""Core metadata inside distribution archives: one rule for finding it, shared by the planner
(reading remote wheels through HTTP ranges) and the index builder (writing PEP 658 sidecars).
"""

from __future__ import annotations

import re
import tarfile
import zipfile
from collections.abc import Iterable
from typing import IO

from packaging.utils import NormalizedName, canonicalize_name

__all__ = [
    "MAX_METADATA",
    "METADATA_SUFFIX",
    "metadata_member",
    "read_sdist_pkg_info",
    "read_wheel_metadata",
]

#: PEP 658: a wheel's METADATA is served beside it under the wheel's name plus this suffix.
METADATA_SUFFIX = ".metadata"

#: The largest METADATA or PKG-INFO read from a distribution, by the planner or for an upload
#: (real ones are a few KiB to a few 100 KiB).
MAX_METADATA = 16 * 1024 * 1024

_METADATA_MEMBER = re.compile(r"([^/]+)\.dist-info/METADATA")


def metadata_member(names: Iterable[str], project: NormalizedName | None) -> str:
    """The archive member that holds a wheel's core metadata.

    A wheel has one top-level ``<name>-<version>.dist-info/METADATA``.  Where a (badly built)
    wheel holds several, the one named after ``project`` wins; where that still leaves none or
    several, the wheel is refused rather than guessed at.

    :raises ValueError: when there is no single METADATA to take.
    """
    found = [(m.group(1), name) for name in names if (m := _METADATA_MEMBER.fullmatch(name))]
    if len(found) > 1 and project is not None:
        found = [
            (dist, name)
            for dist, name in found
            if canonicalize_name(dist.rpartition("-")[0] or dist) == project
        ]
    if len(found) != 1:
        raise ValueError("no single .dist-info/METADATA in the wheel")
    return found[0][1]


def read_wheel_metadata(
    fh: IO[bytes], project: NormalizedName | None, *, max_size: int | None = None
) -> bytes:
    """The METADATA bytes of the wheel readable (and seekable) from ``fh``.

    :param max_size: refuse a METADATA larger than this (a hostile wheel's 'metadata' could be
        gigabytes).
    :raises ValueError: no single METADATA, or one larger than ``max_size``.
    :raises zipfile.BadZipFile: not a zip archive.
    """
    with zipfile.ZipFile(fh) as zf:
        name = metadata_member(zf.namelist(), project)
        info = zf.getinfo(name)
        if max_size is not None and info.file_size > max_size:
            raise ValueError(f"METADATA is {info.file_size} bytes")
        return zf.read(info)


def read_sdist_pkg_info(fh: IO[bytes], filename: str, *, max_size: int) -> bytes:
    """``PKG-INFO`` at the top of an sdist (``<name>-<version>/PKG-INFO``), read by streaming.

    :raises ValueError: when the archive has no such member no larger than ``max_size``.
    """
    if filename.endswith(".zip"):
        with zipfile.ZipFile(fh) as zf:
            for info in zf.infolist():
                parts = info.filename.split("/")
                if len(parts) == 2 and parts[1] == "PKG-INFO":
                    if info.file_size > max_size:
                        break
                    return zf.read(info)
        raise ValueError(f"{filename} has no top-level PKG-INFO")
    with tarfile.open(fileobj=fh, mode="r|*") as tar:
        for member in tar:
            parts = member.name.lstrip("./").split("/")
            if len(parts) == 2 and parts[1] == "PKG-INFO" and member.isfile():
                if member.size > max_size:
                    break
                extracted = tar.extractfile(member)
                if extracted is None:
                    break
                return extracted.read()
    raise ValueError(f"{filename} has no top-level PKG-INFO")
