"""The flags ``sync``, ``plan`` and ``download`` share, added to their parsers in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pypidl.cli._common import positive_int
from pypidl.config import DEFAULT_CONCURRENCY
from pypidl.store.locks import DEFAULT_LOCK_TIMEOUT

if TYPE_CHECKING:
    import argparse

__all__ = ["download_flags", "plan_flags", "report_flag", "requirement_flags"]


def report_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--report",
        metavar="FILE",
        help="write the run's outcome as JSON: every file with its status, bytes, mirror and "
        "reason, the totals, the problems, the exit code (see docs/report.md)",
    )


def requirement_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-r",
        "--requirement",
        dest="requirement_files",
        action="append",
        default=[],
        metavar="FILE",
        help="requirements file, pip syntax (repeatable); a lockfile given here is read as one",
    )
    p.add_argument(
        "--lock",
        dest="lock_files",
        action="append",
        default=[],
        metavar="FILE",
        help="a lockfile: uv.lock, pylock.toml, poetry.lock or Pipfile.lock (recognised by name "
        "or content also as REQUIREMENTS); mirror exactly what it pins, for the targets",
    )
    p.add_argument(
        "--keep-lock-indexes",
        action="store_true",
        help="with --index-url and a lock: still read each package the lock took from another "
        "index from that index only (by default --index-url replaces the lock's indexes)",
    )


def plan_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to mirror")
    g.add_argument(
        "--all-versions",
        action="store_true",
        help="every release with a Python 3 file of every project in the closure (dependencies "
        "included), each with its own dependencies; not only the resolved versions",
    )
    g.add_argument(
        "--all-versions-limit",
        type=positive_int,
        metavar="N",
        help="with --all-versions: only the newest N versions of each project",
    )
    g.add_argument(
        "--pre",
        action="store_true",
        help="with --all-versions: pre-releases too (yanked releases are always kept, marked)",
    )
    g.add_argument(
        "--no-deps", action="store_true", help="mirror the named projects only, no dependencies"
    )
    g.add_argument(
        "--sdist",
        choices=("auto", "always", "never"),
        default="auto",
        help="auto (default): keep a release's sdist when some target has no wheel for it",
    )
    g.add_argument(
        "--prefer-newest",
        action="store_true",
        help="take each project's newest release a target installs, even when only its sdist "
        "fits and an older release has a wheel (default: wheels first, like pip's "
        "--prefer-binary, falling back to sdists only where no wheels-only solution exists)",
    )
    g.add_argument(
        "--no-build-deps",
        action="store_true",
        help="leave out what builds the kept sdists (their build backends and requirements)",
    )
    g.add_argument(
        "--refresh",
        action="store_true",
        help="read every project page in full and resolve again, ignoring the pages and plans "
        "earlier runs kept (by default an unchanged page is revalidated, not read again, and a "
        "plan of unchanged inputs and pages is reused)",
    )
    g.add_argument(
        "--host-only",
        action="store_true",
        help="skip the per-target closure: mirror pip-compile's host pins for every target",
    )
    g.add_argument(
        "--pip-compile",
        action="store_true",
        help="resolve for this host with pip-compile (pip-tools) first and prefer its pins on "
        "every target; off by default: pypidl's own resolver reads only pages and metadata",
    )
    _gate_flags(p)


def _gate_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what may cross the gap (README: What pypidl checks)")
    g.add_argument(
        "--exclude-newer",
        metavar="WHEN",
        help="a cooldown: files uploaded after WHEN do not exist for the plan (a date, a "
        "timestamp, or a duration back from now such as 7d); projects whose index gives no "
        "upload times are named",
    )
    g.add_argument(
        "--advisories",
        metavar="SOURCE",
        help="OSV advisories (the PyPI export: a zip, a directory of JSON files, or its URL): "
        "releases named by malware advisories are never mirrored, vulnerable ones are reported",
    )
    g.add_argument(
        "--refuse-vulnerable",
        action="store_true",
        help="with --advisories: releases with known vulnerabilities do not exist for the plan "
        "either, so the resolver picks a fixed one",
    )
    g.add_argument(
        "--require-provenance",
        action="append",
        default=[],
        metavar="PROJECT",
        help="refuse PROJECT's files that come without a PEP 740 provenance (repeatable); a "
        "provenance an index serves is always verified, and the file refused if it fails",
    )


def download_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("download")
    g.add_argument(
        "--download-dir", default="pypi", metavar="DIR", help="the mirror (default ./pypi)"
    )
    g.add_argument(
        "--concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help="download streams in total, and requests in flight while planning "
        f"(default {DEFAULT_CONCURRENCY})",
    )
    g.add_argument(
        "--processes",
        type=positive_int,
        metavar="N",
        help="worker processes (default: from the CPU count and the work)",
    )
    g.add_argument(
        "--lock-timeout",
        type=float,
        default=DEFAULT_LOCK_TIMEOUT,
        metavar="SECONDS",
        help="wait this long for a project another live pypidl run is working on in the same "
        f"mirror (default {DEFAULT_LOCK_TIMEOUT:g}); a lock whose holder died never blocks",
    )
    g.add_argument(
        "--build-index",
        action="store_true",
        help="build the PEP 503/691 index in DOWNLOAD_DIR/simple/ afterwards",
    )
    g.add_argument(
        "--index-backend",
        choices=("pypidl", "dir2pi"),
        default="pypidl",
        help="index writer (dir2pi needs the 'dir2pi' extra; it writes less, see docs/index.md)",
    )
