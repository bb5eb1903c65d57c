"""The CLI shell: --version, every command's help, the seed's flat flags, errors to exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from pypidl import __version__
from pypidl.cli import COMMANDS, EXIT_BUG, EXIT_INTERRUPTED, EXIT_USAGE, build_parser, main
from pypidl.cli import pipeline as pipeline_cmd
from pypidl.cli._output import UI
from pypidl.errors import ProblemsError, PypidlError, RemoteIndexError
from tests.lib.server import IndexServer
from tests.lib.wheels import make_wheel

OUTPUT = ["-v", "--verbose", "-q", "--quiet", "--debug"]
NETWORK = [
    "--index-url",
    "--cn",
    "--mirrors-file",
    "--cert",
    "--client-cert",
    "--connect-timeout",
    "--timeout",
    "--stall-timeout",
    "--retries",
]
TARGETS = ["--python-version", "--platform", "--abi", "--implementation", "--targets-file"]
PLAN = ["-r", "--requirement", "--all-versions", "--all-versions-limit", "--no-deps", "--sdist"]
DOWNLOAD = ["--download-dir", "--concurrency", "--processes", "--build-index", "--index-backend"]

# the flags the README and docs promise, per command
DOCUMENTED = {
    "sync": [
        *OUTPUT, *NETWORK, *TARGETS, *PLAN, *DOWNLOAD,
        "--host-only", "--dry-run", "--url-list-path", "--manifest",
    ],
    "plan": [*OUTPUT, *NETWORK, *TARGETS, *PLAN, "--host-only", "-o", "--output"],
    "download": [*OUTPUT, *NETWORK, *DOWNLOAD, "--shard", "MANIFEST"],
    "index": [*OUTPUT, "--index-backend", "DIR"],
    "verify": [*OUTPUT, "--repair", "DIR"],
    "export": [*OUTPUT, "--format", "-o", "--shard", "--download-dir", "MANIFEST"],
    "check": [*OUTPUT, *TARGETS, "-r", "DIR"],
    "serve": [*OUTPUT, "--port", "--bind", "DIR"],
    "merge": [*OUTPUT, "-o", "MANIFEST"],
    "bundle": [*OUTPUT, "--since", "-o", "MANIFEST"],
    "import": [*OUTPUT, "--into", "--manifest", "BUNDLE"],
}  # fmt: skip

SEED_FLAGS = [
    "--dry-run",
    "--concurrency",
    "--download-dir",
    "--cn",
    "--build-index",
    "--python-version",
    "--abi",
    "--platform",
    "--all-versions",
    "--url-list-path",
    "-r",
]


def words(text: str) -> set[str]:
    """Flags and metavars of a help text, without the brackets and commas around them."""
    return set(re.split(r"[\s\[\](),|]+", text))


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"pypidl {__version__}"


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-h"]) == 0
    out = capsys.readouterr().out
    for command in DOCUMENTED:
        assert command in out
    assert "Exit codes" in out


@pytest.mark.parametrize("command", sorted(DOCUMENTED))
def test_command_help_mentions_each_documented_flag(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "-h"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: pypidl {command}")
    for flag in DOCUMENTED[command]:
        assert flag in words(out), f"{command} -h does not mention {flag}"


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([], id="no-command"),
        pytest.param(["frobnicate"], id="unknown-command"),
        pytest.param(["sync", "--no-such-flag"], id="unknown-flag"),
        pytest.param(["sync", "--concurrency", "0"], id="concurrency-0"),
        pytest.param(["sync", "--sdist", "sometimes"], id="bad-choice"),
        pytest.param(["plan", "--timeout", "-1"], id="negative-timeout"),
        pytest.param(["download"], id="missing-argument"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == EXIT_USAGE
    assert "usage:" in capsys.readouterr().err


# --------------------------------------------------------------------------- the seed's flags


def test_seed_help_lists_every_seed_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-h"], seed=True) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: pypi-downloader")
    for flag in SEED_FLAGS:
        assert flag in words(out), flag


def test_seed_dry_run_with_every_seed_flag(
    index_server: Callable[..., IndexServer],
    wheel_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The original tool's command line, flag for flag, against loopback stand-ins."""
    cn = index_server(prefix="/pypi/web")
    make_wheel(wheel_dir, "alpha", "1.0", requires_dist=["beta"])
    make_wheel(wheel_dir, "alpha", "2.0", requires_dist=["beta"])
    make_wheel(wheel_dir, "beta", "1.0")
    make_wheel(wheel_dir, "gamma", "1.0", tag="cp311-abi3-manylinux_2_17_x86_64")
    cn.add_dir(wheel_dir)
    mirrors_file = tmp_path / "mirrors.json"
    mirrors_file.write_text(
        json.dumps({"cn": [{"name": "loop", "base": f"http://127.0.0.1:{cn.port}/pypi"}]}),
        encoding="utf-8",
    )
    (tmp_path / "requirements.txt").write_text("alpha\n", encoding="utf-8")
    (tmp_path / "more.txt").write_text("gamma\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "requirements.txt",
            "-r",
            "more.txt",
            "--dry-run",
            "--concurrency",
            "8",
            "--download-dir",
            "pypi",
            "--cn",
            "--mirrors-file",
            str(mirrors_file),
            "--index-url",
            cn.simple_url,  # instead of the default index, which a test must not reach
            "--build-index",
            "--python-version",
            "cp311",
            "--abi",
            "abi3",
            "--platform",
            "manylinux_2_17_x86_64",
            "--all-versions",
            "--url-list-path",
            "urls.txt",
        ],
        seed=True,
    )
    assert code == 0
    urls = (tmp_path / "urls.txt").read_text(encoding="utf-8").split()
    assert sorted(u.rsplit("/", 1)[1] for u in urls) == [
        "alpha-1.0-py3-none-any.whl",
        "alpha-2.0-py3-none-any.whl",
        "beta-1.0-py3-none-any.whl",
        "gamma-1.0-cp311-abi3-manylinux_2_17_x86_64.whl",
    ]
    assert all(u.startswith(f"http://127.0.0.1:{cn.port}/pypi/web/packages/") for u in urls)
    assert not (tmp_path / "pypi").exists()  # a dry run downloads nothing


