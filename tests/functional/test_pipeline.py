"""The whole pipeline end to end: requirements → manifest → verified download → pip install.

A real index on 127.0.0.1 serves wheels these tests build; pypidl runs in-process through
``pypidl.cli.main`` (workers are real spawned processes); pip installs from the result in a
fresh virtualenv with no other index.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pypidl.cli import main
from tests.lib.server import IndexServer
from tests.lib.wheels import make_sdist, make_wheel

TARGET = ["--python-version", "3.11", "--platform", "linux-x86_64"]


@pytest.fixture
def index(index_server: Callable[..., IndexServer], wheel_dir: Path) -> IndexServer:
    """alpha 1.0/2.0 → beta; beta 1.0; legacy (a Python-2-only old release); gamma (sdist only)."""
    srv = index_server()
    make_wheel(wheel_dir, "alpha", "1.0", requires_dist=["beta>=1.0"])
    make_wheel(wheel_dir, "alpha", "2.0", requires_dist=["beta>=1.0"])
    make_wheel(wheel_dir, "beta", "1.0")
    make_wheel(wheel_dir, "legacy", "0.9", tag="py2-none-any")
    make_wheel(wheel_dir, "legacy", "1.0", tag="py3-none-any")
    make_wheel(
        wheel_dir, "native", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"
    )
    make_wheel(wheel_dir, "native", "1.0", tag="cp311-cp311-win_amd64")
    srv.add_dir(wheel_dir)
    srv.add_file(make_sdist(wheel_dir / "sd", "gamma", "0.5"))
    return srv


def write_reqs(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sync(index: IndexServer, reqs: Path, mirror: Path, *extra: str) -> int:
    """``pypidl sync`` of ``reqs`` from ``index`` into ``mirror`` for the test target."""
    return main(
        ["sync", "-r", str(reqs), "--index-url", index.simple_url, "--download-dir", str(mirror),
         *TARGET, *extra]
    )  # fmt: skip


def files_in(root: Path) -> set[str]:
    return {
        p.name
        for p in (root / "packages").rglob("*")
        if p.is_file() and not p.name.endswith(".metadata")
    }


def pip_install(
    python: Path, env: dict[str, str], index_url: str, *reqs: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "pip", "install", "--no-cache-dir", "--index-url", index_url, *reqs],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.clients
def test_sync_mirrors_closure_and_pip_installs_from_it(
    index: IndexServer,
    tmp_path: Path,
    venv_factory: Callable[[], Path],
    clean_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    reqs = write_reqs(tmp_path, "alpha", "native", "legacy")
    mirror = tmp_path / "mirror"
    code = sync(index, reqs, mirror, "--build-index")
    out = capsys.readouterr()
    assert code == 0, out.err
    # the resolved version and its dependency; the host's wheel of native, not the Windows one;
    # never the Python-2-only file
    assert files_in(mirror) == {
        "alpha-2.0-py3-none-any.whl",
        "beta-1.0-py3-none-any.whl",
        "legacy-1.0-py3-none-any.whl",
        "native-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    }
    assert "Package Synchronization Summary" in out.out
    assert "Synchronized" in out.out
    assert "Packages will be downloaded to" in out.err

    python = venv_factory()
    index.stop()  # nothing may come from the original index any more
    result = pip_install(python, clean_env, (mirror / "simple").as_uri() + "/", "alpha", "legacy")
    assert result.returncode == 0, result.stdout + result.stderr
    shown = subprocess.run(
        [
            str(python),
            "-c",
            "import alpha, beta, legacy; print(alpha.__version__, beta.__version__, legacy.__version__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.split() == ["2.0", "1.0", "1.0"]


def test_dry_run_writes_url_list_and_downloads_nothing(
    index: IndexServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_reqs(tmp_path, "alpha")
    # the seed's entry point: positional requirements file defaults to ./requirements.txt
    code = main(["--index-url", index.simple_url, "--dry-run", *TARGET], seed=True)
    assert code == 0
    urls = (tmp_path / "url_list.txt").read_text().split()
    assert sorted(u.rsplit("/", 1)[1] for u in urls) == [
        "alpha-2.0-py3-none-any.whl",
        "beta-1.0-py3-none-any.whl",
    ]
    assert all(u.startswith(index.url) for u in urls)
    assert not (tmp_path / "pypi").exists()
    assert not index.requests_matching("*.whl")

    code = main(
        [
            "requirements.txt",
            "--index-url",
            index.simple_url,
            "--dry-run",
            "--url-list-path",
            "elsewhere.txt",
            *TARGET,
        ],
        seed=True,
    )
    assert code == 0
    assert (tmp_path / "elsewhere.txt").read_text().split() == urls


def test_plan_then_download_then_index(index: IndexServer, tmp_path: Path) -> None:
    reqs = write_reqs(tmp_path, "alpha==1.0", "gamma")
    manifest_path = tmp_path / "m.json"
    assert (
        main(
            [
                "plan",
                "-r",
                str(reqs),
                "--index-url",
                index.simple_url,
                "-o",
                str(manifest_path),
                *TARGET,
            ]
        )
        == 0
    )
    data = json.loads(manifest_path.read_text())
    assert data["schema"] == "pypidl-manifest"
    assert data["version"] == 2  # the manifest schema this plan writes (docs/manifest.md)
    by_name = {f["filename"]: f for f in data["files"]}
    # an sdist-only project keeps its sdist; a project with a fitting wheel does not need one
    assert set(by_name) == {
        "alpha-1.0-py3-none-any.whl",
        "beta-1.0-py3-none-any.whl",
        "gamma-0.5.tar.gz",
    }
    assert by_name["gamma-0.5.tar.gz"]["kind"] == "sdist"
    served = {f.filename: f for f in index.files}
    for name, entry in by_name.items():
        assert entry["sha256"] == served[name].sha256
        assert entry["size"] == served[name].size
    assert not index.requests_matching("*.whl")

    mirror = tmp_path / "mirror"
    assert main(["download", str(manifest_path), "--download-dir", str(mirror)]) == 0
    assert files_in(mirror) == set(by_name)
    assert main(["index", str(mirror)]) == 0
    page = (mirror / "simple" / "gamma" / "index.html").read_text()
    assert "gamma-0.5.tar.gz#sha256=" + served["gamma-0.5.tar.gz"].sha256 in page

    # a second download over the complete mirror asks the index for nothing
    index.clear_requests()
    assert main(["download", str(manifest_path), "--download-dir", str(mirror)]) == 0
    assert index.requests == []


def test_all_versions_takes_every_python3_release(
    index: IndexServer, tmp_path: Path, wheel_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index.add_file(make_wheel(wheel_dir / "more", "beta", "0.9"))
    reqs = write_reqs(tmp_path, "alpha", "legacy")
    manifest_path = tmp_path / "m.json"

    def plan(*extra: str) -> set[str]:
        code = main(
            ["plan", "-r", str(reqs), "--index-url", index.simple_url, "-o", str(manifest_path),
             "--all-versions", *extra, *TARGET]
        )  # fmt: skip
        assert code == 0
        return {f["filename"] for f in json.loads(manifest_path.read_text())["files"]}

    names = plan()
    # every release of every project of the closure, dependencies included (the seed's meaning)
    assert names == {
        "alpha-1.0-py3-none-any.whl",
        "alpha-2.0-py3-none-any.whl",
        "beta-0.9-py3-none-any.whl",
        "beta-1.0-py3-none-any.whl",
        "legacy-1.0-py3-none-any.whl",
    }
    assert "legacy-0.9-py2-none-any.whl" not in names
    # the growth is reported, with the way to cap it
    assert (
        "--all-versions added 2 release(s) of 2 project(s): 2 of 5 file(s)"
        in capsys.readouterr().err
    )
    # --all-versions-limit keeps the newest N of each project
    assert plan("--all-versions-limit", "1") == {
        "alpha-2.0-py3-none-any.whl",
        "beta-1.0-py3-none-any.whl",
        "legacy-1.0-py3-none-any.whl",
    }


def test_missing_project_fails_alone(
    index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reqs = write_reqs(tmp_path, "alpha", "does-not-exist")
    mirror = tmp_path / "mirror"
    code = sync(index, reqs, mirror)
    out = capsys.readouterr().out
    assert code == 1
    assert {"alpha-2.0-py3-none-any.whl", "beta-1.0-py3-none-any.whl"} == files_in(mirror)
    row = next(line for line in out.splitlines() if "does-not-exist" in line)
    assert "Failed" in row
    assert "404" in row


def test_file_failing_everywhere_fails_alone(
    index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.lib.server import Status

    index.fail_always("*/beta-1.0-py3-none-any.whl", Status(404))
    reqs = write_reqs(tmp_path, "alpha", "legacy")
    mirror = tmp_path / "mirror"
    code = sync(index, reqs, mirror)
    out = capsys.readouterr().out
    assert code == 1
    assert files_in(mirror) == {"alpha-2.0-py3-none-any.whl", "legacy-1.0-py3-none-any.whl"}
    row = next(line for line in out.splitlines() if line.startswith("| beta"))
    assert "Failed" in row
    assert "All mirrors failed: 404" in row


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("alpha >>= 1", "requirements.txt:2"),
        ("-e ./local", "requirements.txt:2"),
        ("git+https://example.invalid/x.git", "requirements.txt:2"),
    ],
)
def test_bad_requirement_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, expected: str
) -> None:
    reqs = write_reqs(tmp_path, "alpha", line)
    code = main(["plan", "-r", str(reqs), "--index-url", "http://127.0.0.1:9/simple/"])
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err
    assert "Traceback" not in err
    assert len([ln for ln in err.splitlines() if "| ERROR |" in ln]) <= 2  # the error and its hint


@pytest.mark.parametrize(
    "flags",
    [["--python-version", "2.7"], ["--python-version", "banana"], ["--platform", "amiga-68k"]],
)
def test_bad_target_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    reqs = write_reqs(tmp_path, "alpha")
    code = main(["plan", "-r", str(reqs), "--index-url", "http://127.0.0.1:9/simple/", *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err


def test_broken_manifest_is_exit_2_and_downloads_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "schema": "pypidl-manifest",
                "version": 1,
                "files": [
                    {
                        "project": "evil",
                        "version": "1.0",
                        "filename": "../../evil-1.0-py3-none-any.whl",
                        "sha256": "0" * 64,
                        "urls": ["http://127.0.0.1:9/evil.whl"],
                    }
                ],
            }
        )
    )
    code = main(["download", str(bad), "--download-dir", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2
    assert "bad.json" in err
    assert "not a safe file name" in err
    assert not (tmp_path / "m").exists()
    assert not list(tmp_path.parent.glob("evil*"))


def test_hash_pins_choose_exactly_the_pinned_files(index: IndexServer, tmp_path: Path) -> None:
    served = {f.filename: f for f in index.files}
    linux = served["native-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"]
    reqs = write_reqs(
        tmp_path, f"native==1.0 --hash=sha256:{linux.sha256}", "beta --hash=sha256:" + "0" * 64
    )
    manifest_path = tmp_path / "m.json"
    code = main(
        [
            "plan", "-r", str(reqs), "--index-url", index.simple_url, "-o", str(manifest_path),
            "--python-version", "3.11", "--platform", "linux-x86_64", "--platform", "win-amd64",
        ]
    )  # fmt: skip
    data = json.loads(manifest_path.read_text())
    # both targets could use a native wheel, but pip --require-hashes would accept only this one
    assert [f["filename"] for f in data["files"]] == [linux.filename]
    # a hash that matches nothing is a problem naming the requirement's line, and exit 1
    assert code == 1
    (problem,) = [p for p in data["problems"] if p["project"] == "beta"]
    assert "requirements.txt:2" in problem["reason"]


def test_a_host_that_is_no_target_does_not_block_the_plan(
    index: IndexServer, tmp_path: Path, wheel_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pip-compile resolves for the interpreter pypidl runs on; its pins are only a preference.

    A project with wheels for the targets alone (here: CPython 3.8 on Windows, which no test host
    is) makes pip-compile fail, and the per-target closure must still plan it.
    """
    foreign = index.add_file(
        make_wheel(wheel_dir / "foreign", "winonly", "1.0", tag="cp38-cp38-win_amd64")
    )
    reqs = write_reqs(tmp_path, "winonly", "alpha")
    manifest_path = tmp_path / "m.json"
    code = main(
        ["plan", "-r", str(reqs), "--index-url", index.simple_url, "-o", str(manifest_path),
         "--python-version", "3.8", "--platform", "win-amd64", "--pip-compile"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert "pip-compile could not resolve for this host" in err
    names = {f["filename"] for f in json.loads(manifest_path.read_text())["files"]}
    assert names == {foreign.filename, "alpha-2.0-py3-none-any.whl", "beta-1.0-py3-none-any.whl"}


def test_plan_reads_pages_and_metadata_only_and_runs_no_pip(
    index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default plan is pypidl's own resolver: pages, .metadata files, the head of an sdist
    that has none; no pip-compile (its pip would announce itself as the installer)."""
    reqs = write_reqs(tmp_path, "alpha", "gamma")
    code = main(
        ["plan", "-r", str(reqs), "--index-url", index.simple_url, "-o", str(tmp_path / "m.json"),
         *TARGET]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert not [r for r in index.requests if '"name":"pip"' in r.headers.get("user-agent", "")]
    paths = sorted(r.path.rsplit("/", 1)[-1] or r.path for r in index.requests)
    assert not [p for p in paths if p.endswith(".whl")], "a wheel was downloaded while planning"
    assert "Metadata of 3 file(s): 2 from .metadata files" in err
    assert "1 downloaded whole" in err  # gamma: an sdist so small its head is all of it
