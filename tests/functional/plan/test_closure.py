"""The per-target closure against a loopback index: markers, tags, Requires-Python, pins."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Callable

import pytest
from packaging.requirements import Requirement

from pypidl.config import NetworkSettings
from pypidl.plan.closure import UNKNOWN_DEPENDENCIES, ClosureResult, resolve_closure
from pypidl.plan.metadata import MetadataFetcher
from pypidl.plan.pages import IndexClient
from pypidl.plan.targets import Target, parse_targets
from pypidl.sources import Mirror
from tests.lib.server import IndexServer
from tests.lib.wheels import make_pkg_info_sdist, make_sdist, make_wheel

NET = NetworkSettings(user_agent="pypidl-tests", retries=0, connect_timeout=5, read_timeout=10)

PY38_311 = ("3.8", "3.11")
PLATFORMS = ("linux-x86_64", "linux-aarch64", "win-amd64", "macos-arm64")


def targets(
    pythons: Sequence[str] = PY38_311, platforms: Sequence[str] = PLATFORMS
) -> tuple[Target, ...]:
    return parse_targets(python_versions=pythons, platforms=platforms)


def labels(
    ts: Iterable[Target], keep: Callable[[Target], bool] = lambda _t: True
) -> frozenset[str]:
    return frozenset(t.label for t in ts if keep(t))


def resolve(
    server: IndexServer,
    requirements: Sequence[str],
    ts: Sequence[Target],
    **kwargs: Any,
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


@pytest.fixture
def conditional_index(index_server: Callable[..., IndexServer], wheel_dir: Path) -> IndexServer:
    server = index_server()
    for wheel in (
        make_wheel(
            wheel_dir,
            "app",
            "1.0",
            requires_dist=[
                'tomli>=1; python_version < "3.11"',
                'colorama; sys_platform == "win32"',
                'armlib; platform_machine == "aarch64"',
                'fastlib; extra == "fast"',
                'oldpy; python_version < "3.0"',
                "core",
            ],
            provides_extra=["fast"],
        ),
        make_wheel(wheel_dir, "tomli", "2.0.1", requires_python=">=3.7"),
        make_wheel(wheel_dir, "colorama", "0.4.6"),
        make_wheel(wheel_dir, "armlib", "1.0"),
        make_wheel(wheel_dir, "fastlib", "3.0", requires_dist=['colorama; os_name == "nt"']),
        make_wheel(wheel_dir, "oldpy", "1.0"),
        make_wheel(wheel_dir, "core", "1.0"),
    ):
        server.add_file(wheel)
    return server


def test_conditional_dependencies_land_exactly_where_needed(
    conditional_index: IndexServer,
) -> None:
    ts = targets()
    sel = resolve(conditional_index, ["app"], ts)

    assert not sel.problems
    assert sel.versions["app"] == {"1.0": labels(ts)}
    assert sel.versions["core"] == {"1.0": labels(ts)}
    assert sel.versions["tomli"] == {"2.0.1": labels(ts, lambda t: t.python == (3, 8))}
    assert sel.versions["colorama"] == {"0.4.6": labels(ts, lambda t: t.platform == "win-amd64")}
    assert sel.versions["armlib"] == {"1.0": labels(ts, lambda t: t.platform == "linux-aarch64")}
    assert "fastlib" not in sel.versions, "an extra nobody asked for is not mirrored"
    assert "oldpy" not in sel.versions, "a dependency no target needs is not mirrored"
    assert sel.pins["cp38-win-amd64"]["tomli"] == "2.0.1"
    assert "tomli" not in sel.pins["cp311-linux-x86_64"]


def test_extra_brings_its_dependencies(conditional_index: IndexServer) -> None:
    ts = targets()
    sel = resolve(conditional_index, ["app[fast]"], ts)

    assert not sel.problems
    assert sel.extras == {"app": frozenset({"fast"})}
    assert sel.versions["fastlib"] == {"3.0": labels(ts)}
    # fastlib's own marker (os_name == "nt") adds nothing new: colorama stays Windows-only
    assert sel.versions["colorama"] == {"0.4.6": labels(ts, lambda t: t.platform == "win-amd64")}


def test_requirement_marker_is_judged_per_target(conditional_index: IndexServer) -> None:
    ts = targets()
    sel = resolve(conditional_index, ['colorama; platform_system == "Windows"', "core"], ts)
    assert sel.versions["colorama"] == {"0.4.6": labels(ts, lambda t: t.platform == "win-amd64")}
    assert sel.versions["core"] == {"1.0": labels(ts)}


def test_each_page_is_fetched_once_across_all_default_targets(
    conditional_index: IndexServer,
) -> None:
    ts = parse_targets()
    assert len(ts) == 39
    started = time.monotonic()
    sel = resolve(conditional_index, ["app[fast]"], ts)
    elapsed = time.monotonic() - started

    assert not sel.problems
    assert set(sel.versions) == {"app", "core", "tomli", "colorama", "armlib", "fastlib"}
    pages = [r.path for r in conditional_index.requests if r.path.startswith("/simple/")]
    assert sorted(pages) == sorted(set(pages)), "a project page was fetched twice"
    sidecars = [r.path for r in conditional_index.requests if r.path.endswith(".metadata")]
    assert sorted(sidecars) == sorted(set(sidecars)), "a release's metadata was fetched twice"
    assert elapsed < 20


def test_dependency_only_built_for_cp38(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = index_server()
    server.add_file(
        make_wheel(wheel_dir, "app", "1.0", requires_dist=['legacy; python_version < "3.9"'])
    )
    server.add_file(make_wheel(wheel_dir, "legacy", "0.9", tag="cp38-cp38-manylinux_2_17_x86_64"))
    server.add_file(make_wheel(wheel_dir, "legacy", "0.9", tag="cp38-cp38-win_amd64"))
    ts = targets(PY38_311, ("linux-x86_64", "win-amd64"))
    sel = resolve(server, ["app"], ts)
    assert not sel.problems
    assert sel.versions["legacy"] == {"0.9": labels(ts, lambda t: t.python == (3, 8))}


@pytest.mark.parametrize("on_page", [True, False])
def test_requires_python_picks_an_older_version_for_old_pythons(
    index_server: Callable[..., IndexServer], wheel_dir: Path, *, on_page: bool
) -> None:
    """``on_page=False``: only the wheel's METADATA says it, so the resolver must backtrack."""
    server = index_server()
    server.add_file(make_wheel(wheel_dir, "app", "1.0", requires_dist=["lib"]))
    server.add_file(make_wheel(wheel_dir, "lib", "1.5"))
    newest = make_wheel(wheel_dir, "lib", "2.0", requires_python=">=3.9")
    server.add_file(newest, requires_python=">=3.9" if on_page else None)
    ts = targets()
    sel = resolve(server, ["app"], ts)
    assert not sel.problems
    assert sel.versions["lib"] == {
        "1.5": labels(ts, lambda t: t.python == (3, 8)),
        "2.0": labels(ts, lambda t: t.python == (3, 11)),
    }


