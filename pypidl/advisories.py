"""Security advisories in the OSV format, read offline: which releases are malware or vulnerable.

The source is OSV's PyPI export: a zip of advisory JSON files, a directory of them, or (online)
the URL of that zip.  Advisories whose id starts with ``MAL-`` name malicious releases; the
others (``PYSEC-``, ``GHSA-``, ...) known vulnerabilities.  A release is affected when the
advisory lists its version, or an ``ECOSYSTEM`` range holds it.  Withdrawn advisories count for
nothing.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pypidl import _json as untrusted_json
from pypidl.errors import BadInputError
from pypidl.manifest import Problem

if TYPE_CHECKING:
    from packaging.version import Version

    from pypidl.config import NetworkSettings

__all__ = [
    "SNAPSHOT_NAME",
    "Advisories",
    "Advisory",
    "Finding",
    "findings",
    "load_advisories",
    "snapshot",
    "vulnerable_releases",
]

log = logging.getLogger(__name__)

#: the name a snapshot has inside a mirror's state directory and a bundle
SNAPSHOT_NAME = "advisories-osv.zip"
#: the most one advisory file, and a whole export, may hold once unpacked
MAX_ADVISORY_BYTES = 16 * 1024 * 1024
MAX_EXPORT_BYTES = 4 * 1024 * 1024 * 1024


@dataclass(frozen=True)
class Advisory:
    """One advisory as it concerns one project."""

    id: str
    aliases: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()
    summary: str = ""

    @property
    def malicious(self) -> bool:
        return self.id.upper().startswith("MAL-")

    def describe(self) -> str:
        """``PYSEC-2024-1 (CVE-2024-9, GHSA-x), fixed in 2.1``."""
        text = self.id
        if self.aliases:
            text += f" ({', '.join(self.aliases)})"
        if self.malicious:
            return text + ", malware"
        return text + (f", fixed in {', '.join(self.fixed)}" if self.fixed else ", no fix yet")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "aliases": list(self.aliases),
            "fixed": list(self.fixed),
            "malicious": self.malicious,
        }


@dataclass(frozen=True)
class _Affected:
    advisory: Advisory
    versions: frozenset[str]
    #: (introduced, fixed or None, last affected or None); introduced None means "0"
    ranges: tuple[tuple[str | None, str | None, str | None], ...]

    def holds(self, version: Version) -> bool:
        from packaging.version import Version as V

        if str(version) in self.versions:
            return True
        for low, fixed, last in self.ranges:
            try:
                if low is not None and version < V(low):
                    continue
                if fixed is not None and version >= V(fixed):
                    continue
                if last is not None and version > V(last):
                    continue
            except ValueError:  # InvalidVersion, or a number too long for int()
                continue
            return True
        return False


class Advisories:
    """Advisories by project, asked per release."""

    def __init__(self, affected: dict[str, list[_Affected]], *, source: str, count: int):
        self._by_project = affected
        self.source = source
        #: advisory files read
        self.count = count

    def affecting(self, project: str, version: str) -> list[Advisory]:
        """Advisories naming ``project`` (normalized) ``version``, malware first, then by id."""
        from packaging.version import Version

        found = self._by_project.get(project)
        if not found:
            return []
        try:
            parsed = Version(version)
        except ValueError:  # InvalidVersion, or a number too long for int()
            return []
        hits = {a.advisory for a in found if a.holds(parsed)}
        return sorted(hits, key=lambda a: (not a.malicious, a.id))


def load_advisories(source: str, *, net: NetworkSettings | None = None) -> Advisories:
    """Read the OSV export at ``source`` (a zip, a directory, or with ``net`` an http(s) URL).

    :raises BadInputError: when ``source`` is none of these, or holds no advisory.
    """
    from packaging.utils import canonicalize_name

    by_project: dict[str, list[_Affected]] = {}
    count = 0
    for where, data in _documents(source, net):
        count += isinstance(data, dict) and isinstance(data.get("id"), str)
        for project, item in _parse(data, where):
            by_project.setdefault(canonicalize_name(project), []).append(item)
    if count == 0:
        raise BadInputError("no OSV advisory (*.json) found", context=source)
    log.info("Read %d advisories from %s (%d projects named)", count, source, len(by_project))
    return Advisories(by_project, source=source, count=count)


def _documents(source: str, net: NetworkSettings | None) -> Iterator[tuple[str, Any]]:
    if source.startswith(("https://", "http://")):
        if net is None:
            raise BadInputError("advisories from a URL need the network", context=source)
        yield from _zip_documents(zipfile.ZipFile(io.BytesIO(_download(source, net))), source)
        return
    path = Path(source)
    if path.is_dir():
        for file in sorted(path.rglob("*.json")):
            if file.is_file() and file.stat().st_size <= MAX_ADVISORY_BYTES:
                yield str(file), _loads(file.read_bytes(), str(file))
        return
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise BadInputError("no such file or directory", context=source) from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise BadInputError(
            f"not an OSV export (a zip or a directory of JSON files): {exc}", context=source
        ) from None
    with archive:
        yield from _zip_documents(archive, source)


def _zip_documents(archive: zipfile.ZipFile, source: str) -> Iterator[tuple[str, Any]]:
    total = 0
    for info in archive.infolist():
        if info.is_dir() or not info.filename.endswith(".json"):
            continue
        if info.file_size > MAX_ADVISORY_BYTES:
            log.warning("%s: %s is too large for an advisory; skipped", source, info.filename)
            continue
        total += info.file_size
        if total > MAX_EXPORT_BYTES:
            raise BadInputError("the OSV export unpacks to more than 4 GiB", context=source)
        with archive.open(info) as fh:
            raw = fh.read(MAX_ADVISORY_BYTES + 1)
        yield f"{source}:{info.filename}", _loads(raw, info.filename)


def _loads(raw: bytes, where: str) -> Any:
    try:
        return untrusted_json.loads(raw)
    except (untrusted_json.UntrustedJSONError, UnicodeDecodeError):
        log.warning("%s: not JSON; skipped", where)
        return None


def _download(url: str, net: NetworkSettings) -> bytes:
    import requests

    from pypidl.session import describe_error, new_session

    session = new_session(net)
    chunks: list[bytes] = []
    total = 0
    try:
        with session.get(url, timeout=(net.connect_timeout, net.read_timeout), stream=True) as r:
            r.raise_for_status()
            for chunk in r.iter_content(1024 * 1024):
                total += len(chunk)
                if total > MAX_EXPORT_BYTES:
                    raise BadInputError("the OSV export is larger than 4 GiB", context=url)
                chunks.append(chunk)
    except requests.RequestException as exc:
        raise BadInputError(f"cannot fetch the advisories: {describe_error(exc)}") from None
    finally:
        session.close()
    return b"".join(chunks)


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _parse(data: Any, where: str) -> Iterable[tuple[str, _Affected]]:
    """(project, what the advisory says about it) for each PyPI package it names."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        if data is not None:
            log.debug("%s: not an OSV advisory; skipped", where)
        return []
    if data.get("withdrawn"):
        return []
    found: list[tuple[str, _Affected]] = []
    for affected in data.get("affected") or []:
        if not isinstance(affected, dict) or not isinstance(affected.get("package"), dict):
            continue
        package = affected["package"]
        if package.get("ecosystem") != "PyPI" or not isinstance(package.get("name"), str):
            continue
        ranges, fixed = _ranges(affected.get("ranges"))
        advisory = Advisory(
            id=data["id"],
            aliases=_strings(data.get("aliases")),
            fixed=fixed,
            summary=str(data.get("summary") or "")[:200],
        )
        versions = frozenset(_strings(affected.get("versions")))
        found.append((package["name"], _Affected(advisory, versions, ranges)))
    return found


