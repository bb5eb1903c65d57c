"""``pypidl check``: every target can install the requirements from the mirror alone, or not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from pypidl.cli import main
from pypidl.errors import BadInputError
from pypidl.plan.targets import parse_targets
from pypidl.store.check import check_mirror
from tests.lib.backends import make_flit_sdist, make_legacy_sdist
from tests.lib.mirror import add_to_mirror
from tests.lib.server import IndexServer
from tests.lib.wheels import make_wheel

TARGETS = parse_targets(python_versions=["3.8", "3.11"], platforms=["linux-x86_64", "win-amd64"])
TARGET_FLAGS = [
    *("--python-version", "3.8", "--python-version", "3.11"),
    *("--platform", "linux-x86_64", "--platform", "win-amd64"),
]


def publish(root: Path, wheel: Path, *, sidecar: bool = True, **facts: Any) -> None:
    """Into the mirror with its .metadata file, as a built index has it."""
    add_to_mirror(root, wheel, sidecar=sidecar, **facts)


@pytest.fixture
def dists(wheel_dir: Path) -> dict[str, Path]:
    return {
        "app": make_wheel(
            wheel_dir,
            "app",
            "1.0",
            requires_dist=['tomli; python_version < "3.11"', 'colorama; sys_platform == "win32"'],
        ),
        "tomli": make_wheel(wheel_dir, "tomli", "2.0.1"),
        "colorama": make_wheel(wheel_dir, "colorama", "0.4.6"),
        "new": make_wheel(wheel_dir, "new", "1.0", requires_python=">=3.9"),
    }


def test_missing_dependency_is_named_for_exactly_the_targets_that_need_it(
    tmp_path: Path, dists: dict[str, Path]
) -> None:
    root = tmp_path / "mirror"
    publish(root, dists["app"])
    publish(root, dists["tomli"], sidecar=False)  # metadata read from the wheel itself

    report = check_mirror(root, [Requirement("app")], TARGETS)
    assert not report.ok
    assert {r.target for r in report.failed} == {"cp38-win-amd64", "cp311-win-amd64"}
    for result in report.failed:
        assert [p.project for p in result.missing] == ["colorama"]
        assert "required by app 1.0" in result.missing[0].reason
    ok = {r.target: r for r in report.results if r.ok}
    assert ok["cp38-linux-x86_64"].pins == {"app": "1.0", "tomli": "2.0.1"}
    assert ok["cp311-linux-x86_64"].pins == {"app": "1.0"}

    publish(root, dists["colorama"])
    report = check_mirror(root, [Requirement("app")], TARGETS)
    assert report.ok
    assert report.results[1].pins == {"app": "1.0", "colorama": "0.4.6", "tomli": "2.0.1"}


def test_a_file_deleted_from_disk_does_not_count(tmp_path: Path, dists: dict[str, Path]) -> None:
    root = tmp_path / "mirror"
    for name in ("app", "tomli", "colorama"):
        publish(root, dists[name])
    (root / "packages" / "tomli" / dists["tomli"].name).unlink()
    report = check_mirror(root, [Requirement("app")], TARGETS)
    assert {r.target for r in report.failed} == {"cp38-linux-x86_64", "cp38-win-amd64"}


def test_requires_python_in_the_catalog_is_honoured(tmp_path: Path, dists: dict[str, Path]) -> None:
    root = tmp_path / "mirror"
    publish(root, dists["new"], requires_python=">=3.9")
    report = check_mirror(root, [Requirement("new")], TARGETS)
    assert {r.target for r in report.failed} == {"cp38-linux-x86_64", "cp38-win-amd64"}
    assert "requires Python >=3.9" in report.failed[0].missing[0].reason


def test_not_a_mirror(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no catalog"):
        check_mirror(tmp_path, [Requirement("app")], TARGETS)


def test_cli_table_and_exit_codes(
    tmp_path: Path, dists: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "mirror"
    publish(root, dists["app"])
    publish(root, dists["tomli"])
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("app\n", encoding="utf-8")

    assert main(["check", str(root), "-r", str(reqs), *TARGET_FLAGS]) == 1
    out = capsys.readouterr()
    lines = [line for line in out.out.splitlines() if line.startswith("| cp")]
    # the two Linux targets are each checked at their floor (glibc 2.17) and ceiling
    assert len(lines) == 6
    assert any("cp38-linux-x86_64-glibc2.17" in line and "OK" in line for line in lines)
    assert any(
        "cp38-win-amd64" in line and "MISSING" in line and "colorama" in line for line in lines
    )
    assert any("cp38-linux-x86_64" in line and "OK" in line for line in lines)
    assert "2 of 6 target(s) cannot install" in out.err

    publish(root, dists["colorama"])
    assert main(["check", str(root), "-r", str(reqs), *TARGET_FLAGS]) == 0
    out = capsys.readouterr()
    assert out.out.count("| OK ") == 6

    assert main(["check", str(tmp_path / "nowhere"), "-r", str(reqs)]) == 2


def test_check_after_sync_proves_the_planned_mirror_complete(
    index_server: Callable[..., IndexServer],
    dists: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = index_server()
    for path in dists.values():
        server.add_file(path)
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("app\n", encoding="utf-8")
    root = tmp_path / "mirror"
    code = main(
        [
            "sync",
            "-r",
            str(reqs),
            "--index-url",
            server.simple_url,
            "--download-dir",
            str(root),
            *TARGET_FLAGS,
        ]
    )
    assert code == 0, capsys.readouterr().err
    server.stop()  # offline from here on
    assert main(["check", str(root), "-r", str(reqs), *TARGET_FLAGS]) == 0, capsys.readouterr()


def test_an_sdist_the_targets_build_needs_its_build_requirements_in_the_mirror(
    tmp_path: Path, wheel_dir: Path
) -> None:
    root = tmp_path / "mirror"
    add_to_mirror(root, make_flit_sdist(wheel_dir, "fromsource", "1.0"))
    # a wheel for Linux only: the Windows targets build from the sdist
    add_to_mirror(
        root, make_wheel(wheel_dir, "native", "2.0", tag="py3-none-manylinux_2_17_x86_64")
    )
    add_to_mirror(root, make_legacy_sdist(wheel_dir, "native", "2.0"))
    requirements = [Requirement("fromsource"), Requirement("native")]

    report = check_mirror(root, requirements, TARGETS)
    assert not report.ok
    missing = {r.target: {p.project for p in r.missing} for r in report.failed}
    assert set(missing) == {t.label for t in TARGETS}
    # Linux has a wheel of native; Windows builds it with setuptools (the resolver names the
    # first requirement of that environment it cannot meet)
    assert missing["cp38-linux-x86_64"] == missing["cp311-linux-x86_64"] == {"flit-core"}
    for label in ("cp38-win-amd64", "cp311-win-amd64"):
        assert {"flit-core", "setuptools"} <= missing[label] <= {"flit-core", "setuptools", "wheel"}
    reasons = [p.reason for r in report.failed for p in r.missing if p.project == "flit-core"]
    assert all("fromsource-1.0.tar.gz" in reason for reason in reasons), reasons

    for name, version in (("flit_core", "3.9.0"), ("setuptools", "69.0.0"), ("wheel", "0.42.0")):
        add_to_mirror(root, make_wheel(wheel_dir, name, version), sidecar=True)
    report = check_mirror(root, requirements, TARGETS)
    assert report.ok, [(r.target, r.missing) for r in report.failed]
    # what the targets install stays the runtime closure; build tools are not pinned
    assert all(set(r.pins) == {"fromsource", "native"} for r in report.results)
