"""One resolution for many targets: what a resolution asked, and whether another target agrees.

A resolution for one target is a function of the answers its provider gave: which releases of
each project the target can install (and whether they are yanked), which markers hold there,
which ``Requires-Python`` admit its interpreter.  Everything else (pages, metadata, the order of
candidates, constraints, preferences) is the same for every target of a run.  So when another
target gives the same answers to every question the first resolution asked, resolvelib would
take the same steps and reach the same result: it can be reused without running again.

:class:`RecordingProvider` writes down those answers while it resolves (:class:`Observations`)
and checks them for another target (:meth:`RecordingProvider.agrees`).  Forty-two default
targets usually fall into a handful of such groups (a few Python ranges where markers or
Requires-Python change the answer, times Windows / not Windows), so the closure runs a handful
of resolutions instead of forty-two.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from pypidl.plan.provider import TargetProvider

if TYPE_CHECKING:
    from packaging.markers import Marker
    from packaging.version import Version

    from pypidl.plan.prefetch import Signature, Table
    from pypidl.plan.provider import Candidate, Req

__all__ = ["FailedPasses", "Observations", "RecordingProvider", "resolve_shared"]


@dataclass
class Observations:
    """The target-dependent answers one resolution received."""

    #: project -> (version, every installable file yanked, a wheel among them) of each release
    #: the target installs
    tables: dict[str, Signature] = field(default_factory=dict)
    #: (marker text, extra) -> (the marker, whether it held)
    markers: dict[tuple[str, str], tuple[Marker, bool]] = field(default_factory=dict)
    #: Requires-Python specifier text -> whether it admitted the target
    pythons: dict[str, bool] = field(default_factory=dict)

    def update(self, other: Observations) -> None:
        """Add what ``other`` saw (asked of the same provider, or of one that agrees with it:
        where both asked, the answers are the same)."""
        self.tables = {**other.tables, **self.tables}
        self.markers = {**other.markers, **self.markers}
        self.pythons = {**other.pythons, **self.pythons}


@dataclass
class _FailedPass:
    reqs: tuple[Req, ...]
    sdist_ok: frozenset[str]
    constraints: Mapping[str, Sequence[object]]
    preferred: Mapping[str, Version]
    seen: Observations
    outcome: object


#: The wheels-only passes that failed, shared by the providers of one closure: a pass is a
#: resolution of its own (its requirements, the projects it may build, its answers), so a target
#: that agrees with a failed pass fails it the same way, even where the targets' later passes, and
#: so their whole resolutions, differ.
FailedPasses = list[_FailedPass]


class RecordingProvider(TargetProvider):
    """A :class:`TargetProvider` that can record what a resolution asked of it."""

    seen: Observations | None = None
    #: the closure's failed wheels-only passes (None: each pass runs)
    failed_passes: FailedPasses | None = None

    def record(self) -> Observations:
        """Start recording (replacing any earlier record) and return the record."""
        self.seen = Observations()
        return self.seen

    def stop(self) -> None:
        self.seen = None

    def table(self, name: str) -> Table:
        rows = super().table(name)
        seen = self.seen
        if seen is not None and name not in seen.tables:
            seen.tables[name] = rows.signature()
        return rows

    def applies(self, marker: Marker | None, extra: str = "") -> bool:
        found = super().applies(marker, extra)
        seen = self.seen
        if seen is not None and marker is not None:
            seen.markers.setdefault((str(marker), extra), (marker, found))
        return found

    def allows_python(self, spec: str | None) -> bool:
        found = super().allows_python(spec)
        seen = self.seen
        if seen is not None and spec:
            seen.pythons.setdefault(spec, found)
        return found

    def wheels_pass(
        self,
        reqs: Sequence[Req],
        run: Callable[[], R],
        failed: Callable[[R], bool],
    ) -> R:
        """``run()``, a wheels-only pass over ``reqs``, or the outcome of one that failed for
        another target asked the same and answering the same (see :data:`FailedPasses`)."""
        passes, outer = self.failed_passes, self.seen
        if passes is None or outer is None:
            return run()
        key = tuple(reqs)
        allowed = self.sdist_ok or frozenset()
        for earlier in passes:
            if (
                earlier.reqs == key
                and earlier.sdist_ok == allowed
                and earlier.constraints == self.constraints
                and earlier.preferred == self.preferred
                and self.agrees(earlier.seen)
            ):
                outer.update(earlier.seen)
                return earlier.outcome  # type: ignore[return-value]
        self.seen = mine = Observations()
        try:
            outcome = run()
        finally:
            self.seen = outer
            outer.update(mine)
        if failed(outcome):
            passes.append(
                _FailedPass(key, allowed, self.constraints, dict(self.preferred), mine, outcome)
            )
        return outcome

    def _signature(self, name: str) -> Signature:
        return self.table(name).signature()  # worked out once per table, for every target

    def agrees(self, other: Observations) -> bool:
        """Whether this target answers every question of ``other`` the same way."""
        recording, self.seen = self.seen, None
        try:
            for spec, found in other.pythons.items():
                if self.allows_python(spec) != found:
                    return False
            for (_text, extra), (marker, found) in other.markers.items():
                if self.applies(marker, extra) != found:
                    return False
            return all(
                self._signature(name) == signature for name, signature in other.tables.items()
            )
        finally:
            self.seen = recording


R = TypeVar("R")


def resolve_shared(
    providers: Sequence[RecordingProvider],
    requirements: Mapping[str, Sequence[Req]],
    solve: Callable[[RecordingProvider, Sequence[Req]], R],
    reuse: Callable[[R, RecordingProvider], R],
    *,
    solved: Callable[[R], Mapping[str, Candidate] | None],
    share: bool = True,
) -> tuple[dict[str, R], int]:
    """Resolve every provider's target, reusing a result wherever a target agrees.

    The first provider is resolved with the preferences it was given; its choices then join
    every other provider's preferences (where those say nothing), so the other targets take the
    same versions wherever those fit them, and the mirror keeps one version of a project
    wherever one will do.  Then each target either agrees with an earlier resolution run under
    those same preferences (same requirements, constraints and answers: see
    :meth:`RecordingProvider.agrees`), and gets a copy of its result, or is resolved itself.

    :param requirements: target label -> the requirements that apply there.
    :param solve: one target's resolution.
    :param reuse: an earlier result, made over for another target that agrees (a failure is
        told again in that target's terms).
    :param solved: the chosen candidates of a successful result (None for a failed one), for
        the preferences.
    :param share: False resolves every target on its own (for comparisons).
    :returns: label -> result, and how many resolutions ran.
    """
    results: dict[str, R] = {}
    earlier: list[tuple[RecordingProvider, Observations, R]] = []
    runs = 0
    for n, provider in enumerate(providers):
        label = provider.target.label
        mine = list(requirements.get(label, ()))
        if share and n > 0:
            found = next(
                (
                    result
                    for other, seen, result in earlier
                    if list(requirements.get(other.target.label, ())) == mine
                    and other.constraints == provider.constraints
                    and other.wheels_first == provider.wheels_first
                    and provider.agrees(seen)
                ),
                None,
            )
            if found is not None:
                results[label] = reuse(found, provider)
                continue
        seen = provider.record()
        try:
            result = solve(provider, mine)
        finally:
            provider.stop()
        runs += 1
        results[label] = result
        mapping = solved(result)
        if n == 0:
            if mapping is not None and len(providers) > 1:
                chosen = {c.name: c.version for c in mapping.values() if not c.extras}
                for other in providers[1:]:
                    other.preferred = {**chosen, **other.preferred}
            continue  # resolved under other preferences than the rest: not shared
        earlier.append((provider, seen, result))
    return results, runs
