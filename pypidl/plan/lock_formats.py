"""Reading the four lock formats into one model (:mod:`pypidl.plan.lockfiles`).

A lock is recognised by its name (``uv.lock``, ``pylock.toml`` and ``pylock.<name>.toml``,
``poetry.lock``, ``Pipfile.lock``) or, under any other name, by its content.  Each reader keeps
``file:line`` for what it refuses, so a malformed lock gets one line naming the place.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.markers import InvalidMarker, Marker
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from pypidl import _json, _toml
from pypidl._fs import read_input
from pypidl.hashing import is_sha256
from pypidl.plan.lockfiles import (
    FORMATS,
    Lock,
    LockedFile,
    LockEdge,
    LockedPackage,
    LockError,
)

__all__ = ["is_lock_file", "lock_format_by_name", "read_lock"]


#: PEP 751: ``pylock.toml`` or ``pylock.<name>.toml``
_PYLOCK_NAME = re.compile(r"^pylock\.([^.]+\.)?toml$")


def lock_format_by_name(path: str | Path) -> str | None:
    name = Path(path).name
    if name in {"uv.lock", "poetry.lock", "Pipfile.lock"}:
        return name
    if _PYLOCK_NAME.match(name):
        return "pylock.toml"
    return None


def _format_of_data(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    if "lock-version" in data and isinstance(data.get("packages"), list):
        return "pylock.toml"
    meta = data.get("metadata")
    if isinstance(meta, dict) and "content-hash" in meta and isinstance(data.get("package"), list):
        return "poetry.lock"
    if isinstance(data.get("version"), int) and isinstance(data.get("package"), list):
        return "uv.lock"
    meta = data.get("_meta")
    if isinstance(meta, dict) and "pipfile-spec" in meta:
        return "Pipfile.lock"
    return None


def is_lock_file(path: str | Path) -> bool:
    """Whether ``path`` is a lock pypidl reads: by its name, else by its content."""
    if lock_format_by_name(path):
        return True
    try:
        text = read_input(path).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    stripped = text.lstrip()
    try:
        data = _json.loads(text) if stripped.startswith("{") else _toml.loads(text)
    except ValueError:  # UntrustedTOMLError, UntrustedJSONError
        return False
    return _format_of_data(data) is not None


def read_lock(path: str | Path) -> Lock:
    """Read the lock at ``path`` (any of :data:`FORMATS`, by name or content).

    :raises LockError: it cannot be read, is not a lock, or holds something malformed.
    """
    where = str(path)
    try:
        text = read_input(path).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LockError(f"cannot read the lock: {exc}", context=where) from None
    by_name = lock_format_by_name(path)
    json_form = by_name == "Pipfile.lock" or (by_name is None and text.lstrip().startswith("{"))
    try:
        data = _json.loads(text) if json_form else _toml.loads(text)
    except _json.UntrustedJSONError as exc:
        raise LockError(str(exc), context=where) from None
    except _toml.UntrustedTOMLError as exc:
        line = f":{exc.line}" if exc.line else ""
        raise LockError(str(exc), context=where + line) from None
    fmt = _format_of_data(data) if by_name is None else by_name
    if fmt is None or not isinstance(data, dict):
        raise LockError(f"not a lock pypidl reads ({', '.join(FORMATS)})", context=where)
    reader: dict[str, Callable[[str, str, dict[str, Any]], Lock]] = {
        "uv.lock": _read_uv,
        "pylock.toml": _read_pylock,
        "poetry.lock": _read_poetry,
        "Pipfile.lock": _read_pipfile,
    }
    return reader[fmt](where, text, data)


class _Lines:
    """``file:line`` of the N-th ``[[header]]`` table (tomllib gives no positions)."""

    def __init__(self, where: str, text: str, header: str):
        self.where = where
        pattern = re.compile(r"^[ \t]*\[\[[ \t]*" + re.escape(header) + r"[ \t]*\]\]", re.MULTILINE)
        # counted from the previous header, not from the top: linear in the lock's size (it
        # was quadratic: 29 s for a pylock of 20,000 packages, issue 20)
        self.lines = []
        line, counted = 1, 0
        for found in pattern.finditer(text):
            line += text.count("\n", counted, found.start())
            counted = found.start()
            self.lines.append(line)

    def __call__(self, n: int) -> str:
        return f"{self.where}:{self.lines[n]}" if n < len(self.lines) else self.where


def _array(table: dict[str, Any], key: str, where: str) -> list[Any]:
    """``table[key]`` as a list (missing or empty: ``[]``); anything else is refused."""
    value = table.get(key) or []
    if not isinstance(value, list):
        raise LockError(f"{key!r} is not an array", context=where)
    return value


def _table(table: dict[str, Any], key: str, where: str, what: str = "a table") -> dict[str, Any]:
    """``table[key]`` as a dict (missing or empty: ``{}``); anything else is refused."""
    value = table.get(key) or {}
    if not isinstance(value, dict):
        raise LockError(f"{key!r} is not {what}", context=where)
    return value


def _name_version(raw: Any, where: str) -> tuple[NormalizedName, str]:
    if not isinstance(raw, dict):
        raise LockError("a package entry is not a table", context=where)
    name, version = raw.get("name"), raw.get("version")
    if not isinstance(name, str) or not name:
        raise LockError("a package has no name", context=where)
    if not isinstance(version, str):
        raise LockError(f"package {name!r} has no version", context=where)
    version = version.removeprefix("==")
    try:
        Version(version)
    except InvalidVersion:
        shown = version if len(version) <= 40 else f"{version[:20]}... ({len(version)} characters)"
        raise LockError(
            f"package {name!r} has an invalid version {shown!r}", context=where
        ) from None
    except ValueError:  # 5,000 digits: more than int() converts (issue 20)
        raise LockError(
            f"package {name!r} has a version too long to compare ({len(version)} characters)",
            context=where,
        ) from None
    return canonicalize_name(name), version


def _marker(text: Any, where: str) -> Marker | None:
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise LockError(f"marker {text!r} is not a string", context=where)
    try:
        return _parsed_marker(text)
    except InvalidMarker as exc:
        raise LockError(f"invalid marker {text!r}: {exc}", context=where) from None


@functools.lru_cache(maxsize=4096)
def _parsed_marker(text: str) -> Marker:
    """One :class:`Marker` per text: a lock repeats a few markers thousands of times, and
    :meth:`pypidl.plan.lockfiles.Lock.select` evaluates each object once per target."""
    return Marker(text)


def _sha256(value: Any, where: str, what: str) -> str | None:
    """The sha256 of a ``"sha256:<hex>"`` string (other algorithms: None)."""
    if value is None:
        return None
    if not isinstance(value, str) or ":" not in value:
        raise LockError(f"{what}: hash {value!r} is not 'algorithm:hex'", context=where)
    algo, _, digest = value.partition(":")
    if algo.lower() != "sha256":
        return None
    digest = digest.lower()
    if not is_sha256(digest):
        raise LockError(f"{what}: {value!r} is not a sha256 digest", context=where)
    return digest


def _filename_of(url: str) -> str:
    return unquote(PurePosixPath(urlsplit(url).path).name)


def _size(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _time(value: Any) -> str | None:
    if value is None:
        return None
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text.replace("+00:00", "Z")


def _read_uv(where: str, text: str, data: dict[str, Any]) -> Lock:
    line = _Lines(where, text, "package")
    raw_packages = _array(data, "package", where)
    lock = Lock(path=where, format="uv.lock", packages=[])
    by_name: dict[str, list[int]] = {}
    sources: list[Any] = []
    for n, raw in enumerate(raw_packages):
        at = line(n)
        name, version = _name_version(raw, at)
        source = raw.get("source") or {}
        if not isinstance(source, dict):
            raise LockError(f"package {name!r}: 'source' is not a table", context=at)
        files: list[LockedFile] = []
        for item in [raw.get("sdist"), *_array(raw, "wheels", at)]:
            if item is None:
                continue
            if not isinstance(item, dict):
                raise LockError(f"package {name!r}: a file entry is not a table", context=at)
            url = item.get("url")
            filename = item.get("filename") or (_filename_of(url) if isinstance(url, str) else None)
            if not isinstance(filename, str) or not filename:
                continue  # a path source's file: nothing an index could serve
            files.append(
                LockedFile(
                    filename=filename,
                    sha256=_sha256(item.get("hash"), at, filename),
                    url=url
                    if isinstance(url, str) and url.startswith(("http://", "https://"))
                    else None,
                    size=_size(item.get("size")),
                    upload_time=_time(item.get("upload-time")),
                )
            )
        registry = source.get("registry")
        kind = next(iter(source), None)
        not_from_index = None
        if registry is None:
            not_from_index = f"its source is {kind or 'unknown'} ({source.get(kind, '') if kind else ''}), not an index"
        lock.packages.append(
            LockedPackage(
                name=name,
                version=version,
                where=at,
                files=tuple(files),
                index=registry if isinstance(registry, str) and "://" in registry else None,
                not_from_index=not_from_index,
            )
        )
        sources.append(source)
        by_name.setdefault(name, []).append(n)
        if kind in {"virtual", "editable"}:
            lock.roots.append(n)
            lock.members.add(n)

    def resolve(dep: Any, at: str) -> LockEdge:
        if not isinstance(dep, dict) or not isinstance(dep.get("name"), str):
            raise LockError("a dependency is not a table with a name", context=at)
        dep_name = canonicalize_name(dep["name"])
        candidates = by_name.get(dep_name, [])
        if "version" in dep:
            candidates = [i for i in candidates if lock.packages[i].version == dep["version"]]
        if "source" in dep and len(candidates) > 1:
            candidates = [i for i in candidates if sources[i] == dep["source"]]
        if not candidates:
            raise LockError(f"dependency {dep['name']!r} is not a package of the lock", context=at)
        extras = _array(dep, "extra", at)
        return LockEdge(
            to=candidates[0],
            marker=_marker(dep.get("marker"), at),
            extras=tuple(canonicalize_name(e) for e in extras if isinstance(e, str)),
        )

    members = _array(_table(data, "manifest", where), "members", where)
    member_names = {canonicalize_name(m) for m in members if isinstance(m, str)}
    for n, raw in enumerate(raw_packages):
        at = line(n)
        if lock.packages[n].name in member_names and n not in lock.roots:
            lock.roots.append(n)
            lock.members.add(n)
        lock.edges[n] = [resolve(d, at) for d in _array(raw, "dependencies", at)]
        groups: dict[str, list[LockEdge]] = {}
        for table in ("optional-dependencies", "dev-dependencies"):
            extra_tables = _table(raw, table, at)
            for group in extra_tables:
                groups.setdefault(canonicalize_name(group), []).extend(
                    resolve(d, at) for d in _array(extra_tables, group, at)
                )
        if groups:
            lock.extra_edges[n] = groups
    if not lock.roots:
        # a lock of a script or of requirements alone: every package is wanted
        lock.roots = list(range(len(lock.packages)))
    return lock


def _read_pylock(where: str, text: str, data: dict[str, Any]) -> Lock:
    version = data.get("lock-version")
    if not isinstance(version, str) or not version.startswith("1."):
        raise LockError(
            f"pylock lock-version {version!r} is not supported (this pypidl reads 1.x)",
            context=where,
        )
    line = _Lines(where, text, "packages")
    lock = Lock(
        path=where,
        format="pylock.toml",
        packages=[],
        lock_extras=frozenset(_names(_array(data, "extras", where))),
        lock_groups=frozenset(_names(_array(data, "dependency-groups", where))),
    )
    for n, raw in enumerate(_array(data, "packages", where)):
        at = line(n)
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise LockError("a package has no name", context=at)
        if raw.get("version") is None:
            # PEP 751: a version may be left out only for a VCS, directory or archive source
            kind = next((k for k in ("vcs", "directory", "archive") if k in raw), "unknown")
            lock.packages.append(
                LockedPackage(
                    name=canonicalize_name(raw["name"]),
                    version="0",
                    where=at,
                    not_from_index=f"its source is {kind}, not an index",
                )
            )
            continue
        name, version = _name_version(raw, at)
        files: list[LockedFile] = []
        for item in [raw.get("sdist"), *_array(raw, "wheels", at)]:
            if item is None:
                continue
            if not isinstance(item, dict):
                raise LockError(f"package {name!r}: a file entry is not a table", context=at)
            url = item.get("url") if isinstance(item.get("url"), str) else None
            filename = item.get("name") or (_filename_of(url) if url else None)
            if not isinstance(filename, str) or not filename:
                raise LockError(
                    f"package {name!r}: a file has neither a name nor a URL", context=at
                )
            hashes = item.get("hashes") or {}
            if not isinstance(hashes, dict):
                raise LockError(f"{filename}: 'hashes' is not a table", context=at)
            sha = hashes.get("sha256")
            files.append(
                LockedFile(
                    filename=filename,
                    sha256=_sha256(f"sha256:{sha}", at, filename) if sha is not None else None,
                    url=url if url and url.startswith(("http://", "https://")) else None,
                    size=_size(item.get("size")),
                    upload_time=_time(item.get("upload-time")),
                )
            )
        other = next((k for k in ("vcs", "directory", "archive") if k in raw), None)
        index = raw.get("index")
        lock.packages.append(
            LockedPackage(
                name=name,
                version=version,
                where=at,
                files=tuple(files),
                index=index if isinstance(index, str) else None,
                not_from_index=f"its source is {other}, not an index" if other else None,
            )
        )
        marker = _marker(raw.get("marker"), at)
        if marker is not None:
            lock.markers[n] = marker
    return lock


def _read_poetry(where: str, text: str, data: dict[str, Any]) -> Lock:
    line = _Lines(where, text, "package")
    lock = Lock(path=where, format="poetry.lock", packages=[])
    for n, raw in enumerate(_array(data, "package", where)):
        at = line(n)
        name, version = _name_version(raw, at)
        files: list[LockedFile] = []
        for item in _array(raw, "files", at):
            if not isinstance(item, dict) or not isinstance(item.get("file"), str):
                raise LockError(f"package {name!r}: a file entry has no 'file'", context=at)
            files.append(
                LockedFile(
                    filename=item["file"], sha256=_sha256(item.get("hash"), at, item["file"])
                )
            )
        source = raw.get("source") or {}
        kind = source.get("type") if isinstance(source, dict) else None
        index = source.get("url") if kind == "legacy" else None
        lock.packages.append(
            LockedPackage(
                name=name,
                version=version,
                where=at,
                files=tuple(files),
                index=index if isinstance(index, str) else None,
                not_from_index=(
                    f"its source is {kind}, not an index"
                    if kind not in (None, "legacy", "pypi")
                    else None
                ),
            )
        )
        # lock-version 2.1 writes the marker under which the package is installed; either one
        # string or one per dependency group (then any group's marker will do)
        markers = raw.get("markers")
        if isinstance(markers, dict):
            parts = [f"({m})" for m in markers.values() if isinstance(m, str) and m]
            markers = " or ".join(parts) if len(parts) == len(markers) else None
        marker = _marker(markers, at)
        if marker is not None:
            lock.markers[n] = marker
    return lock


def _read_pipfile(where: str, text: str, data: dict[str, Any]) -> Lock:
    meta = _table(data, "_meta", where, "an object")
    indexes = {
        s.get("name"): s.get("url")
        for s in _array(meta, "sources", where)
        if isinstance(s, dict) and isinstance(s.get("url"), str)
    }
    lock = Lock(path=where, format="Pipfile.lock", packages=[])
    seen: dict[tuple[str, str], int] = {}
    for section in ("default", "develop"):
        table = data.get(section) or {}
        if not isinstance(table, dict):
            raise LockError(f"{section!r} is not an object", context=where)
        for raw_name, raw in table.items():
            at = _json_line(where, text, raw_name)
            if not isinstance(raw, dict):
                raise LockError(f"package {raw_name!r} is not an object", context=at)
            name = canonicalize_name(raw_name)
            if "version" not in raw:
                kind = next((k for k in ("git", "path", "file", "editable") if k in raw), "unknown")
                lock.packages.append(
                    LockedPackage(
                        name=name,
                        version="0",
                        where=at,
                        not_from_index=f"its source is {kind}, not an index",
                    )
                )
                continue
            _, version = _name_version({"name": raw_name, "version": raw["version"]}, at)
            if (name, version) in seen:
                continue  # in both sections
            digests = frozenset(
                d for d in (_sha256(h, at, raw_name) for h in _array(raw, "hashes", at)) if d
            )
            index = indexes.get(raw.get("index")) if raw.get("index") else None
            if index is None and len(indexes) == 1:
                index = next(iter(indexes.values()))
            seen[(name, version)] = len(lock.packages)
            lock.packages.append(
                LockedPackage(name=name, version=version, where=at, hashes=digests, index=index)
            )
            marker = _marker(raw.get("markers"), at)
            if marker is not None:
                lock.markers[len(lock.packages) - 1] = marker
    return lock


def _names(values: list[Any]) -> list[NormalizedName]:
    return [canonicalize_name(v) for v in values if isinstance(v, str)]


def _json_line(where: str, text: str, key: str) -> str:
    found = re.search(r'^[ \t]*"' + re.escape(key) + r'"\s*:\s*\{', text, re.MULTILINE)
    return f"{where}:{text.count(chr(10), 0, found.start()) + 1}" if found else where
