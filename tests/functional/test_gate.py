"""What may cross the gap: cooldown (PEP 700 upload times) and project status (PEP 792).

Loopback indexes serve upload times (or none), statuses in JSON and HTML; the real CLI plans
and syncs, and the built mirror serves what it read to pip and uv.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pypidl.cli import main
from pypidl.store.serve import make_server
from tests.lib.mirror import find_uv
from tests.lib.server import IndexServer
from tests.lib.wheels import make_wheel

TARGET = ["--python-version", "3.11", "--platform", "linux-x86_64"]


def _recent() -> str:
    moment = datetime.now(timezone.utc) - timedelta(hours=2)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def index(index_server: Callable[..., IndexServer], wheel_dir: Path) -> IndexServer:
    """beta 1.0 (2024) and 2.0 (two hours ago); gamma 1.0 without an upload time."""
    srv = index_server()
    srv.add_file(make_wheel(wheel_dir, "beta", "1.0"), upload_time="2024-01-01T00:00:00Z")
    srv.add_file(make_wheel(wheel_dir, "beta", "2.0"), upload_time=_recent())
    srv.add_file(make_wheel(wheel_dir, "gamma", "1.0"), upload_time=None)
    return srv


def _run(index: IndexServer, tmp_path: Path, command: str, reqs: str, *extra: str) -> int:
    path = tmp_path / "requirements.txt"
    path.write_text(reqs, encoding="utf-8")
    where = (
        ["--manifest", str(tmp_path / "manifest.json")]
        if command == "plan"
        else ["--download-dir", str(tmp_path / "mirror"), "--build-index"]
    )
    return main(
        [command, "-r", str(path), "--index-url", index.simple_url, *where, *TARGET, *extra]
    )


@contextlib.contextmanager
def serving(mirror: Path) -> Iterator[str]:
    """``pypidl serve`` of ``mirror`` in a thread (JSON pages by negotiation); its index URL."""
    server = make_server(mirror, bind="127.0.0.1", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def install(
    python: Path, env: dict[str, str], mirror: Path, *args: str, uv: bool = False, url: str = ""
) -> None:
    """Install ``args`` into ``python``'s venv from ``mirror`` (over file://, or ``url``),
    with pip or uv."""
    simple = url or (mirror / "simple").resolve().as_uri() + "/"
    if uv:
        found = find_uv()
        if found is None:
            pytest.skip("the uv package is not installed")
        cmd = [found, "pip", "install", "--no-config", "--python", str(python), "--no-cache"]
    else:
        cmd = [str(python), "-m", "pip", "install", "--no-cache-dir"]
    done = subprocess.run(
        [*cmd, "--index-url", simple, *args],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def _planned(tmp_path: Path) -> dict[str, str]:
    files = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))["files"]
    return {f["project"]: f["version"] for f in files}


@pytest.mark.parametrize("when", ["36h", "2025-06-01"])
def test_exclude_newer_hides_files_uploaded_after_the_cutoff(
    index: IndexServer, tmp_path: Path, when: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(index, tmp_path, "plan", "beta\ngamma\n") == 0
    assert _planned(tmp_path) == {"beta": "2.0", "gamma": "1.0"}
    capsys.readouterr()
    assert _run(index, tmp_path, "plan", "beta\ngamma\n", "--exclude-newer", when) == 0
    assert _planned(tmp_path) == {"beta": "1.0", "gamma": "1.0"}
    out = capsys.readouterr()
    # gamma's page gives no upload time: named, its file kept rather than guessed about
    assert "gamma" in out.out
    assert "no upload time" in out.out + out.err


def test_exclude_newer_leaves_nothing_when_every_file_is_newer(
    index: IndexServer, tmp_path: Path
) -> None:
    assert _run(index, tmp_path, "plan", "beta\n", "--exclude-newer", "2020-01-01") == 1


@pytest.mark.parametrize("bad", ["7x", "2025-13-45"])
def test_a_bad_cutoff_is_bad_input(
    index: IndexServer, tmp_path: Path, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(index, tmp_path, "plan", "beta\n", "--exclude-newer", bad) == 2
    err = capsys.readouterr().err
    assert "--exclude-newer" in err
    assert "Traceback" not in err


@pytest.mark.clients
@pytest.mark.timeout(300)
def test_uv_exclude_newer_works_against_the_built_mirror(
    index: IndexServer, tmp_path: Path, clean_env: dict[str, str], venv_factory: Callable[[], Path]
) -> None:
    assert _run(index, tmp_path, "sync", "beta\n", "--all-versions") == 0
    page = json.loads((tmp_path / "mirror/simple/beta/index.json").read_text(encoding="utf-8"))
    times = {f["filename"]: f.get("upload-time") for f in page["files"]}
    assert times["beta-1.0-py3-none-any.whl"] == "2024-01-01T00:00:00.000000Z"
    python = venv_factory()
    cutoff = ["--exclude-newer", "2025-01-01T00:00:00Z"]
    # over HTTP, where the JSON pages (which carry PEP 700 upload times) are negotiated
    with serving(tmp_path / "mirror") as url:
        install(python, clean_env, tmp_path / "mirror", *cutoff, "beta", uv=True, url=url)
    assert list(python.parent.parent.glob("lib/python*/site-packages/beta-1.0.dist-info"))


# ------------------------------------------------------------------------------- project status


@pytest.fixture
def statuses(
    index_server: Callable[..., IndexServer], wheel_dir: Path
) -> Callable[..., IndexServer]:
    def make(**kwargs: object) -> IndexServer:
        srv = index_server(**kwargs)
        for name in ("alpha", "beta", "gamma", "delta"):
            srv.add_file(make_wheel(wheel_dir, name, "1.0"))
        srv.statuses.update(
            {
                "alpha": ("quarantined", "malware report under review"),
                "beta": ("archived", "moved to beta2"),
                "gamma": ("deprecated", None),
            }
        )
        return srv

    return make


@pytest.mark.parametrize("pages", ["json", "html"])
def test_project_status_refuses_quarantined_warns_and_serves_the_rest(
    statuses: Callable[..., IndexServer],
    tmp_path: Path,
    pages: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    index = statuses(json=pages == "json")
    report = tmp_path / "report.json"
    rc = _run(index, tmp_path, "sync", "alpha\nbeta\ngamma\ndelta\n", "--report", str(report))
    assert rc == 1  # alpha refused, the rest done
    out = capsys.readouterr().out
    assert "quarantined" in out
    assert "archived" in out
    assert "moved to beta2" in out
    assert "deprecated" in out
    mirror = tmp_path / "mirror"
    held = sorted(p.name for p in (mirror / "packages").iterdir())
    assert held == ["beta", "delta", "gamma"]
    data = json.loads(report.read_text(encoding="utf-8"))
    reasons = {(p["project"], p["severity"]): p["reason"] for p in data["problems"]}
    assert "quarantined" in reasons[("alpha", "error")]
    assert "archived" in reasons[("beta", "warning")]
    assert "deprecated" in reasons[("gamma", "warning")]
    beta = json.loads((mirror / "simple/beta/index.json").read_text(encoding="utf-8"))
    assert beta["project-status"] == {"status": "archived", "reason": "moved to beta2"}
    html = (mirror / "simple/gamma/index.html").read_text(encoding="utf-8")
    assert '<meta name="pypi:project-status" content="deprecated">' in html
    delta = json.loads((mirror / "simple/delta/index.json").read_text(encoding="utf-8"))
    assert "project-status" not in delta


@pytest.mark.clients
@pytest.mark.timeout(300)
def test_pip_and_uv_install_from_a_mirror_serving_statuses(
    statuses: Callable[..., IndexServer],
    tmp_path: Path,
    clean_env: dict[str, str],
    venv_factory: Callable[[], Path],
) -> None:
    index = statuses()
    assert _run(index, tmp_path, "sync", "beta\ngamma\n") == 0
    python = venv_factory()
    install(python, clean_env, tmp_path / "mirror", "beta")
    install(python, clean_env, tmp_path / "mirror", "gamma", uv=True)
    site = python.parent.parent / "lib"
    assert list(site.glob("python*/site-packages/beta-1.0.dist-info"))
    assert list(site.glob("python*/site-packages/gamma-1.0.dist-info"))
