"""Real pip and uv against a built index: over file://, python -m http.server and pypidl serve.

One mirror and one virtualenv are shared by the module (each pip run costs seconds); every test
that changes the mirror builds its own.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.version import Version

from pypidl.store.index_builder import build_index
from pypidl.store.serve import make_server
from tests.lib.mirror import add_to_mirror, find_uv
from tests.lib.wheels import make_wheel

pytestmark = [pytest.mark.clients, pytest.mark.timeout(180)]

TOO_NEW = ">=3.99"  # a Requires-Python no running interpreter satisfies


def make_venv(interpreter: str, target: Path) -> Path:
    """A virtualenv whose pip comes from the interpreter's own ensurepip: no index needed."""
    env = {
        k: v for k, v in os.environ.items() if k.lower() not in {"virtual_env", "pythonwarnings"}
    }
    subprocess.run([interpreter, "-m", "venv", "--clear", str(target)], env=env, check=True)
    return target / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One virtualenv with pip for the whole module."""
    return make_venv(sys.executable, tmp_path_factory.mktemp("clients") / "venv")


def _interpreters_with_an_old_pip() -> Iterator[str]:
    """Interpreters whose bundled pip predates 23.2 (Python 3.8/3.9 ship such pips)."""
    found = [shutil.which(f"python3.{minor}") for minor in (9, 8)]
    found += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.[89].*/bin/python")))
    for exe in filter(None, found):
        probe = subprocess.run(
            [exe, "-c", "import ensurepip; print(ensurepip.version())"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        version = probe.stdout.strip()
        if probe.returncode == 0 and version and Version(version) < Version("23.2"):
            yield exe


@pytest.fixture(scope="module")
def old_pip_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = next(_interpreters_with_an_old_pip(), None)
    if exe is None:
        pytest.skip("no Python 3.8/3.9 with a pip older than 23.2 on this machine")
    return make_venv(exe, tmp_path_factory.mktemp("old-pip") / "venv")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs with different requirement sets into one mirror, each followed by an index build."""
    dists = tmp_path_factory.mktemp("dists")
    root = tmp_path_factory.mktemp("mirror")
    # first run: gamma and what it needs, plus delta (tampered by one test)
    add_to_mirror(root, make_wheel(dists, "alpha", "1.0"))
    add_to_mirror(
        root, make_wheel(dists, "alpha", "2.0", requires_python=TOO_NEW), requires_python=TOO_NEW
    )
    add_to_mirror(root, make_wheel(dists, "gamma", "1.0", requires_dist=["alpha"]))
    add_to_mirror(root, make_wheel(dists, "gamma", "2.0", requires_dist=["alpha>=1"]))
    add_to_mirror(root, make_wheel(dists, "delta", "1.0"))
    assert build_index(root).projects == 3
    # second run, another requirement set: beta, whose newest release is yanked
    add_to_mirror(root, make_wheel(dists, "beta", "1.0"))
    add_to_mirror(root, make_wheel(dists, "beta", "2.0"), yanked=True, yanked_reason="broken build")
    report = build_index(root)
    assert (report.projects, report.files) == (4, 7)
    assert build_index(root).pages_written == 0
    return root


