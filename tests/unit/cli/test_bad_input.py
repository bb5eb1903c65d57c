"""What a user sees when the input is wrong: one line, no traceback, the right exit code.

Each test here pins a fix made while auditing the command line as a new user would meet it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pypidl.cli import EXIT_FAILED, EXIT_USAGE, main
from tests.lib.server import IndexServer
from tests.lib.wheels import make_wheel

TARGET = ["--python-version", "3.11", "--platform", "linux-x86_64"]


@pytest.fixture
def index(index_server: Callable[..., IndexServer], wheel_dir: Path) -> IndexServer:
    srv = index_server()
    make_wheel(wheel_dir, "alpha", "1.0")
    srv.add_dir(wheel_dir)
    return srv


@pytest.fixture
def reqs(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("alpha\n", encoding="utf-8")
    return path


@pytest.fixture
def manifest(index: IndexServer, reqs: Path, tmp_path: Path) -> Path:
    out = tmp_path / "manifest.json"
    assert (
        main(["plan", str(reqs), "-q", "--index-url", index.simple_url, *TARGET, "-o", str(out)])
        == 0
    )
    return out


def one_clean_error(err: str, *needles: str) -> None:
    """Exactly one ERROR line (plus an optional hint), naming every needle, and no traceback."""
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "| ERROR |" in line and "hint:" not in line]
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], err


# -- outputs that are directories: a traceback and exit 3 before -------------------------------


def test_plan_output_that_is_a_directory_is_bad_input(
    index: IndexServer, reqs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    code = main(["plan", str(reqs), "--index-url", index.simple_url, *TARGET, "-o", str(out)])
    assert code == EXIT_USAGE
    one_clean_error(capsys.readouterr().err, str(out), "is a directory")
    assert index.requests == []  # refused before planning


def test_dry_run_url_list_below_a_file_is_bad_input(
    index: IndexServer, reqs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("", encoding="utf-8")
    code = main(
        [
            "sync",
            str(reqs),
            "--index-url",
            index.simple_url,
            *TARGET,
            "--dry-run",
            "--url-list-path",
            str(blocker / "urls.txt"),
        ]
    )
    assert code == EXIT_USAGE
    one_clean_error(capsys.readouterr().err, "is not a directory")


@pytest.mark.parametrize(
    "command",
    [
        ["export", "{m}", "--format", "urls", "-o", "{out}"],
        ["merge", "{m}", "{m}", "-o", "{out}"],
        ["bundle", "{m}", "--download-dir", "{tmp}", "-o", "{out}"],
    ],
)
def test_transfer_outputs_that_are_directories_are_bad_input(
    command: list[str], manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    argv = [a.format(m=manifest, out=out, tmp=tmp_path) for a in command]
    assert main(argv) == EXIT_USAGE
    one_clean_error(capsys.readouterr().err, "is a directory")


# -- the download directory: one failure per file and exit 1 before -----------------------------


def test_download_dir_that_is_a_file_is_one_line_and_exit_2(
    manifest: Path, index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("", encoding="utf-8")
    index.clear_requests()
    assert main(["download", str(manifest), "--download-dir", str(blocker)]) == EXIT_USAGE
    one_clean_error(capsys.readouterr().err, str(blocker), "not a directory")
    assert index.requests == []


@pytest.mark.skipif(
    # getattr: Windows has no geteuid, and collecting this module must work there too
    getattr(os, "geteuid", lambda: 1)() == 0,
    reason="root writes into read-only directories",
)
def test_unwritable_download_dir_is_refused_before_planning(
    index: IndexServer, reqs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code = main(["sync", str(reqs), "--index-url", index.simple_url, *TARGET,
                     "--download-dir", str(locked / "pypi")])  # fmt: skip
    finally:
        locked.chmod(0o755)
    assert code == EXIT_USAGE
    one_clean_error(capsys.readouterr().err, "cannot write to the download directory")
    assert index.requests == []


def test_sync_says_where_packages_go_then_refuses_a_file(
    index: IndexServer, reqs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("", encoding="utf-8")
    code = main(["sync", str(reqs), "--index-url", index.simple_url, *TARGET,
                 "--download-dir", str(blocker)])  # fmt: skip
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.splitlines()[0].endswith(f"| INFO | Packages will be downloaded to {blocker}")
    one_clean_error(err, "is a file")
    assert index.requests == []


# -- directories that are no mirror: an empty index or a clean verify before -------------------


@pytest.mark.parametrize("command", ["index", "verify"])
def test_a_directory_without_a_mirror_is_bad_input(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "typo"
    empty.mkdir()
    assert main([command, str(empty)]) == EXIT_USAGE
    one_clean_error(capsys.readouterr().err, str(empty), "not a pypidl mirror")
    assert list(empty.iterdir()) == []  # no empty simple/ written


# -- a file that is not a bundle: a multi-line tarfile message before ---------------------------


def test_import_of_a_file_that_is_no_tar_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "delta.tar"
    junk.write_bytes(b"not a tar at all")
    assert main(["import", str(junk), "--into", str(tmp_path / "mirror")]) == EXIT_USAGE
    err = capsys.readouterr().err
    one_clean_error(err, str(junk), "not a tar archive")
    assert len(err.strip().splitlines()) == 1


# -- flags that did nothing, or nonsense ---------------------------------------------------------


def test_retries_below_one_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["download", "m.json", "--retries", "0"]) == EXIT_USAGE
    assert "--retries" in capsys.readouterr().err


def test_mirrors_file_without_cn_warns_that_it_is_unused(
    index: IndexServer, reqs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sync", str(reqs), "--index-url", index.simple_url, *TARGET, "--dry-run",
                 "--url-list-path", str(tmp_path / "u.txt"), "--mirrors-file", "sets.json"])  # fmt: skip
    assert code == 0
    assert (
        "| WARNING | --mirrors-file sets.json is not used without --cn" in capsys.readouterr().err
    )


# -- an OSError about a file is the environment's fault, not a bug -------------------------------


def test_oserror_naming_a_file_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pypidl.cli.pipeline as pipeline

    def full_disk(*args: object, **kwargs: object) -> int:
        raise OSError(28, "No space left on device", "/srv/pypi/packages/x.whl")

    monkeypatch.setattr(pipeline, "run_download", full_disk)
    assert main(["download", "m.json"]) == EXIT_FAILED
    one_clean_error(capsys.readouterr().err, "/srv/pypi/packages/x.whl", "No space left on device")


# -- -v and -vv: they said the same thing before --------------------------------------------------


def test_twice_verbose_shows_http_requests_and_once_does_not(
    index: IndexServer, reqs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    before = list(logging.getLogger("urllib3").handlers)
    argv = ["plan", str(reqs), "--index-url", index.simple_url, *TARGET, "-o", str(tmp_path / "m")]
    assert main([*argv, "-v"]) == 0
    once = capsys.readouterr().err
    assert main([*argv, "-vv"]) == 0
    twice = capsys.readouterr().err
    assert "| DEBUG |" in once
    assert '"GET /simple/alpha/ HTTP/1.1"' not in once
    assert '"GET /simple/alpha/ HTTP/1.1" 304' in twice  # the page the first run kept: unchanged
    assert logging.getLogger("urllib3").handlers == before  # main() took its handler away again


# -- "fetched" counted files placed, not bytes received ------------------------------------------


def test_done_line_counts_the_bytes_the_mirrors_sent(
    manifest: Path, index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pypidl.cli._output import format_bytes
    from tests.lib.server import Corrupt

    index.fail("*alpha-1.0-py3-none-any.whl", Corrupt())  # the first body is thrown away
    code = main(["download", str(manifest), "--download-dir", str(tmp_path / "m")])
    assert code == 0
    err = capsys.readouterr().err
    size = next((tmp_path / "m" / "packages" / "alpha").glob("*.whl")).stat().st_size
    assert f"1 downloaded, 0 already verified, 0 failed; {format_bytes(2 * size)} fetched" in err


# -- bundle and import said everything twice (the library's line, then the CLI's) -----------------


def test_bundle_and_import_say_it_once(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mirror, tar = tmp_path / "outside", tmp_path / "delta.tar"
    assert main(["download", str(manifest), "--download-dir", str(mirror), "-q"]) == 0
    capsys.readouterr()
    assert main(["bundle", str(manifest), "--download-dir", str(mirror), "-o", str(tar)]) == 0
    assert main(["import", str(tar), "--into", str(tmp_path / "inside")]) == 0
    lines = capsys.readouterr().err.lower().splitlines()
    assert len([line for line in lines if "| info | bundled" in line]) == 1
    assert len([line for line in lines if "| info | imported" in line]) == 1