def _ranges(
    raw: Any,
) -> tuple[tuple[tuple[str | None, str | None, str | None], ...], tuple[str, ...]]:
    """The ECOSYSTEM ranges of an ``affected`` item, and every version that fixes one."""
    ranges: list[tuple[str | None, str | None, str | None]] = []
    fixed: list[str] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or item.get("type") != "ECOSYSTEM":
            continue
        low: str | None = None
        open_range = False
        for event in item.get("events") or []:
            if not isinstance(event, dict):
                continue
            if "introduced" in event:
                value = str(event["introduced"])
                low, open_range = (None if value == "0" else value), True
            elif "fixed" in event and open_range:
                ranges.append((low, str(event["fixed"]), None))
                fixed.append(str(event["fixed"]))
                open_range = False
            elif "last_affected" in event and open_range:
                ranges.append((low, None, str(event["last_affected"])))
                open_range = False
        if open_range:
            ranges.append((low, None, None))
    return tuple(ranges), tuple(dict.fromkeys(fixed))


def snapshot(source: str, *, net: NetworkSettings | None = None) -> bytes:
    """The export at ``source`` as one zip (a directory is zipped), for ``pypidl audit`` where
    ``source`` cannot be reached: a mirror's state directory, a bundle."""
    if source.startswith(("https://", "http://")):
        if net is None:
            raise BadInputError("advisories from a URL need the network", context=source)
        return _download(source, net)
    if zipfile.is_zipfile(source):
        return Path(source).read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for n, (_, doc) in enumerate(_documents(source, net)):
            if doc is not None:
                archive.writestr(f"{n:07d}.json", json.dumps(doc, sort_keys=True))
    return buffer.getvalue()


@dataclass(frozen=True)
class Finding:
    """The advisories naming one release."""

    project: str
    version: str
    advisories: tuple[Advisory, ...]

    @property
    def kind(self) -> str:
        return "malware" if any(a.malicious for a in self.advisories) else "vulnerable"

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "version": self.version,
            "kind": self.kind,
            "advisories": [a.to_json() for a in self.advisories],
        }

    def problem(self) -> Problem:
        """As a plan's problem: an error for malware, a warning otherwise."""
        what = "malware" if self.kind == "malware" else "known vulnerabilities"
        return Problem(
            self.project,
            f"{self.version} has {what}: " + "; ".join(a.describe() for a in self.advisories),
            severity="error" if self.kind == "malware" else "warning",
        )


def findings(advisories: Advisories, releases: Iterable[tuple[str, str]]) -> list[Finding]:
    """A finding per release (project, version) some advisory names."""
    found: list[Finding] = []
    for project, version in releases:
        hits = advisories.affecting(project, version)
        if hits:
            found.append(Finding(project, version, tuple(hits)))
    return found


def vulnerable_releases(
    advisories: Advisories, releases: Iterable[tuple[str, str]]
) -> list[Problem]:
    """A problem per release an advisory names (see :meth:`Finding.problem`)."""
    return [f.problem() for f in findings(advisories, releases)]
