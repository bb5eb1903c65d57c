"""``pypidl publish`` into a real pypiserver and a real devpi-server on 127.0.0.1.

A mirror of wheels and sdists is published, published again (no upload), published into a
repository that already holds one of its files with other bytes (a named conflict, nothing
overwritten), and the repository then serves pip and uv as their only index.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from pypidl.cli import main
from tests.lib.mirror import add_to_mirror, find_uv
from tests.lib.repositories import Devpi, PypiServer, server_script
from tests.lib.wheels import make_sdist, make_wheel

pytestmark = [pytest.mark.clients, pytest.mark.timeout(240)]

PASSWORD = "s3cret-Pa55"  # noqa: S105 - the test repository's, looked for in every output
CONFLICTED = "gamma-2.0-py3-none-any.whl"


@dataclass
class Repo:
    kind: str
    upload_url: str  # without credentials
    simple_url: str
    user: str | None = None

    def with_password(self) -> str:
        return self.upload_url.replace("http://", f"http://{self.user}:{PASSWORD}@")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """alpha (a wheel) needs beta (an sdist only) and gamma (a wheel and an sdist)."""
    dists = tmp_path_factory.mktemp("dists")
    root = tmp_path_factory.mktemp("mirror")
    add_to_mirror(root, make_wheel(dists, "alpha", "1.0", requires_dist=["beta", "gamma>=2"]))
    add_to_mirror(root, make_sdist(dists, "beta", "1.0"))
    add_to_mirror(root, make_wheel(dists, "gamma", "2.0"))
    add_to_mirror(root, make_sdist(dists, "gamma", "2.0"))
    return root


@pytest.fixture(scope="module")
def other_gamma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mirror holding gamma's wheel under the same name with other bytes."""
    dists = tmp_path_factory.mktemp("other-dists")
    root = tmp_path_factory.mktemp("other-mirror")
    wheel = make_wheel(dists, "gamma", "2.0", summary="another build of gamma")
    assert wheel.name == CONFLICTED
    add_to_mirror(root, wheel)
    return root


@pytest.fixture(scope="module")
def pypiservers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], PypiServer]]:
    if server_script("pypi-server") is None:
        pytest.skip("pypiserver is not installed (the test extra has it)")
    started: list[PypiServer] = []

    def start() -> PypiServer:
        server = PypiServer(tmp_path_factory.mktemp("pypiserver") / "packages").start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def devpi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devpi]:
    if server_script("devpi-server") is None:
        pytest.skip("devpi-server is not installed (the test extra has it)")
    server = Devpi(tmp_path_factory.mktemp("devpi") / "server")
    try:
        yield server.start()
    finally:
        server.stop()


_COUNTER = iter(range(1000))


@pytest.fixture(params=["pypiserver", "devpi"])
def new_repo(
    request: pytest.FixtureRequest,
) -> Callable[[], Repo]:
    """Factory of empty repositories of one kind: a pypiserver, or an index on the devpi."""

    def make() -> Repo:
        if request.param == "pypiserver":
            server = request.getfixturevalue("pypiservers")()
            return Repo("pypiserver", server.url, server.simple_url)
        devpi: Devpi = request.getfixturevalue("devpi")
        url = devpi.make_index("alice", PASSWORD, f"dev{next(_COUNTER)}")
        return Repo("devpi", url, url + "+simple/", user="alice")

    return make


def publish(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object], str]:
    report = Path(args[0]).parent / f"report-{next(_COUNTER)}.json"
    code = main(["publish", *args, "--report", str(report)])
    out = capsys.readouterr()
    text = report.read_text()
    return code, json.loads(text), out.out + out.err + text


def statuses(report: dict[str, object]) -> dict[str, str]:
    return {f["filename"]: f["status"] for f in report["files"]}  # type: ignore[attr-defined,index]


def served(repo: Repo, filename: str) -> bytes:
    """The bytes the repository serves under ``filename`` (found on its project page)."""
    project = filename.split("-")[0]
    page = requests.get(
        f"{repo.simple_url}{project}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"},
        timeout=30,
    )
    page.raise_for_status()
    if "json" in page.headers.get("Content-Type", ""):
        url = next(f["url"] for f in page.json()["files"] if f["filename"] == filename)
    else:
        start = page.text.index(filename)
        url = page.text[page.text.rindex('href="', 0, start) + 6 : page.text.index('"', start)]
    resp = requests.get(requests.compat.urljoin(page.url, url), timeout=30)
    resp.raise_for_status()
    return resp.content


