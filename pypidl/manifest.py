"""The manifest: every file a mirror should hold, with where to get it and how to check it.

The manifest is the contract between planning, downloading, exporting and transferring.  Its JSON
form is documented in ``docs/manifest.md``; :data:`SCHEMA_VERSION` changes whenever a field changes
meaning or a required field is added.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pypidl import __version__
from pypidl import _json as untrusted_json
from pypidl._fs import check_basename, open_output, read_input, safe_join
from pypidl.errors import ManifestError, UnsafeFilenameError
from pypidl.hashing import is_sha256

if TYPE_CHECKING:
    from packaging.version import Version

# ``packaging`` is imported where a manifest is parsed or sorted, not here: download workers
# unpickle entries and need this module, but not ``packaging.utils`` (which loads its tags module).

__all__ = [
    "KINDS",
    "NOTE_KINDS",
    "PACKAGES_DIR",
    "READABLE_VERSIONS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "WHY",
    "Entry",
    "Manifest",
    "Note",
    "Problem",
    "dump",
    "entry_order",
    "from_data",
    "load",
    "loads",
    "url_problem",
]

SCHEMA = "pypidl-manifest"
SCHEMA_VERSION = 2
#: The version of a manifest that pins projects to indexes (``pins``): a pypidl that cannot
#: honour the pins refuses it instead of downloading a pinned project from another index.
PINNED_SCHEMA_VERSION = 3
#: Versions :func:`loads` reads: 1 is 2 without ``why``; 3 is 2 with ``pins``.
READABLE_VERSIONS = (1, 2, 3)
KINDS = ("wheel", "sdist")
#: Why a release is in a plan (``Entry.why``), in this order.
WHY = ("requirement", "dependency", "build")

#: Where files live inside a mirror: ``packages/<normalized project>/<filename>``.
PACKAGES_DIR = "packages"


#: white space (as str.isspace sees it) and control characters, not allowed in a URL
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f]")


@dataclass(frozen=True)
class Entry:
    """One file of one release, as the mirror should hold it."""

    project: str  # normalized (PEP 503) name
    version: str
    filename: str
    urls: tuple[str, ...]  # every place it can be fetched from, best first, no credentials
    sha256: str
    size: int | None = None
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    kind: str = "wheel"
    upload_time: str | None = None
    #: sha256 of the PEP 658 ``.metadata`` sidecar, when the index serves one
    core_metadata_sha256: str | None = None
    #: why the release is planned (values of :data:`WHY`); empty when unknown (version 1)
    why: tuple[str, ...] = ()
    #: PEP 740: where the index serves the file's provenance, the sha256 of the document the
    #: planner checked, and what the check said ("verified", or "unverified" without the extra)
    provenance_url: str | None = None
    provenance_sha256: str | None = None
    provenance: str | None = None

    @property
    def relpath(self) -> str:
        """Path of the file inside the mirror, with forward slashes."""
        return str(PurePosixPath(PACKAGES_DIR, self.project, self.filename))

    def path_in(self, root: str | os.PathLike[str]) -> Path:
        """Where the file lives in the mirror at ``root``.

        :raises UnsafeFilenameError: when the project or file name would lead outside ``root``.
        """
        return safe_join(root, PACKAGES_DIR, self.project, self.filename)

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "version": self.version,
            "filename": self.filename,
            "kind": self.kind,
            "sha256": self.sha256,
            "size": self.size,
            "requires_python": self.requires_python,
            "yanked": self.yanked,
            "yanked_reason": self.yanked_reason,
            "upload_time": self.upload_time,
            "core_metadata_sha256": self.core_metadata_sha256,
            "why": list(self.why),
            "urls": list(self.urls),
            **(
                {
                    "provenance_url": self.provenance_url,
                    "provenance_sha256": self.provenance_sha256,
                    "provenance": self.provenance,
                }
                if self.provenance_url
                else {}
            ),
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> tuple[Entry | None, list[str]]:
        """Parse one entry; return it, or ``None`` and every problem found in it."""
        from packaging.utils import canonicalize_name
        from packaging.version import Version

        problems: list[str] = []
        if not isinstance(data, dict):
            return None, [f"{where}: expected an object"]

        def need(key: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
            value = data.get(key)
            if value is None and optional:
                return None
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
                problems.append(f"{where}: field {key!r} is missing or not {_kind_name(kind)}")
                return None
            return value

        project = need("project", str)
        version = need("version", str)
        filename = need("filename", str)
        sha256 = need("sha256", str)
        urls = need("urls", list)
        size = need("size", int, optional=True)
        requires_python = need("requires_python", str, optional=True)
        yanked = data.get("yanked", False)
        yanked_reason = need("yanked_reason", str, optional=True)
        kind = data.get("kind", "wheel")
        upload_time = need("upload_time", str, optional=True)
        core = need("core_metadata_sha256", str, optional=True)
        why = need("why", list, optional=True) or []
        provenance_url = need("provenance_url", str, optional=True)
        provenance_sha256 = need("provenance_sha256", str, optional=True)
        provenance = need("provenance", str, optional=True)

        if project is not None and canonicalize_name(project) != project:
            problems.append(f"{where}: project {project!r} is not a normalized name")
        if project is not None:
            try:
                check_basename(project)
            except UnsafeFilenameError:
                problems.append(f"{where}: project {project!r} is not a safe directory name")
        if version is not None:
            try:
                Version(version)
            except ValueError:  # InvalidVersion, or a number too long for int()
                problems.append(f"{where}: version {version!r} is not a valid version")
        if filename is not None:
            try:
                check_basename(filename)
            except UnsafeFilenameError:
                problems.append(f"{where}: filename {filename!r} is not a safe file name")
        if sha256 is not None and not is_sha256(sha256):
            problems.append(f"{where}: sha256 {sha256!r} is not 64 lowercase hex digits")
        if provenance_url is not None and url_problem(provenance_url) is not None:
            problems.append(f"{where}: provenance_url {url_problem(provenance_url)}")
        if provenance_sha256 is not None and not is_sha256(provenance_sha256):
            problems.append(f"{where}: provenance_sha256 is not 64 lowercase hex digits")
        if core is not None and not is_sha256(core):
            problems.append(f"{where}: core_metadata_sha256 is not 64 lowercase hex digits")
        if urls is not None and (not urls or not all(isinstance(u, str) for u in urls)):
            problems.append(f"{where}: urls must be a non-empty list of http(s) or file URLs")
        elif urls is not None:
            found = next((p for p in map(url_problem, urls) if p is not None), None)
            if found is not None:
                problems.append(f"{where}: urls {found}")
        if size is not None and size < 0:
            problems.append(f"{where}: size must not be negative")
        if not isinstance(yanked, bool):
            problems.append(f"{where}: field 'yanked' must be true or false")
        if kind not in KINDS:
            problems.append(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
        if not all(w in WHY for w in why):
            problems.append(f"{where}: why must list only {', '.join(WHY)}")
        if problems:
            return None, problems
        return (
            cls(
                project=project,
                version=version,
                filename=filename,
                urls=tuple(urls),
                sha256=sha256,
                size=size,
                requires_python=requires_python,
                yanked=bool(yanked),
                yanked_reason=yanked_reason,
                kind=kind,
                upload_time=upload_time,
                core_metadata_sha256=core,
                why=tuple(w for w in WHY if w in why),
                provenance_url=provenance_url,
                provenance_sha256=provenance_sha256,
                provenance=provenance,
            ),
            [],
        )


_URL_SCHEMES = ("http://", "https://", "file://")


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a file's URL in a manifest (completing "urls ..."), or None.

    The planner applies the same rule to the URLs an index page lists, so a plan never holds
    a URL its own manifest would refuse.
    """
    if not url.startswith(_URL_SCHEMES):
        return "must be http(s) or file URLs"
    if _SPACE_OR_CONTROL.search(url):
        return "must not contain white space or control characters"
    try:
        parts = urlsplit(url)
        credentials = parts.username or parts.password
    except ValueError:  # a malformed port or IPv6 address
        return "must be well-formed URLs"
    if credentials:
        return "must not carry credentials (use the index URL or .netrc)"
    return None


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", list: "a list", dict: "an object"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


