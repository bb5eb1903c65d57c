"""``pypidl verify DIR``: rehash a mirror and list, by file, what is wrong with it."""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import TYPE_CHECKING

from pypidl.cli._common import positive_int
from pypidl.errors import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from pypidl.cli._output import UI

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction, parents: SimpleNamespace) -> None:  # type: ignore[type-arg]
    """Add the ``verify`` command to ``sub``."""
    parser = sub.add_parser(
        "verify",
        parents=[parents.output],
        help="rehash every file of a mirror and report missing, damaged and unknown files",
        description=(
            "Rehash every file the mirror's catalog lists (downloads trust a file whose size, "
            "mtime and inode are unchanged; this checks the bytes) and report, by file: files "
            "missing, with the wrong size or sha256, and files the catalog does not know. "
            "Exit 0 when clean, 1 when problems were found."
        ),
    )
    parser.add_argument("directory", metavar="DIR", help="the mirror (the --download-dir of sync)")
    parser.add_argument(
        "--repair",
        action="store_true",
        help=(
            "delete damaged files and drop them (and missing ones) from the catalog, so the next "
            "download fetches them again"
        ),
    )
    parser.add_argument(
        "--processes",
        type=positive_int,
        metavar="N",
        help="worker processes (default: from the CPU count and the size of the mirror)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, ui: UI) -> int:
    from pypidl.cli._common import require_mirror
    from pypidl.cli._output import format_bytes
    from pypidl.cli._progress import ProgressEvents
    from pypidl.store.verify import verify_mirror

    require_mirror(args.directory)
    ui.info("Verifying the mirror in %s", args.directory)
    with ProgressEvents(quiet=ui.quiet, verbose=ui.verbose) as events:
        report = verify_mirror(
            args.directory, processes=args.processes, repair=args.repair, events=events
        )
    if report.problems:
        ui.table("Verification Problems", ("File", "Problem"), report.problems)
    ui.info(
        "Checked %d file(s), %s rehashed: %s",
        report.checked,
        format_bytes(report.bytes),
        f"{len(report.problems)} problem(s)" if report.problems else "no problems",
    )
    if report.repaired:
        ui.warning(
            "Removed %d damaged or missing file(s) from the catalog; download again to fetch them",
            len(report.repaired),
        )
    elif report.problems and not args.repair:
        ui.info("Run with --repair to drop damaged files so the next download fetches them again")
    return EXIT_FAILED if report.problems else EXIT_OK
