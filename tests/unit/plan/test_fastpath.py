"""_fastpath: each project's first candidate, or None where resolvelib must backtrack."""

from __future__ import annotations

from pypidl.plan._fastpath import first_fit
from pypidl.plan.targets import parse_targets
from tests.lib.fake_index import FakeIndex
from tests.lib.fake_resolution import prefetcher, provider, reqs, resolvelib_pins, versions

(LINUX311,) = parse_targets(python_versions=["3.11"], platforms=["linux-x86_64"])


def test_without_a_conflict_it_is_what_resolvelib_picks() -> None:
    index = FakeIndex()
    index.add("a", "2.0", deps=["b>=1", "c; python_version < '3.10'"])
    index.add("a", "1.0")
    index.add("b", "1.5", deps=["d"])
    index.add("b", "1.0")
    index.add("c", "1.0")
    index.add("d", "0.9", requires_python=">=3.8")
    with prefetcher(index, [LINUX311]) as shared:
        found = first_fit(provider(shared, LINUX311), reqs("a", "b<2"))
        assert found is not None
        assert versions(found) == {"a": "2.0", "b": "1.5", "d": "0.9"}
        assert versions(found) == resolvelib_pins(provider(shared, LINUX311), reqs("a", "b<2"))


def test_a_later_requirement_the_first_pick_breaks_hands_over_to_resolvelib() -> None:
    index = FakeIndex()
    index.add("a", "1.0", deps=["b", "c"])
    index.add("b", "2.0")
    index.add("b", "1.0")
    index.add("c", "1.0", deps=["b<2"])  # placed after b 2.0 was taken
    with prefetcher(index, [LINUX311]) as shared:
        assert first_fit(provider(shared, LINUX311), reqs("a")) is None
        # which backtracks to what fits
        assert resolvelib_pins(provider(shared, LINUX311), reqs("a"))["b"] == "1.0"


def test_no_candidate_is_none() -> None:
    index = FakeIndex()
    index.add("a", "1.0", deps=["b>=5"])
    index.add("b", "1.0")
    with prefetcher(index, [LINUX311]) as shared:
        assert first_fit(provider(shared, LINUX311), reqs("a")) is None
