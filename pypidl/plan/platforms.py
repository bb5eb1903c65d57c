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
    "MACOS_VERSION",
    "MUSL_VERSION",
    "expand_platform",
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


#: Newest glibc the ``linux-*`` families accept (Ubuntu 24.04 LTS ships 2.39).  Wheels needing a
#: newer glibc are judged unsupported rather than picked for machines that cannot load them.
LINUX_GLIBC: tuple[int, int] = (2, 39)


#: Newest musl the ``musllinux-*`` families accept (Alpine has shipped 1.2 since 3.13).
MUSL_VERSION: tuple[int, int] = (1, 2)


#: Newest macOS the ``macos-*`` families accept (macOS 15, Sequoia).
MACOS_VERSION: tuple[int, int] = (15, 0)


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


def platform_environment(platform: str) -> dict[str, str]:
    """Marker values (sys_platform, platform_system, os_name, platform_machine) of a platform."""
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