@dataclass(frozen=True)
class Problem:
    """Something the planner could not do: a project the index lacks, a target left unsatisfied."""

    project: str
    reason: str
    requirement: str | None = None
    target: str | None = None
    #: "error": something the mirror lacks (the run exits 1); "warning": a possible gap pypidl
    #: cannot rule out (an sdist whose dependencies are only known after a build)
    severity: str = "error"

    @property
    def is_error(self) -> bool:
        return self.severity != "warning"

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


#: Note kinds: a release only the floor (or only the ceiling) machines of a family needed, and
#: a release some targets would have to build from its sdist (issue 17)
NOTE_KINDS = ("floor-only", "ceiling-only", "build")


@dataclass(frozen=True)
class Note:
    """Something the plan chose that users should know of, for the summary and ``--report``.

    ``targets`` are the labels concerned; for a ``build`` note, ``detail`` says what building
    needs (the sdist's build requirements, and the toolchain they imply).
    """

    kind: str
    project: str
    version: str
    targets: tuple[str, ...]
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "project": self.project,
            "version": self.version,
            "targets": list(self.targets),
        }
        if self.detail:
            out["detail"] = self.detail
        return out

    @classmethod
    def from_json(cls, raw: object) -> Note | None:
        """A note as :meth:`to_json` wrote it, or None for anything else (notes are advice: a
        manifest with a note this version cannot read is still a valid manifest)."""
        if not isinstance(raw, dict) or raw.get("kind") not in NOTE_KINDS:
            return None
        project, version, targets = raw.get("project"), raw.get("version"), raw.get("targets")
        if not isinstance(project, str) or not isinstance(version, str):
            return None
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            return None
        detail = raw.get("detail", "")
        return cls(raw["kind"], project, version, tuple(targets), str(detail))


