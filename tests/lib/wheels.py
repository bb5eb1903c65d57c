"""Build small but real Python distributions (wheels and sdists) for tests.

Everything here is stdlib only and deterministic: the same inputs always give
the same bytes (and so the same sha256), which lets tests pin hashes.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import os
import re
import tarfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Union

__all__ = [
    "canonical_name",
    "expand_tags",
    "import_name",
    "make_sdist",
    "make_wheel",
    "wheel_metadata",
]

PathLike = Union[str, "os.PathLike[str]"]

# 1980-01-01 is the earliest timestamp a zip archive can hold.
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
# 2024-01-01T00:00:00Z: a fixed mtime for sdist members.  Not 0: building a wheel
# from files dated before 1980 breaks some zip writers.
_TAR_MTIME = 1704067200

_NAME_SEPARATORS = re.compile(r"[-_.]+")


def canonical_name(name: str) -> str:
    """PEP 503 normalized project name (``Foo.Bar_baz`` -> ``foo-bar-baz``)."""
    return _NAME_SEPARATORS.sub("-", name).lower()


def import_name(name: str) -> str:
    """The top-level module a built distribution ships (``Foo-Bar`` -> ``foo_bar``)."""
    return canonical_name(name).replace("-", "_")


def _filename_version(version: str) -> str:
    # A version never contains "-" in a normalized form; keep filenames parseable anyway.
    return version.replace("-", "_")


def expand_tags(tag: str) -> list[str]:
    """Expand a compressed tag set (``py2.py3-none-any``) into single tags, in order."""
    try:
        pythons, abis, platforms = tag.split("-")
    except ValueError:
        raise ValueError(f"not a wheel tag (python-abi-platform): {tag!r}") from None
    return [
        f"{py}-{abi}-{plat}"
        for py in pythons.split(".")
        for abi in abis.split(".")
        for plat in platforms.split(".")
    ]


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def _core_metadata(
    name: str,
    version: str,
    *,
    summary: str,
    requires_dist: Iterable[str],
    requires_python: str | None,
    provides_extra: Iterable[str],
) -> bytes:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary}",
    ]
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(f"Provides-Extra: {extra}" for extra in provides_extra)
    lines.extend(f"Requires-Dist: {req}" for req in requires_dist)
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def _zip_member(
    zf: zipfile.ZipFile, arcname: str, data: bytes, *, compress: int = zipfile.ZIP_DEFLATED
) -> None:
    info = zipfile.ZipInfo(arcname, date_time=_ZIP_DATE_TIME)
    info.external_attr = 0o100644 << 16
    info.compress_type = compress
    info.create_system = 3  # Unix, so the permission bits above are honoured
    zf.writestr(info, data)


def make_wheel(
    directory: PathLike,
    name: str,
    version: str,
    *,
    tag: str = "py3-none-any",
    requires_dist: Iterable[str] = (),
    requires_python: str | None = None,
    provides_extra: Iterable[str] = (),
    summary: str = "test package",
    extra_files: Mapping[str, bytes] | None = None,
) -> Path:
    """Write an installable wheel into ``directory`` and return its path.

    The wheel ships ``<import_name>/__init__.py`` with ``__version__`` set, and a
    complete ``.dist-info`` (METADATA, WHEEL, RECORD).  ``extra_files`` maps archive
    paths to contents; they are stored uncompressed, so the wheel grows by their
    size (handy for a big download).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tags = expand_tags(tag)
    dist = import_name(name)
    fversion = _filename_version(version)
    dist_info = f"{dist}-{fversion}.dist-info"
    module = import_name(name)

    members: list[tuple[str, bytes, int]] = [
        (
            f"{module}/__init__.py",
            f'"""Test package {name}."""\n\n__version__ = "{version}"\n'.encode(),
            zipfile.ZIP_DEFLATED,
        ),
    ]
    for arcname, data in sorted((extra_files or {}).items()):
        if arcname.startswith(f"{dist_info}/") or arcname.endswith("/"):
            raise ValueError(f"extra_files cannot hold {arcname!r}")
        members.append((arcname, bytes(data), zipfile.ZIP_STORED))

    metadata = _core_metadata(
        name,
        version,
        summary=summary,
        requires_dist=requires_dist,
        requires_python=requires_python,
        provides_extra=provides_extra,
    )
    purelib = all(t.endswith("-any") for t in tags)
    wheel_lines = [
        "Wheel-Version: 1.0",
        "Generator: pypidl-tests (1.0)",
        f"Root-Is-Purelib: {'true' if purelib else 'false'}",
        *(f"Tag: {t}" for t in tags),
    ]
    members.append((f"{dist_info}/METADATA", metadata, zipfile.ZIP_DEFLATED))
    members.append(
        (f"{dist_info}/WHEEL", ("\n".join(wheel_lines) + "\n\n").encode(), zipfile.ZIP_DEFLATED)
    )

    record_path = f"{dist_info}/RECORD"
    record = "".join(f"{arc},{_record_hash(data)},{len(data)}\n" for arc, data, _ in members)
    record += f"{record_path},,\n"
    members.append((record_path, record.encode("utf-8"), zipfile.ZIP_DEFLATED))

    out = directory / f"{dist}-{fversion}-{tag}.whl"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for arcname, data, compress in members:
            _zip_member(zf, arcname, data, compress=compress)
    out.write_bytes(buf.getvalue())
    return out


