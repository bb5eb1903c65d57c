"""The closure shares work across targets, keeps one version where one fits, and explains."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from pypidl.config import NetworkSettings
from pypidl.plan import closure
from pypidl.plan.closure import ClosureResult, resolve_closure
from pypidl.plan.metadata import MetadataFetcher
from pypidl.plan.pages import IndexClient
from pypidl.plan.targets import Target, parse_targets
from pypidl.sources import Mirror
from tests.lib.server import Delay, IndexServer
from tests.lib.wheels import make_wheel

NET = NetworkSettings(user_agent="pypidl-tests", retries=0, connect_timeout=5, read_timeout=10)


def resolve(
    server: IndexServer, requirements: Sequence[str], ts: Sequence[Target], **kwargs: Any
) -> ClosureResult:
    client = IndexClient([Mirror.from_index_url(server.simple_url)], NET)
    with MetadataFetcher(NET) as fetcher:
        return resolve_closure(
            [Requirement(r) for r in requirements],
            ts,
            pages=client.project,
            metadata=fetcher,
            **kwargs,
        )


def labels(ts: Sequence[Target], keep: Callable[[Target], bool] = lambda _t: True) -> frozenset:
    return frozenset(t.label for t in ts if keep(t))


@pytest.fixture
def marked_index(index_server: Callable[..., IndexServer], wheel_dir: Path) -> IndexServer:
    """Markers on Python and platform, a Requires-Python step, an extra."""
    server = index_server()
    for wheel in (
        make_wheel(
            wheel_dir,
            "app",
            "1.0",
            requires_dist=[
                'tomli>=1; python_version < "3.11"',
                'colorama; sys_platform == "win32"',
                'fastlib; extra == "fast"',
                "lib",
            ],
            provides_extra=["fast"],
        ),
        make_wheel(wheel_dir, "tomli", "2.0.1"),
        make_wheel(wheel_dir, "colorama", "0.4.6"),
        make_wheel(wheel_dir, "fastlib", "3.0", requires_dist=['colorama; os_name == "nt"']),
        make_wheel(wheel_dir, "lib", "1.5"),
    ):
        server.add_file(wheel)
    server.add_file(
        make_wheel(wheel_dir, "lib", "2.0", requires_python=">=3.10"), requires_python=">=3.10"
    )
    return server


def test_shared_resolutions_give_what_one_resolution_per_target_gives(
    marked_index: IndexServer,
) -> None:
    ts = parse_targets()
    shared = resolve(marked_index, ["app[fast]"], ts)
    alone = resolve(marked_index, ["app[fast]"], ts, share=False)

    assert not shared.problems
    assert shared.versions == alone.versions
    assert shared.pins == alone.pins
    assert alone.resolutions == len(ts) == 39
    # 3.8-3.9 / 3.10 / 3.11+ (tomli, lib) times Windows / the rest (colorama), plus the first
    # target's own resolution, which runs before the others prefer its versions
    assert shared.resolutions <= 7
    assert shared.versions["lib"] == {
        "1.5": labels(ts, lambda t: t.python < (3, 10)),
        "2.0": labels(ts, lambda t: t.python >= (3, 10)),
    }


def test_one_version_for_every_target_where_it_fits(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    """3.12 must take y 1.0 (pin-y asks y<2 there); 3.8 could take 2.0 but 1.0 fits too."""
    server = index_server()
    server.add_file(
        make_wheel(wheel_dir, "app", "1.0", requires_dist=["y", 'pin-y; python_version >= "3.12"'])
    )
    server.add_file(make_wheel(wheel_dir, "pin-y", "1.0", requires_dist=["y<2"]))
    server.add_file(make_wheel(wheel_dir, "y", "1.0"))
    server.add_file(make_wheel(wheel_dir, "y", "2.0"))
    ts = parse_targets(python_versions=("3.8", "3.12"), platforms=("linux-x86_64", "win-amd64"))
    sel = resolve(server, ["app"], ts)
    assert not sel.problems
    assert sel.versions["y"] == {"1.0": labels(ts)}
    assert sel.multi_version == {}


def test_projects_needing_more_than_one_version_are_counted_with_the_reason(
    marked_index: IndexServer, index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    ts = parse_targets(python_versions=("3.8", "3.12"), platforms=("linux-x86_64",))
    sel = resolve(marked_index, ["app"], ts)
    assert set(sel.versions["lib"]) == {"1.5", "2.0"}
    assert sel.multi_version == {"lib": "Requires-Python"}

    server = index_server()
    server.add_file(
        make_wheel(wheel_dir, "app", "1.0", requires_dist=["y", 'pin-y; python_version < "3.12"'])
    )
    server.add_file(make_wheel(wheel_dir, "pin-y", "1.0", requires_dist=["y<2"]))
    server.add_file(make_wheel(wheel_dir, "y", "1.0"))
    server.add_file(make_wheel(wheel_dir, "y", "2.0"))
    sel = resolve(server, ["app"], ts)
    assert sel.versions["y"] == {"1.0": labels(ts[:1]), "2.0": labels(ts[1:])}
    assert sel.multi_version == {"y": "requirements that differ by marker"}


@pytest.mark.parametrize("rounds", [closure.MAX_ROUNDS, 3])
def test_a_failed_resolution_is_one_line_naming_the_project_and_why(
    index_server: Callable[..., IndexServer],
    wheel_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    rounds: int,
) -> None:
    """Every release of ``a`` needs ``winlib``, which has no file for Linux: the resolver
    backtracks through all of them.  Whether it finishes or is cut short (``rounds=3``), it
    says what is missing once, not a round count."""
    server = index_server()
    server.add_file(make_wheel(wheel_dir, "app", "1.0", requires_dist=["a"]))
    for n in range(1, 13):
        server.add_file(make_wheel(wheel_dir, "a", f"1.{n}", requires_dist=["winlib>=1"]))
    server.add_file(make_wheel(wheel_dir, "winlib", "1.0", tag="py3-none-win_amd64"))
    ts = parse_targets(python_versions=("3.12",), platforms=("linux-x86_64", "win-amd64"))
    monkeypatch.setattr(closure, "MAX_ROUNDS", rounds)
    sel = resolve(server, ["app"], ts)

    assert sel.versions["winlib"] == {"1.0": frozenset({"cp312-win-amd64"})}
    linux = [p for p in sel.problems if p.target == "cp312-linux-x86_64"]
    assert len(linux) == 1
    reason = linux[0].reason
    assert "too deep" not in reason
    assert "winlib" in reason
    assert "no file for cp312-linux-x86_64" in reason


def test_requires_python_failure_names_the_release(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = index_server()
    server.add_file(
        make_wheel(wheel_dir, "new", "1.0", requires_python=">=3.12"), requires_python=">=3.12"
    )
    ts = parse_targets(python_versions=("3.8", "3.12"), platforms=("linux-x86_64",))
    sel = resolve(server, ["new"], ts)
    assert sel.versions["new"] == {"1.0": frozenset({"cp312-linux-x86_64"})}
    (problem,) = sel.problems
    assert problem.target == "cp38-linux-x86_64"
    assert "requires Python >=3.12" in problem.reason


def test_backtracking_reads_the_next_releases_ahead(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    """Every release of ``a`` but the oldest needs a project no index has: resolvelib tries them
    newest first, and their metadata is read a few at a time, not one round trip each."""
    server = index_server()
    server.add_file(make_wheel(wheel_dir, "app", "1.0", requires_dist=["a"]))
    server.add_file(make_wheel(wheel_dir, "a", "1.0"))
    for n in range(1, 9):
        server.add_file(make_wheel(wheel_dir, "a", f"1.{n}", requires_dist=["gone>=1"]))
    server.fail_always("*.metadata", Delay(0.2))
    ts = parse_targets(python_versions=("3.12",), platforms=("linux-x86_64",))
    sel = resolve(server, ["app"], ts)
    assert not sel.problems
    assert sel.versions["a"] == {"1.0": labels(ts)}
    starts = sorted(r.time for r in server.requests_matching("*/a-1.*.metadata"))
    assert len(starts) == 9
    most_at_once = max(sum(1 for t in starts if s <= t < s + 0.15) for s in starts)
    assert most_at_once >= 3


def test_targets_that_fail_alike_share_the_resolution_and_each_is_named(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = index_server()
    server.add_file(make_wheel(wheel_dir, "app", "1.0", requires_dist=["new"]))
    server.add_file(
        make_wheel(wheel_dir, "new", "1.0", requires_python=">=3.12"), requires_python=">=3.12"
    )
    ts = parse_targets(python_versions=("3.8", "3.9", "3.12"), platforms=("linux-x86_64",))
    sel = resolve(server, ["app"], ts)
    # 3.12 first; 3.9 fails; 3.8 answers as 3.9 did and reuses that failure
    assert sel.resolutions == 2
    assert sel.versions["new"] == {"1.0": frozenset({"cp312-linux-x86_64"})}
    by_target = {p.target: p.reason for p in sel.problems}
    assert set(by_target) == {"cp38-linux-x86_64", "cp39-linux-x86_64"}
    for label, reason in by_target.items():
        assert f"cannot be installed on {label}" in reason
        assert "requires Python >=3.12" in reason


def test_all_versions_growth_is_not_counted_as_projects_needing_several_versions(
    marked_index: IndexServer,
) -> None:
    ts = parse_targets(python_versions=("3.12",), platforms=("linux-x86_64",))
    sel = resolve(marked_index, ["lib"], ts, all_versions=True)
    assert set(sel.versions["lib"]) == {"1.5", "2.0"}
    assert sel.multi_version == {}
