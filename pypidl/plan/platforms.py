"""Platforms: the families pypidl names (``linux-x86_64``, ``win-arm64`` ...) and raw wheel
platform tags, each expanded to the ranked platform tags a machine of that kind installs and to
the marker values (``sys_platform``, ``platform_machine`` ...) it reports.
"""

from __future__ import annotations

import platform as _platform
import re

from packaging.tags import mac_platforms, platform_tags

from pypidl.errors import TargetError

__all__ = [
    "DEFAULT_PLATFORMS",
    "FAMILIES",
    "LINUX_GLIBC",
    "LINUX_GLIBC_FLOOR",
    "MACOS_FLOOR",
    "MACOS_VERSION",
    "MUSL_FLOOR",
    "MUSL_VERSION",
    "SPANS",
    "expand_platform",
    "expand_platform_ends",
    "family_of",
    "host_platform",
    "platform_environment",
]


#: Platform families a run targets when none are given.
DEFAULT_PLATFORMS: tuple[str, ...] = (
    "linux-x86_64",
    "linux-aarch64",
    "win-amd64",
    "win-arm64",
    "macos-x86_64",
    "macos-arm64",
)


#: Newest glibc the ``linux-*`` families accept, their ceiling machine (Ubuntu 24.04 LTS ships
#: 2.39).  Wheels needing a newer glibc are judged unsupported rather than picked for machines
#: that cannot load them.
LINUX_GLIBC: tuple[int, int] = (2, 39)

#: Oldest glibc of the ``linux-*`` families, their floor machine: manylinux2014, CentOS/RHEL 7
#: (issue 17: old enterprise Linux is what restricted networks keep running).
LINUX_GLIBC_FLOOR: tuple[int, int] = (2, 17)


#: Newest musl the ``musllinux-*`` families accept (Alpine has shipped 1.2 since 3.13).
MUSL_VERSION: tuple[int, int] = (1, 2)

#: Oldest musl of the ``musllinux-*`` families (Alpine 3.12 and older shipped 1.1).
MUSL_FLOOR: tuple[int, int] = (1, 1)


#: Newest macOS the ``macos-*`` families accept (macOS 15, Sequoia).
MACOS_VERSION: tuple[int, int] = (15, 0)

#: Oldest macOS of the ``macos-*`` families (macOS 12, Monterey: the oldest Apple still ships
#: security fixes for in most fleets, and the floor of most wheels built today).
MACOS_FLOOR: tuple[int, int] = (12, 0)


