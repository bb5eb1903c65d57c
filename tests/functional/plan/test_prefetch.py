"""The planner's walk ahead of the resolver, against a loopback index with latency."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from pypidl.config import NetworkSettings
from pypidl.plan.metadata import MetadataFetcher
from pypidl.plan.pages import IndexClient
from pypidl.plan.planner import Planner
from pypidl.plan.prefetch import Prefetcher, Want
from pypidl.plan.targets import parse_targets
from pypidl.sources import Mirror
from tests.lib.server import Delay, IndexServer
from tests.lib.wheels import make_wheel

NET = NetworkSettings(user_agent="pypidl-tests", retries=0, connect_timeout=5, read_timeout=10)
TARGETS = parse_targets(python_versions=("3.8", "3.12"), platforms=("linux-x86_64", "win-amd64"))


@pytest.fixture
def tree_index(index_server: Callable[..., IndexServer], wheel_dir: Path) -> IndexServer:
    """app -> lib-a, lib-b; lib-a -> deep; win-only on Windows; never-py2 on Python 2 only;
    deep 2.0 needs Python 3.10, so 3.8 takes deep 1.0."""
    server = index_server()
    wheels = [
        make_wheel(
            wheel_dir,
            "app",
            "1.0",
            requires_dist=[
                "lib-a>=1",
                "lib-b",
                'win-only; sys_platform == "win32"',
                'never-py2; python_version < "3"',
            ],
        ),
        make_wheel(wheel_dir, "lib-a", "1.0", requires_dist=["deep"]),
        make_wheel(wheel_dir, "lib-a", "2.0", requires_dist=["deep>=1"]),
        make_wheel(wheel_dir, "lib-b", "1.0"),
        make_wheel(wheel_dir, "deep", "1.0"),
        make_wheel(wheel_dir, "deep", "2.0", requires_python=">=3.10"),
        make_wheel(wheel_dir, "win-only", "1.0"),
        make_wheel(wheel_dir, "never-py2", "1.0"),
    ]
    for wheel in wheels:
        rp = ">=3.10" if wheel.name.startswith("deep-2.0") else None
        server.add_file(wheel, requires_python=rp)
    server.fail_always("*", Delay(0.05))
    return server


def test_walk_reads_the_closure_for_every_target_before_any_resolver_asks(
    tree_index: IndexServer,
) -> None:
    client = IndexClient([Mirror.from_index_url(tree_index.simple_url)], NET)
    with MetadataFetcher(NET) as fetcher, Prefetcher(client.project, fetcher, TARGETS) as walk:
        walk.follow([Want.of(Requirement("app"))])
        assert walk.settle(timeout=30)
        pages = sorted(r.path for r in tree_index.requests_matching("/simple/*"))
        sidecars = sorted(
            r.path.rsplit("/", 1)[-1] for r in tree_index.requests_matching("*.metadata")
        )
        # what a resolver then asks costs no request
        before = len(tree_index.requests)
        assert walk.metadata("deep", Version("1.0")).project == "deep"
        assert len(tree_index.requests) == before

    assert pages == [f"/simple/{n}/" for n in ("app", "deep", "lib-a", "lib-b", "win-only")]
    # the newest release of each project, and the older deep for 3.8; nothing twice
    assert sidecars == [
        "app-1.0-py3-none-any.whl.metadata",
        "deep-1.0-py3-none-any.whl.metadata",
        "deep-2.0-py3-none-any.whl.metadata",
        "lib_a-2.0-py3-none-any.whl.metadata",
        "lib_b-1.0-py3-none-any.whl.metadata",
        "win_only-1.0-py3-none-any.whl.metadata",
    ]


def test_requires_python_only_in_metadata_sends_the_walk_to_the_release_before(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    """The page says nothing; deep 2.0's METADATA needs 3.10: 3.8 will backtrack to 1.0."""
    server = index_server()
    server.add_file(make_wheel(wheel_dir, "app", "1.0", requires_dist=["deep"]))
    server.add_file(make_wheel(wheel_dir, "deep", "1.0"))
    server.add_file(make_wheel(wheel_dir, "deep", "2.0", requires_python=">=3.10"))
    client = IndexClient([Mirror.from_index_url(server.simple_url)], NET)
    with MetadataFetcher(NET) as fetcher, Prefetcher(client.project, fetcher, TARGETS) as walk:
        walk.follow([Want.of(Requirement("app"))])
        assert walk.settle(timeout=30)
    assert server.requests_matching("*/deep-1.0-py3-none-any.whl.metadata")


def test_walk_has_several_requests_in_flight_and_stays_within_its_bound(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = index_server()
    names = [f"leaf-{n}" for n in range(8)]
    for name in names:
        server.add_file(make_wheel(wheel_dir, name, "1.0"))
    server.fail_always("*", Delay(0.2))

    def overlap(in_flight: int) -> int:
        """The most requests the server had at once while the walk ran."""
        server.clear_requests()
        client = IndexClient([Mirror.from_index_url(server.simple_url)], NET)
        fetcher = MetadataFetcher(NET)
        with fetcher, Prefetcher(client.project, fetcher, TARGETS, in_flight=in_flight) as walk:
            walk.follow(Want.of(Requirement(n)) for n in names)
            assert walk.settle(timeout=60)
        starts = sorted(r.time for r in server.requests)
        return max(sum(1 for t in starts if s <= t < s + 0.15) for s in starts)

    assert overlap(1) == 1
    assert overlap(4) == 4


def test_a_missing_project_stops_only_its_branch(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = index_server()
    server.add_file(make_wheel(wheel_dir, "app", "1.0", requires_dist=["gone", "here"]))
    server.add_file(make_wheel(wheel_dir, "here", "1.0"))
    client = IndexClient([Mirror.from_index_url(server.simple_url)], NET)
    with MetadataFetcher(NET) as fetcher, Prefetcher(client.project, fetcher, TARGETS) as walk:
        walk.follow([Want.of(Requirement("app"))])
        assert walk.settle(timeout=30)
        assert server.requests_matching("*/here-1.0-py3-none-any.whl.metadata")
        with pytest.raises(Exception, match="gone"):
            walk.releases("gone")


def test_further_requirement_sources_reuse_the_runs_caches(tree_index: IndexServer) -> None:
    """Planner.resolve is where other requirement sources (a build environment) enter: what
    the run read already is not read again."""
    planner = Planner([Mirror.from_index_url(tree_index.simple_url)], NET, TARGETS)
    try:
        first = planner.resolve([Requirement("app")])
        before = len(tree_index.requests)
        again = planner.resolve([Requirement("lib-a"), Requirement("deep")], TARGETS[:1])
        assert len(tree_index.requests) == before
    finally:
        planner.close()
    assert not first.problems
    assert again.versions["deep"] == {"1.0": frozenset({TARGETS[0].label})}


def test_a_closed_walk_is_freed_by_reference_counting_alone(tree_index: IndexServer) -> None:
    """What the walk read is freed when the last reference goes, not left to the cyclic
    collector, which would walk every object of a large plan to find it."""
    client = IndexClient([Mirror.from_index_url(tree_index.simple_url)], NET)
    fetcher = MetadataFetcher(NET)
    walk = Prefetcher(client.project, fetcher, TARGETS)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        walk.follow([Want.of(Requirement("app"))])
        assert walk.settle(timeout=30)
        assert walk.metadata("deep", Version("1.0")).project == "deep"
        walk.close()
        gone = weakref.ref(walk)
        del walk
        # the metadata source outlives the walk and keeps its futures: they must not keep it
        assert gone() is None
    finally:
        fetcher.close()
        if was_enabled:
            gc.enable()
