"""Every machine of a family, floor to ceiling, installs from the mirror with wheels only (issue 17).

A loopback index whose releases ship wheels with different glibc and macOS floors, and a project
whose newest release has no wheel for Windows: the plan resolves each family at its floor
(glibc 2.17, macOS 12) and its ceiling, so real uv (resolving for each machine with
``--only-binary :all:``) and real pip (installing here, downloading for the floor machine) find
wheels-only solutions in the mirror alone, the same as from the index itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pypidl.cli import main
from tests.lib.mirror import find_uv
from tests.lib.server import IndexServer
from tests.lib.wheels import make_sdist, make_wheel

pytestmark = [pytest.mark.clients, pytest.mark.timeout(300)]

TARGETS = [
    *("--python-version", "3.11"),
    *("--platform", "linux-x86_64", "--platform", "macos-arm64", "--platform", "win-amd64"),
]

LINUX_OLD = "manylinux_2_17_x86_64.manylinux2014_x86_64"

#: uv's name for each machine, with the macOS it stands for, and what it must pick
MACHINES = {
    "glibc 2.17": ("x86_64-manylinux_2_17", None, {"native": "1.0", "ptylib": "3.0"}),
    "glibc 2.39": ("x86_64-manylinux_2_39", None, {"native": "2.0", "ptylib": "3.0"}),
    "macOS 12": ("aarch64-apple-darwin", "12.0", {"native": "1.0", "ptylib": "3.0"}),
    "macOS 15": ("aarch64-apple-darwin", "15.0", {"native": "2.0", "ptylib": "3.0"}),
    "Windows": ("x86_64-pc-windows-msvc", None, {"native": "2.0", "ptylib": "2.0"}),
}


@pytest.fixture
def index(index_server: Callable[..., IndexServer], wheel_dir: Path) -> IndexServer:
    srv = index_server()
    for version, tags in {
        "1.0": (f"py3-none-{LINUX_OLD}", "py3-none-macosx_12_0_arm64", "py3-none-win_amd64"),
        # the newest release needs glibc 2.28 and macOS 14
        "2.0": (
            "py3-none-manylinux_2_28_x86_64",
            "py3-none-macosx_14_0_arm64",
            "py3-none-win_amd64",
        ),
    }.items():
        for tag in tags:
            srv.add_file(make_wheel(wheel_dir, "native", version, tag=tag))
    # ptylib 3.0 is sdist-only for Windows (as pywinpty 2.0.14 for cp38); 2.0 has its wheel
    for version, tags in {
        "2.0": (f"py3-none-{LINUX_OLD}", "py3-none-macosx_12_0_arm64", "py3-none-win_amd64"),
        "3.0": (f"py3-none-{LINUX_OLD}", "py3-none-macosx_12_0_arm64"),
    }.items():
        for tag in tags:
            srv.add_file(make_wheel(wheel_dir, "ptylib", version, tag=tag))
        srv.add_file(make_sdist(wheel_dir, "ptylib", version))
    srv.add_file(make_wheel(wheel_dir, "app", "1.0", requires_dist=["native", "ptylib"]))
    return srv


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)


def uv_pins(
    uv: str, index_url: str, machine: str, env: dict[str, str], tmp: Path
) -> dict[str, str]:
    platform, macos, _ = MACHINES[machine]
    reqs = tmp / "app.in"
    reqs.write_text("app\n", encoding="utf-8")
    machine_env = {**env, **({"MACOSX_DEPLOYMENT_TARGET": macos} if macos else {})}
    out = run(
        [uv, "pip", "compile", str(reqs), "--python-version", "3.11", "--python-platform",
         platform, "--only-binary", ":all:", "--index-url", index_url, "--no-cache", "--quiet",
         "--no-header", "--no-annotate"],
        machine_env,
    )  # fmt: skip
    assert out.returncode == 0, f"{machine}: {out.stderr}"
    return dict(line.split("==") for line in out.stdout.split())


def test_floor_and_ceiling_machines_install_from_the_mirror_with_wheels_only(
    index: IndexServer,
    tmp_path: Path,
    clean_env: dict[str, str],
    venv_factory: Callable[[], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    uv = find_uv()
    if uv is None:  # pragma: no cover - uv is in the test extra
        pytest.skip("uv is not installed")
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("app\n", encoding="utf-8")
    mirror = tmp_path / "mirror"
    manifest_path = tmp_path / "manifest.json"
    report_path = tmp_path / "report.json"
    rc = main(
        ["sync", "-r", str(reqs), "--index-url", index.simple_url, "--download-dir", str(mirror),
         "--build-index", "--manifest", str(manifest_path), "--report", str(report_path),
         *TARGETS]
    )  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    assert manifest["targets"] == [
        "cp311-linux-x86_64-glibc2.17",
        "cp311-linux-x86_64",
        "cp311-macos-arm64-macos12",
        "cp311-macos-arm64",
        "cp311-win-amd64",
    ]
    files = {f["filename"] for f in manifest["files"]}
    assert not [f for f in files if f.endswith(".tar.gz")], "no target builds anything"
    assert "ptylib-2.0-py3-none-win_amd64.whl" in files
    assert "native-1.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl" in files
    # the summary and the report name what only one end needed
    notes = {(n["kind"], n["project"], n["version"]): n["targets"] for n in manifest["notes"]}
    assert notes == {
        ("floor-only", "native", "1.0"): [
            "cp311-linux-x86_64-glibc2.17",
            "cp311-macos-arm64-macos12",
        ],
        ("ceiling-only", "native", "2.0"): ["cp311-linux-x86_64", "cp311-macos-arm64"],
    }
    assert json.loads(report_path.read_text(encoding="utf-8"))["notes"] == manifest["notes"]
    assert "Releases only one end of a platform family needed" in out
    assert "| native 1.0 | the floor" in out

    # uv, for every machine: the mirror alone gives what the index itself gives, wheels only
    mirror_url = (mirror / "simple").as_uri() + "/"
    for machine, (_platform, _macos, expected) in MACHINES.items():
        from_index = uv_pins(uv, index.simple_url, machine, clean_env, tmp_path)
        from_mirror = uv_pins(uv, mirror_url, machine, clean_env, tmp_path)
        assert from_mirror == from_index == {"app": "1.0", **expected}, machine

    # the client configuration keeps both on wheels: nothing here needs a build
    pip_conf = (mirror / "pip.conf").read_text(encoding="utf-8")
    assert f"index-url = {mirror_url}" in pip_conf
    assert "only-binary = :all:" in pip_conf
    assert "no-build = true" in (mirror / "uv.toml").read_text(encoding="utf-8")

    # pip installs here (glibc 2.36: between the ends) with the mirror's pip.conf alone
    python = venv_factory()
    pip_env = {**clean_env, "PIP_CONFIG_FILE": str(mirror / "pip.conf")}
    installed = run([str(python), "-m", "pip", "install", "--no-cache-dir", "app"], pip_env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    probe = "import native, ptylib; print(native.__version__, ptylib.__version__)"
    assert run([str(python), "-c", probe], clean_env).stdout.split() == ["2.0", "3.0"]
    # and fetches, for the floor machine, the wheels it would install
    floor = run(
        [str(python), "-m", "pip", "download", "--no-cache-dir", "--only-binary=:all:",
         "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
         "--python-version", "3.11", "--implementation", "cp", "-d", str(tmp_path / "floor"),
         "app"],
        pip_env,
    )  # fmt: skip
    assert floor.returncode == 0, floor.stdout + floor.stderr
    assert sorted(p.name for p in (tmp_path / "floor").iterdir()) == [
        "app-1.0-py3-none-any.whl",
        "native-1.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "ptylib-3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    ]

    # uv installs here with the mirror's uv.toml alone
    target = tmp_path / "uv-venv"
    made = run([uv, "venv", "-q", "--python", sys.executable, str(target)], clean_env)
    assert made.returncode == 0, made.stderr
    uv_env = {k: v for k, v in clean_env.items() if k != "UV_NO_CONFIG"}
    uv_python = target / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    uv_installed = run(
        [uv, "pip", "install", "--no-cache", "--config-file", str(mirror / "uv.toml"),
         "--python", str(uv_python), "app"],
        uv_env,
    )  # fmt: skip
    assert uv_installed.returncode == 0, uv_installed.stdout + uv_installed.stderr
    assert run([str(uv_python), "-c", probe], clean_env).stdout.split() == ["2.0", "3.0"]

    # check judges every target at both ends: all of them install from wheels alone
    assert main(["check", str(mirror), "-r", str(reqs), "--wheels-only", *TARGETS]) == 0
    checked = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| cp")]
    assert len(checked) == 5
    assert all("wheels only" in line for line in checked)
