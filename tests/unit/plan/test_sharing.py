"""_sharing: one resolution reused by every target that answers its questions the same way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from resolvelib import BaseReporter, Resolver

from pypidl.plan._sharing import RecordingProvider, resolve_shared
from pypidl.plan.provider import Candidate, Req
from pypidl.plan.targets import Target, parse_targets
from tests.lib.fake_index import FakeIndex
from tests.lib.fake_resolution import prefetcher, reqs, versions

Mapped = Mapping[str, Candidate]


def solve(provider: RecordingProvider, requirements: Sequence[Req]) -> Mapped:
    return Resolver(provider, BaseReporter()).resolve(requirements).mapping


def run(
    index: FakeIndex, targets: Sequence[Target], *lines: str, share: bool = True
) -> tuple[dict[str, dict[str, str]], int]:
    """label -> pins, and how many resolutions ran."""
    with prefetcher(index, targets) as shared:
        providers = [RecordingProvider(shared, t, constraints={}, preferred={}) for t in targets]
        results, runs = resolve_shared(
            providers,
            {t.label: reqs(*lines) for t in targets},
            solve,
            lambda result, _provider: result,
            solved=lambda result: result,
            share=share,
        )
    return {label: versions(mapping) for label, mapping in results.items()}, runs


def test_targets_that_answer_alike_share_one_resolution() -> None:
    index = FakeIndex()
    index.add("a", "1.0", deps=["b"])
    index.add("b", "1.0")
    targets = parse_targets(
        python_versions=["3.9", "3.10", "3.11", "3.12"], platforms=["linux-x86_64"]
    )
    results, runs = run(index, targets, "a")
    # the first resolves under its own preferences; the others share one run
    assert runs == 2
    assert all(pins == {"a": "1.0", "b": "1.0"} for pins in results.values())
    assert run(index, targets, "a", share=False)[1] == len(targets)


def test_a_marker_that_holds_elsewhere_is_resolved_again() -> None:
    index = FakeIndex()
    index.add("a", "1.0", deps=["b; python_version < '3.11'"])
    index.add("b", "1.0")
    targets = parse_targets(
        python_versions=["3.9", "3.10", "3.11", "3.12"], platforms=["linux-x86_64"]
    )
    results, runs = run(index, targets, "a")
    assert runs == 3  # the first, 3.10 (b), 3.11 (no b); 3.12 agrees with 3.11
    with_b = sorted(label for label, pins in results.items() if "b" in pins)
    assert with_b == ["cp310-linux-x86_64", "cp39-linux-x86_64"]


def test_the_first_targets_choices_become_the_others_preferences() -> None:
    index = FakeIndex()
    index.add("a", "2.0", requires_python=">=3.10")
    index.add("a", "1.0")
    old, new = parse_targets(python_versions=["3.9", "3.11"], platforms=["linux-x86_64"])
    results, _ = run(index, [old, new], "a")
    # one version of a serves both, where it fits both
    assert results == {old.label: {"a": "1.0"}, new.label: {"a": "1.0"}}
    alone, _ = run(index, [new], "a")
    assert alone == {new.label: {"a": "2.0"}}
