"""Real build backends for tests, and sdists that need them.

The client tests must show that pip and uv build an sdist from a mirror alone, so the mirror
needs real backends (setuptools, wheel, flit_core) as wheels, and tests never reach a public
index.  :func:`repack_installed` writes a wheel of a distribution installed in the test
environment from its installed files and RECORD (the ``test`` extra installs them), the way a
wheel's contents sit in site-packages after installation.
"""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import io
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path, PurePosixPath

from tests.lib.wheels import import_name

__all__ = ["make_flit_sdist", "make_legacy_sdist", "repack_installed"]

_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_TAR_MTIME = 1704067200
#: Files an installer writes into .dist-info that a wheel does not carry.
_INSTALLER_FILES = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def repack_installed(project: str, directory: Path) -> Path:
    """A ``py3-none-any`` wheel of the installed distribution ``project``, written to ``directory``.

    Only pure-Python distributions work (the tag says so); byte code, the installer's own files
    and anything installed outside site-packages (scripts) are left out.
    """
    dist = metadata.distribution(project)
    name, version = dist.metadata["Name"], dist.version
    base = Path(str(dist.locate_file("")))
    members: list[tuple[str, bytes]] = []
    dist_info = ""
    for path in dist.files or ():
        posix = PurePosixPath(str(path))
        if posix.parts[0] == ".." or posix.suffix == ".pyc" or "__pycache__" in posix.parts:
            continue
        if posix.parts[0].endswith(".dist-info"):
            dist_info = posix.parts[0]
            if posix.name in _INSTALLER_FILES or posix.name == "WHEEL":
                continue
        members.append((str(posix), (base / str(path)).read_bytes()))
    assert dist_info, f"{project}: no .dist-info in its RECORD"
    wheel = (
        b"Wheel-Version: 1.0\nGenerator: pypidl-tests (1.0)\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n\n"
    )
    members.append((f"{dist_info}/WHEEL", wheel))
    members.sort()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for arcname, data in members:
        writer.writerow([arcname, _record_hash(data), len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    members.append((f"{dist_info}/RECORD", out.getvalue().encode()))
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{import_name(name)}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w") as zf:
        for arcname, data in members:
            info = zipfile.ZipInfo(arcname, date_time=_ZIP_DATE_TIME)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return target


def _tar_gz(
    directory: Path, base: str, members: list[tuple[str, bytes]], *, tree_order: bool = False
) -> Path:
    """``<base>.tar.gz`` of ``members``: every directory first, then the files in the order
    given; or, with ``tree_order``, everything sorted with each directory just before what it
    holds, as ``tarfile.add`` of a tree (and so setuptools) writes them."""
    raw = io.BytesIO()
    if tree_order:
        members = sorted(members)
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        done: set[str] = set()

        def add_dir(dirname: str) -> None:
            if dirname not in done:
                done.add(dirname)
                info = tarfile.TarInfo(dirname)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, _TAR_MTIME
                tar.addfile(info)

        if not tree_order:
            for dirname in sorted({str(PurePosixPath(a).parent) for a, _ in members} | {base}):
                add_dir(dirname)
        for arcname, data in members:
            parts = PurePosixPath(arcname).parts
            for depth in range(1, len(parts)):
                add_dir("/".join(parts[:depth]))
            info = tarfile.TarInfo(arcname)
            info.size, info.mode, info.mtime = len(data), 0o644, _TAR_MTIME
            tar.addfile(info, io.BytesIO(data))
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"{base}.tar.gz"
    out.write_bytes(gzip.compress(raw.getvalue(), mtime=0))
    return out


def make_flit_sdist(
    directory: Path,
    name: str,
    version: str,
    *,
    requires: str = '["flit_core >=3.2,<5"]',
    padding: int = 0,
) -> Path:
    """An sdist built with flit_core (``[build-system]`` in pyproject.toml, PEP 621 metadata).

    :param padding: bytes of incompressible data stored after ``pyproject.toml`` (in a member
        no build uses), to show that reading the build system stops early.
    """
    module = import_name(name)
    base = f"{module}-{version}"
    pyproject = (
        f'[build-system]\nrequires = {requires}\nbuild-backend = "flit_core.buildapi"\n\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\n'
        f'description = "test package {name}"\nrequires-python = ">=3.8"\n'
    ).encode()
    pkg_info = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        f"Summary: test package {name}\nRequires-Python: >=3.8\n\n"
    ).encode()
    members = [
        (f"{base}/PKG-INFO", pkg_info),
        (f"{base}/pyproject.toml", pyproject),
        (f"{base}/{module}/__init__.py", f'"""{name}"""\n\n__version__ = "{version}"\n'.encode()),
    ]
    if padding:
        members.append((f"{base}/zz-padding.bin", _incompressible(padding)))
    return _tar_gz(directory, base, members)


def make_legacy_sdist(directory: Path, name: str, version: str) -> Path:
    """An sdist in the old style of ``docopt==0.6.2``: ``setup.py`` only, no pyproject.toml,
    Metadata-Version 1.1 PKG-INFO, one top-level module."""
    module = import_name(name)
    base = f"{name}-{version}"
    setup_py = (
        "from setuptools import setup\n\n"
        f"setup(name={name!r}, version={version!r}, description='test package {name}',\n"
        f"      py_modules=[{module!r}])\n"
    ).encode()
    pkg_info = (
        f"Metadata-Version: 1.1\nName: {name}\nVersion: {version}\n"
        f"Summary: test package {name}\nPlatform: UNKNOWN\n"
    ).encode()
    members = [
        (f"{base}/PKG-INFO", pkg_info),
        (f"{base}/setup.py", setup_py),
        (f"{base}/{module}.py", f'"""{name}"""\n\n__version__ = "{version}"\n'.encode()),
    ]
    return _tar_gz(directory, base, members)


def make_setuptools_sdist(
    directory: Path,
    name: str,
    version: str,
    *,
    setup_requires: str | None = None,
    pyproject: bool = True,
    padding: tuple[str, int] | None = None,
) -> Path:
    """An sdist as setuptools writes one (members in tree order, see :func:`_tar_gz`); ``setup.py`` calls ``setup()`` with nothing but
    the name, version and module, so anything else comes from ``setup.cfg``.

    :param setup_requires: the ``[options] setup_requires`` value of ``setup.cfg`` (``None``:
        no ``setup.cfg`` at all).
    :param pyproject: a ``pyproject.toml`` naming the setuptools backend (else a legacy sdist).
    :param padding: ``(top-level name, bytes)`` of incompressible data, to see where reads stop.
    """
    module = import_name(name)
    base = f"{name}-{version}"
    files = {
        "PKG-INFO": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            f"Summary: test package {name}\n\n"
        ).encode(),
        "setup.py": (
            "from setuptools import setup\n\n"
            f"setup(name={name!r}, version={version!r}, py_modules=[{module!r}])\n"
        ).encode(),
        f"{module}.py": f'"""{name}"""\n\n__version__ = "{version}"\n'.encode(),
    }
    if pyproject:
        files["pyproject.toml"] = (
            b'[build-system]\nrequires = ["setuptools>=40.8.0"]\n'
            b'build-backend = "setuptools.build_meta"\n'
        )
    if setup_requires is not None:
        files["setup.cfg"] = f"[options]\nsetup_requires = {setup_requires}\n".encode()
    if padding is not None:
        files[padding[0]] = _incompressible(padding[1])
    members = [(f"{base}/{relative}", data) for relative, data in files.items()]
    return _tar_gz(directory, base, members, tree_order=True)


def _incompressible(size: int) -> bytes:
    out = bytearray()
    block = b"pypidl"
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])
