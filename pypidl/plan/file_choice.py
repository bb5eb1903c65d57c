"""Which files of a release the mirror keeps, and which release a target would pick.

A wheel is kept when some target can install it (:meth:`~pypidl.plan.targets.Target.can_install`);
the sdist when the policy says so or when some target has no wheel of the release and would build
it.  Python 2-only files are never kept.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from pypidl.plan._python3 import allows_any_python3, is_python3_wheel

if TYPE_CHECKING:
    from pypidl.plan.page_files import FileFacts
    from pypidl.plan.pages import RemoteFile
    from pypidl.plan.targets import Target

__all__ = [
    "SDIST_POLICIES",
    "choose_files",
    "newest_installable",
    "normalized_version",
    "pins_exactly",
    "python3_file",
    "same_version",
    "same_version_key",
]

#: ``--sdist``: keep a release's sdist ``always``, ``never``, or (``auto``) when a target builds it.
SDIST_POLICIES = ("auto", "always", "never")


def normalized_version(version: str) -> str:
    try:
        return str(Version(version))
    except ValueError:  # InvalidVersion, or a number too long for int()
        return version


def pins_exactly(spec: SpecifierSet) -> bool:
    """Whether ``spec`` pins one version: ``==`` without a wildcard, or ``===``.

    PEP 592: a yanked file may be chosen only for a requirement that pins it so.
    """
    return any(
        s.operator == "===" or (s.operator == "==" and not s.version.endswith(".*")) for s in spec
    )


def same_version(a: str, b: str) -> bool:
    if a == b:
        return True
    va, vb = _version(a), _version(b)
    if va is None or vb is None:
        return False  # unequal texts, at least one not a version
    return va == vb


def same_version_key(version: str) -> Version | str:
    """``version`` as :func:`same_version` compares it: its :class:`Version`, or the text
    itself when it is not a version (then only the same text matches)."""
    return _version(version) or version


@functools.lru_cache(maxsize=1 << 16)
def _version(text: str) -> Version | None:
    # the planner compares every file of a page with each selected version of its project:
    # parsing the same few thousand texts again each time dominated choosing the files
    try:
        return Version(text)
    except ValueError:  # InvalidVersion, or a number too long for int()
        return None


def python3_file(rf: FileFacts) -> bool:
    if rf.kind == "wheel" and not is_python3_wheel(rf.tags):
        return False
    return allows_any_python3(rf.requires_python)


def choose_files(
    files: Sequence[RemoteFile], targets: Sequence[Target], *, sdist: str = "auto"
) -> list[RemoteFile]:
    """The files of one release that ``targets`` need.

    A wheel is kept when one of the targets can install it.  The sdist is kept with policy
    ``always``, or with ``auto`` when some target has no wheel in this release (it would build).
    """
    usable = [f for f in files if python3_file(f)]
    wheels = [f for f in usable if f.kind == "wheel"]
    sdists = [f for f in usable if f.kind == "sdist"]
    chosen: list[RemoteFile] = []
    uncovered = False
    for target in targets:
        fits = [w for w in wheels if target.can_install(w)]
        if not fits:
            uncovered = True
        for w in fits:
            if w not in chosen:
                chosen.append(w)
    if sdist == "always" or (sdist == "auto" and uncovered):
        # one sdist is enough; prefer .tar.gz (the standard form) over a legacy .zip
        for s in sorted(sdists, key=lambda f: (not f.filename.endswith(".tar.gz"), f.filename))[:1]:
            if any(t.allows_python(s.requires_python) for t in targets) or not targets:
                chosen.append(s)
    return sorted(chosen, key=lambda f: f.filename)


def newest_installable(
    files: Sequence[RemoteFile], spec: SpecifierSet, target: Target, *, wheels_first: bool = True
) -> str | None:
    """The release of ``files`` matching ``spec`` that ``target`` would install: the newest
    with a wheel for it, else (or with ``wheels_first`` False) the newest it can build."""
    by_version: dict[Version, list[RemoteFile]] = {}
    for f in files:
        try:
            by_version.setdefault(Version(f.version), []).append(f)
        except ValueError:  # InvalidVersion, or a number too long for int()
            continue
    pinned = pins_exactly(spec)  # PEP 592: a yanked file only for an exact pin
    installable = [
        version
        for version, release in by_version.items()
        if choose_files([f for f in release if not f.yanked or pinned], [target], sdist="auto")
    ]
    # as pip does: pre-releases only when no final release this target can install matches.
    # filter() applies that rule; contains() accepts pre-releases by default in recent packaging
    matching = list(spec.filter(installable))
    if wheels_first:
        wheels = [
            v
            for v in matching
            if any(f.kind == "wheel" and target.can_install(f) for f in by_version[v])
        ]
        matching = wheels or matching
    return str(max(matching)) if matching else None