# --------------------------------------------------------------------------- errors


def failing_with(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    def run(args: argparse.Namespace, ui: UI) -> int:
        ui.info("started")
        raise exc

    monkeypatch.setattr(pipeline_cmd, "run_plan", run)


def log_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (PypidlError("something failed", context="here", hint="do this"), 1),
        (RemoteIndexError("all mirrors failed", hint="check the network"), 1),
        (ProblemsError("bad input", hint="fix it"), 2),
    ],
)
def test_known_error_is_one_line_and_a_hint(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exc: PypidlError,
    code: int,
) -> None:
    failing_with(monkeypatch, exc)
    assert main(["plan"]) == code == exc.exit_code
    lines = log_lines(capsys.readouterr().err)
    assert lines[-2].endswith(f"| ERROR | {exc}")
    assert lines[-1].endswith(f"| ERROR | hint: {exc.hint}")
    assert len(lines) == 3  # "started", the error, the hint: no traceback


def test_problems_are_listed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failing_with(monkeypatch, ProblemsError.collect("reqs.txt", ["p1", "p2", "p3"]))
    assert main(["plan"]) == 2
    err = capsys.readouterr().err
    assert "reqs.txt: p1 (and 2 more problem(s))" in err
    assert "  p2" in err
    assert "  p3" in err


def test_known_error_with_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failing_with(monkeypatch, PypidlError("boom"))
    assert main(["plan", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "| ERROR | boom" in err


def test_unexpected_error_is_a_bug_with_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failing_with(monkeypatch, ZeroDivisionError("oops"))
    assert main(["plan"]) == EXIT_BUG == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "ZeroDivisionError: oops" in err
    assert "unexpected error (a bug)" in err


def test_keyboard_interrupt_is_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failing_with(monkeypatch, KeyboardInterrupt())
    assert main(["plan"]) == EXIT_INTERRUPTED == 130
    err = capsys.readouterr().err
    assert "interrupted" in err
    assert "Traceback" not in err


def test_main_leaves_signals_and_logging_as_it_found_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    logger, urllib3 = logging.getLogger("pypidl"), logging.getLogger("urllib3")

    def state() -> tuple[object, ...]:
        return (
            signal.getsignal(signal.SIGTERM),
            list(logger.handlers),
            logger.level,
            logger.propagate,
            urllib3.level,
        )

    before = state()
    failing_with(monkeypatch, ZeroDivisionError("oops"))
    for _ in range(3):
        assert main(["plan", "-vv"]) == EXIT_BUG
    assert state() == before
    assert capsys.readouterr().err.count("ZeroDivisionError: oops") == 3  # no doubled handlers


def test_an_ignored_sigint_stays_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    # a background job of a shell without job control: Ctrl-C is for the foreground command
    seen: dict[str, object] = {}

    def run(args: argparse.Namespace, ui: UI) -> int:
        seen["int"], seen["term"] = (
            signal.getsignal(signal.SIGINT),
            signal.getsignal(signal.SIGTERM),
        )
        return 0

    monkeypatch.setattr(pipeline_cmd, "run_plan", run)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert main(["plan"]) == 0
        assert seen["int"] == signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert callable(seen["term"])  # SIGTERM still stops the run cleanly
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a foreground job
        assert main(["plan"]) == 0
        assert callable(seen["int"])
        assert seen["int"] is not signal.default_int_handler  # ours
    finally:
        signal.signal(signal.SIGINT, previous)


def test_missing_requirements_file_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "-r", "nope.txt", "--index-url", "http://127.0.0.1:9/simple/"]) == 2
    err = capsys.readouterr().err
    assert "nope.txt" in err
    assert "Traceback" not in err


def test_bad_index_url_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "requirements.txt").write_text("alpha\n", encoding="utf-8")
    assert main(["plan", "--index-url", "ftp://127.0.0.1/simple/"]) == 2
    assert "must start with https://" in capsys.readouterr().err


def test_summary_groups_one_reason_across_targets() -> None:
    from pypidl.cli._summary import _grouped_problems
    from pypidl.manifest import Problem

    labels = ["cp38-linux-x86_64", "cp38-win-amd64", "cp38-macos-arm64"]
    problems = [
        Problem(
            "numpy",
            f"numpy==1.26.4 cannot be installed on {label}: needs Python >=3.9",
            target=label,
        )
        for label in labels
    ] + [
        Problem("numpy", "not found on any index (404 Not Found)"),
        Problem("six", "x", target="cp39-any"),
    ]
    assert _grouped_problems(problems) == {
        "numpy": [
            "numpy==1.26.4 cannot be installed: needs Python >=3.9 "
            "(3 targets: cp38-linux-x86_64, cp38-win-amd64, ...)",
            "not found on any index (404 Not Found)",
        ],
        "six": ["x (cp39-any)"],
    }


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def test_each_command_is_registered_by_the_module_named_for_it():
    """``main`` imports only the module of the command it runs: the table must say where each
    command lives, and list them all."""
    assert _commands(build_parser()) == set(COMMANDS)
    for command, module in COMMANDS.items():
        siblings = {c for c, m in COMMANDS.items() if m == module}
        assert _commands(build_parser(command)) == siblings
