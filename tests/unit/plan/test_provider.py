"""provider: the index as one target's installer sees it, judged through resolvelib."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from resolvelib import BaseReporter, Resolver
from resolvelib.resolvers import ResolutionImpossible

from pypidl.plan.provider import has_wheel, identifier_of
from pypidl.plan.targets import Target, parse_targets
from tests.lib.fake_index import FakeIndex
from tests.lib.fake_resolution import prefetcher, provider, reqs, resolvelib_pins

(LINUX311,) = parse_targets(python_versions=["3.11"], platforms=["linux-x86_64"])
(WIN311,) = parse_targets(python_versions=["3.11"], platforms=["win-amd64"])


def pins(
    index: FakeIndex,
    *lines: str,
    target: Target = LINUX311,
    constraints: Mapping[str, Sequence[SpecifierSet]] | None = None,
    preferred: Mapping[str, Version] | None = None,
    wheels_first: bool = True,
) -> dict[str, str]:
    """What resolvelib picks through the provider of ``target``."""
    with prefetcher(index, [target]) as shared:
        chosen = provider(
            shared, target, constraints=constraints, preferred=preferred, wheels_first=wheels_first
        )
        return resolvelib_pins(chosen, reqs(*lines))


def test_the_newest_release_the_target_installs() -> None:
    index = FakeIndex()
    index.add("a", "3.0", tags=["cp312-cp312-manylinux_2_17_x86_64"])
    index.add("a", "2.0", requires_python=">=3.12")
    index.add("a", "1.0")
    assert pins(index, "a") == {"a": "1.0"}


def test_dependencies_follow_the_targets_markers() -> None:
    index = FakeIndex()
    index.add("a", "1.0", deps=["b; sys_platform == 'win32'", "c"])
    index.add("b", "1.0")
    index.add("c", "1.0")
    assert pins(index, "a") == {"a": "1.0", "c": "1.0"}
    assert pins(index, "a", target=WIN311) == {"a": "1.0", "b": "1.0", "c": "1.0"}


def test_extras_add_their_requirements_and_their_base() -> None:
    index = FakeIndex()
    index.add("a", "1.0", deps=["b; extra == 'x'"])
    index.add("b", "1.0")
    assert pins(index, "a[x]") == {
        "a": "1.0",
        identifier_of("a", frozenset({"x"})): "1.0",
        "b": "1.0",
    }


@pytest.mark.parametrize(("line", "version"), [("a", "1.0"), ("a==2.0", "2.0"), ("a===2.0", "2.0")])
def test_a_yanked_release_only_for_an_exact_pin(line: str, version: str) -> None:
    index = FakeIndex()
    index.add("a", "2.0", yanked=True)
    index.add("a", "1.0")
    assert pins(index, line) == {"a": version}


@pytest.mark.parametrize(("wheels_first", "version"), [(True, "1.0"), (False, "2.0")])
def test_wheels_first_orders_a_release_to_build_last(wheels_first: bool, version: str) -> None:
    index = FakeIndex()
    index.add("a", "2.0", sdist=True)
    index.add("a", "1.0")
    assert pins(index, "a", wheels_first=wheels_first) == {"a": version}


def test_constraints_narrow_and_preferences_come_first() -> None:
    index = FakeIndex()
    for version in ("3.0", "2.0", "1.0"):
        index.add("a", version)
    assert pins(index, "a", constraints={"a": [SpecifierSet("<3")]}) == {"a": "2.0"}
    assert pins(index, "a", preferred={"a": Version("1.0")}) == {"a": "1.0"}
    # a preference the requirements exclude is passed over
    assert pins(index, "a>=2", preferred={"a": Version("1.0")}) == {"a": "3.0"}


def test_backtracks_to_a_release_whose_dependencies_fit() -> None:
    index = FakeIndex()
    index.add("a", "2.0", deps=["b>=2"])
    index.add("a", "1.0", deps=["b"])
    index.add("b", "1.0")
    assert pins(index, "a") == {"a": "1.0", "b": "1.0"}


def test_a_project_no_index_has_is_named_with_its_reason() -> None:
    index = FakeIndex()
    index.add("a", "1.0", deps=["missing"])
    with prefetcher(index, [LINUX311]) as shared:
        target_provider = provider(shared, LINUX311)
        with pytest.raises(ResolutionImpossible):
            Resolver(target_provider, BaseReporter()).resolve(reqs("a"))
    assert "missing" in target_provider.unavailable
    assert "missing" in target_provider.unavailable["missing"]


def test_has_wheel() -> None:
    index = FakeIndex()
    index.add("a", "2.0", sdist=True)
    index.add("a", "1.0")
    by_version = {f.version: f for f in index.files["a"]}
    assert has_wheel([by_version["1.0"]])
    assert not has_wheel([by_version["2.0"]])
