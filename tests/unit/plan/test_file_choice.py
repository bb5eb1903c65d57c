"""file_choice: the PEP 592 exact-pin rule and version normalising, each written once."""

from __future__ import annotations

import pytest
from packaging.specifiers import SpecifierSet

from pypidl.plan.file_choice import normalized_version, pins_exactly, same_version


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
