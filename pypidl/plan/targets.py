"""Target environments: which wheels a Python on some machine installs, and how its markers read.

A :class:`Target` is one environment the mirror must serve, such as CPython 3.11 on 64-bit Linux.
It knows its ranked compatibility tags (computed with :mod:`packaging.tags` the way pip computes
them for ``--python-version/--platform/--abi/--implementation``), its PEP 508 marker environment
and whether a ``Requires-Python`` admits it.  :func:`parse_targets` turns command-line values into
targets; ``docs/targets.md`` documents every accepted form and every default.

Targets are frozen and pickle, so they can travel to worker processes started with ``spawn``.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from packaging.tags import Tag, compatible_tags, cpython_tags, generic_tags, sys_tags
from packaging.version import Version

from pypidl._fs import read_input
from pypidl.errors import TargetError
from pypidl.plan._python3 import requires_python_specifier
from pypidl.plan.platforms import (
    DEFAULT_PLATFORMS,
    expand_platform_ends,
    family_of,
    host_platform,
    platform_environment,
)

if TYPE_CHECKING:
    import os

__all__ = [
    "DEFAULT_IMPLEMENTATIONS",
    "DEFAULT_PYTHON_VERSIONS",
    "Target",
    "default_full_version",
    "host_target",
    "load_targets_file",
    "parse_targets",
    "span_ends",
]

logger = logging.getLogger(__name__)

#: Python versions a run targets when none are given.
DEFAULT_PYTHON_VERSIONS: tuple[str, ...] = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14")
#: Implementations a run targets when none are given.
DEFAULT_IMPLEMENTATIONS: tuple[str, ...] = ("cp",)


# The last patch release of each minor known when this table was written (the release lists of
# uv 0.13).  Markers such as ``python_full_version >= "3.8.1"`` must hold for a target named "3.8",
# because a real, maintained 3.8 install is a late patch; see docs/targets.md.
_LATEST_PATCH: dict[tuple[int, int], int] = {
    (3, 0): 1,
    (3, 1): 5,
    (3, 2): 6,
    (3, 3): 7,
    (3, 4): 10,
    (3, 5): 10,
    (3, 6): 15,
    (3, 7): 17,
    (3, 8): 20,
    (3, 9): 25,
    (3, 10): 22,
    (3, 11): 18,
    (3, 12): 16,
    (3, 13): 18,
    (3, 14): 10,
    (3, 15): 2,
}
# PyPy's own version, reported as implementation_version by PyPy targets.
_PYPY_VERSION = "7.3.20"

_IMPLEMENTATIONS = {
    # short name: (implementation_name, platform_python_implementation)
    "cp": ("cpython", "CPython"),
    "pp": ("pypy", "PyPy"),
    "py": ("cpython", "CPython"),  # generic: any implementation; markers read as CPython's
}


# --------------------------------------------------------------------------------------------
# Python versions


def default_full_version(python: tuple[int, int]) -> str:
    """The ``python_full_version`` a target of this minor reports unless told otherwise.

    A late patch release (see docs/targets.md); ``X.Y.0`` for a minor newer than the table.
    """
    return f"{python[0]}.{python[1]}.{_LATEST_PATCH.get(python, 0)}"


_PY2_HINT = "give a Python 3 version such as 3.11"
_VERSION_HELP = "3.11, 311, cp311, py311, 3.11.4, py3 (every default 3.x) or py2.py3"
_TAG_SET_RE = re.compile(r"(?:py|cp)\d+(?:\.(?:py|cp)\d+)+")
_DOTTED_RE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
_NODOT_RE = re.compile(r"(?:py|cp)?(\d)(\d+)?")


def _parse_python_version(value: str) -> list[tuple[tuple[int, int], str]]:
    """``[(python, full_version or "")]`` for one ``--python-version`` value."""
    text = value.strip().lower()
    if _TAG_SET_RE.fullmatch(text):
        # A compressed tag set such as py2.py3: the Python 3 members count, Python 2 is dropped.
        found: list[tuple[tuple[int, int], str]] = []
        for part in text.split("."):
            try:
                found.extend(_parse_python_version(part))
            except TargetError:
                if not re.fullmatch(r"(?:py|cp)2\d*", part):
                    raise
        if not found:
            raise TargetError(
                f"Python version {value!r} names only Python 2, which is not mirrored",
                hint=_PY2_HINT,
            )
        return found
    full = ""
    match = _DOTTED_RE.fullmatch(text)
    if match:
        major, minor = int(match.group(1)), int(match.group(2))
        if match.group(3) is not None:
            full = f"{major}.{minor}.{int(match.group(3))}"
    else:
        match = _NODOT_RE.fullmatch(text)
        if not match:
            raise TargetError(f"Python version {value!r} is not understood; use {_VERSION_HELP}")
        major = int(match.group(1))
        if match.group(2) is None:
            if major == 2:
                raise TargetError(
                    f"Python version {value!r} is Python 2, which is not mirrored", hint=_PY2_HINT
                )
            if major != 3:
                raise TargetError(f"Python version {value!r} is not Python 3; use {_VERSION_HELP}")
            return [(_version_tuple(v), "") for v in DEFAULT_PYTHON_VERSIONS]
        minor = int(match.group(2))
    if major == 2:
        raise TargetError(
            f"Python version {value!r} is Python 2, which is not mirrored", hint=_PY2_HINT
        )
    if major != 3:
        raise TargetError(f"Python version {value!r} is not Python 3; use {_VERSION_HELP}")
    if minor > 99:
        raise TargetError(f"Python version {value!r} is not understood; use {_VERSION_HELP}")
    return [((major, minor), full)]


def _version_tuple(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


# --------------------------------------------------------------------------------------------
# ABIs and implementations

_ABI_RE = re.compile(r"cp(\d+)[a-z]*|abi3t?|none|pypy(\d+)_pp\d+")
_ABI_HELP = "cp311, cp313t, abi3, none or pypy310_pp73"


def _parse_abi(value: str) -> tuple[str, str | None]:
    """``(abi, nodot version it belongs to or None)``."""
    abi = value.strip().lower()
    match = _ABI_RE.fullmatch(abi)
    if not match:
        raise TargetError(f"ABI {value!r} is not understood; use {_ABI_HELP}")
    nodot = match.group(1) or match.group(2)
    if nodot is not None and nodot.startswith("2"):
        raise TargetError(f"ABI {value!r} is for Python 2, which is not mirrored", hint=_PY2_HINT)
    return abi, nodot


def _parse_implementation(value: str) -> str:
    impl = value.strip().lower()
    impl = {"cpython": "cp", "pypy": "pp", "generic": "py"}.get(impl, impl)
    if impl not in _IMPLEMENTATIONS:
        raise TargetError(
            f"implementation {value!r} is not supported; use cp (CPython), pp (PyPy) "
            "or py (generic: pure-Python and py3x-tagged files only)"
        )
    return impl


def _nodot(python: tuple[int, int]) -> str:
    return f"{python[0]}{python[1]}"


# --------------------------------------------------------------------------------------------
# tags


@functools.lru_cache(maxsize=512)
def _compute_tags(
    implementation: str,
    python: tuple[int, int],
    platform_tags: tuple[str, ...],
    abis: tuple[str, ...] | None,
) -> tuple[Tag, ...]:
    """The ranked tags of a target, as pip's ``get_supported`` lists them (duplicates dropped).

    The default ABIs are spelled out rather than left to :mod:`packaging`, which would read
    them from the running interpreter (a debug or free-threaded host would change them).
    """
    nodot = _nodot(python)
    interpreter = f"{implementation}{nodot}"
    platforms = list(platform_tags)
    found: Iterable[Tag]
    if implementation == "cp":
        chosen = [f"cp{nodot}"] if abis is None else list(abis)
        found = cpython_tags(python, chosen, platforms)
    elif implementation == "pp":
        chosen = [f"pypy{nodot}_pp73"] if abis is None else list(abis)
        found = generic_tags(interpreter, chosen, platforms)
    else:
        found = generic_tags(interpreter, list(abis or ()), platforms)
    ranked = dict.fromkeys(map(_one_tag, found))
    ranked.update(dict.fromkeys(map(_one_tag, compatible_tags(python, interpreter, platforms))))
    return tuple(ranked)


#: every tag a target's list holds, each kept once: forty targets list many of the same tags
#: (about 1,700 each), and each Tag is three strings and an object
_TAGS: dict[Tag, Tag] = {}


def _one_tag(tag: Tag) -> Tag:
    return _TAGS.setdefault(tag, tag)


@functools.lru_cache(maxsize=512)
def _rank_map(
    implementation: str,
    python: tuple[int, int],
    platform_tags: tuple[str, ...],
    abis: tuple[str, ...] | None,
) -> dict[Tag, int]:
    tags = _compute_tags(implementation, python, platform_tags, abis)
    return {tag: n for n, tag in enumerate(tags)}


# --------------------------------------------------------------------------------------------
# Target


#: Per-instance caches a Target fills in (never pickled, never compared).
_CACHES = frozenset({"_ranks_cache", "_python_cache", "_supports_cache"})


class DistributionFile(Protocol):
    """What :meth:`Target.can_install` needs to know of a file (a page's ``RemoteFile``)."""

    @property
    def kind(self) -> str: ...  # "wheel" or "sdist"

    @property
    def tags(self) -> frozenset[Tag]: ...  # a wheel's tags; empty for an sdist

    @property
    def requires_python(self) -> str | None: ...


@dataclass(frozen=True)
class Target:
    """One environment the mirror serves: an implementation, a Python minor, a platform, ABIs.

    Build targets with :func:`parse_targets`; constructing one directly requires the expanded
    ``platform_tags`` (see :func:`expand_platform`).  An empty ``python_full_version`` is replaced
    by :func:`default_full_version`.
    """

    implementation: str
    python: tuple[int, int]
    platform: str
    platform_tags: tuple[str, ...] = field(repr=False)
    abis: tuple[str, ...] | None = None
    python_full_version: str = ""

    def __post_init__(self) -> None:
        if self.implementation not in _IMPLEMENTATIONS:
            raise TargetError(f"implementation {self.implementation!r} is not cp, pp or py")
        python = tuple(self.python)
        if len(python) != 2 or not all(isinstance(n, int) for n in python):
            raise TargetError(f"python must be (major, minor), not {self.python!r}")
        object.__setattr__(self, "python", python)
        object.__setattr__(self, "platform_tags", tuple(self.platform_tags))
        if self.abis is not None:
            object.__setattr__(self, "abis", tuple(self.abis))
        if not self.python_full_version:
            object.__setattr__(self, "python_full_version", default_full_version(self.python))
        elif (
            not _DOTTED_RE.fullmatch(self.python_full_version)
            or _version_tuple(".".join(self.python_full_version.split(".")[:2])) != self.python
        ):
            raise TargetError(
                f"python_full_version {self.python_full_version!r} is not a release of "
                f"{self.python[0]}.{self.python[1]}"
            )

    def __str__(self) -> str:
        return self.label

    @functools.cached_property
    def label(self) -> str:
        """A stable, readable, unique name: ``cp311-linux-x86_64``, ``cp313-cp313t-macos-arm64``.

        The full Python version appears only when it is not the default, the ABIs only when
        they were given.
        """
        parts = [f"{self.implementation}{_nodot(self.python)}"]
        if self.python_full_version != default_full_version(self.python):
            parts.append(self.python_full_version)
        if self.abis is not None:
            parts.append(".".join(self.abis) if self.abis else "noabi")
        parts.append(self.platform)
        return "-".join(parts)

    @property
    def span_label(self) -> str:
        """The label of the family this target is one end of (``cp311-linux-x86_64`` for
        ``cp311-linux-x86_64-glibc2.17``); a target that is no end of a family: its label."""
        family = family_of(self.platform)
        if family == self.platform:
            return self.label
        return self.label[: -len(self.platform)] + family

    def __getstate__(self) -> dict[str, object]:
        # The per-instance caches are rebuilt on demand, not shipped to workers.
        return {k: v for k, v in self.__dict__.items() if k not in _CACHES}

    def _ranks(self) -> dict[Tag, int]:
        # Kept on the instance: the planner asks once per file per target, and hashing the
        # key of the module-level cache (every platform tag) each time would dominate.
        ranks: dict[Tag, int] | None = self.__dict__.get("_ranks_cache")
        if ranks is None:
            ranks = _rank_map(self.implementation, self.python, self.platform_tags, self.abis)
            object.__setattr__(self, "_ranks_cache", ranks)
        return ranks

    def tags(self) -> tuple[Tag, ...]:
        """Every tag this target installs, best first, ranked as pip ranks them."""
        return _compute_tags(self.implementation, self.python, self.platform_tags, self.abis)

    def rank(self, file_tags: Iterable[Tag]) -> int | None:
        """How well a file fits: the position of its best tag in :meth:`tags` (lower is better).

        :param file_tags: a wheel's tags (``packaging.utils.parse_wheel_filename(name)[3]``).
        :returns: ``None`` when no tag fits.
        """
        ranks = self._ranks()
        found = [ranks[tag] for tag in file_tags if tag in ranks]
        return min(found) if found else None

    def supports(self, file_tags: Iterable[Tag]) -> bool:
        """Whether a wheel with these tags installs on this target."""
        if isinstance(file_tags, frozenset):
            # a page's wheels share a few dozen tag sets, each one object (see page_files):
            # the answer is kept per set on the instance, like the ranks
            known: dict[frozenset[Tag], bool] = self.__dict__.setdefault("_supports_cache", {})
            found = known.get(file_tags)
            if found is None:
                ranks = self._ranks()
                found = known[file_tags] = any(tag in ranks for tag in file_tags)
            return found
        ranks = self._ranks()
        return any(tag in ranks for tag in file_tags)

    def can_install(self, file: DistributionFile) -> bool:
        """Whether this target's installer would take ``file``: its ``Requires-Python`` admits
        the target, and it is a wheel with a supported tag or an sdist (which would be built).
        """
        return self.allows_python(file.requires_python) and (
            file.kind == "sdist" or self.supports(file.tags)
        )

    def marker_environment(self, extra: str = "") -> dict[str, str]:
        """The full PEP 508 environment, for :meth:`packaging.markers.Marker.evaluate`.

        :param extra: the extra being evaluated (``""`` for none).
        """
        implementation_name, python_implementation = _IMPLEMENTATIONS[self.implementation]
        implementation_version = (
            _PYPY_VERSION if self.implementation == "pp" else self.python_full_version
        )
        return {
            "implementation_name": implementation_name,
            "implementation_version": implementation_version,
            "os_name": "",
            "platform_machine": "",
            "platform_python_implementation": python_implementation,
            "platform_release": "",
            "platform_system": "",
            "platform_version": "",
            "python_full_version": self.python_full_version,
            "python_version": f"{self.python[0]}.{self.python[1]}",
            "sys_platform": "",
            **platform_environment(self.platform),
            "extra": extra,
        }

    def allows_python(self, requires_python: str | None) -> bool:
        """Whether ``Requires-Python`` admits this target's ``python_full_version``.

        Missing or invalid specifiers allow everything, as pip ignores them.
        """
        if not requires_python:
            return True
        # Kept on the instance, like the tag ranks: the planner asks once per file per target.
        known: dict[str, bool] = self.__dict__.setdefault("_python_cache", {})
        found = known.get(requires_python)
        if found is None:
            spec = requires_python_specifier(requires_python)
            found = spec is None or spec.contains(
                Version(self.python_full_version), prereleases=True
            )
            known[requires_python] = found
        return found


# --------------------------------------------------------------------------------------------
# parsing


def parse_targets(
    *,
    python_versions: Sequence[str] = (),
    platforms: Sequence[str] = (),
    abis: Sequence[str] = (),
    implementations: Sequence[str] = (),
    spans: bool = False,
) -> tuple[Target, ...]:
    """The targets a set of ``--python-version/--platform/--abi/--implementation`` values ask for.

    The result is the product implementations x versions x platforms, in the order given,
    without duplicates.  An empty list means its default (:data:`DEFAULT_PYTHON_VERSIONS`,
    :data:`DEFAULT_PLATFORMS`, :data:`DEFAULT_IMPLEMENTATIONS`; ABIs: the implementation's own).
    ABIs form one list per target, as pip's repeated ``--abi``; a version-bound ABI such as
    ``cp313t`` goes only to targets of its version.

    :param spans: a family that spans OS releases gives both its floor and its ceiling machine
        (as the command line and targets files do; see docs/targets.md); without it, its
        ceiling only.

    :raises TargetError: naming the value it cannot understand and the forms it accepts.
    """
    impls = list(
        dict.fromkeys(_parse_implementation(v) for v in implementations or DEFAULT_IMPLEMENTATIONS)
    )
    versions: dict[tuple[int, int], str] = {}
    given: dict[tuple[int, int], str] = {}
    for value in python_versions or DEFAULT_PYTHON_VERSIONS:
        for python, full in _parse_python_version(value):
            known = versions.get(python)
            if known is not None and full and known and known != full:
                raise TargetError(
                    f"Python version {value!r} conflicts with {given[python]!r}: "
                    "give one version per minor"
                )
            if known is None or full:
                versions[python] = full
                given[python] = value
    plats = list(
        dict.fromkeys(
            end
            for v in platforms or DEFAULT_PLATFORMS
            for end in (expand_platform_ends(v) if spans else expand_platform_ends(v)[-1:])
        )
    )
    # A pair both named by the user is always made; pairs a default filled in are made only
    # where such machines exist (see _RARE_PAIRS)
    chosen_pairs = bool(platforms) and bool(python_versions)
    parsed_abis = list(dict.fromkeys(_parse_abi(v) for v in abis))
    for abi, nodot in parsed_abis:
        if nodot is not None and not any(_nodot(python) == nodot for python in versions):
            raise TargetError(
                f"ABI {abi!r} belongs to no target Python version "
                f"({', '.join(f'{p[0]}.{p[1]}' for p in versions)})"
            )
    targets: dict[str, Target] = {}
    for impl in impls:
        for python, full in versions.items():
            target_abis = (
                tuple(a for a, nodot in parsed_abis if nodot is None or nodot == _nodot(python))
                if parsed_abis
                else None
            )
            for name, tags in plats:
                if not chosen_pairs and _rare(python, name):
                    continue
                target = Target(impl, python, name, tags, target_abis, full)
                targets.setdefault(target.label, target)
    return tuple(targets.values())


#: platform family -> the oldest Python a default target pairs with it.  CPython's Windows ARM64
#: builds were experimental before 3.11 and python.org recommended the emulated AMD64 build on
#: ARM64 Windows (which win-amd64 serves); projects ship win_arm64 wheels from about 3.11 on.
_RARE_PAIRS: dict[str, tuple[int, int]] = {"win-arm64": (3, 11)}


def _rare(python: tuple[int, int], platform: str) -> bool:
    """Whether a default would pair ``python`` with ``platform`` though few machines run it."""
    oldest = _RARE_PAIRS.get(family_of(platform))
    return oldest is not None and python < oldest


def span_ends(targets: Iterable[Target]) -> list[tuple[str, str]]:
    """``(floor label, ceiling label)`` of each family among ``targets`` resolved at two ends
    (:func:`parse_targets` with ``spans`` lists a family's floor first)."""
    groups: dict[str, list[str]] = {}
    for target in targets:
        groups.setdefault(target.span_label, []).append(target.label)
    return [(labels[0], labels[-1]) for labels in groups.values() if len(labels) > 1]


_FILE_KEYS = {
    "python": "python_versions",
    "python-version": "python_versions",
    "platform": "platforms",
    "abi": "abis",
    "implementation": "implementations",
}


def load_targets_file(path: str | os.PathLike[str]) -> tuple[Target, ...]:
    """Targets listed in a text file, one group per line.

    Each line holds ``key=value[,value...]`` words (keys ``python``, ``platform``, ``abi``,
    ``implementation``) and stands for the product :func:`parse_targets` makes of them; ``#``
    starts a comment.  The file's targets are every line's, in order, without duplicates::

        python=3.11 platform=linux-x86_64,linux-aarch64   # servers
        python=3.12,3.13 platform=macos-arm64,win-amd64

    :raises TargetError: with ``context`` ``file:line`` for a line it cannot understand.
    """
    file = Path(path)
    try:
        text = read_input(file).decode("utf-8")
    except OSError as exc:
        raise TargetError(
            f"cannot read targets file: {exc.strerror or exc}", context=str(file)
        ) from None
    except UnicodeDecodeError as exc:
        raise TargetError(f"targets file is not UTF-8: {exc.reason}", context=str(file)) from None
    targets: dict[str, Target] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{file}:{lineno}"
        options: dict[str, list[str]] = {}
        for word in line.split():
            key, sep, value = word.partition("=")
            if not sep or key.lower() not in _FILE_KEYS or not value:
                raise TargetError(
                    f"{word!r} is not key=value with a key of python, platform, abi, implementation",
                    context=where,
                )
            options.setdefault(_FILE_KEYS[key.lower()], []).extend(v for v in value.split(",") if v)
        try:
            found = parse_targets(
                python_versions=options.get("python_versions", ()),
                platforms=options.get("platforms", ()),
                abis=options.get("abis", ()),
                implementations=options.get("implementations", ()),
                spans=True,
            )
        except TargetError as exc:
            raise TargetError(exc.message, context=where, hint=exc.hint) from None
        for target in found:
            targets.setdefault(target.label, target)
    if not targets:
        raise TargetError("the targets file lists no targets", context=str(file))
    return tuple(targets.values())


# --------------------------------------------------------------------------------------------
# the running interpreter


def host_target() -> Target:
    """The running interpreter as a :class:`Target`, with the tags pip would use here."""
    name = sys.implementation.name
    impl = {"cpython": "cp", "pypy": "pp"}.get(name, "py")
    python = (sys.version_info[0], sys.version_info[1])
    platform, tags = host_platform()
    abis: tuple[str, ...] | None = None
    first = next(iter(sys_tags()), None)
    if impl == "cp" and first is not None and first.abi != f"cp{_nodot(python)}":
        abis = (first.abi,)  # a debug or free-threaded build
    full = "{}.{}.{}".format(*sys.version_info[:3])
    return Target(impl, python, platform, tags, abis, full)
