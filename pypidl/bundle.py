"""Carrying mirrors across the air gap: bundles of new files, checked whole before import.

:func:`bundle` packs the files new since an older manifest into a tar with a header
(``pypidl-bundle.json``) and the manifest.  :func:`import_bundle`, on the inside host, checks the
whole tar against the header before writing anything, streams each file to a temp file while
hashing it, and publishes the files only when every hash matched.  (Shards and merges of manifests
are in :mod:`pypidl.manifest`; adopting files another tool downloaded is
:mod:`pypidl.store.adopt`.)
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import IO, Any

from pypidl import __version__
from pypidl import _json as untrusted_json
from pypidl._fs import TEMP_PREFIX, atomic_write_text, check_basename, open_output
from pypidl.bundle_state import (
    carried_state,
    check_sidecars,
    check_state_header,
    publish_state,
    state_header,
)
from pypidl.errors import BadInputError, ProblemsError, UnsafeFilenameError
from pypidl.hashing import bytes_sha256, copy_hashing, is_sha256, new_hasher, sha256_mismatch
from pypidl.manifest import PACKAGES_DIR, Entry, Manifest, loads
from pypidl.store import index_builder
from pypidl.store.catalog import STATE_DIR, Catalog

__all__ = [
    "BUNDLE_HEADER",
    "BUNDLE_MANIFEST",
    "BUNDLE_SCHEMA",
    "BUNDLE_VERSION",
    "BundleError",
    "BundleReport",
    "ImportReport",
    "bundle",
    "import_bundle",
    "new_since",
]

log = logging.getLogger(__name__)

BUNDLE_SCHEMA = "pypidl-bundle"
BUNDLE_VERSION = 1
#: first member of every bundle: what it holds, with sizes and digests
BUNDLE_HEADER = "pypidl-bundle.json"
#: second member: the manifest the bundle was made from
BUNDLE_MANIFEST = "manifest.json"
#: header and manifest are read into memory; anything bigger is not ours
_MAX_JSON_MEMBER = 256 * 1024 * 1024
#: where an import keeps the manifests of the bundles it took in
_IMPORTS_DIR = "imports"


class BundleError(ProblemsError):
    """A bundle is malformed, unsafe or tampered with; nothing was written."""

    default_hint = "the bundle was refused as a whole; make it again on the outside host"


# --------------------------------------------------------------------------- bundle


@dataclass(frozen=True)
class BundleReport:
    """What :func:`bundle` packed."""

    path: Path
    files: tuple[Entry, ...]
    #: files of the manifest left out because the older manifest already had them
    unchanged: int

    @property
    def size(self) -> int:
        return sum(e.size or 0 for e in self.files)


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def new_since(manifest: Manifest, since: Manifest | None) -> list[Entry]:
    """Entries of ``manifest`` that ``since`` does not have, by (project, filename, sha256)."""
    if since is None:
        return list(manifest.entries)
    old = {(e.project, e.filename, e.sha256) for e in since.entries}
    return [e for e in manifest.entries if (e.project, e.filename, e.sha256) not in old]


def bundle(
    manifest: Manifest,
    root: str | os.PathLike[str],
    *,
    since: Manifest | None,
    out: str | os.PathLike[str],
    state: Mapping[str, bytes] | None = None,
) -> BundleReport:
    """Pack the files of ``manifest`` that are new since ``since`` into the tar ``out``.

    The files come from the mirror at ``root``; each is hashed while it is copied into the tar
    and must match the manifest.  Members, in order: :data:`BUNDLE_HEADER`,
    :data:`BUNDLE_MANIFEST`, then ``packages/<project>/<filename>`` for every file.  The tar is
    written beside ``out`` under a temporary name and renamed when complete (a device, a FIFO
    or ``-`` is written through: :func:`pypidl._fs.open_output`).

    :raises BadInputError: when files are missing from the mirror or do not match the manifest
        (every such file is named; no bundle is left behind).
    """
    root = Path(root)
    out = Path(out)
    files = new_since(manifest, since)
    sizes: dict[str, int] = {}
    problems: list[str] = []
    for entry in files:
        path = entry.path_in(root)
        try:
            st = path.stat()
        except OSError:
            problems.append(f"{entry.relpath} is not in the mirror")
            continue
        if entry.size is not None and st.st_size != entry.size:
            problems.append(
                f"{entry.relpath} has {st.st_size} bytes, the manifest says {entry.size}"
            )
            continue
        sizes[entry.relpath] = st.st_size
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BadInputError(
            f"cannot bundle: {problems[0]}{more}",
            context=str(root),
            hint="run 'pypidl download' for this manifest first",
        )
    manifest_text = manifest.dumps().encode("utf-8")
    carried = carried_state(root, files, state)
    header = {
        "schema": BUNDLE_SCHEMA,
        "version": BUNDLE_VERSION,
        "generator": f"pypidl {__version__}",
        "created": _now(),
        "manifest": {
            "relpath": BUNDLE_MANIFEST,
            "sha256": bytes_sha256(manifest_text),
            "size": len(manifest_text),
        },
        "state": state_header(carried),
        "since": None if since is None else {"created": since.created, "files": len(since.entries)},
        "files": [
            {
                "relpath": e.relpath,
                "project": e.project,
                "filename": e.filename,
                "sha256": e.sha256,
                "size": sizes[e.relpath],
            }
            for e in files
        ],
    }
    header_text = (json.dumps(header, indent=1) + "\n").encode("utf-8")
    # a stream ("w|"): the same bytes as a seekable tar, and a FIFO or standard output works
    pax = tarfile.PAX_FORMAT
    with (
        open_output(out, "wb", what="bundle") as raw,
        tarfile.open(fileobj=raw, mode="w|", format=pax) as tar,
    ):
        _add_bytes(tar, BUNDLE_HEADER, header_text)
        _add_bytes(tar, BUNDLE_MANIFEST, manifest_text)
        for relpath, data in sorted(carried.items()):
            _add_bytes(tar, relpath, data)
        for entry in files:
            _add_file(tar, entry, entry.path_in(root), sizes[entry.relpath])
    log.debug(
        "bundled %d file(s) into %s (%d unchanged since the older manifest)",
        len(files),
        out,
        len(manifest.entries) - len(files),
    )
    return BundleReport(path=out, files=tuple(files), unchanged=len(manifest.entries) - len(files))


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0  # the same files make the same bundle
    info.type = tarfile.REGTYPE
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))


class _HashingReader(io.RawIOBase):
    """Reads through to ``fh`` and hashes what passes."""

    def __init__(self, fh: IO[bytes]):
        self._fh = fh
        self.hasher = new_hasher()
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self.hasher.update(data)
        self.count += len(data)
        return data

    def readinto(self, buffer: Any) -> int:  # pragma: no cover - tarfile calls read()
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _add_file(tar: tarfile.TarFile, entry: Entry, path: Path, size: int) -> None:
    with open(path, "rb") as fh:
        reader = _HashingReader(fh)
        try:
            tar.addfile(_tarinfo(entry.relpath, size), reader)
        except OSError as exc:  # the file shrank while we read it
            raise BadInputError(f"{entry.relpath} changed while being bundled: {exc}") from None
        if reader.count != size or fh.read(1):
            raise BadInputError(f"{entry.relpath} changed size while being bundled")
    actual = reader.hasher.hexdigest()
    if actual != entry.sha256:
        raise BadInputError(
            f"{entry.relpath} in the mirror does not match the manifest: "
            f"expected sha256 {entry.sha256}, got {actual}",
            hint="run 'pypidl verify' (or download) to repair the mirror, then bundle again",
        )


# --------------------------------------------------------------------------- import


@dataclass(frozen=True)
class ImportReport:
    """What :func:`import_bundle` (or :func:`adopt`) added to the mirror."""

    added: tuple[Entry, ...]
    #: files the mirror already held, verified
    present: tuple[Entry, ...]
    #: what :func:`pypidl.store.index_builder.build_index` returned, or None when it did not run
    index: Any = None


@dataclass(frozen=True)
class _Planned:
    entry: Entry
    member: tarfile.TarInfo
    size: int


def import_bundle(
    tar_path: str | os.PathLike[str],
    into: str | os.PathLike[str],
    *,
    build_index: bool = True,
    force: bool = False,
) -> ImportReport:
    """Add the files of the bundle at ``tar_path`` to the mirror at ``into``, then index it.

    Before anything is written the whole tar is checked against its header: only regular
    files, every member named in the header exactly once, sizes as the header says, paths of
    the form ``packages/<project>/<filename>`` that match the bundled manifest.  Each file is
    then streamed to a temporary file beside its final place while being hashed; only when
    every file matched are they renamed into place and recorded in the catalog.

    A file already at its place is hashed: the same bytes are recorded, not copied again.  A
    file the catalog verified with other bytes is never replaced unless ``force`` is given: a
    bundle can be consistent in itself and still not be what the mirror holds.

    :raises BundleError: for a malformed, unsafe or tampered bundle, or one that would replace
        verified files (without ``force``); no file reaches a final name.
    """
    tar_path = Path(tar_path)
    into = Path(into)
    where = str(tar_path)
    try:
        tar = tarfile.open(tar_path, mode="r:*")  # noqa: SIM115  # closed by the with below
    except tarfile.ReadError:  # its message lists every compression tried, one per line
        raise BundleError("cannot read bundle: not a tar archive", context=where) from None
    except (OSError, tarfile.TarError) as exc:
        raise BundleError(f"cannot read bundle: {exc}", context=where) from None
    with tar:
        try:
            members = tar.getmembers()
        except (OSError, tarfile.TarError) as exc:
            raise BundleError(f"cannot read bundle: {exc}", context=where) from None
        manifest, plan, state = _check_bundle(tar, members, where)
        catalog = Catalog(into)
        present: list[Entry] = []
        todo: list[tuple[_Planned, Path]] = []
        replacing: dict[Path, str] = {}
        conflicts: list[str] = []
        for item in plan:
            final = item.entry.path_in(into)
            if catalog.current(item.entry):
                present.append(item.entry)
                continue
            held = catalog.held(item.entry)
            if held.sha256 == item.entry.sha256:  # the same bytes under other stat data (a copy)
                catalog.add(item.entry, final)
                present.append(item.entry)
                continue
            if held.sha256 is not None:
                if held.verified and not force:
                    conflicts.append(
                        f"{item.entry.relpath}: the mirror holds it verified with sha256 "
                        f"{held.sha256}, the bundle brings {item.entry.sha256}"
                    )
                    continue
                replacing[final] = (
                    f"it held verified bytes with sha256 {held.sha256} (--force)"
                    if held.verified
                    else f"its bytes (sha256 {held.sha256}) were never verified by this mirror"
                )
            todo.append((item, final))
        if conflicts:
            raise BundleError(
                conflicts[0] + (f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""),
                context=where,
                hint="nothing was imported; if the bundle is right and the mirror wrong, "
                "import it again with --force",
                problems=conflicts,
            )
        staged: list[tuple[Entry, Path, Path]] = []
        try:
            problems: list[str] = []
            for item, final in todo:
                tmp, problem = _stage(tar, item, final)
                if problem is not None:
                    problems.append(problem)
                else:
                    staged.append((item.entry, tmp, final))
            if problems:
                raise BundleError.collect(where, problems)
        except BaseException:
            for _, tmp, _ in staged:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            raise
    added: list[Entry] = []
    for entry, tmp, final in staged:
        if final in replacing:
            log.warning("replacing %s: %s", final, replacing[final])
        tmp.replace(final)
        catalog.add(entry, final)
        added.append(entry)
    _keep_manifest(into, manifest)
    publish_state(into, state)
    log.debug("imported %d file(s) into %s (%d already present)", len(added), into, len(present))
    index = index_builder.build_index(into) if build_index else None
    return ImportReport(added=tuple(added), present=tuple(present), index=index)


def _check_bundle(
    tar: tarfile.TarFile, members: list[tarfile.TarInfo], where: str
) -> tuple[Manifest, list[_Planned], dict[str, bytes]]:
    """Validate every member against the header and manifest; write nothing.

    :raises BundleError: listing every problem found.
    """
    if not members or members[0].name != BUNDLE_HEADER or not members[0].isreg():
        raise BundleError(
            f"not a pypidl bundle: the first member is not {BUNDLE_HEADER}", context=where
        )
    header = _read_json_member(tar, members[0], where)
    problems: list[str] = []
    expected = _check_header(header, problems)
    carried = check_state_header(header, problems) if not problems else {}
    if problems:
        raise BundleError.collect(where, problems)
    manifest_info = header["manifest"]
    seen: dict[str, tarfile.TarInfo] = {}
    for member in members:
        name = member.name
        if name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\\" in name:
            problems.append(f"member {name!r} has an absolute or non-POSIX path")
        elif any(part in ("..", ".", "") for part in name.split("/")):
            problems.append(f"member {name!r} has a '..', '.' or empty path component")
        if not member.isreg():
            kind = (
                "symlink"
                if member.issym()
                else "hard link"
                if member.islnk()
                else "directory"
                if member.isdir()
                else "device or special file"
            )
            problems.append(f"member {name!r} is a {kind}; only regular files are allowed")
        if name in seen:
            problems.append(f"member {name!r} appears more than once")
            continue
        seen[name] = member
        want = (
            0
            if name == BUNDLE_HEADER
            else manifest_info["size"]
            if name == BUNDLE_MANIFEST
            else expected[name]["size"]
            if name in expected
            else carried[name]["size"]
            if name in carried
            else None
        )
        if want is None:
            problems.append(f"member {name!r} is not listed in the bundle header")
        elif name != BUNDLE_HEADER and member.isreg() and member.size != want:
            problems.append(f"member {name!r} has {member.size} bytes, the header says {want}")
    for name in [BUNDLE_MANIFEST, *expected, *carried]:
        if name not in seen:
            problems.append(f"{name} is listed in the header but missing from the bundle")
    if problems:
        raise BundleError.collect(where, problems)

    manifest_member = seen[BUNDLE_MANIFEST]
    raw = _read_member(tar, manifest_member, where)
    if bytes_sha256(raw) != manifest_info["sha256"]:
        raise BundleError(
            f"{BUNDLE_MANIFEST} does not match the sha256 in the header", context=where
        )
    try:
        manifest = loads(raw.decode("utf-8"), source=f"{where}:{BUNDLE_MANIFEST}")
    except UnicodeDecodeError:
        raise BundleError(f"{BUNDLE_MANIFEST} is not UTF-8", context=where) from None
    entries = {e.relpath: e for e in manifest.entries}
    plan: list[_Planned] = []
    for relpath, item in expected.items():
        entry = entries.get(relpath)
        if entry is None:
            problems.append(f"{relpath} is in the header but not in the bundled manifest")
        elif entry.sha256 != item["sha256"]:
            problems.append(f"{relpath}: header and manifest disagree about its sha256")
        elif entry.size is not None and entry.size != item["size"]:
            problems.append(f"{relpath}: header and manifest disagree about its size")
        else:
            plan.append(_Planned(entry, seen[relpath], item["size"]))
    state: dict[str, bytes] = {}
    for relpath, item in carried.items():
        data = _read_member(tar, seen[relpath], where)
        if bytes_sha256(data) != item["sha256"]:
            problems.append(f"{relpath} does not match the sha256 in the header")
        state[relpath] = data
    check_sidecars(state, entries, problems)
    if problems:
        raise BundleError.collect(where, problems)
    return manifest, plan, state


def _check_header(header: Any, problems: list[str]) -> dict[str, dict[str, Any]]:
    """Relpath -> file record of a well-formed header; appends to ``problems`` otherwise."""
    if not isinstance(header, dict) or header.get("schema") != BUNDLE_SCHEMA:
        problems.append(f"{BUNDLE_HEADER} is not a pypidl bundle header")
        return {}
    if header.get("version") != BUNDLE_VERSION:
        problems.append(
            f"bundle version {header.get('version')!r} is not supported (this pypidl reads "
            f"version {BUNDLE_VERSION})"
        )
        return {}
    info = header.get("manifest")
    if not (
        isinstance(info, dict) and is_sha256(info.get("sha256")) and _is_size(info.get("size"))
    ):
        problems.append("the header's 'manifest' record is missing or malformed")
    files = header.get("files")
    if not isinstance(files, list):
        problems.append("the header's 'files' list is missing")
        return {}
    expected: dict[str, dict[str, Any]] = {}
    for i, item in enumerate(files):
        where = f"header files[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected an object")
            continue
        relpath, project, filename = item.get("relpath"), item.get("project"), item.get("filename")
        if not (
            isinstance(relpath, str) and isinstance(project, str) and isinstance(filename, str)
        ):
            problems.append(f"{where}: relpath, project and filename must be strings")
            continue
        try:
            check_basename(project)
            check_basename(filename)
        except UnsafeFilenameError as exc:
            problems.append(f"{where}: {exc.message}")
            continue
        if relpath != str(PurePosixPath(PACKAGES_DIR, project, filename)):
            problems.append(
                f"{where}: relpath {relpath!r} is not {PACKAGES_DIR}/<project>/<filename>"
            )
            continue
        if not is_sha256(item.get("sha256")) or not _is_size(item.get("size")):
            problems.append(f"{where}: sha256 or size is missing or malformed")
            continue
        if relpath in expected or relpath in (BUNDLE_HEADER, BUNDLE_MANIFEST):
            problems.append(f"{where}: {relpath} is listed twice")
            continue
        expected[relpath] = item
    return expected


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, where: str) -> bytes:
    if member.size > _MAX_JSON_MEMBER:
        raise BundleError(
            f"{member.name} is implausibly large ({member.size} bytes)", context=where
        )
    fh = tar.extractfile(member)
    if fh is None:  # pragma: no cover - only regular files get here
        raise BundleError(f"{member.name} cannot be read", context=where)
    with fh:
        return fh.read()


def _read_json_member(tar: tarfile.TarFile, member: tarfile.TarInfo, where: str) -> Any:
    try:
        return untrusted_json.loads(_read_member(tar, member, where))
    except untrusted_json.UntrustedJSONError as exc:
        raise BundleError(f"{member.name}: {exc}", context=where) from None


def _stage(tar: tarfile.TarFile, item: _Planned, final: Path) -> tuple[Path, str | None]:
    """Copy one member to a temp file beside ``final``, hashing it; ``(temp, problem)``.

    On a problem the temp file is already removed.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f"{TEMP_PREFIX}{item.entry.filename}.", suffix=".part", dir=final.parent
    )
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as dst:
            src = tar.extractfile(item.member)
            if src is None:  # pragma: no cover - checked to be a regular file
                raise BundleError(f"{item.member.name} cannot be read")
            with src:
                digest, size = copy_hashing(src, dst)
            dst.flush()
            os.fsync(dst.fileno())
    except (tarfile.TarError, EOFError) as exc:  # the tar is damaged or shorter than its headers
        tmp.unlink(missing_ok=True)
        return tmp, f"{item.entry.relpath}: cannot be read from the bundle: {exc}"
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    problem = None
    if size != item.size:
        problem = f"{item.entry.relpath}: read {size} bytes, expected {item.size}"
    elif digest != item.entry.sha256:
        problem = f"{item.entry.relpath}: {sha256_mismatch(item.entry.sha256, digest)}"
    if problem is not None:
        tmp.unlink()
    return tmp, problem


def _keep_manifest(into: Path, manifest: Manifest) -> None:
    """Keep the imported manifest in the mirror's state directory, for the record."""
    stamp = re.sub(r"[^0-9A-Za-z]", "", manifest.created) or "unknown"
    path = into / STATE_DIR / _IMPORTS_DIR / f"manifest-{stamp}.json"
    atomic_write_text(path, manifest.dumps())
