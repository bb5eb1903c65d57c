"""Reports for machines and locks out: ``--report`` against a run with failures, ``--shard auto``
under both schedulers' variables, and ``export --format pylock`` installed by uv from the mirror
alone (paths, and URLs with the mirror served over HTTP)."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pypidl.cli import main
from pypidl.store.serve import make_server
from tests.lib.mirror import find_uv
from tests.lib.server import IndexServer, Status
from tests.lib.wheels import make_sdist, make_wheel

TARGET = ["--python-version", "3.11", "--platform", "linux-x86_64"]


@pytest.fixture
def index(index_server: Callable[..., IndexServer], wheel_dir: Path) -> IndexServer:
    """alpha → beta; beta; gamma (sdist only); four more small projects for sharding."""
    srv = index_server()
    make_wheel(wheel_dir, "alpha", "1.0", requires_dist=["beta"])
    make_wheel(wheel_dir, "beta", "1.0")
    make_sdist(wheel_dir, "gamma", "0.5")
    for name in ("delta", "epsilon", "zeta", "eta"):
        make_wheel(wheel_dir, name, "1.0")
    srv.add_dir(wheel_dir)
    return srv


def files_in(root: Path) -> set[str]:
    return {
        p.name
        for p in (root / "packages").rglob("*")
        if p.is_file() and not p.name.endswith(".metadata")
    }


def test_the_report_of_a_run_with_failures(index: IndexServer, tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("alpha\ngamma\nmissing-project\n")
    index.fail_always("*/beta-1.0-py3-none-any.whl", Status(404))
    mirror, report_path = tmp_path / "mirror", tmp_path / "out" / "report.json"
    code = main(
        ["sync", "-r", str(reqs), "--index-url", index.simple_url, "--download-dir", str(mirror),
         "--report", str(report_path), "--retries", "1", *TARGET]
    )  # fmt: skip
    assert code == 1
    report = json.loads(report_path.read_text())
    assert (report["schema"], report["version"], report["command"]) == ("pypidl-report", 1, "sync")
    assert report["exit_code"] == 1
    assert report["interrupted"] is False
    assert report["download_dir"] == str(mirror.resolve())
    by_name = {f["filename"]: f for f in report["files"]}
    assert set(by_name) == {
        "alpha-1.0-py3-none-any.whl",
        "beta-1.0-py3-none-any.whl",
        "gamma-0.5.tar.gz",
    }
    alpha, beta = by_name["alpha-1.0-py3-none-any.whl"], by_name["beta-1.0-py3-none-any.whl"]
    assert alpha["status"] == "downloaded"
    assert alpha["bytes"] == (mirror / alpha["path"]).stat().st_size == alpha["size"]
    assert alpha["mirror"] == f"127.0.0.1:{index.port}"
    assert alpha["reason"] is None
    assert beta["status"] == "failed"
    assert beta["bytes"] == 0
    assert "404" in beta["reason"]
    assert [p["project"] for p in report["problems"]] == ["missing-project"]
    assert report["problem_projects"] == ["beta", "missing-project"]
    totals = report["totals"]
    assert (totals["files"], totals["downloaded"], totals["failed"], totals["skipped"]) == (
        3,
        2,
        1,
        0,
    )
    assert totals["problem_projects"] == 2

    # a second run: what is there is verified, the report says so
    code = main(
        ["sync", "-r", str(reqs), "--index-url", index.simple_url, "--download-dir", str(mirror),
         "--report", str(report_path), "--retries", "1", *TARGET]
    )  # fmt: skip
    again = json.loads(report_path.read_text())
    assert (again["totals"]["skipped"], again["totals"]["failed"]) == (2, 1)


def test_plan_report_lists_every_file_as_planned(index: IndexServer, tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("alpha\n")
    report_path = tmp_path / "report.json"
    code = main(
        ["plan", "-r", str(reqs), "--index-url", index.simple_url, "-o", str(tmp_path / "m.json"),
         "--report", str(report_path), *TARGET]
    )  # fmt: skip
    assert code == 0
    report = json.loads(report_path.read_text())
    assert report["exit_code"] == 0
    assert {f["status"] for f in report["files"]} == {"planned"}
    assert report["totals"]["planned"] == 2


@pytest.fixture
def manifest(index: IndexServer, tmp_path: Path) -> Path:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("alpha\ngamma\ndelta\nepsilon\nzeta\neta\n")
    path = tmp_path / "manifest.json"
    assert (
        main(["plan", "-r", str(reqs), "--index-url", index.simple_url, "-o", str(path), *TARGET])
        == 0
    )
    return path


@pytest.mark.parametrize(
    "scheduler",
    [
        lambda k: {"JOB_COMPLETION_INDEX": str(k - 1), "JOB_COMPLETIONS": "3"},
        lambda k: {
            "SLURM_ARRAY_TASK_ID": str(k),
            "SLURM_ARRAY_TASK_COUNT": "3",
            "SLURM_ARRAY_TASK_MIN": "1",
        },
    ],
    ids=["kubernetes", "slurm"],
)
def test_shard_auto_takes_each_host_s_share_from_the_scheduler(
    manifest: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scheduler: Callable[[int], dict[str, str]],
) -> None:
    shares: list[set[str]] = []
    for k in (1, 2, 3):
        with monkeypatch.context() as env:
            for key, value in scheduler(k).items():
                env.setenv(key, value)
            mirror = tmp_path / f"host{k}"
            assert (
                main(["download", str(manifest), "--download-dir", str(mirror), "--shard", "auto"])
                == 0
            )
            shares.append(files_in(mirror))
        expected = tmp_path / f"expected{k}"
        assert (
            main(["download", str(manifest), "--download-dir", str(expected), "--shard", f"{k}/3"])
            == 0
        )
        assert shares[-1] == files_in(expected)
    assert all(shares)
    assert not (shares[0] & shares[1])
    assert not (shares[1] & shares[2])
    assert not (shares[0] & shares[2])
    assert len(set().union(*shares)) == 7


def test_shard_auto_without_a_scheduler_is_one_clear_error(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["download", str(manifest), "--download-dir", str(tmp_path / "m"), "--shard", "auto"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "--shard auto: no scheduler told this process its share" in err
    assert "Traceback" not in err
    assert not (tmp_path / "m" / "packages").exists()


# -- pylock out ---------------------------------------------------------------------------------


@pytest.fixture
def synced(index: IndexServer, tmp_path: Path) -> Path:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("alpha\ngamma\n")
    mirror = tmp_path / "mirror"
    code = main(
        ["sync", "-r", str(reqs), "--index-url", index.simple_url, "--download-dir", str(mirror),
         "--build-index", *TARGET]
    )  # fmt: skip
    assert code == 0
    index.stop()  # the mirror alone from here on
    return mirror


@pytest.fixture
def served(synced: Path) -> Iterator[str]:
    server = make_server(synced, bind="127.0.0.1", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(5)


def uv_install_lock(lock: Path, target: Path, env: dict[str, str]) -> set[str]:
    uv = find_uv()
    assert uv is not None
    done = subprocess.run(
        [uv, "pip", "install", "--offline", "--no-index", "--python-platform", "x86_64-unknown-linux-gnu",
         "--python-version", "3.11", "--target", str(target), "-r", str(lock)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return {p.name.split("-")[0] for p in target.glob("*.dist-info")}


@pytest.mark.clients
def test_exported_pylock_with_paths_installs_with_uv_from_the_mirror_alone(
    synced: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    elsewhere = tmp_path / "locks" / "pylock.toml"
    code = main(
        ["export", str(synced / ".pypidl" / "manifest.json"), "--format", "pylock",
         "--download-dir", str(synced), "-o", str(elsewhere)]
    )  # fmt: skip
    assert code == 0
    text = elsewhere.read_text()
    assert 'path = "../mirror/packages/alpha/alpha-1.0-py3-none-any.whl"' in text
    assert "size = " in text
    assert "hashes = { sha256 = " in text
    assert uv_install_lock(elsewhere, tmp_path / "site", clean_env) == {"alpha", "beta", "gamma"}


@pytest.mark.clients
def test_exported_pylock_with_base_url_installs_with_uv_from_the_served_mirror(
    synced: Path, served: str, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    lock = tmp_path / "pylock.toml"
    code = main(
        ["export", str(synced / ".pypidl" / "manifest.json"), "--format", "pylock",
         "--base-url", served, "-o", str(lock)]
    )  # fmt: skip
    assert code == 0
    assert f'url = "{served}packages/beta/beta-1.0-py3-none-any.whl"' in lock.read_text()
    # --offline forbids uv its network except for the URLs the lock names... so leave it out
    # here: the only server running is the mirror's
    uv = find_uv()
    assert uv is not None
    target = tmp_path / "site"
    done = subprocess.run(
        [uv, "pip", "install", "--no-index", "--python-platform", "x86_64-unknown-linux-gnu",
         "--python-version", "3.11", "--target", str(target), "-r", str(lock)],
        env=clean_env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert {p.name.split("-")[0] for p in target.glob("*.dist-info")} == {"alpha", "beta", "gamma"}


def test_a_tampered_mirror_file_fails_the_pylock_install(
    synced: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    lock = synced / "pylock.toml"
    assert main(["export", str(synced / ".pypidl" / "manifest.json"), "--format", "pylock",
                 "--download-dir", str(synced), "-o", str(lock)]) == 0  # fmt: skip
    wheel = synced / "packages" / "beta" / "beta-1.0-py3-none-any.whl"
    # a valid wheel of the same name and size, other bytes: only the hash can tell
    other = make_wheel(tmp_path / "other", "beta", "1.0", summary="TEST PACKAGE")
    assert other.stat().st_size == wheel.stat().st_size
    wheel.write_bytes(other.read_bytes())
    uv = find_uv()
    assert uv is not None
    done = subprocess.run(
        [uv, "pip", "install", "--offline", "--no-index", "--python-platform", "x86_64-unknown-linux-gnu",
         "--python-version", "3.11", "--target", str(tmp_path / "site"), "-r", str(lock)],
        env=clean_env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "hash" in done.stderr.lower()


@pytest.mark.clients
def test_a_package_with_wheels_for_one_system_only_is_locked_for_that_system(
    index: IndexServer, wheel_dir: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    index.add_file(make_wheel(wheel_dir / "win", "winonly", "1.0", tag="py3-none-win_amd64"))
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("alpha\nwinonly ; sys_platform == 'win32'\n")
    mirror = tmp_path / "mirror"
    code = main(
        ["sync", "-r", str(reqs), "--index-url", index.simple_url, "--download-dir", str(mirror),
         "--python-version", "3.11", "--platform", "linux-x86_64", "--platform", "win-amd64"]
    )  # fmt: skip
    assert code == 0
    lock = mirror / "pylock.toml"
    assert main(["export", str(mirror / ".pypidl" / "manifest.json"), "--format", "pylock",
                 "--download-dir", str(mirror), "-o", str(lock)]) == 0  # fmt: skip
    assert "marker = \"sys_platform == 'win32'\"" in lock.read_text()
    uv = find_uv()
    assert uv is not None
    for platform, expected in (
        ("x86_64-unknown-linux-gnu", {"alpha", "beta"}),
        ("x86_64-pc-windows-msvc", {"alpha", "beta", "winonly"}),
    ):
        target = tmp_path / f"site-{platform}"
        done = subprocess.run(
            [uv, "pip", "install", "--offline", "--no-index", "--python-platform", platform,
             "--python-version", "3.11", "--target", str(target), "-r", str(lock)],
            env=clean_env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert {p.name.split("-")[0] for p in target.glob("*.dist-info")} == expected
