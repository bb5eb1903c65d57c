"""One target's resolution over a :class:`~tests.lib.fake_index.FakeIndex`, with resolvelib."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from resolvelib import BaseReporter, Resolver

from pypidl.plan.prefetch import Prefetcher
from pypidl.plan.provider import PYTHON, Candidate, Req, TargetProvider
from pypidl.plan.targets import Target
from tests.lib.fake_index import FakeIndex

__all__ = ["prefetcher", "provider", "reqs", "resolvelib_pins", "versions"]


@contextmanager
def prefetcher(index: FakeIndex, targets: Sequence[Target]) -> Iterator[Prefetcher]:
    """The shared caches every provider of a run reads through, closed on exit."""
    with Prefetcher(index.page, index, targets, in_flight=4) as shared:
        yield shared


def reqs(*lines: str) -> list[Req]:
    return [Req.of(Requirement(line)) for line in lines]


def versions(mapping: Mapping[str, Candidate]) -> dict[str, str]:
    """identifier -> version of a resolution, the interpreter left out."""
    return {key: str(c.version) for key, c in mapping.items() if key != PYTHON}


def resolvelib_pins(provider: TargetProvider, requirements: Sequence[Req]) -> dict[str, str]:
    return versions(Resolver(provider, BaseReporter()).resolve(requirements).mapping)


def provider(
    shared: Prefetcher,
    target: Target,
    *,
    constraints: Mapping[str, Sequence[SpecifierSet]] | None = None,
    preferred: Mapping[str, Version] | None = None,
    wheels_first: bool = True,
) -> TargetProvider:
    return TargetProvider(
        shared,
        target,
        constraints=constraints or {},
        preferred=preferred or {},
        wheels_first=wheels_first,
    )
