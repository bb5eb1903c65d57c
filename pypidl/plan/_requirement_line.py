"""One requirement line's checks: a project on an index, with versions that compare.

A mirror serves index projects only, so URLs, paths, VCS and editable requirements are
refused here with a message that says so (credentials in them redacted).
"""

from __future__ import annotations

import contextlib
import re

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from pypidl.errors import RequirementsError
from pypidl.hashing import STRONG_HASHES

__all__ = ["INDEX_ONLY_HINT", "check_hash", "comparable", "index_requirement", "redact"]

INDEX_ONLY_HINT = (
    "pypidl mirrors projects from a package index only; write the requirement as "
    "'name[extras] specifier ; marker' (for example 'requests>=2.31') and publish other "
    "packages to an index first"
)

_URL_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_CREDENTIALS_RE = re.compile(r"(://)[^/@\s]+@")
_VCS_SCHEMES = ("git", "hg", "svn", "bzr")
_ARCHIVE_SUFFIXES = (
    ".whl",
    ".zip",
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz",
    ".tar.xz",
    ".txz",
    ".tar.lz",
    ".tlz",
    ".tar.lzma",
)
_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_HEX_RE = re.compile(r"[0-9a-fA-F]+")


def check_hash(value: str | None, where: str) -> str:
    algo, sep, digest = (value or "").partition(":")
    algo = algo.lower()
    if not sep or algo not in STRONG_HASHES:
        raise RequirementsError(
            f"--hash={value} is not 'algo:hex' with a strong algorithm",
            context=where,
            hint=f"write --hash=sha256:<hex>; accepted algorithms: {', '.join(STRONG_HASHES)}",
        )
    if len(digest) != _HEX_LENGTHS[algo] or not _HEX_RE.fullmatch(digest):
        raise RequirementsError(
            f"--hash={value}: a {algo} digest is {_HEX_LENGTHS[algo]} hexadecimal digits",
            context=where,
        )
    return f"{algo}:{digest.lower()}"


def index_requirement(text: str, where: str) -> Requirement:
    """``text`` as a requirement on an index project.

    :raises RequirementsError: for what is not one (a URL, a path, VCS, a malformed line, a
        version too long to compare), with ``where`` as its context.
    """
    _refuse_non_index(text, where)
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        brief = str(exc).splitlines()[0] if str(exc) else "invalid requirement"
        raise RequirementsError(
            f"invalid requirement {text!r}: {brief}",
            context=where,
            hint="write 'name[extras] specifier ; marker', for example 'requests[socks]>=2.31'",
        ) from None
    if requirement.url is not None:  # "name @ <url or path>"
        raise _not_index(_url_kind(requirement.url) or "direct URL", text, where)
    _check_versions(requirement, text, where)
    return requirement


def comparable(requirement: Requirement) -> bool:
    """Whether the versions of ``requirement``'s specifier can be compared.

    ``==1.<5,000 digits>`` is a valid version string, but comparing it converts the digits to
    an integer, which CPython refuses beyond 4,300 digits with a ``ValueError`` that surfaced
    in the middle of planning (issue 20).
    """
    try:
        for spec in requirement.specifier:
            with contextlib.suppress(InvalidVersion):  # "===anything", "==1.*": not compared
                Version(spec.version)
        hash(requirement.specifier)
    except ValueError:
        return False
    return True


def _check_versions(requirement: Requirement, text: str, where: str) -> None:
    if not comparable(requirement):
        raise RequirementsError(
            f"invalid requirement {_short_text(text)!r}: a version number too long to compare",
            context=where,
        )


def _short_text(text: str) -> str:
    return text if len(text) <= 60 else f"{text[:40]}...({len(text)} characters)"


def _url_kind(location: str) -> str | None:
    """``"VCS"``, ``"local path"`` or ``"direct URL"`` for a URL, ``None`` for anything else."""
    match = _URL_SCHEME_RE.match(location)
    if match is None or len(match.group(1)) == 1:  # nothing, or a Windows drive letter
        return "local path" if location.startswith((".", "/", "\\", "~")) else None
    scheme = match.group(1).lower()
    if scheme.split("+", 1)[0] in _VCS_SCHEMES:
        return "VCS"
    if scheme == "file":
        return "local path"
    return "direct URL" if location[match.end() :].startswith("//") else None


def _refuse_non_index(text: str, where: str) -> None:
    """Raise for a bare URL or path, which pip would install but an index cannot serve."""
    kind = _url_kind(text)
    if kind is None:
        head = re.split(r"[\s;\[@<>=!~(,]", text, maxsplit=1)[0]
        if (
            head.startswith((".", "~"))
            or "/" in head
            or "\\" in head
            or head.lower().endswith(_ARCHIVE_SUFFIXES)
        ):
            kind = "local path"
    if kind is not None:
        raise _not_index(kind, text, where)


def _not_index(kind: str, text: str, where: str) -> RequirementsError:
    return RequirementsError(
        f"{kind} requirement {redact(text)!r} is not supported",
        context=where,
        hint=INDEX_ONLY_HINT,
    )


def redact(text: str) -> str:
    return _CREDENTIALS_RE.sub(r"\1****@", text)