_LINUX_ENV = {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"}


_WINDOWS_ENV = {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt"}


_MACOS_ENV = {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix"}


def _manylinux_tags(glibc: tuple[int, int], arch: str) -> list[str]:
    """``manylinux_2_N_<arch>`` for N from *glibc* down to the oldest glibc of *arch*.

    The legacy names follow their glibc (PEP 600): manylinux2014 = 2.17, manylinux2010 = 2.12,
    manylinux1 = 2.5; the order is the one :mod:`packaging` gives a real machine.
    """
    major, minor = glibc
    if major != 2:
        return [f"manylinux_{major}_{minor}_{arch}"]
    # Before 2.17 only x86 had manylinux wheels (manylinux1 and manylinux2010).
    oldest = 5 if arch in {"x86_64", "i686"} else 17
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags = []
    for n in range(minor, min(oldest, minor) - 1, -1):
        tags.append(f"manylinux_2_{n}_{arch}")
        if n in legacy:
            tags.append(f"{legacy[n]}_{arch}")
    return tags


def _musllinux_tags(musl: tuple[int, int], arch: str) -> list[str]:
    major, minor = musl
    return [f"musllinux_{major}_{n}_{arch}" for n in range(minor, -1, -1)]


def _macos_tags(version: tuple[int, int], arch: str) -> list[str]:
    return list(mac_platforms(version, arch))


def _linux_family(arch: str) -> tuple[str, ...]:
    # linux_<arch> comes last: pip on the machine itself would rank it first (locally built
    # wheels), but in an index such a wheel is a guess about the build machine's libraries.
    return (*_manylinux_tags(LINUX_GLIBC, arch), f"linux_{arch}")


def _musllinux_family(arch: str) -> tuple[str, ...]:
    return (*_musllinux_tags(MUSL_VERSION, arch), f"linux_{arch}")


#: Friendly platform families: name -> (ranked platform tags, marker values).
FAMILIES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "linux-x86_64": (_linux_family("x86_64"), {**_LINUX_ENV, "platform_machine": "x86_64"}),
    "linux-aarch64": (_linux_family("aarch64"), {**_LINUX_ENV, "platform_machine": "aarch64"}),
    "musllinux-x86_64": (
        _musllinux_family("x86_64"),
        {**_LINUX_ENV, "platform_machine": "x86_64"},
    ),
    "musllinux-aarch64": (
        _musllinux_family("aarch64"),
        {**_LINUX_ENV, "platform_machine": "aarch64"},
    ),
    "win-amd64": (("win_amd64",), {**_WINDOWS_ENV, "platform_machine": "AMD64"}),
    "win-arm64": (("win_arm64",), {**_WINDOWS_ENV, "platform_machine": "ARM64"}),
    "win32": (("win32",), {**_WINDOWS_ENV, "platform_machine": "x86"}),
    "macos-x86_64": (
        tuple(_macos_tags(MACOS_VERSION, "x86_64")),
        {**_MACOS_ENV, "platform_machine": "x86_64"},
    ),
    "macos-arm64": (
        tuple(_macos_tags(MACOS_VERSION, "arm64")),
        {**_MACOS_ENV, "platform_machine": "arm64"},
    ),
    # Pure-Python files only.  Markers must read as something: a Linux x86_64 server.
    "any": (("any",), {**_LINUX_ENV, "platform_machine": "x86_64"}),
}


#: Families that span OS releases: name -> (setting, architecture, default floor, ceiling).  Each
#: is resolved at both ends (see docs/targets.md, "Floors and ceilings").
SPANS: dict[str, tuple[str, str, tuple[int, int], tuple[int, int]]] = {
    "linux-x86_64": ("glibc", "x86_64", LINUX_GLIBC_FLOOR, LINUX_GLIBC),
    "linux-aarch64": ("glibc", "aarch64", LINUX_GLIBC_FLOOR, LINUX_GLIBC),
    "musllinux-x86_64": ("musl", "x86_64", MUSL_FLOOR, MUSL_VERSION),
    "musllinux-aarch64": ("musl", "aarch64", MUSL_FLOOR, MUSL_VERSION),
    "macos-x86_64": ("macos", "x86_64", MACOS_FLOOR, MACOS_VERSION),
    "macos-arm64": ("macos", "arm64", MACOS_FLOOR, MACOS_VERSION),
}


# Other spellings people type for a family.
_FAMILY_ALIASES = {
    "linux-amd64": "linux-x86_64",
    "linux-arm64": "linux-aarch64",
    "musllinux-amd64": "musllinux-x86_64",
    "musllinux-arm64": "musllinux-aarch64",
    "win-x86_64": "win-amd64",
    "windows-amd64": "win-amd64",
    "windows-x86_64": "win-amd64",
    "windows-arm64": "win-arm64",
    "win-x86": "win32",
    "macos-amd64": "macos-x86_64",
    "macos-aarch64": "macos-arm64",
    "macosx-x86_64": "macos-x86_64",
    "macosx-arm64": "macos-arm64",
}


_RAW_FORMS = (
    "manylinux_2_17_x86_64, manylinux2014_aarch64, musllinux_1_2_x86_64, linux_x86_64, "
    "win_amd64, win_arm64, win32, macosx_11_0_arm64, any"
)


_PLATFORM_HELP = (
    f"use a family ({', '.join(FAMILIES)}) or a wheel platform tag such as {_RAW_FORMS}"
)


_ARCH = r"[a-z0-9_]+"


_MANYLINUX_RE = re.compile(rf"manylinux_(\d+)_(\d+)_({_ARCH})")


_LEGACY_MANYLINUX_RE = re.compile(rf"(manylinux1|manylinux2010|manylinux2014)_({_ARCH})")


_MUSLLINUX_RE = re.compile(rf"musllinux_(\d+)_(\d+)_({_ARCH})")


_MACOSX_RE = re.compile(rf"macosx_(\d+)_(\d+)_({_ARCH})")


_LINUX_RE = re.compile(rf"linux_({_ARCH})")


_WIN_RE = re.compile(rf"win32|win_({_ARCH})")


_LEGACY_GLIBC = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def expand_platform(value: str) -> tuple[str, tuple[str, ...]]:
    """The canonical name and the ranked platform tags of a ``--platform`` value.

    :param value: a family name (``linux-x86_64``, any case) or a wheel platform tag.
    :returns: ``(name, tags)``: ``name`` is the family's canonical name or the lowercased tag.
    :raises TargetError: for a value that is neither.
    """
    name = value.strip().lower()
    name = _FAMILY_ALIASES.get(name, name)
    if name in FAMILIES:
        return name, FAMILIES[name][0]
    match = _MANYLINUX_RE.fullmatch(name)
    if match:
        glibc = (int(match.group(1)), int(match.group(2)))
        return name, tuple(_manylinux_tags(glibc, match.group(3)))
    match = _LEGACY_MANYLINUX_RE.fullmatch(name)
    if match:
        # The name given first, as pip puts it; then its glibc and every older one.
        tags = _manylinux_tags(_LEGACY_GLIBC[match.group(1)], match.group(2))
        tags.remove(name)
        return name, (name, *tags)
    match = _MUSLLINUX_RE.fullmatch(name)
    if match:
        musl = (int(match.group(1)), int(match.group(2)))
        return name, tuple(_musllinux_tags(musl, match.group(3)))
    match = _MACOSX_RE.fullmatch(name)
    if match:
        version = (int(match.group(1)), int(match.group(2)))
        tags = _macos_tags(version, match.group(3))
        if not tags:
            raise TargetError(
                f"platform {value!r} matches no macOS wheel tag; give macOS 10.4 or later, "
                "such as macosx_11_0_arm64"
            )
        return name, tuple(tags)
    if _LINUX_RE.fullmatch(name) or _WIN_RE.fullmatch(name):
        return name, (name,)
    raise TargetError(f"platform {value!r} is not understood; {_PLATFORM_HELP}")


_END_RE = re.compile(r"(?P<family>[a-z0-9_-]+?)-(?:glibc|musl|macos)\d+(?:\.\d+)?")
_RANGE_RE = re.compile(r"(\d+)(?:\.(\d+))?(?:-(\d+)(?:\.(\d+))?)?")


def _os_version(major: str, minor: str | None) -> tuple[int, int]:
    return int(major), int(minor) if minor is not None else 0


def _end_name(family: str, setting: str, version: tuple[int, int]) -> str:
    shown = f"{version[0]}" if setting == "macos" else f"{version[0]}.{version[1]}"
    return f"{family}-{setting}{shown}"


def _end_tags(setting: str, arch: str, version: tuple[int, int]) -> tuple[str, ...]:
    if setting == "glibc":
        return (*_manylinux_tags(version, arch), f"linux_{arch}")
    if setting == "musl":
        return (*_musllinux_tags(version, arch), f"linux_{arch}")
    return tuple(_macos_tags(version, arch))


def expand_platform_ends(value: str) -> list[tuple[str, tuple[str, ...]]]:
    """The machines a ``--platform`` value stands for: ``[(name, ranked platform tags)]``.

    A family that spans OS releases (:data:`SPANS`) gives its floor and its ceiling machine,
    the floor first: ``linux-x86_64-glibc2.17`` and ``linux-x86_64`` (the default ceiling keeps
    the family's name; another one is named by its version, ``linux-x86_64-glibc2.35``; one
    machine when both ends are the same).  ``FAMILY:SETTING=FLOOR`` moves the floor, ``FAMILY:SETTING=FLOOR-CEILING`` both
    ends (``linux-x86_64:glibc=2.28``, ``macos-arm64:macos=13-15``, ``musllinux-x86_64:musl=1.2``).
    Any other value is one machine, as :func:`expand_platform` gives it.

    :raises TargetError: for a value that is not understood, a setting the family does not have,
        or a floor above its ceiling.
    """
    text = value.strip().lower()
    base, sep, setting_text = text.partition(":")
    family = _FAMILY_ALIASES.get(base, base)
    if family not in SPANS:
        if sep:
            known = ", ".join(f"{f}:{s[0]}=" for f, s in SPANS.items())
            raise TargetError(
                f"platform {value!r}: only a family that spans OS releases takes a setting "
                f"({known})"
            )
        return [expand_platform(text)]
    setting, arch, floor, ceiling = SPANS[family]
    if sep:
        key, eq, span = setting_text.partition("=")
        match = _RANGE_RE.fullmatch(span.strip())
        if key.strip() != setting or not eq or match is None:
            raise TargetError(
                f"platform {value!r} is not understood; give {family}:{setting}=FLOOR or "
                f"{family}:{setting}=FLOOR-CEILING, e.g. {family}:{setting}="
                f"{_example(setting)}"
            )
        floor = _os_version(match.group(1), match.group(2))
        if match.group(3) is not None:
            ceiling = _os_version(match.group(3), match.group(4))
        if floor > ceiling:
            raise TargetError(
                f"platform {value!r}: the floor {setting} {_shown(floor)} is above the ceiling "
                f"{_shown(ceiling)}; give {setting}=FLOOR-CEILING"
            )
        if (setting == "glibc" and floor[0] != 2) or (setting == "musl" and floor[0] != 1):
            raise TargetError(f"platform {value!r}: {setting} {_shown(floor)} does not exist")
        if setting == "macos" and floor < (10, 4):
            raise TargetError(f"platform {value!r}: give macOS 10.4 or later")
    default_ceiling = SPANS[family][3]
    return [
        # the default ceiling keeps the family's name: the machine it has always stood for
        (family, FAMILIES[family][0])
        if v == default_ceiling
        else (_end_name(family, setting, v), _end_tags(setting, arch, v))
        for v in dict.fromkeys((floor, ceiling))
    ]


def _example(setting: str) -> str:
    return {"glibc": "2.28", "musl": "1.2", "macos": "13"}[setting]


def _shown(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def family_of(platform: str) -> str:
    """The family a machine name belongs to (``linux-x86_64-glibc2.17`` -> ``linux-x86_64``);
    any other platform is its own."""
    if platform in SPANS:
        return platform
    match = _END_RE.fullmatch(platform)
    if match is not None and match.group("family") in SPANS:
        return match.group("family")
    return platform


def platform_environment(platform: str) -> dict[str, str]:
    """Marker values (sys_platform, platform_system, os_name, platform_machine) of a platform."""
    platform = family_of(platform)
    if platform in FAMILIES:
        return dict(FAMILIES[platform][1])
    for pattern in (_MANYLINUX_RE, _MUSLLINUX_RE, _LEGACY_MANYLINUX_RE, _LINUX_RE):
        match = pattern.fullmatch(platform)
        if match:
            return {**_LINUX_ENV, "platform_machine": match.groups()[-1]}
    match = _MACOSX_RE.fullmatch(platform)
    if match:
        arch = match.group(3)
        # A universal2 build runs natively on Apple silicon, today's Mac; the other fat formats
        # (intel, universal, fat3...) are read as the Intel Mac they mostly ran on.
        if arch in {"arm64", "universal2"}:
            machine = "arm64"
        elif arch in {"i386", "ppc", "ppc64"}:
            machine = arch
        else:
            machine = "x86_64"
        return {**_MACOS_ENV, "platform_machine": machine}
    match = _WIN_RE.fullmatch(platform)
    if match:
        arch = match.group(1)
        machine = {None: "x86", "amd64": "AMD64", "arm64": "ARM64"}.get(arch, (arch or "").upper())
        return {**_WINDOWS_ENV, "platform_machine": machine}
    return dict(FAMILIES["any"][1])


def host_platform() -> tuple[str, tuple[str, ...]]:
    """The running machine's family name (or first platform tag) and its ranked platform tags."""

    tags = tuple(dict.fromkeys(platform_tags()))
    system = _platform.system()
    machine = _platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if system == "Linux":
        musl = any(t.startswith("musllinux_") for t in tags)
        name = f"{'musllinux' if musl else 'linux'}-{arch}"
    elif system == "Windows":
        name = {"x86_64": "win-amd64", "aarch64": "win-arm64"}.get(arch, "win32")
    elif system == "Darwin":
        name = "macos-arm64" if arch == "aarch64" else "macos-x86_64"
    else:
        name = tags[0] if tags else "any"
    if name not in FAMILIES:
        name = tags[0] if tags else "any"
    return name, tags
