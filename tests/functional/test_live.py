"""Opt-in smoke test against the default index (the one pip would use): PYPIDL_LIVE_TESTS=1.

Never part of CI; it needs the network and the public index's mood.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pypidl.cli import main
from pypidl.plan.targets import default_full_version

pytestmark = pytest.mark.network


def test_live_sync_and_install(
    tmp_path: Path, venv_factory: Callable[[], Path], clean_env: dict[str, str]
) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text('six\ntomli; python_version < "3.11"\n')
    mirror = tmp_path / "mirror"
    code = main(
        [
            "sync",
            "-r",
            str(reqs),
            "--download-dir",
            str(mirror),
            "--build-index",
            "--python-version",
            "3.8",
            "--python-version",
            "3.12",
            "--platform",
            "linux-x86_64",
        ]
    )
    assert code == 0
    names = {p.name for p in (mirror / "packages").rglob("*.whl")}
    assert any(n.startswith("six-") for n in names)
    assert any(n.startswith("tomli-") for n in names)  # needed by the 3.8 target only
    python = venv_factory()
    result = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--index-url",
            (mirror / "simple").as_uri() + "/",
            "six",
        ],
        env=clean_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


#: uv's name for each machine of issue 17's live check, with the macOS it stands for
LIVE_MACHINES = {
    "glibc 2.17": ("x86_64-manylinux_2_17", None),
    "glibc 2.28": ("x86_64-manylinux_2_28", None),
    "aarch64 glibc 2.17": ("aarch64-manylinux_2_17", None),
    "aarch64 glibc 2.28": ("aarch64-manylinux_2_28", None),
    "Windows x86_64": ("x86_64-pc-windows-msvc", None),
    "macOS 12 x86_64": ("x86_64-apple-darwin", "12.0"),
    "macOS 12 arm64": ("aarch64-apple-darwin", "12.0"),
}


@pytest.mark.timeout(3600)
def test_live_jupyterlab_set_installs_from_wheels_on_every_machine(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    """Issue 17's set: wherever uv resolves a machine from the default index with wheels only,
    it does from the mirror alone."""
    from tests.lib.mirror import find_uv

    uv = find_uv()
    if uv is None:
        pytest.skip("uv is not installed")
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("jupyterlab==4.2.5\nfastapi[standard]==0.115.0\n", encoding="utf-8")
    mirror = tmp_path / "mirror"
    versions = [arg for minor in range(8, 15) for arg in ("--python-version", f"3.{minor}")]
    platforms = ["linux-x86_64:glibc=2.17-2.28", "linux-aarch64:glibc=2.17-2.28", "win-amd64"]
    platforms += ["macos-x86_64:macos=12-12", "macos-arm64:macos=12-12"]
    code = main(
        ["sync", "-q", "-r", str(reqs), "--download-dir", str(mirror), "--build-index",
         *versions, *(arg for p in platforms for arg in ("--platform", p))]
    )  # fmt: skip
    assert code == 0
    mirror_url = (mirror / "simple").as_uri() + "/"
    failures = []
    for minor in range(8, 15):
        for machine, (platform, macos) in LIVE_MACHINES.items():
            env = {**clean_env, **({"MACOSX_DEPLOYMENT_TARGET": macos} if macos else {})}
            # the patch release the plan stands for (docs/targets.md): uv takes "3.8" as 3.8.0,
            # which a release requiring ">=3.8.1" (uvloop 0.23.0) refuses
            full = default_full_version((3, minor))
            base = [uv, "pip", "compile", str(reqs), "--python-version", full,
                    "--python-platform", platform, "--only-binary", ":all:", "--quiet"]  # fmt: skip
            public = subprocess.run(base, env=env, capture_output=True, text=True, check=False)
            if public.returncode != 0:
                continue  # no wheels-only solution on the index itself
            local = subprocess.run(
                [*base, "--index-url", mirror_url, "--no-cache"],
                env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if local.returncode != 0:
                failures.append(f"3.{minor} {machine}: {local.stderr.strip()[-300:]}")
    assert not failures, "\n".join(failures)
