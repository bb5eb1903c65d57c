"""What a plan tells besides its files (issue 17): the releases only one end of a platform family
needed, and the sdists a target would have to build, with what building them needs.

A family that spans OS releases is resolved for its floor and its ceiling machine
(:func:`pypidl.plan.platforms.expand_platform_ends`); a release only one of them chose is there
for that end alone, and the summary says so.  A target with no wheel of a release it needs
builds it from the sdist; the note names the sdist's build requirements and the toolchain they
imply, which the machine behind the gap must have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from pypidl.manifest import Note
from pypidl.plan.build_deps import builders, kept_sdist
from pypidl.plan.targets import span_ends

if TYPE_CHECKING:
    from pypidl.plan.pages import RemoteFile
    from pypidl.plan.targets import Target

__all__ = ["build_detail", "plan_notes"]

#: build backends (and build requirements) -> what the building machine needs besides Python
_TOOLCHAINS: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"maturin", "setuptools-rust", "puccinialin"}), "a Rust toolchain"),
    (
        frozenset({"scikit-build-core", "scikit-build", "cmake", "meson-python", "meson"}),
        "a C/C++ compiler and CMake or Meson",
    ),
    (frozenset({"cython", "pybind11", "nanobind", "cffi"}), "a C/C++ compiler"),
)


def build_detail(requires: Sequence[str] | None) -> str:
    """``needs maturin>=1,<2: a Rust toolchain`` for a sdist with these build requirements."""
    if requires is None:
        return "build requirements not read"
    names = set()
    for text in requires:
        try:
            names.add(canonicalize_name(Requirement(text).name))
        except InvalidRequirement:
            continue
    needs = [tool for backends, tool in _TOOLCHAINS if names & backends]
    shown = ", ".join(requires) or "nothing declared"
    return f"needs {shown}" + (f": {'; '.join(needs)}" if needs else "")


def plan_notes(
    versions: Mapping[NormalizedName, Mapping[str, Iterable[str]]],
    targets: Sequence[Target],
    release_files: Callable[[str, str], Sequence[RemoteFile]],
    *,
    build_requires: Mapping[str, tuple[str, ...]] | None,
    builds: bool = True,
) -> tuple[Note, ...]:
    """The notes of a plan.

    :param versions: project -> version -> labels of the targets that need the release.
    :param release_files: the index's files of one release.
    :param build_requires: sdist filename -> its build requirements (None: not read).
    :param builds: whether the plan keeps sdists for targets without a wheel (``--sdist never``
        does not: then nothing is built from the mirror).
    """
    by_label = {t.label: t for t in targets}
    ends = span_ends(targets)
    notes: list[Note] = []
    for name in sorted(versions):
        for version in sorted(versions[name], key=_version_key):
            labels = set(versions[name][version])
            floor_only = [f for f, c in ends if f in labels and c not in labels]
            ceiling_only = [c for f, c in ends if c in labels and f not in labels]
            if floor_only:
                notes.append(Note("floor-only", name, version, tuple(floor_only)))
            if ceiling_only:
                notes.append(Note("ceiling-only", name, version, tuple(ceiling_only)))
            if not builds:
                continue
            mine = [by_label[label] for label in sorted(labels) if label in by_label]
            files = release_files(name, version)
            building = builders(files, mine)
            sdist = kept_sdist(files)
            if building and sdist is not None:
                found = None if build_requires is None else build_requires.get(sdist.filename)
                detail = build_detail(found)
                notes.append(Note("build", name, version, tuple(t.label for t in building), detail))
    return tuple(notes)


def _version_key(text: str) -> tuple[int, Version | str]:
    try:
        return (0, Version(text))
    except ValueError:  # InvalidVersion, or a number too long for int()
        return (1, text)