@dataclass(frozen=True)
class Manifest:
    """A whole plan: its files, sorted by project, version and filename, and what went wrong."""

    entries: tuple[Entry, ...]
    requirements: tuple[str, ...] = ()
    index_urls: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    all_versions: bool = False
    problems: tuple[Problem, ...] = ()
    #: project -> versions chosen, including projects that have no file (so the summary can say so)
    projects: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: project -> the one index (simple URL, no credentials) it was planned from and may be
    #: fetched from (``--project-index``, or a lock's own registry): no other index is asked
    pins: dict[str, str] = field(default_factory=dict)
    #: what the summary tells besides the files (see :class:`Note`)
    notes: tuple[Note, ...] = ()
    #: project -> its PEP 792 status as its index gave it (``{"status": ..., "reason": ...}``),
    #: for the projects whose status is not "active"
    project_status: dict[str, dict[str, str]] = field(default_factory=dict)
    #: what the checks before the gap counted (``provenance_verified``, ...), for summaries
    checks: dict[str, int] = field(default_factory=dict)
    created: str = ""
    generator: str = f"pypidl {__version__}"

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.entries, key=entry_order))
        object.__setattr__(self, "entries", ordered)
        if not self.created:
            now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
            object.__setattr__(self, "created", now.replace("+00:00", "Z"))

    @property
    def errors(self) -> tuple[Problem, ...]:
        """Problems that make the plan incomplete (warnings excluded)."""
        return tuple(p for p in self.problems if p.is_error)

    @property
    def total_size(self) -> int:
        return sum(e.size or 0 for e in self.entries)

    def by_project(self) -> dict[str, list[Entry]]:
        grouped: dict[str, list[Entry]] = {}
        for entry in self.entries:
            grouped.setdefault(entry.project, []).append(entry)
        return grouped

    def to_json(self) -> dict[str, Any]:
        pins = {"pins": dict(sorted(self.pins.items()))} if self.pins else {}
        return {
            "schema": SCHEMA,
            "version": PINNED_SCHEMA_VERSION if self.pins else SCHEMA_VERSION,
            "generator": self.generator,
            "created": self.created,
            "index_urls": list(self.index_urls),
            **pins,
            "targets": list(self.targets),
            "requirements": list(self.requirements),
            "all_versions": self.all_versions,
            "projects": {name: list(vs) for name, vs in sorted(self.projects.items())},
            "project_status": dict(sorted(self.project_status.items())),
            "checks": dict(sorted(self.checks.items())),
            "problems": [p.to_json() for p in self.problems],
            **({"notes": [n.to_json() for n in self.notes]} if self.notes else {}),
            "files": [e.to_json() for e in self.entries],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=False) + "\n"


def entry_order(entry: Entry) -> tuple[str, Version, str]:
    return (entry.project, _sort_version(entry.version), entry.filename)


@functools.lru_cache(maxsize=1 << 16)
def _sort_version(text: str) -> Version:
    # a manifest is ordered each time one is made (loaded, replaced, merged): thousands of
    # entries, each version read once per run instead of once per ordering
    from packaging.version import Version

    return Version(text)


def dump(manifest: Manifest, path: str | os.PathLike[str]) -> None:
    """Write ``manifest`` to ``path`` (atomically, or through ``-``, a device or a FIFO)."""
    with open_output(path, what="manifest") as fh:
        fh.write(manifest.dumps())


def loads(text: str, *, source: str = "<manifest>") -> Manifest:
    """Parse and validate a manifest; every problem is reported at once.

    :raises ManifestError: naming ``source`` and listing every problem.
    """
    try:
        data = untrusted_json.loads(text)
    except untrusted_json.UntrustedJSONError as exc:
        raise ManifestError(str(exc), context=source) from None
    return from_data(data, source=source)


