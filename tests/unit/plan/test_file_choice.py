"""file_choice: which files of a release each target needs, the newest installable version,
the PEP 592 exact-pin rule, version normalising."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from packaging.specifiers import SpecifierSet

from pypidl.plan.file_choice import (
    choose_files,
    newest_installable,
    normalized_version,
    pins_exactly,
    same_version,
)
from pypidl.plan.pages import RemoteFile
from pypidl.plan.targets import Target, parse_targets
from tests.lib.fake_index import remote_file as rf


def target(python: str = "3.11", platform: str = "linux-x86_64") -> Target:
    (t,) = parse_targets(python_versions=[python], platforms=[platform])
    return t


LINUX311 = target("3.11", "linux-x86_64")
LINUX313 = target("3.13", "linux-x86_64")
WIN311 = target("3.11", "win-amd64")
MAC_ARM312 = target("3.12", "macos-arm64")

W_LINUX311 = "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
W_WIN311 = "demo-1.0-cp311-cp311-win_amd64.whl"
W_LINUX312 = "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"
W_ABI3 = "demo-1.0-cp38-abi3-macosx_11_0_arm64.whl"
SDIST = "demo-1.0.tar.gz"
NATIVE = [rf(W_LINUX311), rf(W_WIN311), rf(W_LINUX312), rf(W_ABI3), rf(SDIST)]


def names(files: Sequence[RemoteFile]) -> list[str]:
    return [f.filename for f in files]


@pytest.mark.parametrize(
    ("targets", "sdist", "expected"),
    [
        pytest.param([LINUX311], "auto", [W_LINUX311], id="one-wheel-per-target"),
        pytest.param([LINUX311, WIN311], "auto", [W_LINUX311, W_WIN311], id="two-targets"),
        pytest.param([MAC_ARM312], "auto", [W_ABI3], id="abi3"),
        pytest.param([LINUX313], "auto", [SDIST], id="auto-sdist-when-no-wheel"),
        pytest.param([LINUX311, LINUX313], "auto", [W_LINUX311, SDIST], id="auto-one-uncovered"),
        pytest.param([LINUX313], "never", [], id="never"),
        pytest.param([LINUX311], "always", [W_LINUX311, SDIST], id="always"),
        pytest.param([], "auto", [], id="no-target"),
        pytest.param([], "always", [SDIST], id="no-target-always"),
    ],
)
def test_choose_files(targets: list[Target], sdist: str, expected: list[str]) -> None:
    assert names(choose_files(NATIVE, targets, sdist=sdist)) == sorted(expected)


def test_python2_only_files_are_never_chosen() -> None:
    files = [
        rf("old-1.0-py2-none-any.whl"),
        rf("old-1.0-cp27-cp27mu-manylinux1_x86_64.whl"),
        rf("old-1.0.tar.gz", requires_python="<3"),
        rf("old-1.0.zip", requires_python="==2.7.*"),
    ]
    assert choose_files(files, [LINUX311], sdist="always") == []


def test_universal_wheel_fits_every_target() -> None:
    files = [rf("demo-1.0-py2.py3-none-any.whl"), rf("demo-1.0.tar.gz")]
    assert names(choose_files(files, [LINUX311, WIN311, MAC_ARM312, LINUX313])) == [
        "demo-1.0-py2.py3-none-any.whl"
    ]


def test_requires_python_is_per_file() -> None:
    files = [
        rf("demo-1.0-py3-none-any.whl", requires_python=">=3.12"),
        rf("demo-1.0.tar.gz", requires_python=">=3.8"),
    ]
    assert names(choose_files(files, [LINUX313])) == ["demo-1.0-py3-none-any.whl"]
    assert names(choose_files(files, [LINUX311])) == ["demo-1.0.tar.gz"]  # it builds there
    too_new = [rf("demo-1.0.tar.gz", requires_python=">=3.14")]
    assert choose_files(too_new, [LINUX311]) == []  # a target that cannot even build it


def test_one_sdist_tar_gz_before_zip() -> None:
    files = [rf("demo-1.0.zip"), rf("demo-1.0.tar.gz")]
    assert names(choose_files(files, [LINUX311])) == ["demo-1.0.tar.gz"]
    assert names(choose_files([rf("demo-1.0.zip")], [LINUX311])) == ["demo-1.0.zip"]


# --------------------------------------------------------------------------- newest installable


def release(version: str, *, yanked: bool = False, tag: str = "py3-none-any") -> RemoteFile:
    return rf(f"demo-{version}-{tag}.whl", yanked=yanked)


@pytest.mark.parametrize(
    ("files", "spec", "expected"),
    [
        pytest.param([release("1.0"), release("2.0")], "", "2.0", id="newest"),
        pytest.param([release("1.0"), release("2.0")], "<2", "1.0", id="specifier"),
        pytest.param([release("1.0"), release("2.0", yanked=True)], "", "1.0", id="yanked-skipped"),
        pytest.param(
            [release("1.0"), release("2.0", yanked=True)], "==2.0", "2.0", id="yanked-pinned"
        ),
        pytest.param(
            [release("1.0"), release("2.0", yanked=True)], "===2.0", "2.0", id="yanked-arbitrary"
        ),
        pytest.param(
            [release("2.0", yanked=True), release("2.1", yanked=True)],
            "==2.*",
            None,
            id="wildcard-is-not-a-pin",
        ),
        pytest.param([release("2.0", yanked=True)], ">=1", None, id="only-yanked"),
        pytest.param([release("1.0"), release("2.0b1")], "", "1.0", id="final-before-pre"),
        pytest.param([release("1.0"), release("2.0b1")], ">1.0", "2.0b1", id="pre-only-match"),
        pytest.param([release("2.0b1"), release("2.0a1")], "", "2.0b1", id="only-pres"),
        pytest.param([release("1.0"), release("2.0b1")], ">=2.0b1", "2.0b1", id="pre-asked-for"),
        pytest.param(
            [release("1.0", tag="cp312-cp312-win_amd64"), release("2.0b1")],
            "",
            "2.0b1",
            id="pre-when-no-final-installs",
        ),
        pytest.param(
            [release("1.0", yanked=True), release("2.0b1")], "", "2.0b1", id="pre-over-yanked"
        ),
        pytest.param(
            [release("1.0"), release("2.0", tag="cp312-cp312-win_amd64")],
            "",
            "1.0",
            id="not-for-this-target",
        ),
        pytest.param([release("1.0")], ">=3", None, id="nothing-matches"),
        pytest.param([], "", None, id="no-files"),
    ],
)
def test_newest_installable(files: list[RemoteFile], spec: str, expected: str | None) -> None:
    assert newest_installable(files, SpecifierSet(spec), LINUX311) == expected


def test_newest_installable_partly_yanked_release() -> None:
    """A release whose only installable file is yanked is skipped, even if others are not."""
    files = [
        rf("demo-2.0-cp311-cp311-manylinux_2_17_x86_64.whl", yanked=True),
        rf("demo-2.0-cp311-cp311-win_amd64.whl"),
        release("1.0"),
    ]
    assert newest_installable(files, SpecifierSet(""), LINUX311) == "1.0"
    assert newest_installable(files, SpecifierSet(""), WIN311) == "2.0"


@pytest.mark.parametrize(
    ("spec", "pinned"),
    [
        ("==1.0", True),
        ("===1.0", True),
        ("===1.0.post1+local", True),
        (">=1,==1.0", True),
        ("==1.*", False),
        (">=1.0,<=1.0", False),  # one version, but not a pin in PEP 592's sense
        ("~=1.0", False),
        ("!=1.0", False),
        ("", False),
    ],
)
def test_only_an_exact_pin_may_take_a_yanked_file(spec: str, pinned: bool) -> None:
    assert pins_exactly(SpecifierSet(spec)) is pinned


@pytest.mark.parametrize(
    ("version", "normal"),
    [
        ("1.0", "1.0"),
        ("1.0.0a1", "1.0.0a1"),
        ("1.0-RC1", "1.0rc1"),
        ("not-a-version", "not-a-version"),
    ],
)
def test_normalized_version(version: str, normal: str) -> None:
    assert normalized_version(version) == normal


def test_same_version_compares_normalised_forms() -> None:
    assert same_version("1.0-RC1", "1.0rc1")
    assert not same_version("1.0", "1.0.post1")
