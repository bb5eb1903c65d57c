"""cli/_pipeline_settings: a pipeline command's arguments made into settings once."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from pypidl.cli import build_parser
from pypidl.cli._pipeline_settings import (
    download_settings,
    download_sources,
    engine_options,
    plan_settings,
)
from pypidl.config import cache_dir
from pypidl.errors import BadInputError
from pypidl.manifest import Entry, Manifest
from pypidl.plan.options import PlanOptions

HERE = "http://127.0.0.1:1/simple/"
EXTRA = "http://127.0.0.1:2/simple/"
PRIVATE = "http://127.0.0.1:3/simple/"
TARGET = ["--python-version", "3.11", "--platform", "win-amd64"]


def parse(*argv: str) -> argparse.Namespace:
    return build_parser(argv[0]).parse_args(list(argv))


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(
        f"--index-url {HERE.replace('http://', 'http://me:pw@')}\n"
        f"--extra-index-url {EXTRA}\n"
        f"# pypidl: index private={PRIVATE.replace('http://', 'http://tok:en@')}\n"
        "# pypidl: project-index beta=private\n"
        "alpha\nbeta\n"
    )
    return path


def test_a_plan_reads_its_inputs_and_flags_into_one_settings_object(requirements: Path) -> None:
    settings = plan_settings(parse("plan", str(requirements), *TARGET))
    sources = settings.sources
    assert [m.simple_url for m in sources.mirrors] == [HERE, EXTRA]
    hosts = {(host, user) for host, user, _ in sources.net.credentials}
    assert hosts == {("127.0.0.1:1", "me"), ("127.0.0.1:3", "tok")}
    assert dict(sources.routing.pins) == {"beta": "private"}
    assert not sources.flagged
    assert [t.label for t in settings.targets] == ["cp311-win-amd64"]
    assert settings.requirements is not None
    assert [r.line() for r in settings.requirements.requirements] == ["alpha", "beta"]
    # the CLI gives the planner its cache directory; the rest are PlanOptions' defaults
    assert settings.options.cache_dir == cache_dir()
    assert settings.options.workers == PlanOptions().workers
    assert plan_settings(parse("plan", str(requirements), *TARGET), workers=7).options.workers == 7


def test_sync_downloads_with_the_plans_sources(requirements: Path, tmp_path: Path) -> None:
    args = parse("sync", str(requirements), "--download-dir", str(tmp_path / "m"), *TARGET)
    settings = plan_settings(args)
    entry = Entry("beta", "1.0", "beta-1.0-py3-none-any.whl", (PRIVATE + "b.whl",), "0" * 64)
    manifest = Manifest((entry,), index_urls=(HERE, EXTRA, PRIVATE), pins={"beta": PRIVATE})
    options = engine_options(download_settings(args), manifest, settings.sources)
    assert options.net == settings.sources.net  # the credentials of the requirements file too
    assert options.indexes == (HERE, EXTRA)  # the pinned-only index rescues its project alone
    assert options.pins == {"beta": (PRIVATE,)}
    assert (options.concurrency, options.lock_timeout) == (args.concurrency, args.lock_timeout)


def test_download_makes_its_own_sources_from_its_flags(tmp_path: Path) -> None:
    args = parse("download", "m.json", "-i", EXTRA, "--index", f"private={PRIVATE}")
    manifest = Manifest((), index_urls=(HERE,))
    sources = download_sources(args, manifest)
    assert sources.flagged
    assert [m.simple_url for m in sources.mirrors] == [EXTRA]
    options = engine_options(download_settings(args), manifest, sources)
    assert options.indexes == (EXTRA, HERE)  # the flags first, then the plan's


def test_bad_values_are_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="--lock-timeout"):
        download_settings(parse("download", "m.json", "--lock-timeout", "-1"))
    lock = tmp_path / "uv.lock"
    lock.write_text("")  # never read: the flag is refused first
    with pytest.raises(BadInputError, match="--no-deps does not apply to a lock"):
        plan_settings(parse("plan", str(lock), "--no-deps"))


@pytest.mark.skipif(sys.platform == "win32", reason="no /dev/stdin")
def test_requirements_on_standard_input_are_read_once() -> None:
    """Recognising a lock, the requirements and their '# pypidl:' lines each read the file:
    a pipe gives its bytes once, so they must share one read."""
    script = (
        "import sys; from pypidl.cli import build_parser; "
        "from pypidl.cli._pipeline_settings import plan_settings; "
        "s = plan_settings(build_parser('plan').parse_args(sys.argv[1:])); "
        "print([r.line() for r in s.requirements.requirements], dict(s.sources.routing.pins))"
    )
    text = f"# pypidl: index private={PRIVATE}\n# pypidl: project-index beta=private\nalpha\nbeta\n"
    done = subprocess.run(
        [sys.executable, "-c", script, "plan", "-r", "/dev/stdin", "-i", HERE, *TARGET],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['alpha', 'beta'] {'beta': 'private'}"