def from_data(data: Any, *, source: str = "<manifest>") -> Manifest:
    """A manifest from its JSON value, already parsed (validated as :func:`loads` does; the
    value's file list is consumed).

    :raises ManifestError: naming ``source`` and listing every problem.
    """
    if not isinstance(data, dict):
        raise ManifestError("expected a JSON object at the top level", context=source)
    if data.get("schema") != SCHEMA:
        raise ManifestError(
            f"not a pypidl manifest (schema is {data.get('schema')!r}, expected {SCHEMA!r})",
            context=source,
        )
    version = data.get("version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise ManifestError(
            f"manifest schema version {version!r} is not supported (this pypidl reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))})",
            context=source,
            hint="re-create it with 'pypidl plan', or use the pypidl version that wrote it",
        )
    problems: list[str] = []
    files = data.get("files")
    if not isinstance(files, list):
        raise ManifestError("field 'files' is missing or not a list", context=source)
    entries: list[Entry] = []
    seen: dict[tuple[str, str], int] = {}
    for i, raw in enumerate(files):
        files[i] = None  # each parsed object goes as its entry comes: one copy in memory, not two
        entry, found = Entry.from_json(raw, f"files[{i}]")
        problems.extend(found)
        if entry is None:
            continue
        key = (entry.project, entry.filename)
        if key in seen:
            problems.append(
                f"files[{i}]: {entry.filename} is listed twice (also files[{seen[key]}])"
            )
            continue
        seen[key] = i
        entries.append(entry)
    raw_problems = data.get("problems", [])
    plan_problems: list[Problem] = []
    if isinstance(raw_problems, list):
        for p in raw_problems:
            if isinstance(p, dict) and isinstance(p.get("project"), str):
                plan_problems.append(
                    Problem(
                        project=p["project"],
                        reason=str(p.get("reason", "")),
                        requirement=p.get("requirement"),
                        target=p.get("target"),
                        severity="warning" if p.get("severity") == "warning" else "error",
                    )
                )
    pins = _pins_from_json(data.get("pins"), problems)
    if problems:
        raise ManifestError.collect(source, problems)
    projects = data.get("projects") or {}
    raw_notes = data.get("notes")
    notes = [Note.from_json(n) for n in raw_notes] if isinstance(raw_notes, list) else []
    return Manifest(
        entries=tuple(entries),
        requirements=tuple(str(r) for r in data.get("requirements", [])),
        index_urls=tuple(str(u) for u in data.get("index_urls", [])),
        targets=tuple(str(t) for t in data.get("targets", [])),
        all_versions=bool(data.get("all_versions", False)),
        problems=tuple(plan_problems),
        projects={str(k): tuple(map(str, v)) for k, v in projects.items() if isinstance(v, list)},
        pins=pins,
        notes=tuple(n for n in notes if n is not None),
        project_status=_statuses(data.get("project_status")),
        checks={
            str(k): v
            for k, v in (data.get("checks") or {}).items()
            if isinstance(v, int) and not isinstance(v, bool)
        }
        if isinstance(data.get("checks"), dict)
        else {},
        created=str(data.get("created", "")),
        generator=str(data.get("generator", "")),
    )


def _pins_from_json(raw: Any, problems: list[str]) -> dict[str, str]:
    """The ``pins`` object: normalized project -> an http(s) index URL without credentials."""
    from packaging.utils import canonicalize_name

    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append("pins: expected an object of project -> index URL")
        return {}
    pins: dict[str, str] = {}
    for project, url in raw.items():
        if canonicalize_name(project) != project:
            problems.append(f"pins: project {project!r} is not a normalized name")
        elif not isinstance(url, str) or not url.startswith(("http://", "https://")):
            problems.append(f"pins: {project}: the index must be an http(s) URL")
        elif url_problem(url) is not None:
            problems.append(f"pins: {project}: the index URL {url_problem(url)}")
        else:
            pins[project] = url
    return pins


def _statuses(raw: Any) -> dict[str, dict[str, str]]:
    """The ``project_status`` table of a manifest; odd items are left out."""
    if not isinstance(raw, dict):
        return {}
    return {
        str(name): {
            k: v for k, v in value.items() if k in ("status", "reason") and isinstance(v, str)
        }
        for name, value in raw.items()
        if isinstance(value, dict) and isinstance(value.get("status"), str)
    }


def load(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate the manifest at ``path``.

    :raises ManifestError: when it cannot be read or is not a valid manifest.
    """
    try:
        text = read_input(path).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read manifest: {exc}", context=str(path)) from None
    return loads(text, source=str(path))
