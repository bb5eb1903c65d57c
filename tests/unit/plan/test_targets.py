"""Targets: parsing every accepted form, tag ranking against pip's own, markers, Python filters."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.tags import Tag, parse_tag
from packaging.utils import parse_wheel_filename
from pip._internal.utils.compatibility_tags import get_supported

from pypidl.errors import BadInputError, TargetError
from pypidl.plan._python3 import allows_any_python3, is_python3_wheel
from pypidl.plan.platforms import DEFAULT_PLATFORMS, FAMILIES, expand_platform
from pypidl.plan.targets import (
    DEFAULT_PYTHON_VERSIONS,
    Target,
    default_full_version,
    host_target,
    load_targets_file,
    parse_targets,
)


def one(**kwargs: list[str]) -> Target:
    targets = parse_targets(**kwargs)
    assert len(targets) == 1, [t.label for t in targets]
    return targets[0]


def wheel_tags(filename: str) -> frozenset[Tag]:
    return parse_wheel_filename(filename)[3]


def _pip_uses_our_packaging() -> bool:
    from packaging import __version__ as ours
    from pip._vendor.packaging import __version__ as pips

    return bool(ours == pips)


#: pip computes tags with its own vendored copy of packaging; where that copy is another release
#: than the one pypidl uses, the two lists legitimately differ (new ABIs, spelling fixes), and
#: "as pip ranks them" can only be compared like for like.
same_packaging_as_pip = pytest.mark.skipif(
    not _pip_uses_our_packaging(),
    reason="pip vendors another packaging release than the one installed",
)


def pip_tags(
    version: str, platform: str, impl: str = "cp", abis: list[str] | None = None
) -> list[str]:
    found = get_supported(version=version, platforms=[platform], impl=impl, abis=abis)
    return list(dict.fromkeys(str(t) for t in found))


def is_subsequence(small: list[str], big: list[str]) -> bool:
    it = iter(big)
    return all(item in it for item in small)


# ------------------------------------------------------------------------------ defaults


def test_default_product_is_every_version_on_every_platform_machines_run() -> None:
    targets = parse_targets()
    # win-arm64 from 3.11 on only: before, Windows on ARM64 ran the AMD64 build (issue 17)
    assert len(targets) == 7 * 6 - 3 == 39
    assert len({t.label for t in targets}) == 39
    assert {t.python for t in targets if t.platform == "win-arm64"} == {
        (3, n) for n in range(11, 15)
    }
    assert {t.python for t in targets} == {(3, n) for n in range(8, 15)}
    assert {t.platform for t in targets} == set(DEFAULT_PLATFORMS)
    assert {t.implementation for t in targets} == {"cp"}
    assert targets[0].label == "cp38-linux-x86_64"
    assert DEFAULT_PYTHON_VERSIONS[0] == "3.8"
    assert DEFAULT_PYTHON_VERSIONS[-1] == "3.14"


def test_an_empty_list_means_its_default_only() -> None:
    targets = parse_targets(platforms=["win-amd64"])
    assert [t.label for t in targets] == [f"cp3{n}-win-amd64" for n in range(8, 15)]


# ------------------------------------------------------------------------------ Python versions


@pytest.mark.parametrize(
    ("value", "python", "full"),
    [
        ("3.8", (3, 8), "3.8.20"),
        ("38", (3, 8), "3.8.20"),
        ("cp38", (3, 8), "3.8.20"),
        ("py38", (3, 8), "3.8.20"),
        ("CP311", (3, 11), default_full_version((3, 11))),
        ("3.10", (3, 10), default_full_version((3, 10))),
        ("310", (3, 10), default_full_version((3, 10))),
        (" 3.12 ", (3, 12), default_full_version((3, 12))),
        ("3.8.10", (3, 8), "3.8.10"),
        ("3.14.0", (3, 14), "3.14.0"),
    ],
)
def test_python_version_forms(value: str, python: tuple[int, int], full: str) -> None:
    target = one(python_versions=[value], platforms=["any"])
    assert target.python == python
    assert target.python_full_version == full


@pytest.mark.parametrize("value", ["py3", "3", "py2.py3", "cp3", "PY3"])
def test_python3_wildcards_mean_every_default_version(value: str) -> None:
    targets = parse_targets(python_versions=[value], platforms=["any"])
    assert [f"{t.python[0]}.{t.python[1]}" for t in targets] == list(DEFAULT_PYTHON_VERSIONS)


def test_compressed_tag_set_keeps_its_python3_members() -> None:
    targets = parse_targets(python_versions=["cp38.cp39"], platforms=["any"])
    assert [t.python for t in targets] == [(3, 8), (3, 9)]
    assert [t.python for t in parse_targets(python_versions=["py27.py311"], platforms=["any"])] == [
        (3, 11)
    ]


def test_duplicate_versions_collapse_and_a_full_version_wins() -> None:
    targets = parse_targets(python_versions=["3.8", "38", "cp38", "3.8.10"], platforms=["any"])
    assert len(targets) == 1
    assert targets[0].python_full_version == "3.8.10"
    assert targets[0].label == "cp38-3.8.10-any"


def test_two_full_versions_of_one_minor_conflict() -> None:
    with pytest.raises(TargetError, match=r"3\.8\.12"):
        parse_targets(python_versions=["3.8.10", "3.8.12"])


@pytest.mark.parametrize("value", ["2.7", "27", "cp27", "py2", "2", "py2.py27", "cp27.py2"])
def test_python2_is_refused(value: str) -> None:
    with pytest.raises(TargetError, match="Python 2") as info:
        parse_targets(python_versions=[value])
    assert "not mirrored" in info.value.message
    assert repr(value) in info.value.message
    assert "3.11" in (info.value.hint or "")


@pytest.mark.parametrize(
    "value", ["", "latest", "3.x", "py3.8", "4.0", "4", "cp", "3.8.1.2", "3.100"]
)
def test_junk_versions_are_refused_with_the_valid_forms(value: str) -> None:
    with pytest.raises(TargetError) as info:
        parse_targets(python_versions=[value])
    assert repr(value) in info.value.message
    assert "3.11" in info.value.message
    assert isinstance(info.value, BadInputError)
    assert info.value.exit_code == 2
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------ platforms


@pytest.mark.parametrize(
    ("value", "name", "first", "last", "contains", "excludes"),
    [
        (
            "linux-x86_64",
            "linux-x86_64",
            "manylinux_2_39_x86_64",
            "linux_x86_64",
            [
                "manylinux2014_x86_64",
                "manylinux2010_x86_64",
                "manylinux1_x86_64",
                "manylinux_2_28_x86_64",
            ],
            ["manylinux_2_40_x86_64", "musllinux_1_2_x86_64", "manylinux2014_aarch64"],
        ),
        (
            "LINUX-AARCH64",
            "linux-aarch64",
            "manylinux_2_39_aarch64",
            "linux_aarch64",
            ["manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64"],
            ["manylinux_2_16_aarch64", "manylinux2010_aarch64", "manylinux1_aarch64"],
        ),
        ("linux-arm64", "linux-aarch64", "manylinux_2_39_aarch64", "linux_aarch64", [], []),
        (
            "musllinux-x86_64",
            "musllinux-x86_64",
            "musllinux_1_2_x86_64",
            "linux_x86_64",
            ["musllinux_1_1_x86_64", "musllinux_1_0_x86_64"],
            ["manylinux2014_x86_64"],
        ),
        (
            "musllinux-aarch64",
            "musllinux-aarch64",
            "musllinux_1_2_aarch64",
            "linux_aarch64",
            [],
            [],
        ),
        ("win-amd64", "win-amd64", "win_amd64", "win_amd64", [], ["win32"]),
        ("Win-ARM64", "win-arm64", "win_arm64", "win_arm64", [], ["win_amd64"]),
        ("win32", "win32", "win32", "win32", [], ["win_amd64"]),
        (
            "macos-x86_64",
            "macos-x86_64",
            "macosx_15_0_x86_64",
            "macosx_10_4_universal",
            [
                "macosx_10_9_x86_64",
                "macosx_11_0_universal2",
                "macosx_10_9_intel",
                "macosx_12_0_x86_64",
            ],
            ["macosx_11_0_arm64", "macosx_16_0_x86_64"],
        ),
        (
            "macos-arm64",
            "macos-arm64",
            "macosx_15_0_arm64",
            "macosx_10_4_universal2",
            ["macosx_11_0_arm64", "macosx_10_9_universal2", "macosx_14_0_arm64"],
            ["macosx_10_9_x86_64", "macosx_10_16_arm64", "macosx_26_0_arm64"],
        ),
        ("any", "any", "any", "any", [], []),
        ("ANY", "any", "any", "any", [], []),
        # raw tags
        (
            "manylinux_2_17_x86_64",
            "manylinux_2_17_x86_64",
            "manylinux_2_17_x86_64",
            "manylinux1_x86_64",
            [
                "manylinux2014_x86_64",
                "manylinux_2_12_x86_64",
                "manylinux2010_x86_64",
                "manylinux_2_5_x86_64",
            ],
            ["manylinux_2_18_x86_64", "manylinux_2_4_x86_64", "linux_x86_64"],
        ),
        (
            "manylinux2014_aarch64",
            "manylinux2014_aarch64",
            "manylinux2014_aarch64",
            "manylinux_2_17_aarch64",
            [],
            ["manylinux_2_16_aarch64", "manylinux2010_aarch64"],
        ),
        (
            "manylinux_2_28_aarch64",
            "manylinux_2_28_aarch64",
            "manylinux_2_28_aarch64",
            "manylinux2014_aarch64",
            ["manylinux_2_17_aarch64"],
            ["manylinux_2_29_aarch64"],
        ),
        (
            "manylinux1_x86_64",
            "manylinux1_x86_64",
            "manylinux1_x86_64",
            "manylinux_2_5_x86_64",
            [],
            [],
        ),
        (
            "musllinux_1_2_x86_64",
            "musllinux_1_2_x86_64",
            "musllinux_1_2_x86_64",
            "musllinux_1_0_x86_64",
            ["musllinux_1_1_x86_64"],
            ["linux_x86_64"],
        ),
        ("linux_x86_64", "linux_x86_64", "linux_x86_64", "linux_x86_64", [], ["manylinux1_x86_64"]),
        ("WIN_AMD64", "win_amd64", "win_amd64", "win_amd64", [], []),
        (
            "macosx_11_0_arm64",
            "macosx_11_0_arm64",
            "macosx_11_0_arm64",
            "macosx_10_4_universal2",
            ["macosx_11_0_universal2"],
            ["macosx_12_0_arm64"],
        ),
    ],
)
def test_platform_forms(
    value: str, name: str, first: str, last: str, contains: list[str], excludes: list[str]
) -> None:
    got_name, tags = expand_platform(value)
    assert got_name == name
    assert tags[0] == first
    assert tags[-1] == last
    assert len(set(tags)) == len(tags)
    for tag in contains:
        assert tag in tags
    for tag in excludes:
        assert tag not in tags


def test_legacy_manylinux_aliases_sit_at_their_glibc() -> None:
    _, tags = expand_platform("linux-x86_64")
    for legacy, glibc in [("manylinux2014", 17), ("manylinux2010", 12), ("manylinux1", 5)]:
        assert tags.index(f"{legacy}_x86_64") == tags.index(f"manylinux_2_{glibc}_x86_64") + 1


@pytest.mark.parametrize(
    "value",
    [
        "linux",
        "windows",
        "mac",
        "x86_64",
        "linux-sparc",
        "manylinux",
        "macosx_9_0_x86_64",
        "",
        "solaris_2_11",
    ],
)
def test_unknown_platforms_are_refused_listing_the_families(value: str) -> None:
    with pytest.raises(TargetError) as info:
        parse_targets(platforms=[value])
    assert repr(value) in info.value.message
    if value != "macosx_9_0_x86_64":
        for family in FAMILIES:
            assert family in info.value.message


# ------------------------------------------------------------------------------ pip equivalence


@pytest.mark.parametrize(
    ("version", "platform"),
    [
        ("311", "win_amd64"),
        ("38", "win32"),
        ("313", "win_arm64"),
        ("311", "macosx_11_0_arm64"),
        ("39", "macosx_10_9_x86_64"),
        ("312", "macosx_14_0_x86_64"),
        ("310", "linux_x86_64"),
        ("314", "any"),
        ("311", "manylinux_2_17_x86_64"),
        ("312", "manylinux2014_x86_64"),
        ("38", "manylinux2010_x86_64"),
    ],
)
@same_packaging_as_pip
def test_tags_are_ranked_as_pip_ranks_them(version: str, platform: str) -> None:
    """Where pip expands the platform itself, the lists are equal.

    pip does not expand ``manylinux_2_N`` or ``musllinux`` to older versions; pypidl does (a real
    machine accepts them).  pip's list then appears inside ours, in the same order.
    """
    target = one(python_versions=[version], platforms=[platform])
    ours = [str(t) for t in target.tags()]
    theirs = pip_tags(version, platform)
    if platform.startswith("manylinux"):
        assert is_subsequence(theirs, ours)
        assert len(ours) > len(theirs)
        assert ours[0] == theirs[0]
    else:
        assert ours == theirs


@pytest.mark.parametrize(
    ("abi", "version"), [("abi3", "311"), ("none", "39"), ("cp313t", "313"), ("cp311", "311")]
)
@same_packaging_as_pip
def test_abi_restriction_matches_pip(abi: str, version: str) -> None:
    target = one(python_versions=[version], platforms=["win_amd64"], abis=[abi])
    assert [str(t) for t in target.tags()] == pip_tags(version, "win_amd64", abis=[abi])


def test_pypy_tags_match_pip() -> None:
    target = one(
        python_versions=["3.10"], platforms=["manylinux2014_x86_64"], implementations=["pp"]
    )
    theirs = pip_tags("310", "manylinux2014_x86_64", impl="pp", abis=["pypy310_pp73"])
    assert is_subsequence(theirs, [str(t) for t in target.tags()])
    assert target.label == "pp310-manylinux2014_x86_64"
    assert target.supports(wheel_tags("x-1-pp310-pypy310_pp73-manylinux_2_17_x86_64.whl"))
    assert not target.supports(wheel_tags("x-1-cp310-cp310-manylinux_2_17_x86_64.whl"))


def test_generic_implementation_takes_pure_python_only() -> None:
    target = one(python_versions=["3.11"], platforms=["any"], implementations=["py"])
    assert target.label == "py311-any"
    assert target.supports(wheel_tags("x-1-py3-none-any.whl"))
    assert not target.supports(wheel_tags("x-1-cp311-cp311-any.whl"))
    assert not target.supports(wheel_tags("x-1-cp39-abi3-any.whl"))


# ------------------------------------------------------------------------------ wheel selection


@pytest.mark.parametrize(
    ("label_args", "wheel", "supported"),
    [
        (("3.11", "linux-aarch64"), "x-1-cp39-abi3-manylinux2014_aarch64.whl", True),
        (("3.8", "linux-aarch64"), "x-1-cp39-abi3-manylinux2014_aarch64.whl", False),
        (("3.11", "linux-x86_64"), "x-1-cp39-abi3-manylinux2014_aarch64.whl", False),
        (
            ("3.11", "linux-x86_64"),
            "x-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            True,
        ),
        (("3.11", "linux-x86_64"), "x-1-cp311-cp311-manylinux_2_40_x86_64.whl", False),
        (("3.11", "linux-x86_64"), "x-1-cp311-cp311-musllinux_1_1_x86_64.whl", False),
        (("3.11", "musllinux-x86_64"), "x-1-cp311-cp311-musllinux_1_1_x86_64.whl", True),
        (("3.11", "linux-x86_64"), "x-1-cp310-cp310-manylinux1_x86_64.whl", False),
        (("3.11", "linux-x86_64"), "x-1-py3-none-any.whl", True),
        (("3.11", "win-amd64"), "x-1-py2.py3-none-any.whl", True),
        (("3.11", "win-amd64"), "x-1-py2-none-any.whl", False),
        (("3.11", "win-amd64"), "x-1-cp311-cp311-win_amd64.whl", True),
        (("3.11", "win-arm64"), "x-1-cp311-cp311-win_amd64.whl", False),
        (("3.11", "win32"), "x-1-cp311-cp311-win32.whl", True),
        (("3.13", "linux-x86_64"), "x-1-cp313-cp313t-manylinux_2_17_x86_64.whl", False),
        (("3.13", "linux-x86_64"), "x-1-cp313-cp313-manylinux_2_17_x86_64.whl", True),
        (("3.12", "macos-arm64"), "x-1-cp312-cp312-macosx_11_0_arm64.whl", True),
        (("3.12", "macos-arm64"), "x-1-cp312-cp312-macosx_10_9_universal2.whl", True),
        (("3.12", "macos-arm64"), "x-1-cp312-cp312-macosx_10_9_x86_64.whl", False),
        (("3.12", "macos-x86_64"), "x-1-cp312-cp312-macosx_10_9_x86_64.whl", True),
        (("3.12", "macos-x86_64"), "x-1-cp312-cp312-macosx_11_0_arm64.whl", False),
        (("3.9", "any"), "x-1-cp39-cp39-manylinux1_x86_64.whl", False),
        (("3.9", "any"), "x-1-py39-none-any.whl", True),
        (("3.9", "any"), "x-1-py310-none-any.whl", False),
    ],
)
def test_families_take_the_right_wheels(
    label_args: tuple[str, str], wheel: str, supported: bool
) -> None:
    version, platform = label_args
    target = one(python_versions=[version], platforms=[platform])
    tags = wheel_tags(wheel)
    assert target.supports(tags) is supported
    assert (target.rank(tags) is not None) is supported


def test_free_threaded_wheels_need_the_abi_asked_for() -> None:
    target = one(python_versions=["3.13"], platforms=["linux-x86_64"], abis=["cp313t"])
    assert target.label == "cp313-cp313t-linux-x86_64"
    assert target.supports(wheel_tags("x-1-cp313-cp313t-manylinux_2_17_x86_64.whl"))
    assert not target.supports(wheel_tags("x-1-cp313-cp313-manylinux_2_17_x86_64.whl"))
    # The free-threaded build cannot load abi3 extensions; pure Python still fits.
    assert not target.supports(wheel_tags("x-1-cp39-abi3-manylinux_2_17_x86_64.whl"))
    assert target.supports(wheel_tags("x-1-py3-none-any.whl"))


def test_version_bound_abis_go_to_their_version_only() -> None:
    targets = parse_targets(
        python_versions=["3.12", "3.13"], platforms=["win-amd64"], abis=["cp313t", "cp312", "abi3"]
    )
    assert {t.label: t.abis for t in targets} == {
        "cp312-cp312.abi3-win-amd64": ("cp312", "abi3"),
        "cp313-cp313t.abi3-win-amd64": ("cp313t", "abi3"),
    }


@pytest.mark.parametrize(
    ("abis", "match"),
    [
        (["cp27mu"], "Python 2"),
        (["cp310"], "no target"),
        (["cpython"], "cp311"),
        (["abi4"], "abi3"),
    ],
)
def test_bad_abis_are_refused(abis: list[str], match: str) -> None:
    with pytest.raises(TargetError, match=match):
        parse_targets(python_versions=["3.11"], abis=abis)


@pytest.mark.parametrize("value", ["ironpython", "jy", "graalpy", ""])
def test_unknown_implementations_are_refused(value: str) -> None:
    with pytest.raises(TargetError, match=r"cp \(CPython\)"):
        parse_targets(implementations=[value])


def test_rank_prefers_the_most_specific_file() -> None:
    target = one(python_versions=["3.11"], platforms=["linux-x86_64"])
    order = [
        "x-1-cp311-cp311-manylinux_2_28_x86_64.whl",
        "x-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "x-1-cp311-cp311-linux_x86_64.whl",
        "x-1-cp311-abi3-manylinux_2_17_x86_64.whl",
        "x-1-cp38-abi3-manylinux_2_17_x86_64.whl",
        "x-1-py3-none-manylinux_2_17_x86_64.whl",
        "x-1-py311-none-any.whl",
        "x-1-py3-none-any.whl",
    ]
    ranks = [target.rank(wheel_tags(name)) for name in order]
    assert all(r is not None for r in ranks)
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == len(ranks)
    assert target.rank(wheel_tags("x-1-cp312-cp312-win_amd64.whl")) is None
    assert target.rank(frozenset(parse_tag("cp311-cp311-win_amd64.win_arm64"))) is None


def test_tags_are_cached_and_stable() -> None:
    a = one(python_versions=["3.11"], platforms=["linux-x86_64"])
    b = one(python_versions=["311"], platforms=["Linux-X86_64"])
    assert a == b
    assert hash(a) == hash(b)
    assert a.tags() is b.tags()


# ------------------------------------------------------------------------------ markers


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("linux-x86_64", ("linux", "Linux", "posix", "x86_64")),
        ("linux-aarch64", ("linux", "Linux", "posix", "aarch64")),
        ("musllinux-aarch64", ("linux", "Linux", "posix", "aarch64")),
        ("win-amd64", ("win32", "Windows", "nt", "AMD64")),
        ("win-arm64", ("win32", "Windows", "nt", "ARM64")),
        ("win32", ("win32", "Windows", "nt", "x86")),
        ("macos-x86_64", ("darwin", "Darwin", "posix", "x86_64")),
        ("macos-arm64", ("darwin", "Darwin", "posix", "arm64")),
        ("any", ("linux", "Linux", "posix", "x86_64")),
        ("manylinux2014_aarch64", ("linux", "Linux", "posix", "aarch64")),
        ("musllinux_1_2_x86_64", ("linux", "Linux", "posix", "x86_64")),
        ("linux_armv7l", ("linux", "Linux", "posix", "armv7l")),
        ("win_amd64", ("win32", "Windows", "nt", "AMD64")),
        ("macosx_11_0_arm64", ("darwin", "Darwin", "posix", "arm64")),
        ("macosx_10_9_universal2", ("darwin", "Darwin", "posix", "arm64")),
        ("macosx_10_9_x86_64", ("darwin", "Darwin", "posix", "x86_64")),
    ],
)
def test_marker_environment_per_platform(platform: str, expected: tuple[str, ...]) -> None:
    env = one(python_versions=["3.11"], platforms=[platform]).marker_environment()
    assert (
        env["sys_platform"],
        env["platform_system"],
        env["os_name"],
        env["platform_machine"],
    ) == expected


def test_marker_environment_is_complete() -> None:
    env = one(python_versions=["3.11"], platforms=["linux-x86_64"]).marker_environment(
        extra="socks"
    )
    assert env == {
        "implementation_name": "cpython",
        "implementation_version": default_full_version((3, 11)),
        "os_name": "posix",
        "platform_machine": "x86_64",
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": default_full_version((3, 11)),
        "python_version": "3.11",
        "sys_platform": "linux",
        "extra": "socks",
    }


@pytest.mark.parametrize(
    ("marker", "version", "platform", "result"),
    [
        ('sys_platform == "win32"', "3.11", "win-amd64", True),
        ('sys_platform == "win32"', "3.11", "linux-x86_64", False),
        ('platform_machine == "aarch64"', "3.11", "linux-aarch64", True),
        ('platform_machine == "aarch64"', "3.11", "macos-arm64", False),
        ('python_version < "3.11"', "3.10", "any", True),
        ('python_version < "3.11"', "3.11", "any", False),
        ('python_version < "3.11"', "3.8", "any", True),
        ('python_full_version >= "3.8.1"', "3.8", "any", True),
        ('python_full_version >= "3.8.1"', "3.8.0", "any", False),
        (
            'platform_system == "Darwin" and platform_machine == "arm64"',
            "3.12",
            "macos-arm64",
            True,
        ),
        ('os_name == "nt"', "3.12", "win-arm64", True),
        ('implementation_name == "cpython"', "3.12", "any", True),
        ('platform_python_implementation != "PyPy"', "3.12", "any", True),
        ('extra == "socks"', "3.12", "any", False),
    ],
)
def test_markers_evaluate(marker: str, version: str, platform: str, result: bool) -> None:
    env = one(python_versions=[version], platforms=[platform]).marker_environment()
    assert Marker(marker).evaluate(env) is result


def test_markers_see_the_extra() -> None:
    env = one(python_versions=["3.12"], platforms=["any"]).marker_environment(extra="socks")
    assert Marker('extra == "socks"').evaluate(env)


def test_pypy_markers() -> None:
    env = one(
        python_versions=["3.10"], platforms=["linux-x86_64"], implementations=["pypy"]
    ).marker_environment()
    assert env["implementation_name"] == "pypy"
    assert env["platform_python_implementation"] == "PyPy"
    assert env["python_version"] == "3.10"
    assert Marker('implementation_name == "pypy"').evaluate(env)


# ------------------------------------------------------------------------------ Requires-Python


@pytest.mark.parametrize(
    ("version", "spec", "allowed"),
    [
        ("3.8", ">=3.8", True),
        ("3.8", ">=3.9", False),
        ("3.8", ">=3.8.1", True),
        ("3.8.0", ">=3.8.1", False),
        ("3.11", ">=3.7,<3.11", False),
        ("3.11", "~=3.11", True),
        ("3.14", ">=3.8, !=3.14.*", False),
        ("3.12", "!=3.0.*,!=3.1.*,>=2.7", True),
        ("3.12", None, True),
        ("3.12", "", True),
        ("3.12", "  ", True),
        ("3.12", ">=3.6.*", True),  # invalid: ignored, as pip does
        ("3.12", "not a specifier", True),
        ("3.12", ">=3.6,", True),
    ],
)
def test_allows_python(version: str, spec: str | None, allowed: bool) -> None:
    assert one(python_versions=[version], platforms=["any"]).allows_python(spec) is allowed


@pytest.mark.parametrize(
    ("spec", "allowed"),
    [
        (None, True),
        ("", True),
        (">=3.8", True),
        ("==2.7.*", False),
        ("<3", False),
        ("<3.0", False),
        (">=2.6,<3", False),
        (">=2.7,!=3.0.*,!=3.1.*", True),
        (">=3.6.2,<3.6.4", True),
        ("==3.6.3", True),
        (">=4", False),
        (">=3.21", False),
        ("<=3.0.0", True),
        ("garbage", True),
    ],
)
def test_allows_any_python3(spec: str | None, allowed: bool) -> None:
    assert allows_any_python3(spec) is allowed


@pytest.mark.parametrize(
    ("wheel", "python3"),
    [
        ("x-1-py2-none-any.whl", False),
        ("x-1-cp27-cp27mu-manylinux1_x86_64.whl", False),
        ("x-1-cp26-cp26m-win32.whl", False),
        ("x-1-pp27-pypy_41-win32.whl", False),
        ("x-1-py2.py3-none-any.whl", True),
        ("x-1-py3-none-any.whl", True),
        ("x-1-cp311-cp311-win_amd64.whl", True),
        ("x-1-cp27.cp311-none-win_amd64.whl", True),
        ("x-1-pp310-pypy310_pp73-win_amd64.whl", True),
    ],
)
def test_is_python3_wheel(wheel: str, python3: bool) -> None:
    assert is_python3_wheel(wheel_tags(wheel)) is python3


# ------------------------------------------------------------------------------ objects


def test_target_pickles_and_keeps_working() -> None:
    target = one(python_versions=["3.13"], platforms=["macos-arm64"], abis=["cp313t"])
    wheel = wheel_tags("x-1-cp313-cp313t-macosx_11_0_arm64.whl")
    assert target.supports(wheel)  # fills the per-instance cache, which must not travel
    copy = pickle.loads(pickle.dumps(target))  # noqa: S301  # our own bytes
    assert copy == target
    assert copy.label == target.label
    assert copy.tags() == target.tags()
    assert "_ranks_cache" not in copy.__dict__
    assert copy.rank(wheel) == target.rank(wheel) == target.tags().index(next(iter(wheel)))


def test_direct_construction_fills_the_default_full_version() -> None:
    name, tags = expand_platform("win-amd64")
    target = Target("cp", (3, 11), name, tags)
    assert target.python_full_version == default_full_version((3, 11))
    assert target == Target("cp", (3, 11), name, list(tags), None, default_full_version((3, 11)))  # type: ignore[arg-type]
    assert str(target) == "cp311-win-amd64"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"implementation": "jy"}, "implementation"),
        ({"python": (3,)}, "major, minor"),
        ({"python_full_version": "3.12.1"}, "not a release of 3.11"),
        ({"python_full_version": "latest"}, "not a release"),
    ],
)
def test_direct_construction_validates(kwargs: dict[str, object], match: str) -> None:
    fields: dict[str, object] = {
        "implementation": "cp",
        "python": (3, 11),
        "platform": "any",
        "platform_tags": ("any",),
    }
    fields.update(kwargs)
    with pytest.raises(TargetError, match=match):
        Target(**fields)  # type: ignore[arg-type]


def test_default_full_versions_are_late_patches() -> None:
    assert default_full_version((3, 8)) == "3.8.20"
    assert default_full_version((3, 99)) == "3.99.0"
    for version in DEFAULT_PYTHON_VERSIONS:
        major, minor = map(int, version.split("."))
        assert int(default_full_version((major, minor)).split(".")[2]) >= 1


def test_host_target_describes_this_interpreter() -> None:
    import sys

    from packaging.markers import default_environment
    from packaging.tags import sys_tags

    host = host_target()
    assert host.python == sys.version_info[:2]
    assert host.tags()[: len(list(sys_tags()))] == tuple(dict.fromkeys(sys_tags()))
    env = host.marker_environment()
    real = default_environment()
    for key in (
        "sys_platform",
        "os_name",
        "platform_system",
        "python_version",
        "python_full_version",
    ):
        assert env[key] == real[key], key
    assert env["platform_machine"].lower() == real["platform_machine"].lower()


# ------------------------------------------------------------------------------ targets file


def test_targets_file(tmp_path: Path) -> None:
    path = tmp_path / "targets.txt"
    path.write_text(
        "# the servers\n"
        "python=3.11 platform=linux-x86_64,linux-aarch64   # two\n"
        "\n"
        "python=3.12,3.13 platform=macos-arm64 implementation=cp\n"
        "python=3.11 platform=linux-x86_64\n"  # a duplicate
        "python=3.13 platform=linux-x86_64 abi=cp313t\n",
        encoding="utf-8",
    )
    assert [t.label for t in load_targets_file(path)] == [
        "cp311-linux-x86_64-glibc2.17",
        "cp311-linux-x86_64",
        "cp311-linux-aarch64-glibc2.17",
        "cp311-linux-aarch64",
        "cp312-macos-arm64-macos12",
        "cp312-macos-arm64",
        "cp313-macos-arm64-macos12",
        "cp313-macos-arm64",
        "cp313-cp313t-linux-x86_64-glibc2.17",
        "cp313-cp313t-linux-x86_64",
    ]


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("python=3.11\nplatform=solaris\n", 2, "solaris"),
        ("# c\n\npython=2.7\n", 3, "Python 2"),
        ("python 3.11\n", 1, "key=value"),
        ("colour=blue\n", 1, "key=value"),
        ("python=\n", 1, "key=value"),
    ],
)
def test_targets_file_errors_name_file_and_line(
    tmp_path: Path, text: str, line: int, match: str
) -> None:
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TargetError, match=match) as info:
        load_targets_file(path)
    assert info.value.context == f"{path}:{line}"


def test_targets_file_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="cannot read"):
        load_targets_file(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(TargetError, match="no targets"):
        load_targets_file(empty)


# ------------------------------------------------------------------------ floors and ceilings


def test_a_family_spans_its_floor_and_its_ceiling_machine() -> None:
    targets = parse_targets(
        python_versions=["3.12"],
        platforms=["linux-x86_64", "macos-arm64", "musllinux-aarch64", "win-amd64"],
        spans=True,
    )
    assert [t.label for t in targets] == [
        "cp312-linux-x86_64-glibc2.17",
        "cp312-linux-x86_64",
        "cp312-macos-arm64-macos12",
        "cp312-macos-arm64",
        "cp312-musllinux-aarch64-musl1.1",
        "cp312-musllinux-aarch64",
        "cp312-win-amd64",
    ]
    floor, ceiling = targets[0], targets[1]
    assert floor.platform_tags[0] == "manylinux_2_17_x86_64"
    assert ceiling.platform_tags[0] == "manylinux_2_39_x86_64"
    assert floor.span_label == ceiling.span_label == "cp312-linux-x86_64"
    assert floor.marker_environment() == ceiling.marker_environment()
    assert targets[2].platform_tags[0] == "macosx_12_0_arm64"
    assert targets[4].platform_tags[0] == "musllinux_1_1_aarch64"


@pytest.mark.parametrize(
    ("value", "labels", "first_tags"),
    [
        ("linux-x86_64:glibc=2.28", ["cp311-linux-x86_64-glibc2.28", "cp311-linux-x86_64"], None),
        (
            "linux-aarch64:glibc=2.28-2.35",
            ["cp311-linux-aarch64-glibc2.28", "cp311-linux-aarch64-glibc2.35"],
            ["manylinux_2_28_aarch64", "manylinux_2_35_aarch64"],
        ),
        ("linux-x86_64:glibc=2.31-2.31", ["cp311-linux-x86_64-glibc2.31"], None),
        ("macos-x86_64:macos=13", ["cp311-macos-x86_64-macos13", "cp311-macos-x86_64"], None),
        ("MUSLLINUX-X86_64:musl=1.2", ["cp311-musllinux-x86_64"], None),
        ("manylinux_2_17_x86_64", ["cp311-manylinux_2_17_x86_64"], None),
    ],
)
def test_floors_and_ceilings_are_settable_per_family(
    value: str, labels: list[str], first_tags: list[str] | None
) -> None:
    targets = parse_targets(python_versions=["3.11"], platforms=[value], spans=True)
    assert [t.label for t in targets] == labels
    if first_tags is not None:
        assert [t.platform_tags[0] for t in targets] == first_tags


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("linux-x86_64:glibc=2.39-2.17", "above the ceiling"),
        ("linux-x86_64:musl=1.2", "linux-x86_64:glibc=FLOOR"),
        ("linux-x86_64:glibc=two", "not understood"),
        ("win-amd64:glibc=2.17", "only a family that spans"),
        ("linux-x86_64:glibc=1.5-2.30", "does not exist"),
    ],
)
def test_bad_floors_are_refused(value: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        parse_targets(platforms=[value], spans=True)


def test_every_pair_stays_available_on_request() -> None:
    asked = parse_targets(python_versions=["3.9"], platforms=["win-arm64"])
    assert [t.label for t in asked] == ["cp39-win-arm64"]
    # a default on either side leaves out machines that do not exist
    assert {t.python for t in parse_targets(platforms=["win-arm64"])} == {
        (3, n) for n in range(11, 15)
    }