def test_publish_then_again_then_pip_and_uv_install_from_it(
    new_repo: Callable[[], Repo],
    mirror: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    clean_env: dict[str, str],
    tmp_path: Path,
) -> None:
    repo = new_repo()
    if repo.user:  # credentials the way twine users keep them
        monkeypatch.setenv("TWINE_USERNAME", repo.user)
        monkeypatch.setenv("TWINE_PASSWORD", PASSWORD)
    code, report, said = publish(capsys, str(mirror), "--to", repo.upload_url)
    assert code == 0, said
    files = {f.name for f in (mirror / "packages").glob("*/*")}
    assert statuses(report) == dict.fromkeys(files, "uploaded")
    assert all(f["served"] is True for f in report["files"])  # type: ignore[attr-defined]
    assert report["simple_url"] == repo.simple_url
    for path in (mirror / "packages").glob("*/*"):
        assert served(repo, path.name) == path.read_bytes()

    code, report, again = publish(capsys, str(mirror), "--to", repo.upload_url)
    assert code == 0, again
    assert statuses(report) == dict.fromkeys(files, "present")
    assert all(f["attempts"] == 0 for f in report["files"])  # type: ignore[attr-defined]
    assert "0 uploaded, 4 already there" in again
    assert PASSWORD not in said + again

    python = bare_venv(tmp_path / "pip-venv")
    install = ["install", "--index-url", repo.simple_url, "alpha"]
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "--no-cache-dir", *install],
        env=clean_env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert _installed(python) == {"alpha": "1.0", "beta": "1.0", "gamma": "2.0"}
    uv = find_uv()
    if uv is None:
        pytest.skip("the uv package is not installed")
    python = bare_venv(tmp_path / "uv-venv")
    result = subprocess.run(
        [uv, "pip", "--no-config", *install, "--python", str(python)],
        env=clean_env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert _installed(python) == {"alpha": "1.0", "beta": "1.0", "gamma": "2.0"}


def bare_venv(target: Path) -> Path:
    """A virtualenv without pip (the test environment's pip installs into it with --python,
    uv needs none): seeding pip is most of the cost of making one."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(target)], check=True, timeout=120
    )
    return target / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _installed(python: Path) -> dict[str, str]:
    """The versions of alpha, beta and gamma as the venv imports them."""
    code = (
        "import importlib, json; print(json.dumps({n: importlib.import_module(n).__version__ "
        "for n in ('alpha', 'beta', 'gamma')}))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    found: dict[str, str] = json.loads(out.stdout)
    return found


def test_a_file_held_with_other_bytes_is_a_named_conflict_and_stays(
    new_repo: Callable[[], Repo],
    mirror: Path,
    other_gamma: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = new_repo()
    to = repo.with_password() if repo.user else repo.upload_url  # credentials in the URL
    code, _, said = publish(capsys, str(other_gamma), "--to", to)
    assert code == 0, said
    theirs = served(repo, CONFLICTED)
    ours = (mirror / "packages" / "gamma" / CONFLICTED).read_bytes()
    assert theirs != ours

    code, report, said = publish(capsys, str(mirror), "--to", to)
    assert code == 1, said
    assert statuses(report) == {
        CONFLICTED: "conflict",
        "alpha-1.0-py3-none-any.whl": "uploaded",
        "beta-1.0.tar.gz": "uploaded",
        "gamma-2.0.tar.gz": "uploaded",
    }
    conflict = next(f for f in report["files"] if f["status"] == "conflict")  # type: ignore[attr-defined]
    assert hashlib.sha256(theirs).hexdigest() in conflict["reason"]
    assert f"Conflict: the repository holds {CONFLICTED}" in said
    assert report["totals"]["conflict"] == 1  # type: ignore[index]
    assert served(repo, CONFLICTED) == theirs  # not overwritten
    assert PASSWORD not in said