_METADATA_MEMBER = re.compile(r"^[^/]+\.dist-info/METADATA$")


def wheel_metadata(path: PathLike) -> bytes:
    """Return the ``METADATA`` bytes of a wheel (what a PEP 658 sidecar serves)."""
    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        candidates = [n for n in zf.namelist() if _METADATA_MEMBER.match(n)]
        if not candidates:
            raise ValueError(f"{path.name}: no .dist-info/METADATA")
        if len(candidates) > 1:
            # Prefer the dist-info that matches the file name.
            stem = "-".join(path.name.split("-")[:2]).lower()
            matching = [n for n in candidates if n.lower().startswith(stem + ".dist-info/")]
            candidates = matching or candidates
        return zf.read(candidates[0])


def make_sdist(
    directory: PathLike,
    name: str,
    version: str,
    *,
    requires_dist: Iterable[str] = (),
    requires_python: str | None = None,
) -> Path:
    """Write a ``<name>-<version>.tar.gz`` that pip builds offline, and return it.

    The name in the file name and base directory is normalized with underscores,
    as the current source distribution spec asks.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    requires_dist = list(requires_dist)
    module = import_name(name)
    base = f"{module}-{_filename_version(version)}"

    pkg_info = _core_metadata(
        name,
        version,
        summary="test package",
        requires_dist=requires_dist,
        requires_python=requires_python,
        provides_extra=(),
    )
    # Metadata 2.2: Requires-Dist is static (not listed as Dynamic), so it can be trusted
    # without building the sdist, as for sdists made by current build back ends.
    pkg_info = pkg_info.replace(b"Metadata-Version: 2.1\n", b"Metadata-Version: 2.2\n", 1)
    # An in-tree PEP 517 backend with no build requirements: pip (and pip-compile) can build
    # this sdist offline, against an index that holds nothing but the test's own files.
    pyproject = (
        b'[build-system]\nrequires = []\nbuild-backend = "_sdist_backend"\nbackend-path = ["."]\n'
    )
    init = f'"""Test package {name}."""\n\n__version__ = "{version}"\n'.encode()

    members = [
        (f"{base}/PKG-INFO", pkg_info),
        (f"{base}/pyproject.toml", pyproject),
        (f"{base}/_sdist_backend.py", _SDIST_BACKEND.encode()),
        (f"{base}/{module}/__init__.py", init),
    ]

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirname in (base, f"{base}/{module}"):  # directories first, as sdists have them
            tar.addfile(_tar_info(dirname, 0, is_dir=True))
        for arcname, data in members:
            tar.addfile(_tar_info(arcname, len(data)), io.BytesIO(data))
    out = directory / f"{base}.tar.gz"
    out.write_bytes(gzip.compress(raw.getvalue(), mtime=0))
    return out


_SDIST_BACKEND = '''"""A minimal PEP 517 backend: the wheel is PKG-INFO plus the one package directory."""
import base64, hashlib, os, zipfile

def _meta():
    with open("PKG-INFO", "rb") as fh:
        data = fh.read()
    fields = dict(line.split(": ", 1) for line in data.decode().splitlines() if ": " in line)
    return data, fields["Name"], fields["Version"]

def _dist(name, version):
    return name.replace("-", "_").replace(".", "_").lower() + "-" + version

def get_requires_for_build_wheel(config_settings=None):
    return []

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    data, name, version = _meta()
    info = _dist(name, version) + ".dist-info"
    os.makedirs(os.path.join(metadata_directory, info))
    with open(os.path.join(metadata_directory, info, "METADATA"), "wb") as fh:
        fh.write(data)
    with open(os.path.join(metadata_directory, info, "WHEEL"), "wb") as fh:
        fh.write(b"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
    return info

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    data, name, version = _meta()
    dist = _dist(name, version)
    files = {dist + ".dist-info/METADATA": data,
             dist + ".dist-info/WHEEL": b"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
    for folder, _, names in os.walk("."):
        for n in names:
            path = os.path.join(folder, n)[2:].replace(os.sep, "/")
            if "/" in path and path.endswith(".py"):
                with open(path, "rb") as fh:
                    files[path] = fh.read()
    record = []
    for arc, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
        record.append(f"{arc},sha256={digest},{len(content)}")
    record.append(dist + ".dist-info/RECORD,,")
    files[dist + ".dist-info/RECORD"] = ("\\n".join(record) + "\\n").encode()
    filename = dist + "-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as zf:
        for arc, content in files.items():
            zf.writestr(arc, content)
    return filename
'''


def _tar_info(arcname: str, size: int, *, is_dir: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.size = size
    info.mtime = _TAR_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if is_dir:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.mode = 0o644
    return info


def make_pkg_info_sdist(directory: PathLike, name: str, version: str, pkg_info: str) -> Path:
    """A ``<name>-<version>.tar.gz`` holding only ``PKG-INFO`` (no build system): the sdists
    whose metadata may or may not be trusted, depending on its Metadata-Version and Dynamic."""
    raw = io.BytesIO()
    data = pkg_info.encode()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"{name}-{version}/PKG-INFO")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    path = Path(directory) / f"{name}-{version}.tar.gz"
    path.write_bytes(raw.getvalue())
    return path
