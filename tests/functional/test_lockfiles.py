"""Lockfiles in, end to end: a lock written by uv (or in poetry's and pipenv's format) for a
loopback project set is synced into a mirror, the index that served it is stopped, and uv
installs exactly the locked set from the mirror alone for two unlike targets."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pypidl.cli import main
from tests.lib.backends import make_flit_sdist, repack_installed
from tests.lib.locks import (
    pipfile_lock,
    serve_project_set,
    uv_lock,
    uv_pylock,
    write_lock,
)
from tests.lib.mirror import find_uv
from tests.lib.server import IndexServer
from tests.lib.wheels import make_wheel

HOST = f"{sys.version_info[0]}.{sys.version_info[1]}"
TARGETS = ["--python-version", "3.11", "--platform", "linux-x86_64", "--platform", "win-amd64"]

#: what the lock holds for those two targets: beta 2.0 and 'unrelated' are on the index only
LOCKED_FILES = {
    "alpha-1.0-py3-none-any.whl",
    "beta-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
    "beta-1.0-cp311-cp311-win_amd64.whl",
    "delta-0.5.tar.gz",
    "gamma-2.0-py3-none-any.whl",
}

#: (uv's --python-platform, the projects installed, the platform tag of beta's wheel)
INSTALLS = [
    ("x86_64-unknown-linux-gnu", {"alpha", "beta", "delta"}, "manylinux_2_17_x86_64"),
    ("x86_64-pc-windows-msvc", {"alpha", "beta", "delta", "gamma"}, "win_amd64"),
]


@pytest.fixture
def index(index_server: Callable[..., IndexServer], wheel_dir: Path) -> IndexServer:
    srv = index_server()
    serve_project_set(srv, wheel_dir)
    return srv


def files_in(root: Path) -> set[str]:
    return {
        p.name
        for p in (root / "packages").rglob("*")
        if p.is_file() and not p.name.endswith(".metadata")
    }


def uv_install(mirror: Path, platform: str, target: Path, env: dict[str, str]) -> set[str]:
    """Install the application's requirements with the locked pins, from the mirror alone."""
    uv = find_uv()
    assert uv is not None
    done = subprocess.run(
        [uv, "pip", "install", "--offline", "--index-url", (mirror / "simple").as_uri() + "/",
         "--python-platform", platform, "--python-version", "3.11", "--target", str(target),
         "alpha==1.0", "beta==1.0", "delta==0.5; python_version < '3.12'"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return {p.name.split("-")[0] for p in target.glob("*.dist-info")}


def wheel_tag(target: Path, project: str) -> str:
    (info,) = target.glob(f"{project}-*.dist-info")
    tags = [line for line in (info / "WHEEL").read_text().splitlines() if line.startswith("Tag:")]
    return tags[0].rsplit("-", 1)[-1]


@pytest.mark.clients
@pytest.mark.parametrize("kind", ["uv.lock", "pylock.toml", "poetry.lock", "Pipfile.lock"])
def test_a_lock_syncs_into_a_mirror_uv_installs_from_for_two_targets(
    kind: str, tmp_path: Path, index: IndexServer, clean_env: dict[str, str]
) -> None:
    lock = write_lock(kind, tmp_path / "proj", index, clean_env)
    mirror = tmp_path / "mirror"
    code = main(
        ["sync", str(lock), "--index-url", index.simple_url, "--download-dir", str(mirror),
         "--build-index", *TARGETS]
    )  # fmt: skip
    assert code == 0
    assert files_in(mirror) == LOCKED_FILES
    index.stop()  # the mirror alone from here on
    for platform, projects, beta_tag in INSTALLS:
        target = tmp_path / f"site-{platform}"
        assert uv_install(mirror, platform, target, clean_env) == projects
        assert wheel_tag(target, "beta") == beta_tag


def test_a_lock_under_another_name_is_read_by_content_or_with_lock(
    tmp_path: Path, index: IndexServer, clean_env: dict[str, str]
) -> None:
    lock = uv_lock(tmp_path / "proj", index, clean_env)
    renamed = Path(shutil.copyfile(lock, tmp_path / "deps.lock"))
    for how in ([str(renamed)], ["--lock", str(renamed)]):
        mirror = tmp_path / f"mirror-{len(how)}"
        code = main(
            ["sync", *how, "--index-url", index.simple_url, "--download-dir", str(mirror),
             *TARGETS]
        )  # fmt: skip
        assert code == 0
        assert files_in(mirror) == LOCKED_FILES


def test_the_lock_names_the_index_when_no_index_is_given(
    tmp_path: Path, index: IndexServer, clean_env: dict[str, str]
) -> None:
    lock = uv_pylock(tmp_path / "proj", index, clean_env)
    mirror = tmp_path / "mirror"
    assert main(["sync", str(lock), "--download-dir", str(mirror), *TARGETS]) == 0
    assert files_in(mirror) == LOCKED_FILES


def test_a_file_whose_index_hash_differs_from_the_lock_fails_alone_and_is_named(
    tmp_path: Path,
    index: IndexServer,
    clean_env: dict[str, str],
    wheel_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lock = uv_lock(tmp_path / "proj", index, clean_env)
    tampered = wheel_dir / "gamma-2.0-py3-none-any.whl"
    with zipfile.ZipFile(tampered, "a") as zf:
        zf.writestr("gamma/evil.py", "print('not what was locked')\n")
    index.add_file(tampered)
    mirror = tmp_path / "mirror"
    code = main(
        ["sync", str(lock), "--index-url", index.simple_url, "--download-dir", str(mirror),
         *TARGETS]
    )  # fmt: skip
    assert code == 1
    assert files_in(mirror) == LOCKED_FILES - {"gamma-2.0-py3-none-any.whl"}
    err = capsys.readouterr().err
    assert "gamma-2.0-py3-none-any.whl: the index's sha256" in err


def test_a_lock_and_a_requirements_file_together_are_refused(
    tmp_path: Path,
    index: IndexServer,
    clean_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    lock = uv_lock(tmp_path / "proj", index, clean_env)
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("alpha\n")
    code = main(["plan", str(lock), "-r", str(reqs), "--index-url", index.simple_url, *TARGETS])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 2
    assert "requirements" in err[0]
    assert "lock" in err[0]


def test_a_package_the_lock_took_from_a_second_index_is_read_from_it_only(
    tmp_path: Path, index_server: Callable[..., IndexServer], clean_env: dict[str, str]
) -> None:
    primary, vendor = index_server(), index_server()
    primary.add_file(make_wheel(tmp_path / "pub", "common", "1.0"))
    primary.add_file(make_wheel(tmp_path / "pub", "torch", "2.5.1+cu124", summary="impostor"))
    vendor.add_file(make_wheel(tmp_path / "vendor", "torch", "2.5.1+cu124"))
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
        'dependencies = ["common", "torch==2.5.1+cu124"]\n\n'
        f'[[tool.uv.index]]\nname = "vendor"\nurl = "{vendor.simple_url}"\nexplicit = true\n\n'
        '[tool.uv.sources]\ntorch = { index = "vendor" }\n'
    )
    uv = find_uv()
    assert uv is not None
    done = subprocess.run(
        [uv, "lock", "--default-index", primary.simple_url], cwd=project, env=clean_env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    primary.clear_requests()
    vendor.clear_requests()
    mirror = tmp_path / "mirror"
    code = main(  # --index-url alone would replace the lock's indexes
        ["sync", str(project / "uv.lock"), "--index-url", primary.simple_url,
         "--keep-lock-indexes", "--download-dir", str(mirror), *TARGETS]
    )  # fmt: skip
    assert code == 0
    assert files_in(mirror) == {"common-1.0-py3-none-any.whl", "torch-2.5.1+cu124-py3-none-any.whl"}
    (wheel,) = (mirror / "packages" / "torch").glob("*.whl")
    (locked,) = vendor.files
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == locked.sha256
    assert not [r for r in primary.requests if "torch" in r.path]


@pytest.mark.clients
def test_the_build_backend_of_a_locked_sdist_is_mirrored_too(
    tmp_path: Path, index_server: Callable[..., IndexServer], clean_env: dict[str, str]
) -> None:
    index = index_server()
    repack_installed("flit_core", tmp_path / "backends")
    index.add_dir(tmp_path / "backends")
    sdist = index.add_file(make_flit_sdist(tmp_path / "dists", "flitpkg", "1.0"))
    lock = tmp_path / "pylock.toml"
    lock.write_text(
        'lock-version = "1.0"\ncreated-by = "hand"\n\n[[packages]]\nname = "flitpkg"\n'
        f'version = "1.0"\nindex = "{index.simple_url}"\n'
        f'sdist = {{ url = "{sdist.url}", size = {sdist.size}, hashes = {{ sha256 = "{sdist.sha256}" }} }}\n'
    )
    mirror, manifest = tmp_path / "mirror", tmp_path / "manifest.json"
    code = main(
        ["sync", str(lock), "--index-url", index.simple_url, "--download-dir", str(mirror),
         "--manifest", str(manifest), "--build-index", "--python-version", HOST,
         "--platform", "linux-x86_64"]
    )  # fmt: skip
    assert code == 0
    why = {f["project"]: f["why"] for f in json.loads(manifest.read_text())["files"]}
    assert why == {"flitpkg": ["dependency"], "flit-core": ["build"]}
    index.stop()
    uv = find_uv()
    assert uv is not None
    done = subprocess.run(
        [uv, "pip", "install", "--offline", "--index-url", (mirror / "simple").as_uri() + "/",
         "--target", str(tmp_path / "site"), "flitpkg==1.0"],
        env=clean_env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "flitpkg" / "__init__.py").is_file()


@pytest.mark.parametrize("flag", ["--all-versions", "--no-deps", "--host-only"])
def test_resolution_flags_with_a_lock_are_one_line(
    flag: str, tmp_path: Path, index: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = pipfile_lock(tmp_path / "proj", index)
    code = main(["plan", str(lock), flag, "--index-url", index.simple_url, *TARGETS])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"{lock}: {flag} does not apply to a lock" in err[0]
    assert not index.requests
