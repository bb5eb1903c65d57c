"""``--all-versions`` keeps yanked releases, marked, and pre-releases only with ``--pre``.

A lock written before a yank still pins the yanked version, and pip installs a yanked file
when it is pinned exactly (PEP 592); a mirror without it breaks that install behind the gap.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pypidl.cli import main
from tests.lib.server import IndexServer
from tests.lib.wheels import make_wheel

TARGET = ["--python-version", "3.11", "--platform", "linux-x86_64"]


@pytest.fixture
def index(index_server: Callable[..., IndexServer], wheel_dir: Path) -> IndexServer:
    """beta 1.0; 2.0 (yanked, with a reason); 3.0rc1 (a pre-release)."""
    srv = index_server()
    srv.add_file(make_wheel(wheel_dir, "beta", "1.0"))
    srv.add_file(make_wheel(wheel_dir, "beta", "2.0"), yanked="broken build")
    srv.add_file(make_wheel(wheel_dir, "beta", "3.0rc1"))
    return srv


def plan(index: IndexServer, tmp_path: Path, *extra: str) -> dict[str, dict[str, object]]:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("beta\n", encoding="utf-8")
    out = tmp_path / "manifest.json"
    rc = main(
        ["plan", "-r", str(reqs), "--index-url", index.simple_url, "--manifest", str(out),
         *TARGET, *extra]
    )  # fmt: skip
    assert rc == 0
    files = json.loads(out.read_text(encoding="utf-8"))["files"]
    return {str(f["version"]): f for f in files}


@pytest.mark.parametrize("no_deps", [False, True], ids=["closure", "no-deps"])
def test_all_versions_keeps_yanked_releases_and_pre_releases_only_with_pre(
    index: IndexServer, tmp_path: Path, no_deps: bool
) -> None:
    extra = ["--no-deps"] if no_deps else []
    # without --all-versions: the resolved version only
    assert set(plan(index, tmp_path, *extra)) == {"1.0"}
    files = plan(index, tmp_path, "--all-versions", *extra)
    assert set(files) == {"1.0", "2.0"}
    assert (files["2.0"]["yanked"], files["2.0"]["yanked_reason"]) == (True, "broken build")
    assert files["1.0"]["yanked"] is False
    assert set(plan(index, tmp_path, "--all-versions", "--pre", *extra)) == {"1.0", "2.0", "3.0rc1"}


@pytest.mark.clients
@pytest.mark.timeout(300)
def test_pip_installs_a_pinned_yanked_release_from_the_mirror(
    index: IndexServer,
    tmp_path: Path,
    clean_env: dict[str, str],
    venv_factory: Callable[[], Path],
) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("beta\n", encoding="utf-8")
    mirror = tmp_path / "mirror"
    rc = main(
        ["sync", "-r", str(reqs), "--index-url", index.simple_url, "--download-dir", str(mirror),
         "--build-index", "--all-versions", *TARGET]
    )  # fmt: skip
    assert rc == 0
    page = json.loads((mirror / "simple" / "beta" / "index.json").read_text(encoding="utf-8"))
    yanked = {f["filename"]: f["yanked"] for f in page["files"]}
    assert yanked == {
        "beta-1.0-py3-none-any.whl": False,
        "beta-2.0-py3-none-any.whl": "broken build",
    }
    html = (mirror / "simple" / "beta" / "index.html").read_text(encoding="utf-8")
    assert 'data-yanked="broken build"' in html

    python = venv_factory()
    index_url = (mirror / "simple").as_uri() + "/"

    def pip(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(python), "-m", "pip", "install", "--no-cache-dir", "--index-url", index_url,
             *args],
            env=clean_env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    # unpinned, pip skips the yanked release
    dry = pip("--dry-run", "beta")
    assert dry.returncode == 0, dry.stderr
    assert "beta-1.0" in dry.stdout
    # pinned, it installs it (and warns that it is yanked)
    pinned = pip("beta==2.0")
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert "yanked" in pinned.stderr.lower()
    shown = subprocess.run(
        [str(python), "-c", "import beta; print(beta.__version__)"],
        env=clean_env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert shown.stdout.strip() == "2.0"
