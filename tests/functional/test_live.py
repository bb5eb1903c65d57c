"""Opt-in smoke test against the default index (the one pip would use): PYPIDL_LIVE_TESTS=1.

Never part of CI; it needs the network and the public index's mood.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pypidl.cli import main

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