@pytest.fixture(scope="module")
def http_server(mirror: Path) -> Iterator[str]:
    """``python -m http.server`` over the mirror: a plain static server, HTML only."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "0",
            "--directory",
            str(mirror),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"port (\d+)", line)
        assert match, f"http.server said {line!r}"
        yield f"http://127.0.0.1:{match.group(1)}/simple/"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def pypidl_server(mirror: Path) -> Iterator[tuple[str, list[str]]]:
    """``pypidl serve`` in a thread; yields its index URL and the paths it was asked for."""
    paths: list[str] = []
    server = make_server(mirror, port=0, hook=lambda method, path, status: paths.append(path))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/", paths
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def pip(
    python: Path, env: dict[str, str], index: str, *args: str, own_pip: bool = False
) -> subprocess.CompletedProcess[str]:
    """``pip install`` into ``python``'s environment.

    By default with the test environment's pip (current, installed with the test dependencies)
    through ``--python``; with ``own_pip``, with the pip the environment was created with.
    """
    runner = (
        [str(python), "-m", "pip"]
        if own_pip
        else [sys.executable, "-m", "pip", "--python", str(python)]
    )
    cmd = [*runner, "install", "--no-cache-dir", "--index-url", index, *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)


def uv(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    uv_bin = find_uv()
    if uv_bin is None:
        pytest.skip("the uv package is not installed")
    cmd = [uv_bin, "pip", *args, "--no-config"]
    return subprocess.run(
        cmd, env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def installed(python: Path, env: dict[str, str], *names: str) -> dict[str, str]:
    code = "import importlib, json, sys; print(json.dumps({n: importlib.import_module(n).__version__ for n in sys.argv[1:]}))"
    out = subprocess.run(
        [str(python), "-c", code, *names], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def file_url(path: Path) -> str:
    return path.resolve().as_uri() + "/"


def test_pip_over_file_url_skips_excluded_python_and_yanked(
    python: Path, mirror: Path, clean_env: dict[str, str]
) -> None:
    # alpha 2.0 needs a newer Python; beta 2.0 is yanked; alpha and beta come from different runs
    result = pip(python, clean_env, file_url(mirror / "simple"), "alpha", "beta")
    assert result.returncode == 0, result.stderr
    assert installed(python, clean_env, "alpha", "beta") == {"alpha": "1.0", "beta": "1.0"}


def test_pip_over_http_server_takes_a_yanked_release_only_when_pinned(
    python: Path, http_server: str, clean_env: dict[str, str]
) -> None:
    result = pip(python, clean_env, http_server, "beta==2.0")
    assert result.returncode == 0, result.stderr
    assert installed(python, clean_env, "beta") == {"beta": "2.0"}
    assert "broken build" in result.stderr  # pip warns with the yank reason


def test_pip_checks_the_sha256_fragment(
    python: Path, mirror: Path, http_server: str, clean_env: dict[str, str]
) -> None:
    wheel = mirror / "packages" / "delta" / "delta-1.0-py3-none-any.whl"
    wheel.write_bytes(wheel.read_bytes() + b"\0tampered")  # after the index was built
    result = pip(python, clean_env, http_server, "delta")
    assert result.returncode != 0
    assert "DO NOT MATCH THE HASHES" in result.stderr
    with pytest.raises(subprocess.CalledProcessError):
        installed(python, clean_env, "delta")


def test_pip_resolves_from_metadata_files_via_pypidl_serve(
    python: Path, pypidl_server: tuple[str, list[str]], tmp_path: Path, clean_env: dict[str, str]
) -> None:
    url, paths = pypidl_server
    report = tmp_path / "report.json"
    result = pip(
        python, clean_env, url, "--dry-run", "--ignore-installed", "--report", str(report), "gamma"
    )
    assert result.returncode == 0, result.stderr
    chosen = {
        i["metadata"]["name"]: i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }
    assert chosen == {"gamma": "2.0", "alpha": "1.0"}
    assert "/packages/gamma/gamma-2.0-py3-none-any.whl.metadata" in paths
    assert "/packages/alpha/alpha-1.0-py3-none-any.whl.metadata" in paths
    assert not [p for p in paths if p.endswith(".whl")], paths  # no wheel was downloaded
    assert not [p for p in paths if "alpha-2.0" in p]  # Requires-Python filtered it from the page


def test_pip_older_than_23_2_installs_over_json_pages(
    old_pip_python: Path, pypidl_server: tuple[str, list[str]], clean_env: dict[str, str]
) -> None:
    """PEP 714: pips from 22.3 to 23.1 crash on a "dist-info-metadata" key in JSON pages.

    Teams on Python 3.8 and 3.9 run exactly those pips, so the JSON pages carry only the new
    "core-metadata" key, and such a pip installs from them.
    """
    url, paths = pypidl_server
    result = pip(old_pip_python, clean_env, url, "gamma", own_pip=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "/simple/gamma/" in paths
    assert installed(old_pip_python, clean_env, "gamma", "alpha") == {
        "gamma": "2.0",
        "alpha": "1.0",
    }


def test_uv_compiles_from_json_pages_and_metadata_files(
    pypidl_server: tuple[str, list[str]], clean_env: dict[str, str]
) -> None:
    url, paths = pypidl_server
    result = uv(
        clean_env, "compile", "-", "--index-url", url, "--python", sys.executable, stdin="gamma\n"
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"^gamma==2\.0$", result.stdout, re.M)
    assert re.search(r"^alpha==1\.0$", result.stdout, re.M)
    assert "/simple/gamma/" in paths
    assert "/packages/gamma/gamma-2.0-py3-none-any.whl.metadata" in paths
    assert not [p for p in paths if p.endswith(".whl")], paths


def test_uv_installs_over_file_url(
    python: Path, mirror: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    target = tmp_path / "site"
    result = uv(
        clean_env,
        "install",
        "--index-url",
        file_url(mirror / "simple"),
        "--target",
        str(target),
        "--python",
        str(python),
        "gamma",
    )
    assert result.returncode == 0, result.stderr
    versions = {p.name for p in target.glob("*.dist-info")}
    assert versions == {"gamma-2.0.dist-info", "alpha-1.0.dist-info"}


def test_deleted_file_is_gone_for_clients_after_rebuild(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = tmp_path / "m"
    add_to_mirror(root, make_wheel(tmp_path / "d", "omega", "1.0"))
    add_to_mirror(root, make_wheel(tmp_path / "d", "omega", "2.0"))
    build_index(root)
    index = file_url(root / "simple")
    compile_args = ("compile", "-", "--index-url", index, "--python", sys.executable, "--no-header")
    first = uv(clean_env, *compile_args, stdin="omega\n")
    assert "omega==2.0" in first.stdout, first.stderr
    (root / "packages" / "omega" / "omega-2.0-py3-none-any.whl").unlink()
    assert build_index(root).dropped_files == ["omega/omega-2.0-py3-none-any.whl"]
    second = uv(clean_env, *compile_args, "--refresh", stdin="omega\n")
    assert "omega==1.0" in second.stdout, second.stderr


def test_dir2pi_backend_is_installable_by_pip(
    python: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = tmp_path / "m"
    add_to_mirror(root, make_wheel(tmp_path / "d", "Zeta_Pkg", "1.0"))
    add_to_mirror(root, make_wheel(tmp_path / "d", "Zeta_Pkg", "1.1"))
    report = build_index(root, backend="dir2pi")
    assert (report.backend, report.projects) == ("dir2pi", 1)
    result = pip(python, clean_env, file_url(root / "simple"), "zeta-pkg")
    assert result.returncode == 0, result.stderr
    assert installed(python, clean_env, "zeta_pkg") == {"zeta_pkg": "1.1"}
