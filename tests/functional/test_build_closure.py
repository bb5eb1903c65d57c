"""sdists install behind the gap: the mirror carries their build backends (real pip and uv).

A loopback index serves two sdist-only projects, one built with flit_core and one in the old
``setup.py``-only style of ``docopt==0.6.2``, and the real backends (setuptools, wheel and
packaging, flit_core) as wheels re-packed from this test environment.  pypidl plans,
downloads and indexes; then pip and uv, in fresh virtualenvs with empty caches and no other
index, install both sdists from the mirror alone.  Without the build closure the mirror would
lack flit_core and setuptools, and both builds would fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pypidl.cli import main
from tests.lib.backends import (
    make_flit_sdist,
    make_legacy_sdist,
    make_setuptools_sdist,
    repack_installed,
)
from tests.lib.mirror import find_uv
from tests.lib.server import IndexServer
from tests.lib.wheels import make_wheel

pytestmark = [pytest.mark.clients, pytest.mark.timeout(400)]

HOST = f"{sys.version_info[0]}.{sys.version_info[1]}"
TARGET = ["--python-version", HOST, "--platform", "linux-x86_64"]
BACKENDS = ("setuptools", "wheel", "packaging", "flit_core")


@pytest.fixture(scope="module")
def backend_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("backends")
    for project in BACKENDS:
        repack_installed(project, directory)
    return directory


@pytest.fixture
def index(
    index_server: Callable[..., IndexServer], backend_wheels: Path, wheel_dir: Path
) -> IndexServer:
    srv = index_server()
    srv.add_dir(backend_wheels)
    srv.add_file(make_flit_sdist(wheel_dir, "flitpkg", "1.0"))
    srv.add_file(make_legacy_sdist(wheel_dir, "legacypkg", "0.6.2"))
    # setup_requires in setup.cfg: setuptools asks the installer for them before it builds
    srv.add_file(
        make_setuptools_sdist(
            wheel_dir, "cfgpkg", "2.0", setup_requires="buildhelper>=1.0", pyproject=False
        )
    )
    srv.add_file(make_wheel(wheel_dir, "buildhelper", "1.1"))
    return srv


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_sdists_build_from_the_mirror_alone_with_pip_and_uv(
    index: IndexServer,
    tmp_path: Path,
    clean_env: dict[str, str],
    venv_factory: Callable[[], Path],
) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("flitpkg==1.0\nlegacypkg==0.6.2\ncfgpkg==2.0\n", encoding="utf-8")
    mirror = tmp_path / "mirror"
    manifest_path = tmp_path / "manifest.json"
    rc = main(
        ["sync", "-r", str(reqs), "--index-url", index.simple_url, "--download-dir", str(mirror),
         "--build-index", "--manifest", str(manifest_path), *TARGET]
    )  # fmt: skip
    assert rc == 0
    files = json.loads(manifest_path.read_text(encoding="utf-8"))["files"]
    why = {f["project"]: f["why"] for f in files}
    assert why == {
        "flitpkg": ["requirement"],
        "legacypkg": ["requirement"],
        "cfgpkg": ["requirement"],
        "buildhelper": ["build"],
        "flit-core": ["build"],
        "setuptools": ["build"],
        "wheel": ["build"],
        "packaging": ["build"],
    }
    index_url = (mirror / "simple").as_uri() + "/"
    wanted = ["flitpkg==1.0", "legacypkg==0.6.2", "cfgpkg==2.0"]
    probe = (
        "import cfgpkg, flitpkg, legacypkg; "
        "print(flitpkg.__version__, legacypkg.__version__, cfgpkg.__version__)"
    )

    # pip: a fresh venv without setuptools, so the legacy build must take it from the mirror
    python = venv_factory()
    run([str(python), "-m", "pip", "uninstall", "-y", "-q", "setuptools"], clean_env)
    pip = run(
        [str(python), "-m", "pip", "install", "--no-cache-dir", "--index-url", index_url, *wanted],
        clean_env,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert run([str(python), "-c", probe], clean_env).stdout.split() == ["1.0", "0.6.2", "2.0"]

    uv = find_uv()
    if uv is None:  # pragma: no cover - uv is in the test extra
        pytest.skip("uv is not installed")
    target = tmp_path / "uv-venv"
    made = run([uv, "venv", "-q", "--python", sys.executable, str(target)], clean_env)
    assert made.returncode == 0, made.stderr
    uv_python = target / "bin" / "python"
    installed = run(
        [uv, "pip", "install", "--no-cache", "--python", str(uv_python),
         "--index-url", index_url, *wanted],
        clean_env,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert run([str(uv_python), "-c", probe], clean_env).stdout.split() == ["1.0", "0.6.2", "2.0"]


def test_without_the_build_closure_pip_cannot_build(
    index: IndexServer,
    tmp_path: Path,
    clean_env: dict[str, str],
    venv_factory: Callable[[], Path],
) -> None:
    """The control: ``--no-build-deps`` leaves the backends out, and pip's build fails."""
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("flitpkg==1.0\n", encoding="utf-8")
    mirror = tmp_path / "mirror"
    rc = main(
        ["sync", "-r", str(reqs), "--index-url", index.simple_url, "--download-dir", str(mirror),
         "--build-index", "--no-build-deps", *TARGET]
    )  # fmt: skip
    assert rc == 0
    assert not (mirror / "packages" / "flit-core").exists()
    python = venv_factory()
    index_url = (mirror / "simple").as_uri() + "/"
    pip = run(
        [str(python), "-m", "pip", "install", "--no-cache-dir", "--index-url", index_url,
         "flitpkg==1.0"],
        clean_env,
    )  # fmt: skip
    assert pip.returncode != 0
    assert "flit" in (pip.stdout + pip.stderr).lower()