def test_impossible_pin_names_the_target_and_others_proceed(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = index_server()
    server.add_file(make_wheel(wheel_dir, "lib", "1.5"))
    server.add_file(
        make_wheel(wheel_dir, "lib", "2.0", requires_python=">=3.9"), requires_python=">=3.9"
    )
    server.add_file(make_wheel(wheel_dir, "core", "1.0"))
    ts = targets(PY38_311, ("linux-x86_64",))
    sel = resolve(server, ["lib==2.0", "core"], ts)

    assert sel.versions["lib"] == {"2.0": frozenset({"cp311-linux-x86_64"})}
    # the rest of the requirements still reach the failing target
    assert sel.versions["core"] == {"1.0": labels(ts)}
    assert len(sel.problems) == 1
    problem = sel.problems[0]
    assert problem.target == "cp38-linux-x86_64"
    assert problem.project == "lib"
    assert problem.requirement == "lib==2.0"
    assert "requires Python >=3.9" in problem.reason


def test_pin_without_a_file_for_the_platform(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = index_server()
    server.add_file(make_wheel(wheel_dir, "native", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64"))
    ts = targets(("3.11",), ("linux-x86_64", "win-amd64"))
    sel = resolve(server, ["native==1.0"], ts)
    assert sel.versions["native"] == {"1.0": frozenset({"cp311-linux-x86_64"})}
    assert [p.target for p in sel.problems] == ["cp311-win-amd64"]
    assert "has no file for cp311-win-amd64" in sel.problems[0].reason


def test_missing_project_is_a_problem(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = index_server()
    server.add_file(make_wheel(wheel_dir, "app", "1.0", requires_dist=["ghost>=1"]))
    ts = targets(("3.11",), ("linux-x86_64",))
    sel = resolve(server, ["app"], ts)
    assert [(p.project, p.target) for p in sel.problems] == [("ghost", "cp311-linux-x86_64")]
    assert "required by app 1.0" in sel.problems[0].reason
    assert "no index has a project named" in sel.problems[0].reason


def test_host_pins_are_preferred_where_they_fit(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = index_server()
    for version in ("1.0", "1.1", "2.0"):
        server.add_file(make_wheel(wheel_dir, "lib", version))
    server.add_file(make_wheel(wheel_dir, "app", "1.0", requires_dist=["lib>=1.1"]))
    ts = targets()
    sel = resolve(server, ["app"], ts, preferred={"lib": "1.1"})
    assert sel.versions["lib"] == {"1.1": labels(ts)}
    sel = resolve(server, ["app"], ts, preferred={"lib": "1.0"})  # does not fit: newest wins
    assert sel.versions["lib"] == {"2.0": labels(ts)}


def test_constraints_narrow_every_target(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = index_server()
    for version in ("1.0", "2.0"):
        server.add_file(make_wheel(wheel_dir, "lib", version))
    server.add_file(make_wheel(wheel_dir, "app", "1.0", requires_dist=["lib"]))
    ts = targets()
    sel = resolve(server, ["app"], ts, constraints=[Requirement("lib<2")])
    assert sel.versions["lib"] == {"1.0": labels(ts)}
    assert "app" in sel.versions


def test_yanked_only_when_pinned(index_server: Callable[..., IndexServer], wheel_dir: Path) -> None:
    server = index_server()
    server.add_file(make_wheel(wheel_dir, "lib", "1.0"))
    server.add_file(make_wheel(wheel_dir, "lib", "2.0"), yanked="broken")
    ts = targets(("3.11",), ("linux-x86_64",))
    assert resolve(server, ["lib"], ts).versions["lib"] == {"1.0": labels(ts)}
    assert resolve(server, ["lib==2.0"], ts).versions["lib"] == {"2.0": labels(ts)}


def test_prereleases_only_when_asked_or_alone(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = index_server()
    server.add_file(make_wheel(wheel_dir, "lib", "1.0"))
    server.add_file(make_wheel(wheel_dir, "lib", "2.0b1"))
    server.add_file(make_wheel(wheel_dir, "pre", "0.1a1"))
    ts = targets(("3.11",), ("linux-x86_64",))
    assert resolve(server, ["lib"], ts).versions["lib"] == {"1.0": labels(ts)}
    assert resolve(server, ["lib>=2.0b1"], ts).versions["lib"] == {"2.0b1": labels(ts)}
    assert resolve(server, ["pre"], ts).versions["pre"] == {"0.1a1": labels(ts)}


def _dynamic_sdist(directory: Path, name: str, version: str) -> Path:
    """An sdist whose PKG-INFO (Metadata-Version 2.1) cannot be trusted for dependencies."""
    pkg_info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nRequires-Dist: six\n\n"
    return make_pkg_info_sdist(directory, name, version, pkg_info)


def test_sdist_only_dependency_with_unknown_dependencies_is_a_warning(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = index_server()
    server.add_file(make_wheel(wheel_dir, "app", "1.0", requires_dist=["srconly"]))
    server.add_file(_dynamic_sdist(wheel_dir, "srconly", "1.0"))
    ts = targets(("3.11",), ("linux-x86_64", "win-amd64"))
    sel = resolve(server, ["app"], ts)
    assert sel.versions["srconly"] == {"1.0": labels(ts)}, "an sdist is installable"
    assert "six" not in sel.versions, "dependencies of dynamic metadata are not guessed"
    assert {p.target for p in sel.problems} == labels(ts)
    assert all(p.project == "srconly" for p in sel.problems)
    assert all(p.reason.startswith(UNKNOWN_DEPENDENCIES) for p in sel.problems)
    assert all(p.severity == "warning" for p in sel.problems)


def test_sdist_with_static_metadata_brings_its_dependencies(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = index_server()
    server.add_file(make_sdist(wheel_dir, "srconly", "1.0", requires_dist=["six"]))
    server.add_file(make_wheel(wheel_dir, "six", "1.16.0"))
    ts = targets(("3.11",), ("linux-x86_64",))
    sel = resolve(server, ["srconly"], ts)
    assert not sel.problems
    assert sel.versions["six"] == {"1.16.0": labels(ts)}


def test_all_versions_brings_each_versions_own_closure(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> None:
    server = index_server()
    server.add_file(make_wheel(wheel_dir, "app", "1.0", requires_dist=["olddep"]))
    server.add_file(make_wheel(wheel_dir, "app", "2.0", requires_dist=["newdep"]))
    server.add_file(
        make_wheel(wheel_dir, "app", "3.0", requires_python=">=3.9", requires_dist=["newdep"]),
        requires_python=">=3.9",
    )
    server.add_file(make_wheel(wheel_dir, "app", "0.1", tag="py2-none-any"))
    server.add_file(make_wheel(wheel_dir, "olddep", "1.0"))
    server.add_file(make_wheel(wheel_dir, "newdep", "1.0"))
    ts = targets(PY38_311, ("linux-x86_64",))
    py311 = labels(ts, lambda t: t.python == (3, 11))

    sel = resolve(server, ["app"], ts, all_versions=True)
    assert not sel.problems
    assert sel.versions["app"] == {"1.0": labels(ts), "2.0": labels(ts), "3.0": py311}
    assert sel.versions["olddep"] == {"1.0": labels(ts)}
    assert sel.all_versions_added == {"app": frozenset({"1.0"}), "olddep": frozenset({"1.0"})}

    limited = resolve(server, ["app"], ts, all_versions=True, all_versions_limit=2)
    assert set(limited.versions["app"]) == {"2.0", "3.0"}
    assert "olddep" not in limited.versions


def test_uv_resolves_each_target_from_only_the_selected_files(
    conditional_index: IndexServer,
    index_server: Callable[..., IndexServer],
    wheel_dir: Path,
    clean_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """Proof of completeness: a mirror holding only the selection satisfies uv for each target."""
    uv = pytest.importorskip("uv")
    ts = targets(("3.8", "3.12"), ("linux-x86_64", "linux-aarch64", "win-amd64"))
    sel = resolve(conditional_index, ["app[fast]"], ts)
    assert not sel.problems

    mirror = index_server()
    for served in conditional_index.files:
        if served.version in sel.versions.get(served.project, {}):
            path = tmp_path / "selected" / served.filename
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(served.data)
            mirror.add_file(path)
    assert "oldpy" not in {f.project for f in mirror.files}

    requirements = tmp_path / "requirements.in"
    requirements.write_text("app[fast]\n")
    uv_platform = {
        "linux-x86_64": "x86_64-unknown-linux-gnu",
        "linux-aarch64": "aarch64-unknown-linux-gnu",
        "win-amd64": "x86_64-pc-windows-msvc",
    }
    for target in ts:
        py = f"{target.python[0]}.{target.python[1]}"
        result = subprocess.run(
            # --python and --no-python-downloads: uv must never fetch an interpreter
            [
                uv.find_uv_bin(),
                "pip",
                "compile",
                "--no-config",
                "--quiet",
                "--no-header",
                "--python",
                sys.executable,
                "--no-python-downloads",
                "--python-version",
                py,
                "--python-platform",
                uv_platform[target.platform],
                "--index-url",
                mirror.simple_url,
                str(requirements),
            ],
            env=clean_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"{target.label}: {result.stderr}"
        pinned = {line.split("==")[0] for line in result.stdout.splitlines() if "==" in line}
        expected = {
            name
            for name, vs in sel.versions.items()
            if any(target.label in ls for ls in vs.values())
        }
        assert pinned == expected, target.label
